"""``python -m msd``: MSD + Last.fm + 7digital audio -> master CSV + clean tag DB.

Subcommands (``python -m msd SUBCOMMAND -h`` for every option)::

    scan         --root AUDIO_DIR --out scan.csv                     audio headers, status per file
    silence      --scan scan.csv --out silence.csv                   decode once, silence statistics
    build        --h5 H5 --lastfm DB --scan CSV --silence CSV
                 --mismatches TXT --duplicates TXT --out master.csv  merge + purges + report
    clean-tags   --lastfm DB --out clean_tags.db                     tag cleaning -> clean DB + tag_map.csv
    all          --data DIR --out OUT_DIR                            the four above, in order
    cooccurrence --db DB --out heatmap.png                           tag co-occurrence analysis

Exit status: 0 done, 2 bad arguments/input (message names the problem), 130 interrupted (a partial
``scan.csv.partial`` / ``silence.csv.partial`` is kept; the same command resumes it).
"""
from __future__ import annotations

import argparse
import math
import os
import shlex
import signal
import sys

from .common import MsdError, logger, setup_logging

DATA_NAMES = {'h5': 'msd_summary_file.h5', 'lastfm': 'lastfm_tags.db', 'mismatches': 'sid_mismatches.txt',
              'duplicates': 'msd_duplicates.txt', 'audio_root': 'audio'}


# -- argument types (fail at parse time, naming the option) -------------------------------------
def _int_at_least(lo):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
        if v < lo:
            raise argparse.ArgumentTypeError(f'must be >= {lo}, got {v}')
        return v
    return parse


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


def _existing_file(text):
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f'{text}: no such file')
    return text


def _existing_dir(text):
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f'{text}: not a directory')
    return text


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
    p.add_argument('-v', '--verbose', action='count', default=0, help='more logging')
    p.add_argument('-q', '--quiet', action='count', default=0, help='only warnings and the summary')
    if workers:
        p.add_argument('--workers', type=_int_at_least(1), default=os.cpu_count() or 1,
                       help='worker processes (default: number of CPUs)')
        p.add_argument('--restart', action='store_true',
                       help='discard a partial output of an interrupted run instead of resuming it')
        p.add_argument('--no-progress', action='store_true', help='no progress bar')


def _scan_opts(p):
    p.add_argument('--ext', type=_extensions, default=None,
                   help='comma-separated audio extensions to list (default: mp3,wav,flac,ogg,oga,opus,'
                        'm4a,mp4,aac,aif,aiff)')


def _silence_opts(p):
    from .silence import FLOOR_DB, FRAME_LENGTH, HOP_LENGTH, TOP_DB
    p.add_argument('--top-db', type=_float, default=TOP_DB, help='dB below the loudest frame that count '
                   'as silence (librosa.effects.split; default %(default)s)')
    p.add_argument('--frame-length', type=_int_at_least(1), default=FRAME_LENGTH,
                   help='RMS frame in samples at the native rate (default %(default)s)')
    p.add_argument('--hop-length', type=_int_at_least(1), default=HOP_LENGTH,
                   help='RMS hop in samples at the native rate (default %(default)s)')
    p.add_argument('--floor-db', type=_float, default=FLOOR_DB,
                   help='a clip whose loudest frame is below this dBFS is all silent '
                        '(default %(default)s; --floor-db=-inf disables)')


def _build_opts(p):
    p.add_argument('--min-size', type=_int_at_least(0), default=0,
                   help='drop files of at most this many bytes (default 0: only empty files)')
    p.add_argument('--min-effective-length', type=_nonneg_float, default=15.0,
                   help='drop tracks whose non-silent span is shorter (s; 0 = off; default 15)')
    p.add_argument('--max-total-silence', type=_nonneg_float, default=3.0,
                   help='drop tracks with more silence between sounds (s; 0 = off; default 3)')
    p.add_argument('--max-gap', type=_nonneg_float, default=1.0,
                   help='drop tracks with a longer silent gap (s; 0 = off; default 1)')
    p.add_argument('--keep-untagged', action='store_true', help='keep tracks with no Last.fm tag')
    p.add_argument('--keep-duplicates', action='store_true', help='keep every member of duplicate groups')


def _clean_opts(p):
    p.add_argument('--min-count', type=_int_at_least(1), default=2000,
                   help='tracks a listed genre needs to become a clean tag (default %(default)s)')
    p.add_argument('--pool-min-count', type=_int_at_least(1), default=10,
                   help='tracks a spelling variant needs to be merged (default %(default)s)')
    p.add_argument('--val-threshold', type=_float, default=0.0,
                   help='keep (track, tag) pairs with Last.fm strength val > this (default 0; '
                        '--val-threshold=-1 keeps all)')
    p.add_argument('--lists', type=_existing_dir, default=None,
                   help='folder with genres.txt, non_genres.txt, vocal_*.txt, combine.txt, drop.txt '
                        '(default: the shipped msd/lists)')
    p.add_argument('--genres', type=_existing_file, default=None, help='replace genres.txt')
    p.add_argument('--non-genres', type=_existing_file, default=None, help='replace non_genres.txt')
    p.add_argument('--combine', type=_combine, action='append', default=[], metavar='A,B[,C…]',
                   help='fold these tags into one named after the first (repeatable)')
    p.add_argument('--drop', action='append', default=[], metavar='TAG',
                   help='remove this clean tag, or this raw tag from its clean tag (repeatable)')
    p.add_argument('--no-default-combine', action='store_true', help='ignore combine.txt')
    p.add_argument('--no-default-drop', action='store_true', help='ignore drop.txt')
    p.add_argument('--unlisted', choices=('drop', 'keep'), default='drop',
                   help='popular tags in neither genre list: drop (default) or use as genres')


def make_parser():
    ap = argparse.ArgumentParser(prog='python -m msd', description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='command', required=True, metavar='SUBCOMMAND')

    p = sub.add_parser('scan', help='list audio files with header facts and a status per file')
    p.add_argument('--root', required=True, type=_existing_dir, help='audio tree (e.g. the 7digital folder)')
    p.add_argument('--out', required=True, help='output CSV')
    _scan_opts(p)
    _common(p)

    p = sub.add_parser('silence', help='silence statistics of every readable file of a scan')
    p.add_argument('--scan', required=True, type=_existing_file, help='scan.csv')
    p.add_argument('--out', required=True, help='output CSV')
    p.add_argument('--root', type=_existing_dir, default=None,
                   help='audio root (default: the one recorded in scan.csv)')
    _silence_opts(p)
    _common(p)

    p = sub.add_parser('build', help='merge metadata + audio, purge, write master.csv + purge report')
    p.add_argument('--h5', required=True, type=_existing_file, help='msd_summary_file.h5')
    p.add_argument('--lastfm', type=_existing_file, default=None, help='raw lastfm_tags.db')
    p.add_argument('--scan', required=True, type=_existing_file, help='scan.csv')
    p.add_argument('--silence', type=_existing_file, default=None, help='silence.csv')
    p.add_argument('--mismatches', type=_existing_file, default=None, help='sid_mismatches.txt')
    p.add_argument('--duplicates', type=_existing_file, default=None, help='msd_duplicates.txt')
    p.add_argument('--audio-root', type=_existing_dir, default=None,
                   help='audio root for audio_path (default: the one recorded in scan.csv)')
    p.add_argument('--out', required=True, help='output master CSV')
    _build_opts(p)
    _common(p, workers=False)

    p = sub.add_parser('clean-tags', help='clean the Last.fm tags into a clean DB + tag_map.csv')
    p.add_argument('--lastfm', required=True, type=_existing_file, help='raw lastfm_tags.db')
    p.add_argument('--out', required=True, help='output clean DB')
    p.add_argument('--tag-map', default=None, help='audit CSV (default: tag_map.csv next to --out)')
    _clean_opts(p)
    _common(p, workers=False)

    p = sub.add_parser('all', help='scan -> silence -> build -> clean-tags into one folder')
    p.add_argument('--data', required=True, type=_existing_dir,
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

    p = sub.add_parser('cooccurrence', help='tag co-occurrence counts, correlations and a PNG heat-map')
    p.add_argument('--db', required=True, type=_existing_file, help='clean (or raw) tag DB')
    p.add_argument('--out', required=True, help='output PNG heat-map')
    p.add_argument('--tags', default=None, help='comma-separated tags (default: the --top most popular)')
    p.add_argument('--top', type=_int_at_least(2), default=30, help='number of tags (default %(default)s)')
    p.add_argument('--csv', default=None, help='also write the pairwise count matrix as CSV')
    p.add_argument('--threshold', type=_float, default=0.8,
                   help='fraction for equivalent/subset reports (default %(default)s)')
    _common(p, workers=False)
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
             overwrite=a.overwrite, restart=a.restart, progress=not a.no_progress, command=cmd)
    return r.summary


def cmd_silence(a, cmd):
    from .silence import silence
    r = silence(a.scan, a.out, root=a.root, workers=a.workers, top_db=a.top_db, frame_length=a.frame_length,
                hop_length=a.hop_length, floor_db=a.floor_db, overwrite=a.overwrite, restart=a.restart,
                progress=not a.no_progress, command=cmd)
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


def cmd_all(a, cmd):
    from .build import build_master, report_paths
    from .cleandb import clean_tags
    from .scan import DEFAULT_EXTENSIONS, scan
    from .silence import silence
    if a.overwrite and a.resume:
        raise MsdError('--overwrite and --resume exclude each other')
    inputs = {}
    for key, name in DATA_NAMES.items():
        path = getattr(a, key) or os.path.join(a.data, name)
        ok = os.path.isdir(path) if key == 'audio_root' else os.path.isfile(path)
        if not ok:
            raise MsdError(f'{path} not found (pass --{key.replace("_", "-")} to point elsewhere)')
        inputs[key] = path
    lists = _lists(a)
    os.makedirs(a.out, exist_ok=True)
    out = {k: os.path.join(a.out, n) for k, n in (('scan', 'scan.csv'), ('silence', 'silence.csv'),
                                                   ('master', 'master.csv'), ('clean', 'clean_tags.db'),
                                                   ('tag_map', 'tag_map.csv'))}
    rj, rc = report_paths(out['master'])
    existing = [p for p in list(out.values()) + [rj, rc] if os.path.exists(p)]
    if existing and not (a.overwrite or a.resume):
        raise MsdError(f'{a.out} already holds outputs ({", ".join(map(os.path.basename, existing))}); '
                       'pass --overwrite to redo every step or --resume to keep finished steps')

    def done(*paths):
        return a.resume and all(os.path.exists(p) for p in paths)

    lines = []
    if done(out['scan']):
        lines.append(f'scan: kept {out["scan"]}')
    else:
        lines.append(scan(inputs['audio_root'], out['scan'], workers=a.workers,
                          extensions=a.ext or DEFAULT_EXTENSIONS, overwrite=a.overwrite, restart=a.restart,
                          progress=not a.no_progress, command=cmd).summary)
    logger.info(lines[-1])
    if done(out['silence']):
        lines.append(f'silence: kept {out["silence"]}')
    else:
        lines.append(silence(out['scan'], out['silence'], root=inputs['audio_root'], workers=a.workers,
                             top_db=a.top_db, frame_length=a.frame_length, hop_length=a.hop_length,
                             floor_db=a.floor_db, overwrite=a.overwrite, restart=a.restart,
                             progress=not a.no_progress, command=cmd).summary)
    logger.info(lines[-1])
    if done(out['master'], rj, rc):
        lines.append(f'build: kept {out["master"]}')
    else:
        lines.append(build_master(h5=inputs['h5'], scan=out['scan'], out=out['master'], lastfm=inputs['lastfm'],
                                  silence=out['silence'], mismatches=inputs['mismatches'],
                                  duplicates=inputs['duplicates'], audio_root=inputs['audio_root'],
                                  overwrite=a.overwrite or a.resume, command=cmd, **_build_kwargs(a))[1]['summary'])
    logger.info(lines[-1])
    if done(out['clean'], out['tag_map']):
        lines.append(f'clean-tags: kept {out["clean"]}')
    else:
        lines.append(clean_tags(inputs['lastfm'], out['clean'], tag_map=out['tag_map'], lists=lists,
                                overwrite=a.overwrite or a.resume, command=cmd, **_clean_kwargs(a)).summary)
    logger.info(lines[-1])
    return f'all: done -> {a.out} (scan.csv, silence.csv, master.csv, master.purge.json/.csv, ' \
           f'clean_tags.db, tag_map.csv)'


def cmd_cooc(a, cmd):
    from .cooccurrence import CoOccurrence
    from .lastfm import LastFmPandas
    if os.path.exists(a.out) and not a.overwrite:
        raise MsdError(f'{a.out} exists; pass --overwrite to replace it')
    lf = LastFmPandas(a.db)
    if a.tags:
        tags = [t.strip() for t in a.tags.split(',') if t.strip()]
    else:
        tags = lf.popularity()['tag'].head(a.top).tolist()
    co = CoOccurrence(lf, tags)
    co.heatmap(a.out)
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


def main(argv=None):
    """CLI entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    a = make_parser().parse_args(argv)
    setup_logging(a.verbose - a.quiet)
    cmd = 'python -m msd ' + shlex.join(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        summary = COMMANDS[a.command](a, cmd)
    except MsdError as e:
        print(f'python -m msd {a.command}: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'python -m msd {a.command}: interrupted; a partial output (*.partial) is kept and the '
              'same command resumes it', file=sys.stderr)
        return 130
    print(summary)
    return 0


if __name__ == '__main__':
    sys.exit(main())
