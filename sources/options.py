"""Options every ``musetag dataset`` subcommand shares, and the end of every run (summary, exit code)."""
from __future__ import annotations

import os

from core.cli import add_verbosity, nonneg_int, positive_int, show_progress

__all__ = ['add_common', 'finish', 'non_negative_float', 'progress']


def non_negative_float(text) -> float:
    import argparse
    import math
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number, got {text!r}') from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f'must be a finite number >= 0, got {text}')
    return v


def add_common(parser, *, min_count=1, min_seconds=0.0) -> None:
    """``--out``, ``--overwrite``, ``--min-count``, ``--min-seconds``, ``--workers``, ``-q/-v/--no-progress``."""
    parser.add_argument('--out', required=True, help='output folder (master.csv, clean_tags.db, splits.csv, '
                        'splits/, tag_map.csv, skipped.csv, summary.json), written as one unit')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output folder')
    parser.add_argument('--min-count', type=positive_int, default=min_count,
                        help='a tag needs at least this many tracks to be kept (tag_map.csv says why one was not)')
    parser.add_argument('--min-seconds', type=non_negative_float, default=min_seconds,
                        help='skip files whose audio (by the header) is shorter than this many seconds')
    parser.add_argument('--workers', type=nonneg_int, default=min(4, os.cpu_count() or 1),
                        help='processes reading the audio headers (0 or 1: in this process)')
    add_verbosity(parser)


def progress(args) -> bool:
    return show_progress(args)


def finish(summary: dict, out: str) -> int:
    """Print one line per protocol and the skip counts; exit code 1 if anything was skipped."""
    default = summary['default_protocol']
    for name, p in summary['protocols'].items():
        mark = ' (default: splits.csv)' if name == default else ''
        extra = f', {p["not_in_protocol"]} not in it' if p['not_in_protocol'] else ''
        print(f'{name}{mark}: train {p["train"]}, validation {p["validation"]}, test {p["test"]}{extra}')
    reasons = ', '.join(f'{r} {n}' for r, n in summary['skipped_by_reason'].items())
    print(f'{summary["source"]}: {summary["tracks"]} tracks ({summary["tracks_with_tag"]} with a kept tag), '
          f'{summary["tags"]} tags, {summary["skipped"]} skipped' + (f' ({reasons})' if reasons else '')
          + f' -> {out}' + (f'; see {os.path.join(out, "skipped.csv")}' if summary['skipped'] else ''))
    return 1 if summary['skipped'] else 0
