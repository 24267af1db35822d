"""``python -m msd.synthetic`` (``musetag synth``): write the synthetic MSD-format mini corpus.

Only the standard library and ``core`` are imported before the arguments are checked, so
``--help`` answers at once.
"""
from __future__ import annotations

import argparse

from core.cli import HelpFormatter, add_verbosity, finite_float, positive_int, run_command, show_progress, exit_with

PROG = 'python -m msd.synthetic'


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None


def make_parser(prog=PROG):
    p = argparse.ArgumentParser(prog=prog, formatter_class=HelpFormatter,
                                description='Write the synthetic MSD-format mini corpus (summary h5, Last.fm DB, '
                                            'mismatch and duplicate lists, MP3 previews, truth.json).')
    p.add_argument('--out', required=True, help='output directory (must not exist or be empty)')
    p.add_argument('--tracks', type=positive_int, default=300, help='number of h5 rows')
    p.add_argument('--seconds', type=finite_float, default=30.0, help='clip length in seconds (1 to 600)')
    p.add_argument('--seed', type=_int, default=0,
                   help='master seed: the same seed gives the same corpus, byte for byte')
    p.add_argument('--workers', type=positive_int, default=None,
                   help='audio worker processes (default: all CPUs)')
    p.add_argument('--overwrite', action='store_true', help='replace a non-empty output directory')
    add_verbosity(p)
    return p


def _run(args):
    from .generator import generate_with_summary
    _, summary = generate_with_summary(args.out, tracks=args.tracks, seconds=args.seconds, seed=args.seed,
                                       workers=args.workers, overwrite=args.overwrite,
                                       progress=show_progress(args))
    print(summary)


def main(argv=None, prog=None) -> int:
    """Command line entry point; returns the exit status."""
    prog = prog or PROG
    args = make_parser(prog).parse_args(argv)
    return run_command(_run, args, prog)


if __name__ == '__main__':
    exit_with(main())
