"""``python -m webapp serve|feedback …``: the web app's commands (also ``musetag serve``, ``musetag feedback``)."""
import importlib
import sys

#: command -> (module, function); imported on use, so --help stays light
_COMMANDS = {'serve': ('webapp.cli', 'serve_main'), 'feedback': ('webapp.cli', 'feedback_main')}


def main(argv=None, prog=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or 'python -m webapp'
    if not argv or argv[0] not in _COMMANDS:
        print(f'usage: {prog} {{{",".join(_COMMANDS)}}} …  (see {prog} COMMAND --help)', file=sys.stderr)
        return 0 if argv[:1] in (['-h'], ['--help']) else 2
    module, func = _COMMANDS[argv[0]]
    return getattr(importlib.import_module(module), func)(argv[1:], prog=f'{prog} {argv[0]}')


if __name__ == '__main__':
    sys.exit(main())
