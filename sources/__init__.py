"""Dataset sources: a dataset as it is distributed -> the contract ``musetag msd all`` writes
(``master.csv``, ``clean_tags.db``, ``splits.csv``; ``docs/datasets.md``).

=============  ==========================================================================
``__main__``   ``musetag dataset`` / ``python -m sources``: the subcommand registry
``contract``   the output folder: tag selection and numbering, the writer, skip reasons
``scan``       header checks of the files rows name (inside the root, present, readable)
``options``    options every subcommand shares, the closing summary and exit code
``folder``     your own folder: a CSV/TSV of tags, or one folder per label
``mtat``       MagnaTagATune (choi, clean and artist protocols; synonym list in ``lists/``)
``jamendo``    MTG-Jamendo autotagging (subsets, the five published splits)
``synthetic``  format-faithful MTAT and MTG-Jamendo trees for tests and benchmarks
=============  ==========================================================================

Nothing is imported here, so ``--help`` stays fast.
"""
