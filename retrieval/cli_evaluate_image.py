"""``musetag index evaluate-image``: an image run against a colour histogram and chance
(:mod:`retrieval.evaluate_image`).

It imports only the standard library and :mod:`core` at module level (``--help`` stays light).
"""
from __future__ import annotations

from core import cli as ccli
from core import files
from core.errors import EXIT_OK

__all__ = ['add_parser', 'run']


def add_parser(sub, prog: str, index_option) -> None:
    """Add the ``evaluate-image`` subcommand to the ``musetag index`` subparsers ``sub``."""
    e = sub.add_parser('evaluate-image', prog=f'{prog} evaluate-image', formatter_class=ccli.HelpFormatter,
                       help='picture -> music retrieval of an image run on held-out (picture, track) pairs',
                       description='Recall@k of each held-out picture\'s own track and precision@k of tag overlap '
                                   'of an image run, against the colour-histogram nearest-neighbour baseline and '
                                   'random answers (docs/images.md).')
    index_option(e)
    e.add_argument('--pairs', required=True, type=ccli.existing_dir, metavar='DIR',
                   help='pairs folder (musetag index pairs) holding the held-out pairs and the training pairs')
    e.add_argument('--image-run', required=True, type=ccli.existing_dir, metavar='RUN',
                   help='image run directory (trained with dataset.kind images on these pairs)')
    e.add_argument('-k', type=ccli.positive_int, default=10, help='answers per picture')
    e.add_argument('--split', default='test', help='split of pairs.csv whose pictures are the queries')
    e.add_argument('--master', default=None, type=ccli.existing_file, metavar='CSV',
                   help='master.csv: with --tags, true tags from the clean tag DB (else the index\'s predicted tags)')
    e.add_argument('--tags', default=None, type=ccli.existing_file, metavar='DB',
                   help='clean tag DB (the truth, with --master)')
    e.add_argument('--top-tags', type=ccli.positive_int, default=3, metavar='N',
                   help='without --master/--tags: the number of most probable predicted tags that count as true')
    e.add_argument('--seed', type=int, default=0, help='seed of the random baseline')
    e.add_argument('--json', dest='json_out', default=None, metavar='FILE', help='also write the figures as JSON')
    e.add_argument('--overwrite', action='store_true', help='replace an existing --json file')
    ccli.add_verbosity(e)


def run(args) -> int:
    """The body of ``musetag index evaluate-image``; returns the exit code."""
    from core.errors import MuseTagError
    if bool(args.master) != bool(args.tags):
        raise MuseTagError('--master and --tags go together (true tags from the clean tag DB); give both or neither')
    if args.json_out:
        files.check_output(args.json_out, args.overwrite)
    from retrieval.evaluate_image import evaluate_image_run, format_report
    report = evaluate_image_run(args.index, args.pairs, args.image_run, split=args.split, k=args.k, seed=args.seed,
                                master=args.master, tags_db=args.tags, top_tags=args.top_tags)
    print(format_report(report))
    if args.json_out:
        files.write_json(args.json_out, report)
    return EXIT_OK
