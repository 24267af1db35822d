"""``musetag latent``: target tables for latent training (``docs/latent.md``).

``musetag latent doc2vec --tags clean_tags.db [--master master.csv] --dim 40 --out targets/``
    One vector per track from its clean tags (gensim Doc2Vec, tag strengths as repetitions).
``musetag latent track2vec (--listens train_triplets.txt --unique-tracks unique_tracks.txt
[--mismatches sid_mismatches.txt] | --playlists FILE) --out targets/ [--hold-out FILE | --hold-out-fraction F]``
    One vector per track from co-listening (word2vec: tracks as words, a user's listening or a
    playlist as a sentence); rare tracks listed in rare.csv, held-out tracks in held_out.txt.
``musetag latent info DIR [--json]``
    What a target table holds.
``musetag latent held-out DIR --master master.csv``
    The audio files of the held-out tracks, one per line (to index just the cold-start tracks).

This module imports only the standard library and :mod:`core` at module level: ``--help`` and
argument errors answer at once; gensim and NumPy are imported by the commands that run.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from core import cli as ccli
from core import files
from core.errors import EXIT_OK, EXIT_PARTIAL, MuseTagError

__all__ = ['main', 'build_parser']

log = logging.getLogger(__name__)

_EPILOG = """\
A target table is a folder: targets.npz (track_ids, vectors float32 [n, d]), targets.json (kind,
dim, count, params, source), rare.csv (tracks without a vector and why) and, for track2vec,
held_out.txt (the tracks removed on purpose for cold-start evaluation). See docs/latent.md.

Deterministic for a --seed with --workers 1.

exit codes: 0 done; 1 done but malformed input lines were skipped (counted in the summary);
2 bad arguments or unusable input; 3 another job writes --out; 4 disk full; 130 interrupted.
"""


def _common(p, dim: int, epochs: int) -> None:
    p.add_argument('--out', required=True, metavar='DIR', help='the target table folder to write')
    p.add_argument('--overwrite', action='store_true', help='replace an existing --out folder')
    p.add_argument('--dim', type=ccli.positive_int, default=dim, help='vector dimension')
    p.add_argument('--epochs', type=ccli.positive_int, default=epochs, help='training passes over the corpus')
    p.add_argument('--seed', type=int, default=0, help='random seed (deterministic with --workers 1)')
    p.add_argument('--workers', type=ccli.positive_int, default=1,
                   help='gensim worker threads (more than 1 is faster but not deterministic)')
    ccli.add_verbosity(p)


def build_parser(prog=None) -> argparse.ArgumentParser:
    prog = prog or 'python -m latent'
    p = argparse.ArgumentParser(prog=prog, formatter_class=ccli.HelpFormatter, epilog=_EPILOG,
                                description='Target tables (one vector per track) that a latent model learns to '
                                            'predict from audio: from tags (doc2vec) or listening data (track2vec).')
    sub = p.add_subparsers(dest='command', required=True, metavar='{doc2vec,track2vec,info,held-out}')

    d = sub.add_parser('doc2vec', prog=f'{prog} doc2vec', formatter_class=ccli.HelpFormatter, epilog=_EPILOG,
                       help='vectors from each track\'s clean tags (gensim Doc2Vec)',
                       description='Doc2Vec (PV-DBOW) over each track\'s clean tags; a tag of Last.fm strength '
                                   'val is repeated round(val/10)+1 times.')
    d.add_argument('--tags', required=True, type=ccli.existing_file, metavar='DB', help='the clean tag DB')
    d.add_argument('--master', type=ccli.existing_file, default=None, metavar='CSV',
                   help='master.csv: learn exactly its tracks (those without tags are listed in rare.csv); '
                        'default: every track of the DB with a clean tag')
    d.add_argument('--min-count', type=ccli.positive_int, default=2,
                   help='drop tags with fewer copies over all tracks')
    _common(d, dim=40, epochs=40)

    t = sub.add_parser('track2vec', prog=f'{prog} track2vec', formatter_class=ccli.HelpFormatter, epilog=_EPILOG,
                       help='vectors from co-listening (word2vec over users or playlists)',
                       description='word2vec with tracks as words: each Taste Profile user\'s tracks (repeated '
                                   'by play count up to --max-repeat, shuffled) or each playlist (in order) is '
                                   'a sentence.')
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument('--listens', type=ccli.existing_file, metavar='FILE',
                     help='Taste Profile train_triplets.txt (user TAB song TAB play count, sorted by user)')
    src.add_argument('--playlists', type=ccli.existing_file, metavar='FILE',
                     help='playlists: one per line, track ids separated by spaces or commas')
    t.add_argument('--unique-tracks', type=ccli.existing_file, metavar='FILE',
                   help='unique_tracks.txt (track<SEP>song<SEP>artist<SEP>title), needed with --listens')
    t.add_argument('--mismatches', type=ccli.existing_file, default=None, metavar='FILE',
                   help='sid_mismatches.txt: song/track pairs whose plays are removed')
    hold = t.add_mutually_exclusive_group()
    hold.add_argument('--hold-out', type=ccli.existing_file, default=None, metavar='FILE',
                      help='track ids (one per line) removed from the sentences for cold-start evaluation')
    hold.add_argument('--hold-out-fraction', type=float, default=0.0, metavar='F',
                      help='hold out this fraction of the tracks (stable hash of --seed and track id)')
    t.add_argument('--window', type=ccli.positive_int, default=10, help='word2vec context window')
    t.add_argument('--min-count', type=ccli.positive_int, default=2,
                   help='tracks heard by fewer users (in fewer playlists) are listed in rare.csv, not learned')
    t.add_argument('--max-repeat', type=ccli.positive_int, default=5,
                   help='a track appears at most this many times in a user\'s sentence (play count capped)')
    _common(t, dim=32, epochs=10)

    i = sub.add_parser('info', prog=f'{prog} info', formatter_class=ccli.HelpFormatter,
                       help='what a target table holds', description='Kind, size, parameters and source of a '
                                                                     'target table.')
    i.add_argument('targets', metavar='DIR', help='the target table folder')
    i.add_argument('--json', action='store_true', help='print targets.json as JSON')
    ccli.add_verbosity(i, progress=False)

    h = sub.add_parser('held-out', prog=f'{prog} held-out', formatter_class=ccli.HelpFormatter,
                       help='audio files of the held-out tracks (to index them)',
                       description='Print the audio file of each held-out track of a track2vec table (one path '
                                   'per line, from master.csv: file_path under its audio root, else audio_path), '
                                   'e.g. to index only the cold-start tracks.')
    h.add_argument('targets', metavar='DIR', help='the track2vec target table folder (holding held_out.txt)')
    h.add_argument('--master', required=True, type=ccli.existing_file, metavar='CSV', help='master.csv')
    ccli.add_verbosity(h, progress=False)
    return p


def _check_track2vec(args) -> None:
    if args.listens and not args.unique_tracks:
        raise MuseTagError('--listens needs --unique-tracks (the song id -> track id table of the Taste Profile)')
    if args.playlists and args.unique_tracks:
        log.warning('--unique-tracks is ignored with --playlists (playlists name track ids)')
    if not 0.0 <= args.hold_out_fraction < 1.0:
        raise MuseTagError(f'--hold-out-fraction must be in [0, 1), got {args.hold_out_fraction}')


def _job_lock(out):
    """The lock a whole job holds on ``--out`` (a second job is refused at once, exit 3); the table's own
    write takes the output's plain lock."""
    from core.locks import OutputLock
    return OutputLock(out, suffix='.job')


def _doc2vec(args) -> int:
    files.check_output(args.out, args.overwrite, directory=True)
    with _job_lock(args.out):
        return _run_doc2vec(args)


def _run_doc2vec(args) -> int:
    from .doc2vec import Doc2VecParams, train_doc2vec
    track_ids, source = None, {}
    if args.master:
        from msd.tables import read_master, report_bad_lines
        table = read_master(args.master)
        report_bad_lines(table)
        track_ids = [str(t) for t in table.frame['track_id']]
        source['master'] = args.master
    params = Doc2VecParams(dim=args.dim, epochs=args.epochs, min_count=args.min_count, seed=args.seed,
                           workers=args.workers)
    s = train_doc2vec(args.tags, args.out, params, track_ids=track_ids, overwrite=args.overwrite,
                      progress=ccli.show_progress(args), source=source)
    print(f'latent doc2vec: wrote {args.out}: {s["tracks"]} track vectors of dimension {args.dim} from '
          f'{s["tags"]} tags, {s["rare"]} track(s) without usable tags listed in rare.csv; '
          f'{s["tracks_per_s"]:.0f} tracks/s, {s["seconds"]:.1f} s')
    return EXIT_OK


def _track2vec(args) -> int:
    _check_track2vec(args)
    files.check_output(args.out, args.overwrite, directory=True)
    with _job_lock(args.out):
        return _run_track2vec(args)


def _run_track2vec(args) -> int:
    from .track2vec import HashHoldOut, ListeningSource, Track2VecParams, SetHoldOut, read_held_out, train_track2vec
    if args.hold_out:
        held = SetHoldOut(read_held_out(args.hold_out))
    elif args.hold_out_fraction > 0:
        held = HashHoldOut(args.hold_out_fraction, args.seed)
    else:
        held = None
    source = ListeningSource(triplets=args.listens, unique_tracks=args.unique_tracks if args.listens else None,
                             mismatches=args.mismatches, playlists=args.playlists, held_out=held)
    params = Track2VecParams(dim=args.dim, window=args.window, min_count=args.min_count, epochs=args.epochs,
                             seed=args.seed, workers=args.workers, max_repeat=args.max_repeat)
    s = train_track2vec(source, args.out, params, overwrite=args.overwrite, progress=ccli.show_progress(args))
    print(f'latent track2vec: wrote {args.out}: {s["tracks"]} track vectors of dimension {args.dim} from '
          f'{s["users"]} users/playlists ({s["listens"]} listens); {s["rare"]} rare track(s) in rare.csv, '
          f'{s["held_out_tracks"]} held out in held_out.txt; skipped: {s["malformed"]} malformed line(s), '
          f'{s["unknown_song"]} unknown song(s), {s["mismatched"]} mismatched, {s["single_song_users"]} '
          f'single-song user(s); {s["listens_per_s"]:.0f} listens/s, {s["seconds"]:.1f} s')
    malformed = s['malformed'] + sum(r.malformed for r in (source.unique_report, source.mismatch_report) if r)
    return EXIT_PARTIAL if malformed else EXIT_OK


def _info(args) -> int:
    from .targets import read_rare, read_targets
    table = read_targets(args.targets)
    if args.json:
        print(files.json_text(table.meta), end='')
        return EXIT_OK
    m = table.meta
    print(f'{args.targets}: {m.get("kind")} target table, {len(table)} vectors of dimension {table.dim} '
          f'(key {m.get("key", "track_id")}), created {m.get("created", "?")}')
    print(f'  params: {json.dumps(m.get("params", {}), sort_keys=True)}')
    print(f'  source: {json.dumps(m.get("source", {}), sort_keys=True)}')
    rare = read_rare(args.targets)
    if rare:
        print(f'  rare.csv: {len(rare)} track(s) without a vector')
    if m.get('held_out_count') is not None:
        print(f'  held out: {m["held_out_count"]} track(s) in {m.get("held_out_file", "held_out.txt")}')
    return EXIT_OK


def _held_out_paths(args) -> int:
    import os

    from msd.tables import read_master

    from .track2vec import HELD_OUT_NAME, read_held_out
    path = os.path.join(args.targets, HELD_OUT_NAME)
    if not os.path.isfile(path):
        raise MuseTagError(f'{args.targets}: no {HELD_OUT_NAME} (a track2vec table made with --hold-out or '
                           '--hold-out-fraction holds one)')
    table = read_master(args.master)
    df, root = table.frame, table.audio_root
    audio = {}
    for i, tid in enumerate(df['track_id']):
        rel = df['file_path'].iloc[i] if 'file_path' in df.columns else None
        if root and isinstance(rel, str) and rel:
            audio[tid] = os.path.join(root, rel)
        elif 'audio_path' in df.columns and isinstance(df['audio_path'].iloc[i], str):
            audio[tid] = df['audio_path'].iloc[i]
    held = read_held_out(path)
    found = [audio[t] for t in held if t in audio]
    for f in found:
        print(f)
    log.info('%d of %d held-out track(s) have an audio file in %s', len(found), len(held), args.master)
    return EXIT_OK


_COMMANDS = {'doc2vec': _doc2vec, 'track2vec': _track2vec, 'info': _info, 'held-out': _held_out_paths}


def main(argv=None, prog=None) -> int:
    """Entry point of ``musetag latent`` / ``python -m latent``; returns the exit code."""
    prog = prog or 'python -m latent'
    args = build_parser(prog).parse_args(argv)   # --help and usage errors exit here (0 / 2)
    return ccli.run_command(_COMMANDS[args.command], args, f'{prog} {args.command}')


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
