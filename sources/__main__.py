"""``python -m sources`` (``musetag dataset``): a dataset as it is distributed -> the MuseTag contract.

Subcommands (``python -m sources SUBCOMMAND -h`` for every option)::

    folder   --audio DIR [--tags tags.csv] --out OUT        your own folder (CSV/TSV, or one folder per label)
    mtat     --root DIR --out OUT                           MagnaTagATune as distributed
    jamendo  --root DIR --audio DIR --out OUT               MTG-Jamendo autotagging TSVs and splits
    scores   …                                              the music21 score corpus rendered to audio

Every subcommand writes ``OUT/master.csv``, ``OUT/clean_tags.db``, ``OUT/splits.csv`` (+
``OUT/splits/<protocol>.csv``), ``OUT/tag_map.csv``, ``OUT/skipped.csv`` and ``OUT/summary.json``
(``docs/datasets.md``), which ``musetag preprocess write --master OUT/master.csv --tags
OUT/clean_tags.db --splits OUT/splits.csv`` reads unchanged.

Exit status: 0 done, 1 done but some rows or files were skipped (each in ``skipped.csv``), 2 bad
arguments or input, 3 the output is being written by another job, 4 no space left, 130 interrupted.

A subcommand is a module (:data:`SUBCOMMANDS`) with ``DESCRIPTION``, ``add_arguments(parser)`` and
``run(args) -> int``, imported only when chosen or for ``--help``; nothing heavy is imported here.
"""
from __future__ import annotations

import argparse
import importlib
import shlex
import sys

from core.cli import HelpFormatter, run_command, exit_with

__all__ = ['SUBCOMMANDS', 'build_parser', 'main']

PROG = 'python -m sources'
DESCRIPTION = ('a dataset as it is distributed (your own folder, MagnaTagATune, MTG-Jamendo, the music21 scores) '
               '-> master.csv, clean_tags.db, splits.csv: what preprocess write, train and evaluate read '
               '(docs/datasets.md)')
EPILOG = ('exit codes: 0 done; 1 done but some rows or files were skipped (each in OUT/skipped.csv); 2 bad '
          'arguments or input; 3 the output is being written by another job; 4 no space left; 130 interrupted')
#: subcommand -> module exposing DESCRIPTION, add_arguments(parser), run(args) -> int
SUBCOMMANDS = {'folder': 'sources.folder', 'mtat': 'sources.mtat', 'jamendo': 'sources.jamendo',
               'scores': 'sources.scores'}


def _chosen(argv):
    """The subcommand named in ``argv`` (the first argument that is one), or None."""
    for a in argv:
        if a in SUBCOMMANDS:
            return a
        if not a.startswith('-'):
            return None
    return None


def build_parser(prog=PROG, only=None) -> argparse.ArgumentParser:
    """The parser; with ``only`` just that subcommand's module is imported (others listed by name)."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest='subcommand', metavar='SUBCOMMAND', required=True)
    for name, module_name in SUBCOMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=f'see {prog} {name} --help', add_help=False)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:   # a source not installed in this tree is not offered
            if e.name != module_name:
                raise
            continue
        p = sub.add_parser(name, help=module.DESCRIPTION.split('\n')[0], description=module.DESCRIPTION,
                           formatter_class=HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    return parser


def main(argv=None, prog=None) -> int:
    """Run the dataset command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or PROG
    args = build_parser(prog, only=_chosen(argv)).parse_args(argv)
    args.command_line = shlex.join([prog.split()[0], *prog.split()[1:], *argv])
    return run_command(args.func, args, prog)


if __name__ == '__main__':
    exit_with(main())
