"""The web app's commands: ``musetag serve`` and ``musetag feedback``.

``musetag serve (--run RUN | --model NAME) --index DIR [--host 127.0.0.1] [--port 8000] [--image-run RUN] …``
    The web page and its JSON API (``docs/webapp.md``) on http://HOST:PORT/, until Ctrl-C.
``musetag feedback show --db DB [--json] [--listener NAME]``
    The stored likes and dislikes.
``musetag feedback export --db DB --index DIR [--master master.csv] --out weights.csv``
    Per-example training weights (``track_id,weight,likes,dislikes``) for ``dataset.weights``.

Exit codes (``docs/cli.md``): 0 done; 1 (export) some judged items could not be mapped to a training
track (each listed with its reason, and counted); 2 bad arguments, a missing run, index or database, an index
built by another run; 4 disk full; 130 interrupted.

This module imports only the standard library and :mod:`core` at module level: ``--help`` answers
at once; FastAPI, uvicorn and TensorFlow are imported by the commands that use them.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from core import cli as ccli
from core.errors import EXIT_OK, EXIT_PARTIAL, MuseTagError

__all__ = ['serve_main', 'feedback_main', 'serve_parser', 'feedback_parser']

log = logging.getLogger(__name__)

_SERVE_EPILOG = """\
The page (plain HTML/JS served from the package, no network needed) tags uploads and the
microphone, finds similar tracks, builds playlists, searches by text or tags, and stores every
like/dislike in the feedback database (re-ranking that listener's later results). The API is
documented at http://HOST:PORT/docs and /openapi.json. It binds 127.0.0.1 (this machine only)
unless --host says otherwise: the API has no authentication.

exit codes: 0 stopped; 2 bad arguments, a missing run or index, an index built by another run;
130 interrupted.
"""

_FEEDBACK_EPILOG = """\
weights: an item's likes/dislikes count the listeners whose latest verdict it is; weight is
--like-weight when likes outnumber dislikes, --dislike-weight when dislikes do, and a tie is not
written (the trainer's default weight 1.0). Index ids are mapped to the training data's track ids
through --master (its audio paths); without --master the index ids are written as they are.

exit codes: 0 done; 1 some judged items were not mapped to a training track (counted); 2 bad
arguments or a missing database/index/master table; 4 disk full; 130 interrupted.
"""


def serve_parser(prog=None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog or 'python -m webapp serve', formatter_class=ccli.HelpFormatter,
                                epilog=_SERVE_EPILOG,
                                description='Serve the web app (tag, record, search, playlists, like/dislike) over '
                                            'an index.')
    ccli.add_run_options(p)
    p.add_argument('--index', required=True, metavar='DIR', help='the index directory (built by this run)')
    p.add_argument('--host', default='127.0.0.1',
                   help='address to bind (0.0.0.0 exposes the unauthenticated API to the network)')
    p.add_argument('--port', type=ccli.nonneg_int, default=8000,
                   help='TCP port (0: any free port; the address is printed)')
    p.add_argument('--feedback', default=None, metavar='DB',
                   help='SQLite file of likes and dislikes (default: DIR/feedback.sqlite)')
    p.add_argument('--max-upload-mb', type=ccli.positive_float, default=50.0, metavar='MB',
                   help='largest upload accepted, megabytes (larger ones get HTTP 413)')
    p.add_argument('--workers', type=ccli.positive_int, default=2, metavar='N',
                   help='uploads tagged or embedded at the same time (threads sharing one model)')
    p.add_argument('--image-run', default=None, metavar='RUN',
                   help='an image run trained on pairs of this index (docs/images.md): the page then finds music '
                        'for a dropped picture')
    ccli.add_verbosity(p, progress=False)
    return p


def feedback_parser(prog=None) -> argparse.ArgumentParser:
    prog = prog or 'python -m webapp feedback'
    p = argparse.ArgumentParser(prog=prog, formatter_class=ccli.HelpFormatter, epilog=_FEEDBACK_EPILOG,
                                description="Listeners' likes and dislikes from the web app: show them, or export "
                                            'them as per-example training weights.')
    sub = p.add_subparsers(dest='command', required=True, metavar='{show,export}')
    s = sub.add_parser('show', prog=f'{prog} show', formatter_class=ccli.HelpFormatter, epilog=_FEEDBACK_EPILOG,
                       help='print the stored likes and dislikes', description='Print the stored likes and dislikes.')
    s.add_argument('--db', required=True, metavar='DB', help='the feedback database (musetag serve --feedback)')
    s.add_argument('--listener', default=None, metavar='NAME', help='only this listener')
    s.add_argument('--json', action='store_true', help='every press as JSON (one object per line)')
    ccli.add_verbosity(s, progress=False)

    e = sub.add_parser('export', prog=f'{prog} export', formatter_class=ccli.HelpFormatter, epilog=_FEEDBACK_EPILOG,
                       help='write per-example training weights (dataset.weights)',
                       description='Write per-example training weights (CSV track_id,weight,likes,dislikes) from '
                                   'the feedback, for the training config key dataset.weights.')
    e.add_argument('--db', required=True, metavar='DB', help='the feedback database (musetag serve --feedback)')
    e.add_argument('--index', required=True, metavar='DIR', help='the index the feedback was given on')
    e.add_argument('--master', default=None, metavar='CSV',
                   help="the training data's master.csv: maps index tracks to its track ids by audio path")
    e.add_argument('--out', required=True, metavar='CSV', help='the weights file to write')
    e.add_argument('--like-weight', type=ccli.finite_float, default=2.0, metavar='W',
                   help='weight of a track its listeners like')
    e.add_argument('--dislike-weight', type=ccli.finite_float, default=0.0, metavar='W',
                   help='weight of a track its listeners dislike')
    e.add_argument('--overwrite', action='store_true', help='replace an existing --out file')
    ccli.add_verbosity(e, progress=False)
    return p


# --------------------------------------------------------------------------------------------------
# serve
# --------------------------------------------------------------------------------------------------
def serve_main(argv=None, prog=None) -> int:
    """``musetag serve``; returns the exit code (module docstring)."""
    prog = prog or 'python -m webapp serve'
    args = serve_parser(prog).parse_args(argv)
    return ccli.run_command(_serve, args, prog)


def _serve(args) -> int:
    from modeling.rundir import check_run_dir
    for run_dir in (args.run, args.image_run):
        if run_dir is not None:
            check_run_dir(run_dir)
    from retrieval.index import Index
    if not Index.exists(args.index):
        raise MuseTagError(f'--index {args.index}: not an index (index.json missing); build one with '
                           '`musetag index build`')
    if args.host not in ('127.0.0.1', 'localhost', '::1'):
        log.warning('binding %s: the API has no authentication; anyone who reaches this address can use it',
                    args.host)
    sock = _bind(args.host, args.port)              # before loading anything: a taken port fails at once
    try:
        from modeling.pretrained import run_or_model
        run = run_or_model(args.run, args.model)
        from core.logs import import_tensorflow
        import_tensorflow()
        import uvicorn

        from webapp.app import create_app
        app = create_app(run, args.index, args.feedback, max_upload_mb=args.max_upload_mb, workers=args.workers,
                         image_run=args.image_run)
    except BaseException:
        sock.close()
        raise
    try:
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, host=args.host, port=port, log_level='warning' if args.quiet else 'info',
                                log_config=None)
        print(f'serving {args.index} on http://{_url_host(args.host)}:{port}/ (Ctrl-C stops)', file=sys.stderr)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        app.state.service.close()
    return EXIT_OK


def _bind(host: str, port: int):
    """A listening-ready TCP socket bound to ``host:port`` (port 0: a free port), or a MuseTagError."""
    import socket
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise MuseTagError(f'cannot listen on {host}:{port} ({e.strerror or e}); choose another --port or --host') \
            from None
    return sock


def _url_host(host: str) -> str:
    return f'[{host}]' if ':' in host else host


# --------------------------------------------------------------------------------------------------
# feedback
# --------------------------------------------------------------------------------------------------
def feedback_main(argv=None, prog=None) -> int:
    """``musetag feedback``; returns the exit code (module docstring)."""
    prog = prog or 'python -m webapp feedback'
    args = feedback_parser(prog).parse_args(argv)
    body = {'show': _show, 'export': _export}[args.command]
    return ccli.run_command(body, args, f'{prog} {args.command}')


def _show(args) -> int:
    from webapp.feedback import FeedbackStore
    with FeedbackStore.open_existing(args.db) as store:
        records = store.records(args.listener)
    if args.json:
        for r in records:
            print(json.dumps(r, ensure_ascii=False, sort_keys=True))
        return EXIT_OK
    if not records:
        print('no feedback stored')
        return EXIT_OK
    for r in records:
        print(f'{r["time"]}  {r["listener"]:<16}  {r["verdict"]:<7}  {r["item"]}  '
              f'{ccli.escape(json.dumps(r["query"], ensure_ascii=False))}')
    listeners = len({r['listener'] for r in records})
    print(f'{len(records)} presses by {listeners} listener(s)', file=sys.stderr)
    return EXIT_OK


def _export(args) -> int:
    from core import files
    files.check_output(args.out, args.overwrite)
    if args.master is not None and not os.path.isfile(args.master):
        raise MuseTagError(f'--master {args.master}: no such file')
    from retrieval.index import Index
    from webapp.feedback import FeedbackStore, export_weights
    with FeedbackStore.open_existing(args.db) as store:
        counts = store.counts()
    with Index.open(args.index) as index:
        paths = {t.id: t.path for t in index.tracks()}
    id_map = _id_map(paths, args.master)
    summary = export_weights(counts, id_map, args.out, like_weight=args.like_weight,
                             dislike_weight=args.dislike_weight, overwrite=args.overwrite)
    for item in summary.unmapped:
        why = 'not in the index' if item not in paths else f'{paths[item]} is not in --master'
        print(f'not mapped: {item} ({why})', file=sys.stderr)
    print(f'{args.out}: {summary.line()}', file=sys.stderr)
    return EXIT_PARTIAL if summary.unmapped else EXIT_OK


def _id_map(paths: dict, master):
    """``index id -> training track id or None``: through ``master``'s audio paths (resolved), or the
    index id itself without a master table (None for an id the index no longer holds)."""
    if master is None:
        return lambda item: item if item in paths else None
    from retrieval.evaluate import master_paths
    by_path = master_paths(master)

    def lookup(item):
        path = paths.get(item)
        row = by_path.get(os.path.realpath(path)) if path else None
        return row[0] if row else None
    return lookup
