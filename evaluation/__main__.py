"""``python -m evaluation evaluate …`` / ``python -m evaluation tag …``: the commands of
:mod:`evaluation.cli` (also ``musetag evaluate`` / ``musetag tag``)."""
import sys

from evaluation.cli import evaluate_main, tag_main

_COMMANDS = {'evaluate': evaluate_main, 'tag': tag_main}


def main(argv=None, prog=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or 'python -m evaluation'
    if not argv or argv[0] not in _COMMANDS:
        print(f'usage: {prog} {{evaluate,tag}} …  (see {prog} evaluate --help, {prog} tag --help)',
              file=sys.stderr)
        return 0 if argv[:1] in (['-h'], ['--help']) else 2
    return _COMMANDS[argv[0]](argv[1:], prog=f'{prog} {argv[0]}')


if __name__ == '__main__':
    sys.exit(main())
