"""Synthetic MSD-format mini corpus: the real data formats, small, learnable, deliberately messy.

Every later MuseTag stage (scan, silence analysis, metadata merge and purges, Last.fm tag cleaning,
TFRecords, training, evaluation) must run on this corpus exactly as it would on the real Million Song
Dataset + Last.fm + 7digital data, so tests and the demo never need the real 300 GB.

Usage
-----
``python -m msd.synthetic --out data/mini --tracks 300 [--seconds 30] [--seed 0] [--workers N] [--overwrite]``
(``musetag synth …``)
or ``msd.synthetic.generate(out, tracks=300, seconds=30.0, seed=0, workers=None) -> dict`` (the truth).
300 tracks x 30 s cost ~260 CPU-seconds (about half of it MP3 encoding and the voices): a little
over two minutes on an idle 2-core machine, proportionally longer on a busy one.  With
``workers > 1`` in a process that has imported TensorFlow the workers start from a forkserver
(forking a threaded process can deadlock; see :func:`msd.parallel.mp_context`), so scripts must
call ``generate`` under ``if __name__ == '__main__':``; otherwise they are forked. Workers end
when the generating process dies.

What is written (all in the formats the real data is published in)
-------------------------------------------------------------------
``msd_summary_file.h5``
    The three PyTables-style compound tables ``/metadata/songs``, ``/analysis/songs`` and
    ``/musicbrainz/songs`` with every field of the real summary file, the real names and dtypes
    (fixed-length byte strings, ``<i4`` ints, ``<f8`` floats, columns in PyTables' alphabetical
    order), one row per track and rows aligned across the tables.  Strings are UTF-8 bytes (some
    artist names and titles are non-ASCII).  ``duration`` is the full song length (not the 30 s
    clip), ``tempo``/``key``/``mode`` are those the audio was synthesised with, ``year`` matches the
    decade tag or is 0 (unknown).  Some rows have no audio file; two rows share one
    ``track_7digitalid`` (an ambiguous audio link, as in the real data).
``lastfm_tags.db``
    SQLite ``tids(tid TEXT)``, ``tags(tag TEXT)``, ``tid_tag(tid INTEGER, tag INTEGER, val FLOAT)``;
    ``tid_tag.tid``/``tid_tag.tag`` are implicit rowids of the other two tables (rows are shuffled so
    rowids never coincide with h5 row numbers or popularity ranks).  The DB holds tracks the h5 does
    not have, some h5 tracks are missing from it and some are listed but have no tag.  The
    vocabulary is as messy as Last.fm's: case/spelling variants of a genre (``Hip-Hop``, ``hip hop``,
    ``hiphop``), plurals (``ballads``), decades (``80s``, ``1980s``, ``80's``), ``&``/``and``/``n``
    variants (``rock & roll``, ``rock and roll``, ``rock n roll``; ``R&B``, ``rhythm and blues``,
    ``rnb``), vocal tags (``female vocalists``, ``male vocalist``, ``rap``, ``instrumental``), frequent
    junk (``favorites``, ``seen live``, ``Love``, ``Awesome``), mid-frequency junk, one-off rare tags,
    and low-strength (val <= 6) wrong-genre tags so that a ``val`` threshold matters.  Tag counts
    are designed for the cleaning thresholds recorded in ``truth.json`` ("recommended_clean_args"):
    every genre/decade/ballad target variant has count >= ``min_count``, every other variant has
    ``pool_min_count`` <= count < ``min_count`` and rare tags have count 1.
``sid_mismatches.txt``, ``msd_duplicates.txt``
    The published line formats (``ERROR: <SO... TR...> Artist  -  Title  !=  Artist  -  Title``; six
    ``#`` header lines, then ``%`` group lines each followed by member TR ids), naming generated
    tracks.
``audio/<d1>/<d2>/<track_7digitalid>.clip.mp3``
    MP3s encoded with lameenc, mono and stereo, 22.05 and 44.1 kHz, 64-128 kbit/s, plus deliberately
    bad files: zero-byte, truncated mid-frame, not audio at all (an HTML error page or random bytes
    named .mp3), all-silent, mostly silent with long gaps (> 3 s each) and shorter than 15 s, and
    two "orphan" clips whose 7digital id is in no h5 row.
``truth.json``
    What was generated, so tests can check every stage: per-track metadata, clean genre, vocal and
    decade labels, audio kind and path, raw tags, and the culprit lists (mismatched, duplicate
    groups, untagged, no audio, bad files, DB-only tids), the tag variants each clean tag must
    absorb and the junk tags that must be dropped.  See ``TRUTH_KEYS``.  For the tag cleaning:
    ``recommended_clean_args`` (min_count, pool_min_count, val_threshold), ``combine_list`` (the
    default of ``msd/lists/combine.txt``, needed to join 'rhythm and blues' to 'rnb'), ``genre_candidates`` (spellings
    with count >= min_count that a curated genre list must keep) and ``non_genre_candidates``
    (frequent junk and vocal tags that it must mark '-'), ``tag_counts``, ``low_val_tags``.
``taste_profile/``
    Listening data in the Taste Profile's formats (``train_triplets.txt``: user, song, play count;
    ``unique_tracks.txt``: track, song, artist, title with ``<SEP>``): users whose tastes are drawn
    over the corpus's genre x mood clusters, single-song users, songs outside the catalogue and
    mismatched songs, with the ground truth in ``clusters.json`` (``docs/latent.md``).
Cover art
    Every clip carries its album's cover as an ID3 ``APIC`` front cover whose colours, brightness
    and texture follow the album's genre, mood, decade and tempo (two broken on purpose;
    ``docs/images.md``).

Why the audio is learnable (and a wrong pipeline is not)
--------------------------------------------------------
Each clip is synthesised (NumPy only) from the track's labels, with per-track randomness:

* genre (10: rock, pop, hip-hop, electronic, jazz, metal, reggae, ambient, rnb, rock n roll) ->
  tempo range, swing, drum kit and 16-step patterns (four-on-the-floor, one drop, double kick,
  swung ride, boom bap ...), bass style (walking, boogie, 808 sub, offbeat ...), harmony
  instruments and timbres (distorted power chords, palm-muted chugs, skank stabs, supersaw pads,
  electric piano, bells ...), chord progressions, reverb;
* ``ballad`` -> slower tempo, softer and sparser drums, a pad, clean guitars, long sung notes;
* vocal tags -> a voice made of a glottal pulse train through moving vowel formants (STFT
  filtering) with vibrato, sung melodies at female (~220-400 Hz) or male (~110-200 Hz) pitch; ``rap``
  -> short speech-like syllables on a 16th grid with consonant noise bursts; ``instrumental`` -> no
  voice (sometimes a synth/sax/guitar lead instead);
* decade tags -> a production signature: 50s narrow band (200-2800 Hz) + hiss + crackle (mono), 60s
  band-limited (140-4200 Hz) + plate reverb + hiss (mono), 70s tape wow + saturation + soft
  low-pass, 80s bright gated reverb, 90s "smiley" EQ, 00s brick-wall loudness;
* per track: tempo, key, progression, pattern mutations, timing/velocity humanisation, mix levels,
  stereo placement, EQ tilt, the clip's start inside the song.

Genre, vocal, decade and ballad tags are drawn from these same labels (with Last.fm-like noise:
some tracks lack a vocal or decade tag, some carry a weak wrong-genre tag), junk tags are random.
A classifier on simple spectral statistics already separates the genres; a model trained on
shuffled labels stays at chance.

Determinism: every random draw comes from ``numpy.random.default_rng`` seeded with ``(seed, part,
index)``, so the same seed gives identical h5 rows, DB content, text files and MP3 bytes for any
number of worker processes (lameenc is deterministic).  The corpus is written to a temporary
sibling directory and renamed into place, so a crash never leaves a half-written corpus; an
existing non-empty output directory is only replaced with ``overwrite=True`` / ``--overwrite``.

Modules
-------
=================  ===========================================================================
``design``         genres, labels, tag families and their designed roles, junk, audio formats
``plan``           the corpus plan (ids, metadata, labels, culprits, tags) from the seed
``dsp``            filters, oscillators, drum one-shots, notes
``styles``         song structure and the genre styles (drums, bass, harmony)
``voice``          the synthetic singing / rapping voice
``render``         :func:`render_audio`: one clip from its labels (stems + master bus)
``mp3``            :func:`encode_mp3` (with the ``Info`` frame and the cover's ``APIC`` frame)
``covers``         the cover art of each album (:func:`~msd.synthetic.covers.cover_plan`)
``listens``        ``taste_profile/``: Taste-Profile-format listening data and its ground truth
``audio_files``    the audio tree, rendered in worker processes
``h5``             ``msd_summary_file.h5`` (:data:`H5_TABLES`)
``lastfm_db``      ``lastfm_tags.db``
``lists``          ``sid_mismatches.txt`` and ``msd_duplicates.txt``
``truth``          ``truth.json`` (:data:`TRUTH_KEYS`)
``generator``      :func:`generate`: the whole corpus, written atomically
``__main__``       the command line
=================  ===========================================================================
"""
from __future__ import annotations

from .design import AUDIO_FORMATS, BAD_KINDS, DECADES, GENRES, VOCALS
from .generator import generate, generate_with_summary
from .h5 import H5_TABLES
from .mp3 import encode_mp3
from .plan import plan_corpus
from .render import SYNTH_SR, render_audio
from .truth import TRUTH_KEYS, corpus_truth

__all__ = ['AUDIO_FORMATS', 'BAD_KINDS', 'DECADES', 'GENRES', 'H5_TABLES', 'SYNTH_SR', 'TRUTH_KEYS', 'VOCALS',
           'corpus_truth', 'encode_mp3', 'generate', 'generate_with_summary', 'plan_corpus', 'render_audio']
