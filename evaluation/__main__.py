"""``python -m evaluation evaluate …`` / ``python -m evaluation tag …``: the commands of
:mod:`evaluation.cli` (also ``musetag evaluate`` / ``musetag tag``)."""

from core.cli import dispatch, exit_with

#: command -> (module, function); imported on use, so --help stays light
_COMMANDS = {'evaluate': ('evaluation.cli', 'evaluate_main'), 'tag': ('evaluation.cli', 'tag_main')}


def main(argv=None, prog=None) -> int:
    return dispatch(_COMMANDS, argv, prog or 'python -m evaluation')


if __name__ == '__main__':
    exit_with(main())
