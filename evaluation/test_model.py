"""``python -m evaluation.test_model``: the command line of earlier versions, kept working.

It dispatches by its old rule: with audio PATHs it is ``musetag tag --run RUN PATH…``, without them
``musetag evaluate --run RUN …`` (a tagging-only option without PATHs is an error, exit 2). Every
option of either command is accepted. The functions it used to hold live in
:mod:`evaluation.evaluate` (evaluation) and :mod:`evaluation.tagging` (tagging); their old names
are still importable from here.
"""
from __future__ import annotations

import argparse
import sys

from evaluation.cli import add_common_options, add_evaluate_options, add_tag_options, evaluate_main, tag_main

__all__ = ['main']

_MOVED = {'evaluate_batches': 'evaluation.evaluate', 'evaluate_run': 'evaluation.evaluate',
          'write_eval_outputs': 'evaluation.evaluate', 'format_table': 'evaluation.evaluate',
          'write_pr_curves': 'evaluation.evaluate', 'predict_paths': 'evaluation.tagging',
          'tag_paths': 'evaluation.tagging', 'collect_inputs': 'evaluation.tagging'}
_TAG_ONLY = ('top', 'threshold', 'window_seconds', 'hop_seconds', 'json_out', 'json_all', 'json_taggram',
             'csv_out', 'taggram')
_PROG = 'python -m evaluation.test_model'


def __getattr__(name):
    if name in _MOVED:
        import importlib
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def _parser(prog) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description='Evaluate a run on a TFRecord split (no PATHs) or tag audio files/folders (PATHs). '
                               'Same as `musetag evaluate` / `musetag tag`.')
    p.add_argument('paths', nargs='*', metavar='PATH', help='audio files or folders (recursive) to tag')
    p.add_argument('--run', '--run-dir', dest='run', required=True,
                   help='run directory (training run or imported pretrained model)')
    add_common_options(p)
    add_evaluate_options(p.add_argument_group('evaluation (no PATH given)'))
    add_tag_options(p.add_argument_group('tagging (PATHs given)'))
    return p


def main(argv=None, prog=None) -> int:
    """Run the old command line; returns the exit code of ``musetag tag`` or ``musetag evaluate``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or _PROG
    args = _parser(prog).parse_args(argv)
    if args.paths:
        return tag_main(argv, prog=prog)
    for name in _TAG_ONLY:
        if getattr(args, name) not in (None, False):
            flag = {'json_out': 'json', 'csv_out': 'csv'}.get(name, name).replace('_', '-')
            print(f'{prog}: error: --{flag} needs audio PATHs (tagging mode)', file=sys.stderr)
            return 2
    return evaluate_main(argv, prog=prog)


if __name__ == '__main__':
    sys.exit(main())
