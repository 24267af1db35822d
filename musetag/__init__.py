"""The ``musetag`` command: one subcommand per stage (``musetag --help``).

This package only parses the subcommand name and hands the rest of the command line to the
stage's own command-line module, imported on demand, so ``musetag --help`` and every
``musetag <stage> --help`` answer at once (no TensorFlow import). See ``docs/cli.md``.
"""
