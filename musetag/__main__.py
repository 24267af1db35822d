"""``python -m musetag`` = the ``musetag`` command."""

from musetag.cli import main

if __name__ == '__main__':
    from core.cli import exit_with
    exit_with(main())
