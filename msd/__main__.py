"""``python -m msd`` (``musetag msd``): MSD + Last.fm + 7digital audio -> master CSV + clean tag DB.

Subcommands (``python -m msd SUBCOMMAND -h`` for every option)::

    scan         --root AUDIO_DIR --out scan.csv                     audio headers, status per file
    silence      --scan scan.csv --out silence.csv                   decode once, silence statistics
    build        --h5 H5 --lastfm DB --scan CSV --silence CSV
                 --mismatches TXT --duplicates TXT --out master.csv  merge + purges + report
    clean-tags   --lastfm DB --out clean_tags.db                     tag cleaning -> clean DB + tag_map.csv
    all          --data DIR --out OUT_DIR                            the four above, in order
    cooccurrence --tags DB --out heatmap.png                         tag co-occurrence analysis

Exit status: 0 done, 2 bad arguments/input (the message names the problem), 3 the output is being
written by another job, 4 no space left on the device, 130 interrupted (a partial
``scan.csv.partial`` / ``silence.csv.partial`` is kept; the same command resumes it).

Only the standard library and ``core`` are imported here: ``--help`` and argument errors answer at
once; pandas, h5py and librosa are imported by the command that runs.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import signal
import sys

from core.cli import (HelpFormatter, add_verbosity, existing_dir, existing_file, nonneg_int, positive_int,
                      run_command, show_progress, exit_with)
from core.errors import MuseTagError

log = logging.getLogger(__name__)

PROG = 'python -m msd'

DATA_NAMES = {'h5': 'msd_summary_file.h5', 'lastfm': 'lastfm_tags.db', 'mismatches': 'sid_mismatches.txt',
              'duplicates': 'msd_duplicates.txt', 'audio_root': 'audio'}

# -- argument types (fail at parse time, naming the option) -------------------------------------
def _float(text):
    """A number (infinities allowed, NaN not)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number, got {text!r}') from None
    if math.isnan(v):
        raise argparse.ArgumentTypeError('NaN is not allowed')
    return v


def _nonneg_float(text):
    v = _float(text)
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f'must be a finite number >= 0, got {text}')
    return v


def _combine(text):
    names = [n.strip() for n in text.split(',') if n.strip()]
    if len(names) < 2:
        raise argparse.ArgumentTypeError(f'{text!r}: give at least two comma-separated names')
    return names


def _extensions(text):
    exts = [e.strip().lstrip('.').lower() for e in text.split(',') if e.strip()]
    if not exts:
        raise argparse.ArgumentTypeError('give at least one extension, e.g. mp3,wav')
    return exts


# -- option groups -------------------------------------------------------------------------------
def _common(p, workers=True):
    p.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    add_verbosity(p, progress=workers)
    if workers:
        p.add_argument('--workers', type=positive_int, default=os.cpu_count() or 1,
                       help='worker processes (default: the number of CPUs, here %(default)s)')
        p.add_argument('--restart', action='store_true',
                       help='discard a partial output of an interrupted run instead of resuming it')


def _scan_opts(p):
    p.add_argument('--ext', type=_extensions, default=None,
                   help='comma-separated audio extensions to list (default: mp3,wav,flac,ogg,oga,opus,'
                        'm4a,mp4,aac,aif,aiff)')


def _silence_opts(p):
    from .silence import FLOOR_DB, FRAME_LENGTH, HOP_LENGTH, TOP_DB  # numpy, no librosa
    p.add_argument('--top-db', type=_float, default=TOP_DB, help='dB below the loudest frame that count '
                   'as silence (librosa.effects.split)')
    p.add_argument('--frame-length', type=positive_int, default=FRAME_LENGTH,
                   help='RMS frame in samples at the native rate')
    p.add_argument('--hop-length', type=positive_int, default=HOP_LENGTH,
                   help='RMS hop in samples at the native rate')
    p.add_argument('--floor-db', type=_float, default=FLOOR_DB,
                   help='a clip whose loudest frame is below this dBFS is all silent (--floor-db=-inf disables)')


def _build_opts(p):
    p.add_argument('--min-size', type=nonneg_int, default=0,
                   help='drop files of at most this many bytes (default 0: only empty files)')
    p.add_argument('--min-effective-length', type=_nonneg_float, default=15.0,
                   help='drop tracks whose non-silent span is shorter, in seconds (0 = off)')
    p.add_argument('--max-total-silence', type=_nonneg_float, default=3.0,
                   help='drop tracks with more silence between sounds, in seconds (0 = off)')
    p.add_argument('--max-gap', type=_nonneg_float, default=1.0,
                   help='drop tracks with a longer silent gap, in seconds (0 = off)')
    p.add_argument('--keep-untagged', action='store_true', help='keep tracks with no Last.fm tag')
    p.add_argument('--keep-duplicates', action='store_true', help='keep every member of duplicate groups')


def _clean_opts(p):
    p.add_argument('--min-count', type=positive_int, default=2000,
                   help='tracks a listed genre needs to become a clean tag')
    p.add_argument('--pool-min-count', type=positive_int, default=10,
                   help='tracks a spelling variant needs to be merged')
    p.add_argument('--val-threshold', type=_float, default=0.0,
                   help='keep (track, tag) pairs with Last.fm strength val > this (default 0: drops the val-0 pairs; '
                        '--val-threshold=-1 keeps all)')
    p.add_argument('--lists', type=existing_dir, default=None,
                   help='folder with genres.txt, non_genres.txt, vocal_*.txt, combine.txt, drop.txt '
                        '(default: the shipped msd/lists; format in docs/clean-tag-db.md)')
    p.add_argument('--genres', type=existing_file, default=None, help='replace genres.txt')
    p.add_argument('--non-genres', type=existing_file, default=None, help='replace non_genres.txt')
    p.add_argument('--combine', type=_combine, action='append', default=[], metavar='A,B[,C…]',
                   help='fold these tags into one named after the first (repeatable)')
    p.add_argument('--drop', action='append', default=[], metavar='TAG',
                   help='remove this clean tag, or this raw tag from its clean tag (repeatable)')
    p.add_argument('--no-default-combine', action='store_true', help='ignore combine.txt')
    p.add_argument('--no-default-drop', action='store_true', help='ignore drop.txt')
    p.add_argument('--unlisted', choices=('drop', 'keep'), default='drop',
                   help='popular tags in neither genre list: drop them, or keep them as genres')


def _add_scan(sub):
    p = sub.add_parser('scan', help='list audio files with header facts and a status per file',
                       formatter_class=HelpFormatter)
    p.add_argument('--root', required=True, type=existing_dir, help='audio tree (e.g. the 7digital folder)')
    p.add_argument('--out', required=True, help='output CSV')
    _scan_opts(p)
    _common(p)


def _add_silence(sub):
    p = sub.add_parser('silence', help='silence statistics of every readable file of a scan',
                       formatter_class=HelpFormatter)
    p.add_argument('--scan', required=True, type=existing_file, help='scan.csv')
    p.add_argument('--out', required=True, help='output CSV')
    p.add_argument('--root', type=existing_dir, default=None,
                   help='audio root (default: the one recorded in scan.csv)')
    _silence_opts(p)
    _common(p)


def _add_build(sub):
    p = sub.add_parser('build', help='merge metadata + audio, purge, write master.csv + purge report',
                       formatter_class=HelpFormatter)
    p.add_argument('--h5', required=True, type=existing_file, help='msd_summary_file.h5')
    p.add_argument('--lastfm', type=existing_file, default=None, help='raw lastfm_tags.db')
    p.add_argument('--scan', required=True, type=existing_file, help='scan.csv')
    p.add_argument('--silence', type=existing_file, default=None, help='silence.csv')
    p.add_argument('--mismatches', type=existing_file, default=None, help='sid_mismatches.txt')
    p.add_argument('--duplicates', type=existing_file, default=None, help='msd_duplicates.txt')
    p.add_argument('--audio-root', type=existing_dir, default=None,
                   help='audio root for audio_path (default: the one recorded in scan.csv)')
    p.add_argument('--out', required=True, help='output master CSV')
    _build_opts(p)
    _common(p, workers=False)


def _add_clean(sub):
    p = sub.add_parser('clean-tags', help='clean the Last.fm tags into a clean DB + tag_map.csv',
                       formatter_class=HelpFormatter)
    p.add_argument('--lastfm', required=True, type=existing_file, help='raw lastfm_tags.db')
    p.add_argument('--out', required=True, help='output clean DB')
    p.add_argument('--tag-map', default=None, help='audit CSV (default: tag_map.csv next to --out)')
    _clean_opts(p)
    _common(p, workers=False)


def _add_all(sub):
    p = sub.add_parser('all', help='scan -> silence -> build -> clean-tags into one folder',
                       formatter_class=HelpFormatter)
    p.add_argument('--data', required=True, type=existing_dir,
                   help='folder with msd_summary_file.h5, lastfm_tags.db, sid_mismatches.txt, '
                        'msd_duplicates.txt and audio/ (the generator\'s layout)')
    p.add_argument('--out', required=True, help='output folder')
    for key, name in DATA_NAMES.items():
        p.add_argument('--' + key.replace('_', '-'), default=None, help=f'override DATA/{name}')
    p.add_argument('--resume', action='store_true',
                   help='keep the outputs of steps that already finished and run the rest')
    _scan_opts(p)
    _silence_opts(p)
    _build_opts(p)
    _clean_opts(p)
    _common(p)


def _add_cooc(sub):
    p = sub.add_parser('cooccurrence', help='tag co-occurrence counts, correlations and a PNG heat-map',
                       formatter_class=HelpFormatter)
    p.add_argument('--tags', metavar='DB', default=None,
                   help='clean tag DB (msd clean-tags; a raw Last.fm DB works too); required')
    p.add_argument('--db', default=None, help=argparse.SUPPRESS)  # the older spelling of --tags
    p.add_argument('--out', required=True, help='output PNG heat-map')
    p.add_argument('--select', default=None, metavar='TAG,TAG,…',
                   help='comma-separated tags to analyse (default: the --top most popular)')
    p.add_argument('--top', type=_at_least_two, default=30, help='number of tags')
    p.add_argument('--csv', default=None, help='also write the pairwise count matrix as CSV')
    p.add_argument('--threshold', type=_float, default=0.8, help='fraction for equivalent/subset reports')
    _common(p, workers=False)


def _at_least_two(text):
    v = positive_int(text)
    if v < 2:
        raise argparse.ArgumentTypeError(f'must be >= 2, got {v}')
    return v


def make_parser(prog=PROG):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split('\n\n')[0],
                                 formatter_class=HelpFormatter)
    sub = ap.add_subparsers(dest='command', required=True, metavar='SUBCOMMAND')
    for add in (_add_scan, _add_silence, _add_build, _add_clean, _add_all, _add_cooc):
        add(sub)
    return ap


# -- commands ------------------------------------------------------------------------------------
def _lists(a):
    from .tagclean import CuratedLists
    return CuratedLists.load(a.lists, genres=a.genres, non_genres=a.non_genres, combine=a.combine,
                             drop=a.drop, default_combine=not a.no_default_combine,
                             default_drop=not a.no_default_drop)


def cmd_scan(a, cmd):
    from .scan import DEFAULT_EXTENSIONS, scan
    r = scan(a.root, a.out, workers=a.workers, extensions=a.ext or DEFAULT_EXTENSIONS,
             overwrite=a.overwrite, restart=a.restart, progress=show_progress(a), command=cmd)
    return r.summary


def cmd_silence(a, cmd):
    from .silence import silence
    r = silence(a.scan, a.out, root=a.root, workers=a.workers, top_db=a.top_db, frame_length=a.frame_length,
                hop_length=a.hop_length, floor_db=a.floor_db, overwrite=a.overwrite, restart=a.restart,
                progress=show_progress(a), command=cmd)
    return r.summary


def _build_kwargs(a):
    return dict(min_size=a.min_size, min_effective_length=a.min_effective_length,
                max_total_silence=a.max_total_silence, max_gap=a.max_gap, keep_untagged=a.keep_untagged,
                keep_duplicates=a.keep_duplicates)


def _clean_kwargs(a):
    return dict(min_count=a.min_count, pool_min_count=a.pool_min_count, val_threshold=a.val_threshold,
                unlisted=a.unlisted)


def cmd_build(a, cmd):
    from .build import build_master
    _, rep = build_master(h5=a.h5, scan=a.scan, out=a.out, lastfm=a.lastfm, silence=a.silence,
                          mismatches=a.mismatches, duplicates=a.duplicates, audio_root=a.audio_root,
                          overwrite=a.overwrite, command=cmd, **_build_kwargs(a))
    return rep['summary']


def cmd_clean(a, cmd):
    from .cleandb import clean_tags
    r = clean_tags(a.lastfm, a.out, tag_map=a.tag_map, lists=_lists(a), overwrite=a.overwrite, command=cmd,
                   **_clean_kwargs(a))
    return r.summary


ALL_OUTPUTS = (('scan', 'scan.csv'), ('silence', 'silence.csv'), ('master', 'master.csv'),
               ('clean', 'clean_tags.db'), ('tag_map', 'tag_map.csv'))


def _all_inputs(a):
    """``{key: path}`` of the inputs of ``msd all`` (DATA/<name> unless overridden), all checked."""
    inputs = {}
    for key, name in DATA_NAMES.items():
        path = getattr(a, key) or os.path.join(a.data, name)
        ok = os.path.isdir(path) if key == 'audio_root' else os.path.isfile(path)
        if not ok:
            raise MuseTagError(f'{path} not found (pass --{key.replace("_", "-")} to point elsewhere)')
        inputs[key] = path
    return inputs


def cmd_all(a, cmd):
    from .build import build_master, report_paths
    from .cleandb import clean_tags
    from .scan import DEFAULT_EXTENSIONS, scan
    from .silence import silence
    if a.overwrite and a.resume:
        raise MuseTagError('--overwrite and --resume exclude each other')
    inputs = _all_inputs(a)
    lists = _lists(a)
    os.makedirs(a.out, exist_ok=True)
    out = {k: os.path.join(a.out, n) for k, n in ALL_OUTPUTS}
    rj, rc = report_paths(out['master'])
    existing = [p for p in list(out.values()) + [rj, rc] if os.path.exists(p)]
    if existing and not (a.overwrite or a.resume):
        raise MuseTagError(f'{a.out} already holds outputs ({", ".join(map(os.path.basename, existing))}); '
                           'pass --overwrite to redo every step or --resume to keep finished steps')
    replace = a.overwrite or a.resume
    progress = show_progress(a)

    def done(*paths):
        return a.resume and all(os.path.exists(p) for p in paths)

    def step(name, paths, run):
        line = f'{name}: kept {paths[0]}' if done(*paths) else run()
        log.info(line)

    step('scan', [out['scan']], lambda: scan(
        inputs['audio_root'], out['scan'], workers=a.workers, extensions=a.ext or DEFAULT_EXTENSIONS,
        overwrite=a.overwrite, restart=a.restart, progress=progress, command=cmd).summary)
    step('silence', [out['silence']], lambda: silence(
        out['scan'], out['silence'], root=inputs['audio_root'], workers=a.workers, top_db=a.top_db,
        frame_length=a.frame_length, hop_length=a.hop_length, floor_db=a.floor_db, overwrite=a.overwrite,
        restart=a.restart, progress=progress, command=cmd).summary)
    step('build', [out['master'], rj, rc], lambda: build_master(
        h5=inputs['h5'], scan=out['scan'], out=out['master'], lastfm=inputs['lastfm'], silence=out['silence'],
        mismatches=inputs['mismatches'], duplicates=inputs['duplicates'], audio_root=inputs['audio_root'],
        overwrite=replace, command=cmd, **_build_kwargs(a))[1]['summary'])
    step('clean-tags', [out['clean'], out['tag_map']], lambda: clean_tags(
        inputs['lastfm'], out['clean'], tag_map=out['tag_map'], lists=lists, overwrite=replace, command=cmd,
        **_clean_kwargs(a)).summary)
    return (f'all: done -> {a.out} (scan.csv, silence.csv, master.csv, master.purge.json/.csv, '
            'clean_tags.db, tag_map.csv)')


def _cooc_inputs(a):
    """``(db, selected tags or None)`` from ``--tags``/``--select`` and the older ``--db``/``--tags``.

    Before the flags were unified, ``--db`` named the DB and ``--tags`` the comma-separated tag
    list; a command line that gives ``--db`` keeps that meaning.
    """
    select = a.select
    if a.db is not None:
        db = a.db
        if a.tags is not None:
            if select is not None:
                raise MuseTagError('give the tag list once: --select (the older --tags with --db means the same)')
            select = a.tags
    elif a.tags is not None:
        db = a.tags
    else:
        raise MuseTagError('--tags DB is required (the clean tag DB written by msd clean-tags)')
    if not os.path.isfile(db):
        raise FileNotFoundError(f'--tags {db}: no such file')
    names = [t.strip() for t in select.split(',') if t.strip()] if select else None
    return db, names


def cmd_cooc(a, cmd):
    from core.files import check_output
    db, selected = _cooc_inputs(a)
    check_output(a.out, a.overwrite)
    if a.csv:
        check_output(a.csv, a.overwrite)
    from .cooccurrence import CoOccurrence
    from .lastfm import LastFmPandas
    lf = LastFmPandas(db)
    tags = selected or lf.popularity()['tag'].head(a.top).tolist()
    co = CoOccurrence(lf, tags)
    co.heatmap(a.out, overwrite=a.overwrite)
    if a.csv:
        from .common import write_csv
        write_csv(co.pairwise().reset_index(names='tag'), a.csv, command=cmd, overwrite=a.overwrite)
    for x, y, cxy, cyx in co.are_equivalent(a.threshold):
        print(f'equivalent: {x} ~ {y} ({cxy:.2f}, {cyx:.2f})')
    for x, y, c in co.all_tag_is(a.threshold):
        print(f'subset: {c:.0%} of {x} tracks are {y}')
    return f'cooccurrence: {len(co.tags)} tags over {co.X.shape[0]} tracks -> {a.out}'


COMMANDS = {'scan': cmd_scan, 'silence': cmd_silence, 'build': cmd_build, 'clean-tags': cmd_clean,
            'all': cmd_all, 'cooccurrence': cmd_cooc}


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv=None, prog=None) -> int:
    """Command line entry point (``python -m msd``, ``musetag msd``); returns the exit status."""
    prog = prog or PROG
    argv = sys.argv[1:] if argv is None else list(argv)
    a = make_parser(prog).parse_args(argv)
    cmd = f'{prog} ' + shlex.join(argv)

    def body(args):
        print(COMMANDS[args.command](args, cmd))

    signal.signal(signal.SIGTERM, _sigterm)
    return run_command(body, a, f'{prog} {a.command}')


if __name__ == '__main__':
    exit_with(main())
