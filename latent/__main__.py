"""``python -m latent``: see :mod:`latent.cli`."""
import sys

from latent.cli import main

sys.exit(main())
