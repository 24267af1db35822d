"""``python -m latent``: see :mod:`latent.cli`."""

from core.cli import exit_with
from latent.cli import main

exit_with(main())
