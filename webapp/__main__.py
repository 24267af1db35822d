"""``python -m webapp serve|feedback …``: the web app's commands (also ``musetag serve``, ``musetag feedback``)."""

from core.cli import dispatch, exit_with

#: command -> (module, function); imported on use, so --help stays light
_COMMANDS = {'serve': ('webapp.cli', 'serve_main'), 'feedback': ('webapp.cli', 'feedback_main')}


def main(argv=None, prog=None) -> int:
    return dispatch(_COMMANDS, argv, prog or 'python -m webapp')


if __name__ == '__main__':
    exit_with(main())
