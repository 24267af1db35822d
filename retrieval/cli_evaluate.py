"""``musetag index evaluate``: retrieval quality of an index on labelled tracks (:mod:`retrieval.evaluate`).

Its own module so the evaluation options can grow without touching the other index commands; it
imports only the standard library and :mod:`core` at module level (``--help`` stays light).
"""
from __future__ import annotations

from core import cli as ccli
from core import files
from core.errors import EXIT_OK

__all__ = ['add_parser', 'run']


def add_parser(sub, prog: str, index_option) -> None:
    """Add the ``evaluate`` subcommand to the ``musetag index`` subparsers ``sub``."""
    e = sub.add_parser('evaluate', prog=f'{prog} evaluate', formatter_class=ccli.HelpFormatter,
                       help='retrieval quality on labelled tracks (precision@k, same artist/album)',
                       description='Precision@k of tag overlap, mean Jaccard and same-artist / same-album hit rates '
                                   'of the embedding space, the tag-probability space and random ranking.')
    index_option(e)
    e.add_argument('--master', required=True, type=ccli.existing_file, metavar='CSV',
                   help='master.csv (musetag msd build): artists, albums and audio paths')
    e.add_argument('--tags', required=True, type=ccli.existing_file, metavar='DB', help='clean tag DB (the truth)')
    e.add_argument('--splits', default=None, type=ccli.existing_file, metavar='CSV',
                   help='splits.csv (musetag preprocess split): evaluate only the tracks of --split')
    e.add_argument('--split', default='test', help='split to evaluate with --splits')
    e.add_argument('-k', type=ccli.positive_int, default=10, help='results per query')
    e.add_argument('--seed', type=int, default=0, help='seed of the random ranking baseline')
    e.add_argument('--json', dest='json_out', default=None, metavar='FILE', help='also write the figures as JSON')
    e.add_argument('--overwrite', action='store_true', help='replace an existing --json file')
    ccli.add_verbosity(e)


def run(args) -> int:
    """The body of ``musetag index evaluate``; returns the exit code."""
    if args.json_out:
        files.check_output(args.json_out, args.overwrite)
    from retrieval.evaluate import evaluate_index, format_report
    from retrieval.index import Index
    index = Index.open(args.index)
    try:
        report = evaluate_index(index, master=args.master, tags_db=args.tags, splits=args.splits, split=args.split,
                                k=args.k, seed=args.seed)
    finally:
        index.close()
    print(format_report(report))
    if args.json_out:
        files.write_json(args.json_out, report)
    return EXIT_OK
