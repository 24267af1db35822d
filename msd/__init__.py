"""msd: Million Song Dataset + Last.fm + 7digital audio -> ``master.csv`` + ``clean_tags.db``.

Command line: ``python -m msd {scan,silence,build,clean-tags,all,cooccurrence} -h`` (also ``musetag msd``).
Formats: ``docs/master-table.md`` (master.csv) and ``docs/clean-tag-db.md`` (clean_tags.db, tag_map.csv,
the curated lists).

Modules (nothing here imports TensorFlow; heavy libraries are imported where they are used):

=================  =================================================================================
``scan``           audio tree -> ``scan.csv`` (mutagen headers, status per file; parallel, resumable)
``silence``        ``scan.csv`` -> ``silence.csv`` (decode once, librosa split, silence statistics)
``summary``        :class:`~msd.summary.MsdSummary`: fields of ``msd_summary_file.h5`` by track id
``idlists``        tolerant parsers of ``sid_mismatches.txt`` and ``msd_duplicates.txt``
``build``          merge + purges -> ``master.csv`` + ``master.purge.json/.csv``
``tables``         the ``master.csv`` / ``splits.csv`` contract: its one writer and reader
``lastfm``         :class:`~msd.lastfm.LastFm` (SQL), :class:`~msd.lastfm.LastFmPandas` (in memory),
                   :func:`~msd.lastfm.load_clean_tags`, and the one writer of the table layout
``tagclean``       curated lists (``msd/lists/*.txt``) and the raw -> clean tag mapping
``cleandb``        raw DB -> ``clean_tags.db`` + ``tag_map.csv`` (no duplicate pairs, val filter)
``cooccurrence``   :class:`~msd.cooccurrence.CoOccurrence`: tag co-occurrence counts and heat-maps
``synthetic``      the synthetic MSD-format mini corpus used by tests and the demo (a package)
``common``         errors, provenance lines, CSV writing and reading (atomic, through ``core.files``)
``parallel``       the resumable process pool of ``scan`` and ``silence`` (locked output, workers
                   that end with the job)
=================  =================================================================================
"""
