"""``musetag index evaluate``: retrieval quality of an index (:mod:`retrieval.evaluate`).

Two evaluations:

* on labelled tracks (``--tags``): precision@k of tag overlap, same artist / album, per space;
* cold start (``--held-out`` with listening data): the held-out tracks of a track2vec target table
  against their true co-listening neighbours, for the index's spaces, those of ``--compare-index``
  and random (``docs/latent.md``).

Its own module so the evaluation options can grow without touching the other index commands; it
imports only the standard library and :mod:`core` at module level (``--help`` stays light).
"""
from __future__ import annotations

import os

from core import cli as ccli
from core import files
from core.errors import EXIT_OK, MuseTagError

__all__ = ['add_parser', 'run']


def add_parser(sub, prog: str, index_option) -> None:
    """Add the ``evaluate`` subcommand to the ``musetag index`` subparsers ``sub``."""
    e = sub.add_parser('evaluate', prog=f'{prog} evaluate', formatter_class=ccli.HelpFormatter,
                       help='retrieval quality on labelled tracks, or cold start on held-out tracks',
                       description='With --tags: precision@k of tag overlap, mean Jaccard and same-artist / '
                                   'same-album hit rates of the embedding space, the tag-probability space and '
                                   'random ranking. With --held-out and listening data (cold start): precision@k '
                                   'of each held-out track\'s neighbours against its true co-listening '
                                   'neighbours, for this index\'s spaces, those of --compare-index and random.')
    index_option(e)
    e.add_argument('--master', required=True, type=ccli.existing_file, metavar='CSV',
                   help='master.csv (musetag msd build): artists, albums and audio paths')
    e.add_argument('--tags', default=None, type=ccli.existing_file, metavar='DB',
                   help='clean tag DB (the truth of the labelled-track evaluation)')
    e.add_argument('--splits', default=None, type=ccli.existing_file, metavar='CSV',
                   help='splits.csv (musetag preprocess split): evaluate only the tracks of --split')
    e.add_argument('--split', default='test', help='split to evaluate with --splits')
    cold = e.add_argument_group('cold start (docs/latent.md)')
    cold.add_argument('--held-out', default=None, metavar='FILE|DIR',
                      help='held-out track ids (one per line), or a track2vec target table holding held_out.txt')
    cold.add_argument('--listens', default=None, type=ccli.existing_file, metavar='FILE',
                      help='Taste Profile train_triplets.txt: the true co-listening neighbours')
    cold.add_argument('--unique-tracks', default=None, type=ccli.existing_file, metavar='FILE',
                      help='unique_tracks.txt (needed with --listens)')
    cold.add_argument('--mismatches', default=None, type=ccli.existing_file, metavar='FILE',
                      help='sid_mismatches.txt (song/track pairs whose plays are ignored)')
    cold.add_argument('--playlists', default=None, type=ccli.existing_file, metavar='FILE',
                      help='playlists (one per line) instead of --listens')
    cold.add_argument('--compare-index', action='append', default=[], metavar='DIR',
                      help='another index of the same audio (e.g. from the tagger) scored on the same tracks; '
                           'repeatable')
    cold.add_argument('--min-common', type=ccli.positive_int, default=2,
                      help='a true neighbour shares at least this many listeners (playlists) with the query')
    e.add_argument('-k', type=ccli.positive_int, default=10, help='results per query')
    e.add_argument('--seed', type=int, default=0, help='seed of the random ranking baseline')
    e.add_argument('--json', dest='json_out', default=None, metavar='FILE', help='also write the figures as JSON')
    e.add_argument('--overwrite', action='store_true', help='replace an existing --json file')
    ccli.add_verbosity(e)


def _held_out_file(path) -> str:
    if os.path.isdir(path):
        path = os.path.join(path, 'held_out.txt')
    if not os.path.isfile(path):
        raise MuseTagError(f'{path}: no held-out list (give held_out.txt or the track2vec target table holding it)')
    return path


def _check_cold_start(args) -> None:
    if bool(args.listens) == bool(args.playlists):
        raise MuseTagError('cold start needs the listening data: --listens (with --unique-tracks) or --playlists')
    if args.listens and not args.unique_tracks:
        raise MuseTagError('--listens needs --unique-tracks (the song id -> track id table of the Taste Profile)')
    for d in args.compare_index:
        if not os.path.isdir(d):
            raise MuseTagError(f'--compare-index {d}: no such index folder')


def _cold_start(args):
    from latent.track2vec import ListeningSource, read_held_out
    from retrieval.evaluate import cold_start_evaluate, format_cold_start
    from retrieval.index import Index
    held = read_held_out(_held_out_file(args.held_out))
    listening = ListeningSource(triplets=args.listens, unique_tracks=args.unique_tracks, mismatches=args.mismatches,
                                playlists=args.playlists)
    names = [args.index] + list(args.compare_index)
    indexes = []
    try:
        for path in names:
            indexes.append((os.path.basename(os.path.normpath(path)), Index.open(path)))
        report = cold_start_evaluate(indexes, master=args.master, listening=listening, held_out=held, k=args.k,
                                     min_common=args.min_common, seed=args.seed)
    finally:
        for _, index in indexes:
            index.close()
    return report, format_cold_start(report)


def run(args) -> int:
    """The body of ``musetag index evaluate``; returns the exit code."""
    if args.json_out:
        files.check_output(args.json_out, args.overwrite)
    if args.held_out:
        _check_cold_start(args)
        report, text = _cold_start(args)
    else:
        if not args.tags:
            raise MuseTagError('give --tags (labelled-track evaluation) or --held-out with listening data '
                               '(cold start)')
        from retrieval.evaluate import evaluate_index, format_report
        from retrieval.index import Index
        index = Index.open(args.index)
        try:
            report = evaluate_index(index, master=args.master, tags_db=args.tags, splits=args.splits,
                                    split=args.split, k=args.k, seed=args.seed)
        finally:
            index.close()
        text = format_report(report)
    print(text)
    if args.json_out:
        files.write_json(args.json_out, report)
    return EXIT_OK
