"""``python -m musetag`` = the ``musetag`` command."""
import sys

from musetag.cli import main

if __name__ == '__main__':
    sys.exit(main())
