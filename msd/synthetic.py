"""Synthetic MSD-format mini corpus: the real data formats, small, learnable, deliberately messy.

Every later MuseTag stage (scan, silence analysis, metadata merge and purges, Last.fm tag cleaning,
TFRecords, training, evaluation) must run on this corpus exactly as it would on the real Million Song
Dataset + Last.fm + 7digital data, so tests and the demo never need the real 300 GB.

Usage
-----
``python -m msd.synthetic --out data/mini --tracks 300 [--seconds 30] [--seed 0] [--workers N] [--overwrite]``
or ``msd.synthetic.generate(out, tracks=300, seconds=30.0, seed=0, workers=None) -> dict`` (the truth).
300 tracks x 30 s cost ~260 CPU-seconds (about half of it MP3 encoding and the voices): a little
over two minutes on an idle 2-core machine, proportionally longer on a busy one.  With
``workers > 1`` in a process that has imported TensorFlow the workers are spawned (forking a
threaded process can deadlock), so scripts must call ``generate`` under
``if __name__ == '__main__':``; otherwise they are forked.

What is written (all in the published formats, SPEC section 0)
---------------------------------------------------------------
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
    SPEC 2.4 default, needed to join 'rhythm and blues' to 'rnb'), ``genre_candidates`` (spellings
    with count >= min_count that a curated genre list must keep) and ``non_genre_candidates``
    (frequent junk and vocal tags that it must mark '-'), ``tag_counts``, ``low_val_tags``.

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
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import multiprocessing
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

from preprocessing.io import replace_dir

from .lastfm import write_tables

log = logging.getLogger('msd.synthetic')

#: Internal synthesis rate (Hz).  44.1 kHz files are band-limited 2x upsamples (windowed-sinc
#: interpolation), which halves the synthesis cost; nothing above 11 kHz matters for 16 kHz features.
SYNTH_SR = 22050

#: Keys of truth.json (CONTRACT.md lists the first ones; the rest are extras documented here).
TRUTH_KEYS = (
    'tracks', 'mismatched', 'duplicate_groups', 'untagged', 'no_audio', 'not_in_h5_tids',
    'tag_variants', 'junk_tags', 'clean_genres', 'bad_files',
    # extras
    'format_version', 'seed', 'n_tracks', 'seconds', 'recommended_clean_args', 'clean_tags',
    'vocal_tags', 'decade_tags', 'mood_tags', 'rare_tags', 'mid_junk_tags', 'low_val_tags',
    'combine_list', 'not_in_db', 'ambiguous_7digitalid', 'orphan_audio', 'thresholds_consistent',
    'tag_counts', 'audio_formats', 'db_only_tracks', 'frequent_junk_tags', 'genre_candidates',
    'non_genre_candidates',
)

GENRES = ('rock', 'pop', 'hip-hop', 'electronic', 'jazz', 'metal', 'reggae', 'ambient', 'rnb',
          'rock n roll')
DECADES = ('50s', '60s', '70s', '80s', '90s', '00s')
VOCALS = ('female', 'male', 'rap', 'instrumental')
BAD_KINDS = ('zero-byte', 'truncated', 'not-audio', 'silent', 'gappy', 'short')

# ---------------------------------------------------------------------------------------------
# Tag vocabulary.  Roles: 'P' = primary (most popular raw spelling; the clean name is its lower
# case), 'T' = another target-level spelling (count >= min_count, merged by the SPEC 2.4 rules or
# the default combine list), 'pool' = a spelling with pool_min_count <= count < min_count that the
# target's normalisation search must find.  Every chain below was checked against SPEC 2.4:
#   clean_1 (alnum only + plural rule) links case/punctuation/plural variants;
#   clean_2/clean_3 on '&' targets link 'rock & roll' to 'rock n roll'/'rock and roll' and 'R&B' to 'rnb';
#   clean_4 on ' and ' targets links 'rock and roll' to 'rock n roll';
#   clean_5/clean_6 on decade targets link '80s' to '1980s' and '00s' to '2000s';
#   'rhythm and blues' joins 'rnb' only through the default combine list (SPEC 2.4 D).
# ---------------------------------------------------------------------------------------------
GENRE_FAMILIES = {
    'rock': [('rock', 'P'), ('Rock', 'T'), ('ROCK', 'pool')],
    'pop': [('pop', 'P'), ('Pop', 'T'), ('POP', 'pool')],
    'hip-hop': [('Hip-Hop', 'P'), ('hip hop', 'T'), ('hiphop', 'pool'), ('Hip Hop', 'pool'),
                ('hip-hop', 'pool')],
    'electronic': [('electronic', 'P'), ('Electronic', 'T'), ('ELECTRONIC', 'pool')],
    'jazz': [('jazz', 'P'), ('Jazz', 'T'), ('JAZZ', 'pool')],
    'metal': [('metal', 'P'), ('Metal', 'T'), ('METAL', 'pool')],
    'reggae': [('reggae', 'P'), ('Reggae', 'T'), ('Reggae ', 'pool')],
    'ambient': [('ambient', 'P'), ('Ambient', 'T'), ('AMBIENT', 'pool')],
    'rnb': [('rnb', 'P'), ('R&B', 'T'), ('rhythm and blues', 'T'), ('RnB', 'pool'),
            ('Rhythm and Blues', 'pool')],
    'rock n roll': [('rock n roll', 'P'), ('rock and roll', 'T'), ('rock & roll', 'T'),
                    ("Rock 'n' Roll", 'pool'), ("rock'n'roll", 'pool'), ('Rock And Roll', 'pool')],
}
MOOD_FAMILIES = {
    'ballad': [('ballad', 'P'), ('ballads', 'T'), ('Ballad', 'pool'), ('Ballads', 'pool')],
}
DECADE_FAMILIES = {
    d: [(d, 'P'), ((('19' if d != '00s' else '20') + d[0] + '0s'), 'T'), (d[0] + "0's", 'pool')]
    for d in DECADES
}
#: Vocal families are merged through curated lists (SPEC 2.4 C), not count thresholds; the
#: non-primary spellings are kept below min_count so they never become genre candidates.
VOCAL_FAMILIES = {
    'female': [('female vocalists', 'P'), ('female vocalist', 'pool'), ('female vocals', 'pool')],
    'male': [('male vocalists', 'P'), ('male vocalist', 'pool'), ('male vocals', 'pool')],
    'rap': [('rap', 'P'), ('Rap', 'pool')],
    'instrumental': [('instrumental', 'P'), ('Instrumental', 'pool')],
}
#: Frequent junk (count >= min_count; in the real curated genre list they are marked '-').
JUNK_TAGS = ('favorites', 'seen live', 'Love', 'Awesome', 'beautiful', 'cool')
JUNK_PROB = (0.16, 0.12, 0.14, 0.10, 0.10, 0.08)
#: Mid-frequency junk (pool_min_count <= count < min_count; matches no target).
MID_JUNK_TAGS = ('my favourite', 'check this out')
#: One-off tags (count 1, below any threshold).
RARE_TAGS = (
    'songs i want at my funeral', 'heard on the radio in 2006', 'guilty pleasure', 'roadtrip mix',
    'gym playlist', 'zzz', 'my top 40', 'lazy sunday', 'driving at night', 'wedding songs',
    'summer of 2008', 'kitchen disco', 'best of 2004', 'study music', 'rainy day', 'morning coffee',
    'under 3 minutes', 'amazing voice', 'bass heavy', 'makes me smile', 'cover versions',
    'one hit wonder', 'soundtrack of my life', 'check lyrics', 'vinyl rip', 'live session',
    'remix please', 'b-side', 'album closer', 'fan favourite', 'stuck in my head', 'karaoke',
    'road to nowhere', 'late night', 'party starter', 'sing along', 'heartbreak', 'epic intro',
    'guitar solo', 'handclaps',
)
#: Combine list needed by the cleaning (SPEC 2.4 D default).
COMBINE_LIST = [['rhythm and blues', 'rnb'], ['funky', 'funk']]

#: Genre -> probabilities of (female, male, rap, instrumental, None).
_VOCAL_PRIOR = {
    'rock': (.25, .53, 0., .14, .08), 'metal': (.10, .58, 0., .24, .08),
    'pop': (.52, .32, .04, .06, .06), 'hip-hop': (.12, .10, .70, .03, .05),
    'electronic': (.30, .08, .04, .50, .08), 'jazz': (.30, .17, 0., .45, .08),
    'reggae': (.15, .60, .05, .12, .08), 'ambient': (.15, .03, 0., .75, .07),
    'rnb': (.50, .35, .07, .0, .08), 'rock n roll': (.15, .65, 0., .12, .08),
}
#: Genre -> probabilities of (50s, 60s, 70s, 80s, 90s, 00s, None).
_DECADE_PRIOR = {
    'rock': (0, .12, .25, .2, .2, .13, .1), 'metal': (0, 0, .12, .33, .25, .2, .1),
    'pop': (0, .06, .1, .3, .2, .24, .1), 'hip-hop': (0, 0, 0, .18, .4, .32, .1),
    'electronic': (0, 0, .05, .15, .35, .35, .1), 'jazz': (.25, .3, .15, .05, .05, .05, .15),
    'reggae': (0, .15, .45, .2, .1, 0, .1), 'ambient': (0, 0, .1, .2, .35, .25, .1),
    'rnb': (0, .1, .15, .15, .3, .2, .1), 'rock n roll': (.55, .3, 0, 0, 0, 0, .15),
}
_BALLAD_PROB = {'rock': .3, 'pop': .4, 'rnb': .45, 'metal': .1, 'rock n roll': .1, 'reggae': .1,
                'jazz': .15}

# ---------------------------------------------------------------------------------------------
# PyTables-compatible dtypes of the summary file (hdf5_descriptors.py of the MSD code: StringCol(32)
# ids, StringCol(40) mbid, StringCol(1024) free text, IntCol = <i4, Float64Col = <f8; PyTables
# orders columns without an explicit position alphabetically).
# ---------------------------------------------------------------------------------------------
_MAXSTR = 1024
_META_FIELDS = {
    'analyzer_version': 'S32', 'artist_7digitalid': '<i4', 'artist_familiarity': '<f8',
    'artist_hotttnesss': '<f8', 'artist_id': 'S32', 'artist_latitude': '<f8',
    'artist_location': f'S{_MAXSTR}', 'artist_longitude': '<f8', 'artist_mbid': 'S40',
    'artist_name': f'S{_MAXSTR}', 'artist_playmeid': '<i4', 'genre': f'S{_MAXSTR}',
    'idx_artist_terms': '<i4', 'idx_similar_artists': '<i4', 'release': f'S{_MAXSTR}',
    'release_7digitalid': '<i4', 'song_hotttnesss': '<f8', 'song_id': 'S32',
    'title': f'S{_MAXSTR}', 'track_7digitalid': '<i4',
}
_ANALYSIS_FIELDS = {
    'analysis_sample_rate': '<i4', 'audio_md5': 'S32', 'danceability': '<f8', 'duration': '<f8',
    'end_of_fade_in': '<f8', 'energy': '<f8', 'idx_bars_confidence': '<i4', 'idx_bars_start': '<i4',
    'idx_beats_confidence': '<i4', 'idx_beats_start': '<i4', 'idx_sections_confidence': '<i4',
    'idx_sections_start': '<i4', 'idx_segments_confidence': '<i4', 'idx_segments_loudness_max': '<i4',
    'idx_segments_loudness_max_time': '<i4', 'idx_segments_loudness_start': '<i4',
    'idx_segments_pitches': '<i4', 'idx_segments_start': '<i4', 'idx_segments_timbre': '<i4',
    'idx_tatums_confidence': '<i4', 'idx_tatums_start': '<i4', 'key': '<i4', 'key_confidence': '<f8',
    'loudness': '<f8', 'mode': '<i4', 'mode_confidence': '<f8', 'start_of_fade_out': '<f8',
    'tempo': '<f8', 'time_signature': '<i4', 'time_signature_confidence': '<f8', 'track_id': 'S32',
}
_MUSICBRAINZ_FIELDS = {'idx_artist_mbtags': '<i4', 'year': '<i4'}
H5_TABLES = {
    '/metadata/songs': np.dtype(sorted(_META_FIELDS.items())),
    '/analysis/songs': np.dtype(sorted(_ANALYSIS_FIELDS.items())),
    '/musicbrainz/songs': np.dtype(sorted(_MUSICBRAINZ_FIELDS.items())),
}

#: (sample rate Hz, channels, kbit/s) of good clips and their probabilities.
AUDIO_FORMATS = ((44100, 2, 128), (44100, 1, 96), (22050, 2, 96), (22050, 1, 64))
_AUDIO_FORMAT_P = (0.55, 0.15, 0.15, 0.15)


# =============================================================================================
# DSP helpers (all vectorised NumPy; arrays are float64 mono [n] unless stated)
# =============================================================================================

def _response(f, lp=None, hp=None, order=2):
    """Zero-phase Butterworth-like magnitude response at frequencies ``f`` (Hz)."""
    g = np.ones_like(f)
    if lp:
        g /= np.sqrt(1.0 + (f / lp) ** (2 * order))
    if hp:
        with np.errstate(divide='ignore'):
            g /= np.sqrt(1.0 + (hp / np.maximum(f, 1e-3)) ** (2 * order))
    return g


def _fast_len(m):
    """Smallest 2^a 3^b 5^c >= m (pocketfft is several times slower on lengths with large factors)."""
    best = 1 << int(np.ceil(np.log2(m)))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35 << max(0, int(np.ceil(np.log2(m / p35))))
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def _fft_filter(x, sr, lp=None, hp=None, order=2):
    """FFT-domain zero-phase low/high-pass of a short signal ``x`` [n] at rate ``sr`` (Hz)."""
    if not lp and not hp:
        return x
    n = x.shape[-1]
    m = _fast_len(n)
    spec = np.fft.rfft(x, m, axis=-1)
    spec *= _response(np.fft.rfftfreq(m, 1.0 / sr), lp, hp, order)
    return np.fft.irfft(spec, m, axis=-1)[..., :n]


def _fir_kernel(sr, lp=None, hp=None):
    """Windowed-sinc (Blackman) FIR: low-pass at ``lp`` and/or high-pass at ``hp`` (Hz).

    Long signals are filtered with these short kernels (np.convolve) because whole-clip FFTs cost
    ~10x more; the transition bands are wide (a few hundred Hz to ~2 kHz), which is all timbre
    shaping needs.
    """
    def low(fc):
        taps = int(np.clip(4.0 * sr / fc, 15, 255)) | 1
        k = np.arange(taps) - taps // 2
        h = np.sinc(2.0 * fc / sr * k) * np.blackman(taps)
        return h / h.sum()

    h = np.ones(1)
    if lp and lp < 0.48 * sr:
        h = low(lp)
    if hp and hp >= 150:  # lower cut-offs only remove rumble/DC: _filter subtracts the mean instead
        d = -low(hp)
        d[len(d) // 2] += 1.0  # spectral inversion: delta - low-pass
        h = np.convolve(h, d)
    return h


def _filter(x, sr, lp=None, hp=None, order=2):
    """Zero-phase low/high-pass of ``x`` [n] (Hz): FFT for short signals, FIR for long ones."""
    if not lp and not hp:
        return x
    if x.ndim > 1 or x.shape[-1] <= 1 << 16:
        return _fft_filter(x, sr, lp, hp, order)
    h = _fir_kernel(sr, lp, hp)
    if hp and hp < 150:
        x = x - x.mean()
    return np.convolve(x, h, mode='same') if len(h) > 1 else x


def _osc(kind, phase):
    """Naive oscillator of ``kind`` for ``phase`` in cycles (aliasing is harmless here)."""
    p = phase - np.floor(phase)
    if kind == 'saw':
        return 2.0 * p - 1.0
    if kind == 'square':
        return np.where(p < 0.5, 1.0, -1.0)
    if kind == 'tri':
        return 4.0 * np.abs(p - 0.5) - 1.0
    return np.sin(2 * np.pi * p)


def _midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=float) - 69.0) / 12.0)


def _place(buf, shot, times, vels, sr):
    """Add ``shot`` scaled by each velocity at each time (s) into ``buf`` (clipped to its length)."""
    n, m = len(buf), len(shot)
    for t, v in zip(times, vels):
        i = int(round(t * sr))
        if i >= n or i + m <= 0:
            continue
        s0 = max(0, -i)
        i0 = max(0, i)
        k = min(m - s0, n - i0)
        buf[i0:i0 + k] += v * shot[s0:s0 + k]


# ---- drum one-shots -------------------------------------------------------------------------

def _kick(sr, rng, f_hi, f_lo, decay, click=0.3, drive=1.0):
    m = int(sr * min(1.2, 5 * decay))
    t = np.arange(m) / sr
    f = f_lo + (f_hi - f_lo) * np.exp(-t / rng.uniform(0.025, 0.045))
    y = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / decay)
    y += click * rng.standard_normal(m) * np.exp(-t / 0.003)
    if drive > 1:
        y = np.tanh(drive * y) / np.tanh(drive)
    return y


def _noise_shot(sr, rng, decay, lp=None, hp=None, length=None, attack=0.0005, gate=None):
    m = int(sr * (length or min(2.5, 6 * decay)))
    t = np.arange(m) / sr
    env = np.minimum(1.0, t / attack) * np.exp(-t / decay)
    if gate:  # 80s-style gated tail: flat, then cut
        env = np.where(t < gate, np.maximum(env, 0.35), env * np.exp(-(t - gate) / 0.015))
    y = _filter(rng.standard_normal(m), sr, lp, hp)
    y = y / (np.abs(y).max() + 1e-9)
    return y * env


def _snare(sr, rng, tone=190.0, tone_decay=0.05, noise_decay=0.12, lp=9000, hp=900, snap=0.7,
           gate=None):
    y = snap * _noise_shot(sr, rng, noise_decay, lp, hp, gate=gate)
    t = np.arange(len(y)) / sr
    y += np.sin(2 * np.pi * tone * t) * np.exp(-t / tone_decay)
    return y


def _clap(sr, rng):
    y = np.zeros(int(0.5 * sr))
    for k, d in enumerate((0.0, 0.011, 0.022)):
        burst = _noise_shot(sr, rng, 0.012 if k < 2 else 0.14, 3500, 900, length=0.45)
        i = int(d * sr)
        k = min(len(burst), len(y) - i)
        y[i:i + k] += burst[:k]
    return y


def _metal(sr, rng, decay, base=420.0, lp=None, hp=5000):
    """Cymbal-like shot: inharmonic square partials (the 808 trick) plus high-passed noise."""
    m = int(sr * min(3.0, 5 * decay))
    t = np.arange(m) / sr
    ratios = np.array([1.0, 1.342, 1.2312, 1.6532, 1.9523, 2.1523]) * base * rng.uniform(0.95, 1.05)
    y = sum(np.sign(np.sin(2 * np.pi * r * t + rng.uniform(0, 6.28))) for r in ratios) / 6
    y = 0.5 * y + rng.standard_normal(m)
    y = _filter(y, sr, lp, hp)
    y /= np.abs(y).max() + 1e-9
    return y * np.exp(-t / decay)


# ---- notes -----------------------------------------------------------------------------------

_TIMBRES = {
    # name: (oscillator or partials [(ratio, amp, decay factor)], attack s, release s)
    'saw': ('saw', 0.004, 0.05), 'square': ('square', 0.004, 0.04), 'sine': ('sine', 0.004, 0.06),
    'tri': ('tri', 0.004, 0.05),
    'pluck': ([(k, 1.0 / k, k ** -0.7) for k in range(1, 9)], 0.002, 0.04),
    'bell': ([(1, 1, 1), (2.76, .5, .5), (5.4, .25, .3), (8.93, .12, .2)], 0.002, 0.3),
    'epiano': ([(1, 1, 1), (2, .4, .6), (3, .15, .4), (7, .12, .08)], 0.004, 0.15),
    'piano': ([(k * (1 + 0.0004 * k * k), k ** -1.3, k ** -0.5) for k in range(1, 7)], 0.002, 0.1),
    'organ': ([(0.5, .5, 0), (1, 1, 0), (2, .7, 0), (3, .4, 0), (4, .3, 0)], 0.01, 0.05),
    'wbass': ([(1, 1, 1), (2, .5, .6), (3, .2, .4), (4, .08, .3)], 0.005, 0.06),
}


def _note(sr, rng, freq, dur, timbre, decay=None, detune=(), attack=None):
    """One note: float [round((dur + release) * sr)].

    ``decay`` (s) makes it percussive (exponential); partial timbres scale it per partial.
    ``detune`` adds oscillators at relative frequency offsets (supersaw/chorus).
    """
    osc, att, rel = _TIMBRES[timbre]
    att = attack if attack is not None else att
    m = max(8, int((dur + rel) * sr))
    # float32 inside a note: transcendental functions are ~4x faster and phases stay < 1e4 cycles.
    t = np.arange(m, dtype=np.float32) / np.float32(sr)
    ph0 = rng.uniform(0, 1)
    if isinstance(osc, str):
        y = _osc(osc, np.float32(freq) * t + np.float32(ph0))
        for d in detune:
            y = y + _osc(osc, np.float32(freq * (1 + d)) * t + np.float32(rng.uniform(0, 1)))
        y /= 1 + len(detune)
        if decay:
            y *= np.exp(-t / np.float32(decay))
    else:
        y = np.zeros(m, dtype=np.float32)
        for ratio, amp, dscale in osc:
            if freq * ratio > 0.45 * sr:
                continue
            part = np.sin(np.float32(2 * np.pi * freq * ratio) * t + np.float32(2 * np.pi * ph0 * ratio))
            if decay and dscale:
                part *= np.exp(t * np.float32(-1.0 / (decay * dscale)))
            y += np.float32(amp) * part
    env = np.minimum(np.float32(1.0), t / np.float32(att)) * np.clip((dur + rel - t) / np.float32(rel), 0.0, 1.0)
    return y * env


def _render_notes(n, sr, rng, notes, timbre, decay=None, detune=(), attack=None):
    """Sum notes [(start s, dur s, midi, vel)] into a float [n] buffer.

    Repeated notes (same pitch and length: chords of a looping progression) reuse one rendering,
    as a sampler would; this is most of the synthesis speed.
    """
    buf = np.zeros(n)
    cache = {}
    for t0, dur, midi, vel in notes:
        if t0 >= n / sr or t0 + dur + 0.5 < 0:
            continue
        key = (int(midi), round(float(dur), 3))
        y = cache.get(key)
        if y is None:
            y = cache[key] = _note(sr, rng, float(_midi_hz(midi)), dur, timbre, decay, detune, attack)
        _place(buf, y, [t0], [vel], sr)
    return buf


# =============================================================================================
# Song structure
# =============================================================================================

_VEL = {'.': 0.0, 'g': 0.28, 'o': 0.55, 'x': 1.0, 'X': 1.3}
_CHORDS = {
    'maj': (0, 4, 7), 'min': (0, 3, 7), '5': (0, 7, 12), '7': (0, 4, 7, 10), 'maj7': (0, 4, 7, 11),
    'min7': (0, 3, 7, 10), 'min9': (0, 3, 7, 10, 14), 'maj9': (0, 4, 7, 11, 14), 'sus2': (0, 2, 7),
    'add9': (0, 4, 7, 14),
}
_SCALES = {1: (0, 2, 4, 7, 9), 0: (0, 3, 5, 7, 10)}  # major / minor pentatonic


class _Song:
    """Timeline of one clip: tempo grid (with swing), chord per bar, clip offset inside the song.

    Times are clip seconds; bar ``b`` beat ``x`` is at ``(4 b + x) * spb - offset``.
    """

    def __init__(self, n, sr, rng, tempo, swing, key_root, progression, bars_per_chord=1):
        self.n, self.sr, self.rng = n, sr, rng
        self.spb = 60.0 / tempo
        if swing == 'triplet':
            self.sub = np.array([0.0, 0.25, 2 / 3, 0.8333])
        else:
            self.sub = np.array([0.0, swing / 2, 0.5, 0.5 + swing / 2])
        self.offset = rng.uniform(0, 4 * self.spb)
        self.n_bars = int(np.ceil((n / sr + self.offset) / (4 * self.spb))) + 1
        self.root = key_root
        self.chords = [progression[(b // bars_per_chord) % len(progression)] for b in range(self.n_bars)]

    def time(self, bar, beat):
        return (4 * np.asarray(bar) + np.asarray(beat)) * self.spb - self.offset

    def step_beat(self, step):
        return step // 4 + self.sub[step % 4]

    def chord(self, bar):
        """(root midi of the bar's chord in the bass register, intervals)."""
        deg, quality = self.chords[bar % len(self.chords)]
        return self.root + deg, _CHORDS[quality]

    def hits(self, pattern, jitter=0.004, drop=0.0, vel_jit=0.15, bars=None):
        """Times (s) and velocities of a 16-step pattern repeated over ``bars`` (default: all)."""
        vel = np.array([_VEL[c] for c in pattern])
        idx = np.nonzero(vel)[0]
        bars = np.arange(self.n_bars) if bars is None else np.asarray(bars)
        if len(idx) == 0 or len(bars) == 0:
            return np.zeros(0), np.zeros(0)
        beats = np.array([self.step_beat(i) for i in idx])
        t = self.time(bars[:, None], beats[None, :]).ravel()
        v = np.broadcast_to(vel[idx], (len(bars), len(idx))).ravel().copy()
        t = t + self.rng.normal(0, jitter, t.shape)
        v *= self.rng.uniform(1 - vel_jit, 1.0, v.shape)
        if drop:
            keep = self.rng.random(v.shape) >= drop
            t, v = t[keep], v[keep]
        return t, v

    def fills(self, every=4):
        """Snare fill (16ths, crescendo) on the last beat of every ``every``-th bar."""
        bars = [b for b in range(self.n_bars) if b % every == every - 1 and self.rng.random() < 0.7]
        t = [self.time(b, 3 + self.sub[k]) for b in bars for k in range(4)]
        v = [0.45 + 0.15 * k for b in bars for k in range(4)]
        return np.array(t), np.array(v)


def _mutate(pattern, rng, p=0.06):
    """Randomly add ghost notes / drop hits so no two tracks share an exact pattern."""
    out = []
    for c in pattern:
        r = rng.random()
        if c == '.' and r < p / 2:
            out.append('g')
        elif c != '.' and r < p / 2:
            out.append('.')
        else:
            out.append(c)
    return ''.join(out)


def _thin(pattern):
    """Ballad hats: keep only every other hit."""
    out, keep = [], True
    for c in pattern:
        if c != '.':
            out.append(c if keep else '.')
            keep = not keep
        else:
            out.append(c)
    return ''.join(out)


# =============================================================================================
# Genre styles
# =============================================================================================

_STYLES = {
    'rock': dict(tempo=(104, 140), swing=0.5, wet=0.18, rt60=1.2,
                 progs=[[(0, 'maj'), (7, 'maj'), (9, 'min'), (5, 'maj')],
                        [(0, 'maj'), (10, 'maj'), (5, 'maj'), (0, 'maj')],
                        [(0, 'maj'), (5, 'maj'), (7, 'maj'), (5, 'maj')]], mode=1),
    'metal': dict(tempo=(150, 196), swing=0.5, wet=0.12, rt60=0.9,
                  progs=[[(0, '5'), (8, '5'), (10, '5'), (0, '5')], [(0, '5'), (1, '5'), (0, '5'), (6, '5')]],
                  mode=0),
    'pop': dict(tempo=(92, 124), swing=0.5, wet=0.2, rt60=1.4,
                progs=[[(0, 'maj'), (7, 'maj'), (9, 'min'), (5, 'maj')],
                       [(9, 'min'), (5, 'maj'), (0, 'maj'), (7, 'maj')],
                       [(0, 'add9'), (5, 'maj'), (9, 'min'), (7, 'maj')]], mode=1),
    'hip-hop': dict(tempo=(80, 98), swing=0.6, wet=0.12, rt60=1.0,
                    progs=[[(0, 'min7'), (5, 'min7')], [(0, 'min7'), (8, 'maj7')], [(0, 'min9'), (3, 'maj7')]], mode=0),
    'electronic': dict(tempo=(120, 132), swing=0.5, wet=0.25, rt60=1.6,
                       progs=[[(0, 'min'), (8, 'maj'), (3, 'maj'), (10, 'maj')], [(0, 'min7'), (5, 'min7')],
                              [(0, 'min'), (10, 'maj'), (8, 'maj'), (10, 'maj')]], mode=0),
    'jazz': dict(tempo=(110, 190), swing='triplet', wet=0.2, rt60=1.5,
                 progs=[[(2, 'min7'), (7, '7'), (0, 'maj7'), (9, '7')],
                        [(0, 'maj7'), (9, 'min7'), (2, 'min7'), (7, '7')]],
                 mode=1),
    'reggae': dict(tempo=(68, 90), swing=0.56, wet=0.2, rt60=1.3,
                   progs=[[(0, 'maj'), (5, 'maj')], [(0, 'min'), (10, 'maj')],
                          [(0, 'maj'), (7, 'maj'), (5, 'maj'), (7, 'maj')]],
                   mode=1),
    'ambient': dict(tempo=(60, 80), swing=0.5, wet=0.6, rt60=4.0, bars_per_chord=2,
                    progs=[[(0, 'maj7'), (5, 'maj7')], [(0, 'sus2'), (8, 'maj7'), (3, 'maj7'), (10, 'sus2')]], mode=1),
    'rnb': dict(tempo=(66, 92), swing=0.6, wet=0.22, rt60=1.4,
                progs=[[(5, 'maj9'), (4, 'min7'), (9, 'min9'), (7, '7')],
                       [(0, 'maj9'), (9, 'min9'), (2, 'min9'), (7, '7')]],
                mode=1),
    'rock n roll': dict(tempo=(150, 192), swing='triplet', wet=0.25, rt60=1.0,
                        progs=[[(0, '7')] * 4 + [(5, '7')] * 2 + [(0, '7')] * 2
                               + [(7, '7'), (5, '7'), (0, '7'), (7, '7')]],  # 12-bar blues
                        mode=1),
}


def _drums(song, genre, rng, ballad, decade):
    """Drum bus for ``genre``: float [n]."""
    sr, n = song.sr, song.n
    buf = np.zeros(n)
    gate = 0.28 if decade == '80s' else None
    mut = lambda p: _mutate(p, rng)  # noqa: E731
    soft = 0.6 if ballad else 1.0
    hat_pat = (lambda p: _thin(p)) if ballad else (lambda p: p)

    def add(shot, pattern, level=1.0, **kw):
        t, v = song.hits(mut(pattern), **kw)
        _place(buf, shot, t, v * level * soft, sr)

    def fill(shot, level=0.8):
        t, v = song.fills()
        _place(buf, shot, t, v * level * soft, sr)

    crash_bars = list(range(0, song.n_bars, 8))
    if genre == 'rock':
        sn = _snare(sr, rng, rng.uniform(170, 210), 0.06, 0.13, gate=gate)
        add(_kick(sr, rng, 150, rng.uniform(52, 62), 0.16, 0.3), rng.choice(['x.....x.x.......', 'x.......x.x.....']))
        add(sn, '....x.......x...')
        add(_metal(sr, rng, 0.05, hp=7000), hat_pat('x.x.x.x.x.x.x.x.'), 0.35)
        add(_metal(sr, rng, 1.2, base=330, hp=3000), 'x...............', 0.5, bars=crash_bars)
        fill(sn)
    elif genre == 'metal':
        sn = _snare(sr, rng, 230, 0.04, 0.1, hp=1500, gate=gate)
        kick = _kick(sr, rng, 220, rng.uniform(58, 66), 0.07, 0.9, drive=2.0)
        add(kick, rng.choice(['xxxxxxxxxxxxxxxx', 'x.xxx.xxx.xxx.xx']) if not ballad else 'x.......x.......', 0.8)
        add(sn, '....x.......x...')
        add(_metal(sr, rng, 0.35, base=560, hp=4000), 'x...x...x...x...', 0.35)
        add(_metal(sr, rng, 1.0, base=300, hp=2500), 'x.......x.......', 0.5, bars=list(range(0, song.n_bars, 4)))
        fill(sn)
    elif genre == 'pop':
        add(_kick(sr, rng, 140, rng.uniform(48, 56), 0.22, 0.25), 'x.......x.x.....')
        add(_clap(sr, rng), '....x.......x...', 0.8)
        add(_snare(sr, rng, 200, 0.04, 0.1, gate=gate), '....x.......x...', 0.4)
        add(_metal(sr, rng, 0.03, hp=8000), hat_pat('xoxoxoxoxoxoxoxo'), 0.3)
    elif genre == 'hip-hop':
        add(_kick(sr, rng, 110, rng.uniform(44, 52), rng.uniform(0.45, 0.7), 0.12, drive=1.6),
            rng.choice(['x.....x...x.....', 'x.........x..x..', 'x......x..x.....']))
        sn = _snare(sr, rng, 180, 0.05, 0.16, lp=7000, hp=700, gate=gate)
        add(sn, '....x.......x...')
        add(_clap(sr, rng), '....x.......x...', 0.5)
        add(_metal(sr, rng, 0.04, hp=7500), hat_pat(rng.choice(['x.x.x.x.x.x.x.xx', 'x.xxx.x.x.xxx.x.'])), 0.3)
    elif genre == 'electronic':
        add(_kick(sr, rng, 170, rng.uniform(47, 54), 0.26, 0.4, drive=1.3), 'x...x...x...x...')
        add(_clap(sr, rng), '....x.......x...', 0.7)
        add(_metal(sr, rng, 0.18, hp=7000), '..x...x...x...x.', 0.3)
        add(_metal(sr, rng, 0.025, hp=9000), hat_pat('gggggggggggggggg'), 0.5)
        add(_noise_shot(sr, rng, 1.5, hp=2000, lp=9000, length=2.5), 'x...............', 0.25,
            bars=list(range(0, song.n_bars, 8)))
    elif genre == 'jazz':
        add(_metal(sr, rng, 0.9, base=rng.uniform(480, 620), hp=3000), 'x...x.x.x...x.x.', 0.4, jitter=0.008)
        add(_metal(sr, rng, 0.04, hp=6000), '....x.......x...', 0.25)
        add(_kick(sr, rng, 100, 62, 0.2, 0.05), 'g...g...g...g...', 0.7, drop=0.3)
        add(_noise_shot(sr, rng, 0.09, lp=5000, hp=600, attack=0.01), 'g.g...g..g.g..g.', 0.35, drop=0.5)
    elif genre == 'reggae':
        add(_kick(sr, rng, 120, rng.uniform(50, 58), 0.28, 0.2), '........x.......')
        add(_snare(sr, rng, rng.uniform(380, 480), 0.02, 0.04, hp=2000, snap=0.9), '........x.......', 0.8)
        add(_metal(sr, rng, 0.04, hp=7000), hat_pat('x.x.x.x.x.x.x.x.'), 0.25)
    elif genre == 'rnb':
        add(_kick(sr, rng, 120, rng.uniform(46, 54), 0.35, 0.15), 'x......x..x.....')
        add(_snare(sr, rng, 420, 0.02, 0.05, hp=2500, snap=0.8, gate=gate), '....x.......x...', 0.7)
        add(_clap(sr, rng), '....x.......x...', 0.35)
        add(_metal(sr, rng, 0.03, hp=8000), hat_pat('xoxoxoxoxoxoxoxo'), 0.25)
    elif genre == 'rock n roll':
        sn = _snare(sr, rng, 200, 0.05, 0.1, gate=gate)
        add(_kick(sr, rng, 130, 60, 0.15, 0.2), 'x.......x.......')
        add(sn, '....x.......x...', 1.1)
        add(_metal(sr, rng, 0.06, hp=6500), hat_pat('x.x.x.x.x.x.x.x.'), 0.35)
        fill(sn)
    return buf


def _bass(song, genre, rng, ballad):
    """Bass line: float [n]."""
    sr, n, spb = song.sr, song.n, song.spb
    notes = []
    for b in range(song.n_bars):
        root, iv = song.chord(b)
        nxt, _ = song.chord(b + 1)
        t = lambda beat: float(song.time(b, beat))  # noqa: E731
        v = rng.uniform(0.8, 1.0)
        if genre in ('rock', 'pop') or (ballad and genre not in ('rnb',)):
            step = 1.0 if ballad or genre == 'pop' else 0.5
            for x in np.arange(0, 4, step):
                notes.append((t(x), 0.9 * step * spb, root, v))
        elif genre == 'metal':
            for k in range(16):
                notes.append((t(k / 4), 0.2 * spb, root - 12 if root > 45 else root, v))
        elif genre == 'hip-hop':
            for x, d in ((0, 1.4), (1.5, 0.4), (2.5, 1.2)):
                notes.append((t(x), d * spb, root - 12 if root > 45 else root, v))
        elif genre == 'electronic':
            for x in (0.5, 1.5, 2.5, 3.5):
                notes.append((t(x), 0.35 * spb, root, v))
        elif genre == 'jazz':
            walk = [root, root + rng.choice([2, 3, 4]), root + 7, nxt + rng.choice([-1, 1])]
            for x, m in enumerate(walk):
                notes.append((t(x), 0.85 * spb, m, v * rng.uniform(0.8, 1.0)))
        elif genre == 'reggae':
            for x, off in ((0.5, 0), (1.0, 7), (1.5, 12), (2.5, 7), (3.0, 4 if iv[1] == 4 else 3), (3.5, 0)):
                notes.append((t(x), 0.4 * spb, root + off, v))
        elif genre == 'ambient':
            notes.append((t(0), 3.9 * spb, root, 0.7))
        elif genre == 'rnb':
            for x, off, d in ((0, 0, 0.7), (0.75, 12, 0.2), (1.75, 7, 0.5), (2.5, 0, 0.8), (3.5, 10, 0.3)):
                notes.append((t(x), d * spb, root + off, v))
        elif genre == 'rock n roll':
            for k, off in enumerate((0, 4, 7, 9, 10, 9, 7, 4)):
                notes.append((t(k // 2 + song.sub[2 * (k % 2)]), 0.3 * spb, root + off, v))
    timbre = {'metal': 'saw', 'rock': 'saw', 'electronic': 'saw', 'jazz': 'wbass', 'rock n roll': 'tri',
              'reggae': 'sine', 'hip-hop': 'sine', 'ambient': 'sine', 'rnb': 'sine', 'pop': 'square'}[genre]
    decay = {'jazz': 0.5, 'rock n roll': 0.3}.get(genre)
    y = _render_notes(n, sr, rng, notes, timbre, decay=decay)
    if genre in ('hip-hop', 'rnb', 'reggae'):
        y = np.tanh(1.5 * y)  # warm sub harmonics so the bass is audible in 96 mel bands
    return _filter(y, sr, lp={'metal': 700, 'rock': 900, 'electronic': 600, 'pop': 800, 'rock n roll': 1200}.get(genre),
                   hp=30)


def _chord_notes(song, pattern, dur_beats, register=55, vel=1.0, spread=True, bars=None):
    """Chord hits following a 16-step pattern; chord tones voiced around ``register`` (midi)."""
    notes = []
    for b in (range(song.n_bars) if bars is None else bars):
        root, iv = song.chord(b)
        base = root + 12 * int(np.round((register - root) / 12))
        tones = [base + i for i in iv]
        for k, c in enumerate(pattern):
            if c == '.':
                continue
            t = float(song.time(b, song.step_beat(k)))
            for m in tones:
                notes.append((t + (song.rng.uniform(0, 0.012) if spread else 0), dur_beats * song.spb, m,
                              vel * _VEL[c]))
    return notes


def _arp_notes(song, step, dur_beats, register=67, vel=0.8, span=2):
    notes = []
    for b in range(song.n_bars):
        root, iv = song.chord(b)
        base = root + 12 * int(np.round((register - root) / 12))
        tones = [base + i + 12 * o for o in range(span) for i in iv]
        order = tones + tones[-2:0:-1]
        for k, x in enumerate(np.arange(0, 4, step)):
            notes.append((float(song.time(b, x)), dur_beats * song.spb, order[k % len(order)], vel))
    return notes


def _lead_notes(song, rng, register, mode, density=0.6):
    """A stepwise pentatonic melody (instrumental lead)."""
    scale = _SCALES[mode]
    pitches = [song.root + 12 * o + s for o in range(0, 5) for s in scale]
    pitches = [p for p in pitches if register - 7 <= p <= register + 9]
    notes, i = [], len(pitches) // 2
    for b in range(song.n_bars):
        if b % 4 == 3:
            continue
        for x in np.arange(0, 4, 0.5):
            if rng.random() > density:
                continue
            i = int(np.clip(i + rng.choice([-2, -1, 1, 2]), 0, len(pitches) - 1))
            notes.append((float(song.time(b, x + song.sub[2] - 0.5 if x % 1 else x)),
                          rng.choice([0.45, 0.9, 1.4]) * song.spb, pitches[i], rng.uniform(0.7, 1)))
    return notes


def _harmony(song, genre, rng, ballad, instrumental, mode):
    """Harmony/lead instruments: list of (float [n], pan, gain, haas)."""
    sr, n = song.sr, song.n
    stems = []
    lvl = lambda: rng.uniform(0.7, 1.3)  # noqa: E731

    def dist(x, drive, lp):
        return _filter(np.tanh(drive * x), sr, lp=lp, hp=80)

    if genre == 'rock':
        if ballad:
            y = _render_notes(n, sr, rng, _arp_notes(song, 0.5, 1.5, 60, 0.6, 1), 'pluck', decay=1.2)
            stems.append((_filter(y, sr, lp=4000), -0.4, 0.6 * lvl(), True))
        else:
            pat = rng.choice(['x.......x.......', 'x.x.x.x.x.x.x.x.'])
            y = _render_notes(n, sr, rng, _chord_notes(song, pat, 2 if pat[2] == '.' else 0.45, 52, spread=False),
                              'saw', detune=(0.003,))
            y = dist(y, rng.uniform(4, 8), rng.uniform(2800, 3800))
            stems.append((y, -0.6, 0.5 * lvl(), True))
    elif genre == 'metal':
        notes = _chord_notes(song, 'xxxxxxxxxxxxxxxx' if not ballad else 'x.......x.......', 0.22 if not ballad else 2,
                             47, spread=False)
        y = _render_notes(n, sr, rng, [(t, d, m, v) for t, d, m, v in notes], 'saw', detune=(0.004,))
        y = dist(y, rng.uniform(12, 20) * (0.3 if ballad else 1), rng.uniform(3800, 5000))
        stems.append((y, 0.5, 0.45 * lvl(), True))
    elif genre == 'pop':
        y = _render_notes(n, sr, rng, _arp_notes(song, 0.25 if not ballad else 0.5, 0.3, 69, 0.5), 'square', decay=0.12)
        stems.append((_filter(y, sr, lp=5000), 0.4, 0.35 * lvl(), False))
        y = _render_notes(n, sr, rng, _chord_notes(song, 'x...............', 4, 60, 0.5), 'saw', detune=(0.004, -0.004),
                          attack=0.2)
        stems.append((_filter(y, sr, lp=2000), -0.3, 0.3 * lvl(), True))
    elif genre == 'hip-hop':
        pat = rng.choice(['x.....x.........', 'x.......x..x....'])
        y = _render_notes(n, sr, rng, _chord_notes(song, pat, 1.2, 60, 0.7), 'piano', decay=0.9)
        stems.append((_filter(y, sr, lp=2500), 0.2, 0.45 * lvl(), False))
    elif genre == 'electronic':
        y = _render_notes(n, sr, rng, _chord_notes(song, 'x...............', 4, 60, 0.6), 'saw', detune=(0.006, -0.006),
                          attack=0.05)
        lfo = 0.55 + 0.45 * np.sin(2 * np.pi * np.arange(n) / sr / (8 * song.spb))
        y = _filter(y, sr, lp=3000) * lfo
        stems.append((y, -0.3, 0.4 * lvl(), True))
        if rng.random() < 0.5:
            y = _render_notes(n, sr, rng, _chord_notes(song, '..x..x....x..x..', 0.2, 67, 0.8), 'saw', decay=0.1)
        else:
            y = _render_notes(n, sr, rng, _arp_notes(song, 0.25, 0.2, 67, 0.7), 'saw', decay=0.1)
        stems.append((_filter(y, sr, lp=4500), 0.4, 0.3 * lvl(), False))
    elif genre == 'jazz':
        notes = []
        for b in range(song.n_bars):
            pat = ['.'] * 16
            for k in rng.choice([2, 6, 8, 10, 14], size=rng.integers(2, 4), replace=False):
                pat[k] = 'x'
            notes += _chord_notes(song, ''.join(pat), rng.uniform(0.5, 1.5), 62, 0.6, bars=[b])
        y = _render_notes(n, sr, rng, notes, 'epiano', decay=1.0)
        stems.append((_filter(y, sr, lp=3500), 0.3, 0.5 * lvl(), False))
        if instrumental:
            y = _render_notes(n, sr, rng, _lead_notes(song, rng, 65, 1), 'saw', attack=0.04)
            stems.append((_filter(y, sr, lp=2200, hp=200), -0.2, 0.35 * lvl(), False))
    elif genre == 'reggae':
        y = _render_notes(n, sr, rng, _chord_notes(song, '..x...x...x...x.', 0.12, 64, 0.9), 'square', decay=0.08)
        stems.append((_filter(y, sr, lp=5000, hp=500), 0.5, 0.5 * lvl(), False))
        y = _render_notes(n, sr, rng, _chord_notes(song, '.x.x.x.x.x.x.x.x', 0.1, 55, 0.5), 'organ')
        stems.append((_filter(y, sr, lp=3000), -0.5, 0.25 * lvl(), False))
    elif genre == 'ambient':
        y = _render_notes(n, sr, rng, _chord_notes(song, 'x...............', 8, 60, 0.6), 'saw',
                          detune=(0.007,), attack=rng.uniform(0.8, 1.6))
        lfo = 0.6 + 0.4 * np.sin(2 * np.pi * np.arange(n) / sr * rng.uniform(0.05, 0.12) + rng.uniform(0, 6))
        stems.append((_filter(y, sr, lp=rng.uniform(1200, 2200)) * lfo, -0.2, 0.55 * lvl(), True))
        bell = []
        for b in range(song.n_bars):
            for x in rng.choice(np.arange(0, 4, 0.5), size=rng.integers(0, 3), replace=False):
                pitch = song.root + 36 + rng.choice(_SCALES[1])
                bell.append((float(song.time(b, x)), 0.1, pitch, rng.uniform(0.3, 0.7)))
        y = _render_notes(n, sr, rng, bell, 'bell', decay=2.0)
        stems.append((y, 0.4, 0.3 * lvl(), False))
        wind = _filter(rng.standard_normal(n), sr, lp=1500, hp=300)
        wind *= 0.5 + 0.5 * np.sin(2 * np.pi * np.arange(n) / sr * 0.07 + rng.uniform(0, 6))
        stems.append((wind / (np.abs(wind).max() + 1e-9), 0.0, 0.08 * lvl(), True))
    elif genre == 'rnb':
        y = _render_notes(n, sr, rng, _chord_notes(song, 'x.......x.......' if not ballad else 'x...............',
                                                    2 if not ballad else 4, 60, 0.6), 'epiano', decay=2.0)
        trem = 0.75 + 0.25 * np.sin(2 * np.pi * np.arange(n) / sr * rng.uniform(4, 6))
        stems.append((_filter(y, sr, lp=3000) * trem, -0.3, 0.55 * lvl(), True))
    elif genre == 'rock n roll':
        notes = []
        for b in range(song.n_bars):
            root, _ = song.chord(b)
            base = root + 12
            for k in range(8):
                t = float(song.time(b, k // 2 + song.sub[2 * (k % 2)]))
                for m in (base, base + (7 if (k // 2) % 2 == 0 else 9)):
                    notes.append((t, 0.3 * song.spb, m, 0.8))
        y = _render_notes(n, sr, rng, notes, 'saw')
        y = dist(y, rng.uniform(1.8, 3.0), 5000)
        stems.append((y, -0.5, 0.45 * lvl(), False))
        y = _render_notes(n, sr, rng, _chord_notes(song, '..x...x...x...x.', 0.2, 67, 0.6), 'piano', decay=0.4)
        stems.append((_filter(y, sr, lp=5000), 0.5, 0.3 * lvl(), False))
    if ballad and genre not in ('ambient',):
        y = _render_notes(n, sr, rng, _chord_notes(song, 'x...............', 4, 60, 0.5), 'saw',
                          detune=(0.005, -0.005), attack=0.6)
        stems.append((_filter(y, sr, lp=1600), 0.2, 0.35 * lvl(), True))
    if instrumental and genre in ('rock', 'metal', 'pop', 'electronic', 'rock n roll', 'reggae') and rng.random() < 0.6:
        timbre = 'saw' if genre in ('rock', 'metal', 'rock n roll') else 'square'
        y = _render_notes(n, sr, rng, _lead_notes(song, rng, 72, mode), timbre, attack=0.01)
        if genre in ('rock', 'metal'):
            y = dist(y, 5.0, 3500)
        stems.append((_filter(y, sr, lp=4000), 0.1, 0.3 * lvl(), False))
    return stems


# =============================================================================================
# Voice: glottal pulses through moving vowel formants (STFT), vibrato, consonant noise bursts
# =============================================================================================

#: Male vowel formants F1..F4 (Hz); female formants are ~16% higher.
_VOWELS = np.array([
    [730, 1090, 2440, 3400],   # a
    [530, 1840, 2480, 3500],   # e
    [270, 2290, 3010, 3700],   # i
    [570, 840, 2410, 3400],    # o
    [300, 870, 2240, 3400],    # u
], dtype=float)
_FORMANT_BW = np.array([80.0, 100.0, 140.0, 200.0])
_FORMANT_AMP = np.array([1.0, 0.65, 0.4, 0.25])


def _voice(song, kind, rng, ballad, mode):
    """Voice stem for ``kind`` in {'female', 'male', 'rap'}: float [n]."""
    sr, n, spb = song.sr, song.n, song.spb
    syl = []  # (t0 s, t1 s, f0 start Hz, f0 end Hz, vowel a, vowel b, consonant level)
    if kind in ('female', 'male'):
        lo, hi = (55, 70) if kind == 'female' else (43, 57)
        scale = _SCALES[mode]
        pitches = [song.root + 12 * o + s for o in range(-1, 5) for s in scale]
        pitches = [p for p in pitches if lo <= p <= hi]
        i = len(pitches) // 2
        beat = float(rng.choice([0, 1, 2]))
        end = (n / sr + song.offset) / spb
        durs, p = ((1, 2, 3), (.3, .5, .2)) if ballad else ((0.5, 1, 1.5, 2), (.25, .4, .2, .15))
        while beat < end:
            phrase_end = beat + rng.choice([6, 8, 8, 12])
            while beat < phrase_end:
                d = float(rng.choice(durs, p=p))
                i = int(np.clip(i + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, len(pitches) - 1))
                f = float(_midi_hz(pitches[i]))
                t0 = float(song.time(0, beat))
                va = int(rng.integers(5))
                vb = va if rng.random() < 0.6 else int(rng.integers(5))  # 40% diphthongs
                syl.append((t0, t0 + 0.93 * d * spb, f, f, va, vb, 0.6 if rng.random() < 0.4 else 0.0))
                beat += d
            beat += float(rng.choice([1, 2, 2, 3]))
    else:
        base = rng.uniform(105, 150)
        for b in range(song.n_bars):
            if rng.random() < 0.12:
                continue
            density = rng.uniform(0.55, 0.85)
            for k in range(16):
                if rng.random() > density:
                    continue
                x = song.step_beat(k)
                t0 = float(song.time(b, x))
                d = rng.choice([0.22, 0.22, 0.4]) * spb
                f = base * (1.18 - 0.25 * k / 16) * (1 + 0.07 * rng.standard_normal())
                syl.append((t0, t0 + d, f, 0.88 * f, rng.integers(5), rng.integers(5), rng.uniform(0.5, 1.0)))
    f0 = np.zeros(n)
    amp = np.zeros(n)
    cons = np.zeros(n)
    att = 0.012 if kind == 'rap' else 0.03
    for t0, t1, fa, fb, _, _, c in syl:
        i0, i1 = int(t0 * sr), int(t1 * sr)
        if i1 <= 0 or i0 >= n or i1 - i0 < 8:
            continue
        seg = np.arange(i0, i1)
        tt = (seg - i0) / sr
        dur = (i1 - i0) / sr
        ok = (seg >= 0) & (seg < n)
        f0[seg[ok]] = np.linspace(fa, fb, len(seg))[ok]
        env = np.minimum(1, tt / att) * np.clip((dur - tt) / 0.05, 0, 1)
        amp[seg[ok]] = env[ok]
        if c:
            cl = int(rng.uniform(0.025, 0.07) * sr)
            cseg = np.arange(i0, i0 + cl)
            cok = (cseg >= 0) & (cseg < n)
            cons[cseg[cok]] += c * np.exp(-np.arange(cl) / (0.3 * cl))[cok]
    if not syl or amp.max() == 0:
        return np.zeros(n)
    # Hold the pitch between syllables (phase continuity), then glide (portamento ~25 ms).
    idx = np.where(f0 > 0, np.arange(n), 0)
    np.maximum.accumulate(idx, out=idx)
    f0 = f0[idx]
    f0[f0 == 0] = f0[f0 > 0][0]
    w = int(0.025 * sr)
    c = np.cumsum(np.concatenate([np.zeros(w), np.log(f0), np.full(w, np.log(f0[-1]))]))
    f0 = np.exp((c[2 * w:] - c[:-2 * w])[:n] / (2 * w))
    t = np.arange(n) / sr
    if kind != 'rap':
        depth = 0.03 if kind == 'female' else 0.022
        f0 *= 1 + depth * np.sin(2 * np.pi * rng.uniform(5.0, 6.2) * t + rng.uniform(0, 6))
    knots = np.arange(0, n + int(0.05 * sr), int(0.05 * sr))
    f0 *= 1 + 0.004 * np.interp(np.arange(n), knots, rng.standard_normal(len(knots)))
    # Rosenberg glottal pulse, differentiated: a buzzy source with a natural spectral slope.
    ph = np.cumsum(f0) / sr  # float64: the phase accumulates over the whole clip
    ph = (ph - np.floor(ph)).astype(np.float32)
    pulse = np.zeros(n, dtype=np.float32)
    rise = ph < 0.4
    fall = ~rise & (ph < 0.6)
    pulse[rise] = 0.5 * (1 - np.cos(np.float32(np.pi / 0.4) * ph[rise]))
    pulse[fall] = np.cos(np.float32(np.pi / 0.4) * (ph[fall] - np.float32(0.4)))
    src = np.diff(pulse, prepend=np.float32(0)) * (0.1 * sr / np.maximum(f0, 50)).astype(np.float32)
    src = (src + 0.02 * rng.standard_normal(n, dtype=np.float32)) * amp.astype(np.float32)
    noise = rng.standard_normal(n, dtype=np.float32) * cons.astype(np.float32)
    # STFT formant filtering (hop 256, Hann^2 overlap-add at 75%).
    nfft, hop = 1024, 256
    pad = np.concatenate([np.zeros(nfft), src, np.zeros(nfft)])
    padn = np.concatenate([np.zeros(nfft), noise, np.zeros(nfft)])
    frames_idx = np.arange(0, len(pad) - nfft + 1, hop)
    win = np.hanning(nfft + 1)[:-1]
    fr = np.lib.stride_tricks.sliding_window_view(pad, nfft)[::hop] * win
    frn = np.lib.stride_tricks.sliding_window_view(padn, nfft)[::hop] * win
    freqs = np.fft.rfftfreq(nfft, 1 / sr)
    centers = (frames_idx + nfft / 2 - nfft) / sr
    starts = np.array([s[0] for s in syl])
    ends = np.array([s[1] for s in syl])
    va = np.array([s[4] for s in syl])
    vb = np.array([s[5] for s in syl])
    k = np.clip(np.searchsorted(starts, centers) - 1, 0, len(syl) - 1)
    # Hold the vowel, glide to the second one (a diphthong, or the next syllable's vowel) at the end.
    pos = np.clip((centers - starts[k]) / np.maximum(ends[k] - starts[k], 1e-3), 0, 1)
    frac = np.clip((pos - 0.65) / 0.35, 0, 1)[:, None]
    scale = 1.16 if kind == 'female' else 1.0
    formants = ((1 - frac) * _VOWELS[va[k]] + frac * _VOWELS[vb[k]]) * scale  # [frames, 4]
    # Only frames with voice get filtered (phrases leave 20-40% of frames empty).
    active = np.flatnonzero(np.abs(fr).max(axis=1) + np.abs(frn).max(axis=1) > 0)
    f32 = freqs.astype(np.float32)[None, :]
    fm = formants[active].astype(np.float32)
    gain = np.zeros((len(active), len(freqs)), dtype=np.float32)
    for j in range(4):
        bw = np.float32(_FORMANT_BW[j] * scale / 2)
        gain += np.float32(_FORMANT_AMP[j]) / (1 + np.square((f32 - fm[:, j:j + 1]) / bw))
    spec = np.fft.rfft(fr[active], axis=1) * gain
    spec += np.fft.rfft(frn[active], axis=1) * (0.35 * _response(freqs, lp=9000, hp=3000, order=2))[None, :]
    out_frames = np.zeros((len(frames_idx), nfft))
    out_frames[active] = np.fft.irfft(spec, nfft, axis=1) * win
    y = np.zeros(len(pad) + nfft)
    for r in range(nfft // hop):
        sub = out_frames[r::nfft // hop]
        flat = sub.reshape(-1)
        y[r * hop:r * hop + len(flat)] += flat
    y = y[nfft:nfft + n] / 1.5
    return y / (np.sqrt(np.mean(y ** 2)) + 1e-9)


# =============================================================================================
# Master bus: decade production signature, reverb, upsampling, loudness
# =============================================================================================

_DECADE_FX = {
    None: dict(lp=None, hp=30, wet=0.12, rt60=1.1),
    '50s': dict(lp=2800, hp=200, wet=0.22, rt60=1.0, mono=True, hiss=0.025, crackle=True),
    '60s': dict(lp=4200, hp=140, wet=0.35, rt60=1.8, mono=True, hiss=0.012),
    '70s': dict(lp=5500, lp_order=1, hp=60, wet=0.15, rt60=1.0, wow=0.0018, tape=1.8),
    '80s': dict(hp=40, wet=0.5, rt60=0.35, gate=True, shelf=(3000, 6.0)),
    '90s': dict(hp=30, wet=0.08, rt60=0.8, smiley=True),
    '00s': dict(hp=30, wet=0.1, rt60=0.9, shelf=(5000, 3.0), limit=4.0),
}


def _master(stems, song, genre, decade, rng, out_sr, channels, seconds):
    """Mix mono stems to ``channels`` at ``out_sr``: float32 [round(seconds*out_sr), channels]."""
    sr, n = song.sr, song.n
    fx = _DECADE_FX[decade]
    style = _STYLES[genre]
    mono_out = channels == 1 or fx.get('mono')
    mix = np.zeros((1 if mono_out else 2, n))
    for x, pan, gain, haas in stems:
        if mono_out:
            mix[0] += 0.7 * gain * x
            continue
        a = (pan + 1) * np.pi / 4
        mix[0] += np.cos(a) * gain * x
        if haas:  # double-tracked width: a slightly delayed copy on the other side
            d = int(0.013 * sr)
            x = np.concatenate([np.zeros(d), x[:n - d]])
        mix[1] += np.sin(a) * gain * x
    if fx.get('wow'):
        t = np.arange(n) / sr
        warp = t + fx['wow'] * np.sin(2 * np.pi * 0.55 * t) + 0.4 * fx['wow'] * np.sin(2 * np.pi * 3.1 * t)
        mix = np.stack([np.interp(warp, t, ch) for ch in mix])
    if fx.get('tape'):
        peak = np.abs(mix).max() + 1e-9
        mix = np.tanh(fx['tape'] * mix / peak) * peak
    # One FFT pair per channel applies the decade EQ and the reverb.
    wet = max(fx['wet'], style['wet'])
    rt60 = style['rt60'] if style['wet'] > fx['wet'] else fx['rt60']
    ir_len = int(min(rt60, 4.0) * sr)
    nfft = _fast_len(n + ir_len)
    f = np.fft.rfftfreq(nfft, 1 / sr)
    h = _response(f, fx.get('lp'), fx.get('hp'), fx.get('lp_order', 2))
    tilt = rng.uniform(-2.0, 2.0)  # per-track EQ tilt, dB per decade of frequency around 1 kHz
    h *= 10 ** (tilt * np.log10(np.maximum(f, 20) / 1000) / 20)
    if fx.get('shelf'):
        fc, db = fx['shelf']
        h *= 10 ** (db / 20 * (1 / (1 + (fc / np.maximum(f, 1)) ** 2)))
    if fx.get('smiley'):
        h *= 10 ** ((7 / (1 + (f / 150) ** 2) + 6 / (1 + (5000 / np.maximum(f, 1)) ** 2)
                     - 5 * np.exp(-(np.log2(np.maximum(f, 1) / 1000)) ** 2)) / 20)
    ti = np.arange(ir_len) / sr
    env = np.where(ti < rt60, 1.0, 0.0) if fx.get('gate') else np.exp(-6.9 * ti / max(rt60, 0.05))
    ir = rng.standard_normal(ir_len) * env
    ramp = int(0.01 * sr)
    ir[:ramp] *= np.linspace(0, 1, ramp)
    ir_f = np.fft.rfft(ir, nfft) * _response(f, lp=9000 if fx.get('gate') else 6000) / np.sqrt(np.sum(ir ** 2))
    out = np.empty_like(mix)
    for c in range(len(mix)):
        # The right channel's reverb is the left one plus a 7 ms-delayed copy: decorrelated enough
        # for width at the cost of no extra FFT.
        rev = ir_f if c == 0 else (ir_f - ir_f * np.exp(-2j * np.pi * f * 0.007)) / np.sqrt(2)
        out[c] = np.fft.irfft(np.fft.rfft(mix[c], nfft) * h * (1 + wet * rev), nfft)[:n]
    if fx.get('limit'):
        peak = np.abs(out).max() + 1e-9
        out = np.tanh(fx['limit'] * out / peak) / np.tanh(fx['limit'])
    up = out_sr // sr
    if up > 1:  # band-limited upsampling: zero-stuffing + windowed-sinc interpolation filter
        h_up = _fir_kernel(out_sr, lp=0.46 * sr) * up
        stuffed = np.zeros((len(out), n * up))
        stuffed[:, ::up] = out
        out = np.stack([np.convolve(ch, h_up, mode='same') for ch in stuffed])
    out_n = int(round(seconds * out_sr))
    out = out[:, :out_n]
    if out.shape[1] < out_n:
        out = np.pad(out, ((0, 0), (0, out_n - out.shape[1])))
    if fx.get('hiss'):
        hiss = np.convolve(rng.standard_normal(out_n), _fir_kernel(out_sr, hp=2500), mode='same')
        out += fx['hiss'] * np.abs(out).max() * hiss / (np.abs(hiss).max() + 1e-9)
    if fx.get('crackle'):
        clicks = (rng.random(out_n) < 6.0 / out_sr) * rng.uniform(-1, 1, out_n)
        out += 0.3 * np.abs(out).max() * clicks
    fade = min(int(0.3 * out_sr), out_n // 4)
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade)
        out[:, :fade] *= ramp
        out[:, -fade:] *= ramp[::-1]
    out *= rng.uniform(0.5, 0.92) / (np.abs(out).max() + 1e-9)
    if channels == 2 and len(out) == 1:
        out = np.repeat(out, 2, axis=0)
    return np.ascontiguousarray(out.T, dtype=np.float32)


def render_audio(spec, sr=44100, channels=2, seconds=30.0, seed=0):
    """Synthesise one clip from its labels.

    Parameters
    ----------
    spec : dict
        ``genre`` (one of ``GENRES``), ``vocal`` (``VOCALS`` or None), ``decade`` (``DECADES`` or
        None), ``ballad`` (bool), ``tempo`` (BPM), ``key`` (pitch class 0-11), ``mode`` (1 major,
        0 minor), ``prog`` (progression index, any int).
    sr : int
        Output sample rate (Hz): 22050 or 44100 (synthesis runs at 22050 Hz).
    channels : int
        1 or 2.
    seconds : float
        Clip length (s).
    seed : int or sequence of int
        Seed of the clip's own random generator (timing, mix, noise ...).

    Returns
    -------
    numpy.ndarray
        float32 [round(seconds * sr), channels], peak in [0.5, 0.92].
    """
    if sr % SYNTH_SR:
        raise ValueError(f'sample rate must be a multiple of {SYNTH_SR} Hz, got {sr}')
    rng = np.random.default_rng(seed)
    genre = spec['genre']
    style = _STYLES[genre]
    n = int(round(seconds * SYNTH_SR))
    progs = style['progs']
    song = _Song(n, SYNTH_SR, rng, spec['tempo'], style['swing'], 40 + (spec['key'] - 4) % 12,
                 progs[spec.get('prog', 0) % len(progs)], style.get('bars_per_chord', 1))
    ballad = bool(spec.get('ballad'))
    vocal = spec.get('vocal')
    stems = []
    if genre != 'ambient':
        stems.append((_drums(song, genre, rng, ballad, spec.get('decade')), 0.0, rng.uniform(0.8, 1.1), False))
    stems.append((_bass(song, genre, rng, ballad), 0.0, rng.uniform(0.5, 0.8), False))
    stems += _harmony(song, genre, rng, ballad, vocal == 'instrumental' or vocal is None, spec.get('mode', 1))
    music_rms = np.sqrt(np.mean(sum(g * x for x, _, g, _ in stems) ** 2)) + 1e-9
    if vocal in ('female', 'male', 'rap'):
        v = _voice(song, vocal, rng, ballad, spec.get('mode', 1))
        stems.append((v, rng.uniform(-0.1, 0.1), music_rms * rng.uniform(0.8, 1.3), False))
    return _master(stems, song, genre, spec.get('decade'), rng, sr, channels, seconds)


# =============================================================================================
# Corpus plan: ids, metadata, labels, culprits, tags (all in the parent process, one RNG)
# =============================================================================================

_ADJ = ('Broken', 'Midnight', 'Golden', 'Electric', 'Silent', 'Wild', 'Lonely', 'Burning', 'Velvet',
        'Crystal', 'Hollow', 'Neon', 'Endless', 'Frozen', 'Restless', 'Sweet', 'Distant', 'Blue',
        'Wicked', 'Paper', 'Silver', 'Crimson', 'Quiet', 'Lucky', 'Secret', 'Faded', 'Naked', 'Heavy')
_NOUN = ('Heart', 'River', 'Dream', 'Highway', 'Fire', 'Moon', 'City', 'Rain', 'Garden', 'Mirror',
         'Ocean', 'Train', 'Shadow', 'Summer', 'Window', 'Angel', 'Thunder', 'Road', 'Machine',
         'Letter', 'Island', 'Kingdom', 'Radio', 'Stranger', 'Diamond', 'Valley', 'Echo', 'Sky')
_FIRST = ('Ana', 'Björn', 'Carla', 'Dmitri', 'Elena', 'Félix', 'Grace', 'Hiro', 'Inès', 'Jamal',
          'Kofi', 'Lena', 'Marcus', 'Noémie', 'Oskar', 'Priya', 'Quinn', 'Rosa', 'Søren', 'Tomás')
_LAST = ('Åkesson', 'Baptiste', 'Castillo', 'Dubois', 'Edwards', 'Fontaine', 'García', 'Hansen',
         'Ivanova', 'Jones', 'Kowalski', 'Lindqvist', 'Müller', 'Nakamura', 'O\'Brien', 'Petrović')
_PLACES = (('London, England', 51.5085, -0.1257), ('Kingston, Jamaica', 17.9712, -76.7936),
           ('New Orleans, LA', 29.9547, -90.0751), ('Detroit, MI', 42.3314, -83.0457),
           ('Stockholm, Sweden', 59.3326, 18.0649), ('Chicago, IL', 41.8842, -87.6324),
           ('Berlin, Germany', 52.5244, 13.4105), ('Nashville, TN', 36.1659, -86.7844),
           ('', np.nan, np.nan), ('', np.nan, np.nan), ('California - LA', np.nan, np.nan))
_HTML_404 = (b'<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body><h1>Not Found</h1>\n'
             b'<p>The requested preview was not found on this server.</p>\n</body></html>\n')


def _rng(seed, *parts):
    """Generator seeded from (seed, *parts): independent, reproducible streams."""
    return np.random.default_rng([int(seed), *[int(p) for p in parts]])


def _make_ids(rng, prefix, k, used):
    """``k`` unique MSD-style ids: prefix + 5 letters + 11 hex digits (18 chars)."""
    letters = np.array(list('ABCDEFGHIJKLMNOPQRSTUVWXYZ'))
    hexd = np.array(list('0123456789ABCDEF'))
    out = []
    while len(out) < k:
        s = prefix + ''.join(rng.choice(letters, 5)) + ''.join(rng.choice(hexd, 11))
        if s not in used:
            used.add(s)
            out.append(s)
    return out


def _mbid(rng):
    h = ''.join(rng.choice(list('0123456789abcdef'), 32))
    return f'{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}'


def _choice(rng, items, p=None):
    return items[int(rng.choice(len(items), p=p))]


def _allocate_culprits(n_tracks):
    """How many tracks each culprit kind gets: proportional targets, at most 60% of the corpus."""
    want = {('bad', k): max(1, round(0.01 * n_tracks)) for k in BAD_KINDS}
    want.update({'no_audio': max(1, round(0.04 * n_tracks)), 'mismatched': max(1, round(0.03 * n_tracks)),
                 'dup_group': max(1, round(0.016 * n_tracks)), 'untagged': max(1, round(0.025 * n_tracks)),
                 'not_in_db': max(1, round(0.012 * n_tracks)), 'ambiguous': 1})
    cost = {k: (2 if k in ('dup_group', 'ambiguous') else 1) for k in want}
    budget = int(0.6 * n_tracks)
    got = {k: 0 for k in want}
    progress = True
    while progress:
        progress = False
        for k in want:  # round robin in priority order: every kind appears before any repeats
            if got[k] < want[k] and cost[k] <= budget:
                got[k] += 1
                budget -= cost[k]
                progress = True
    return got


#: Minimum number of tagged tracks per genre/decade/ballad family (topped up with DB-only tracks):
#: 0.7 * 6 -> 4 target-spelling tracks, above the 2 of every pool spelling.
_MIN_FAMILY = 6


def _assign_family(rng, members, variants, tags):
    """Give each member track raw spellings of one family with designed counts.

    ``variants`` [(raw, role)]; roles: 'P' on ~88% of members, 'T' on ~70% (distinct counts, all
    below P), 'pool' on exactly 2 members.  Every member gets at least one spelling.  Appends
    raw tags to ``tags[member]`` (a list).
    """
    m = len(members)
    if m == 0:
        return
    order = [members[i] for i in rng.permutation(m)]
    got = {t: [] for t in order}
    n_t = 0
    for raw, role in variants:
        if role == 'P':
            chosen = order[:int(np.ceil(0.88 * m))]
        elif role == 'T':
            k = max(1, int(0.7 * m) - n_t)
            n_t += 1
            chosen = [order[i] for i in rng.choice(m, size=min(k, m), replace=False)]
        else:  # exactly 2: keeps every pool spelling below min_count even in ~60-track corpora
            k = 2
            chosen = [order[i] for i in rng.choice(m, size=min(k, m), replace=False)]
        for t in chosen:
            got[t].append(raw)
    fallback = next((raw for raw, role in variants if role == 'T'), variants[0][0])
    for t in order:
        if not got[t]:
            got[t].append(fallback)
        tags[t].extend(got[t])


def _plan(n_tracks, seconds, seed):
    """Everything but the audio samples: a dict consumed by the writers and the audio workers."""
    rng = _rng(seed, 0)
    used = set()
    track_ids = _make_ids(rng, 'TR', n_tracks, used)
    song_ids = _make_ids(rng, 'SO', n_tracks, used)
    seven = rng.choice(np.arange(100_000, 9_999_999), size=n_tracks + 8, replace=False).tolist()

    # Artists: each with a home genre so artist-disjoint splits stay meaningful.
    n_art = max(4, n_tracks // 4)
    art_ids = _make_ids(rng, 'AR', n_art, used)
    genre_cycle = [GENRES[i] for i in rng.permutation(len(GENRES))]
    artists = []
    for a in range(n_art):
        if rng.random() < 0.5:
            name = f'{_choice(rng, _FIRST)} {_choice(rng, _LAST)}'
        else:
            name = f'The {_choice(rng, _ADJ)} {_choice(rng, _NOUN)}s'
        place = _PLACES[int(rng.integers(len(_PLACES)))]
        artists.append(dict(
            artist_id=art_ids[a], artist_name=name, genre=genre_cycle[a % len(GENRES)],
            artist_mbid='' if rng.random() < 0.1 else _mbid(rng), artist_location=place[0],
            artist_latitude=place[1], artist_longitude=place[2],
            artist_7digitalid=int(rng.integers(1000, 900000)),
            artist_playmeid=-1 if rng.random() < 0.4 else int(rng.integers(1, 250000)),
            artist_familiarity=float(rng.uniform(0.2, 0.9)), artist_hotttnesss=float(rng.uniform(0.1, 0.7)),
            releases=[f'{_choice(rng, _ADJ)} {_choice(rng, _NOUN)}' for _ in range(2)],
            release_7digitalids=[int(rng.integers(10000, 900000)) for _ in range(2)]))
    by_genre = {g: [a for a in artists if a['genre'] == g] or artists for g in GENRES}

    def labels(genre):
        v = _VOCAL_PRIOR[genre]
        d = _DECADE_PRIOR[genre]
        vocal = _choice(rng, list(VOCALS) + [None], p=np.array(v) / sum(v))
        decade = _choice(rng, list(DECADES) + [None], p=np.array(d) / sum(d))
        ballad = bool(rng.random() < _BALLAD_PROB.get(genre, 0.0))
        style = _STYLES[genre]
        tempo = float(rng.uniform(*style['tempo']))
        if ballad:
            tempo = max(56.0, 0.68 * tempo)
        return dict(genre=genre, vocal=vocal, decade=decade, ballad=ballad, tempo=round(tempo, 3),
                    key=int(rng.integers(12)), mode=int(style['mode']), prog=int(rng.integers(len(style['progs']))))

    genres = list(np.resize([GENRES[i] for i in rng.permutation(len(GENRES))], n_tracks))
    genres = [genres[i] for i in rng.permutation(n_tracks)]
    tracks = []
    for i in range(n_tracks):
        lab = labels(genres[i])
        art = _choice(rng, by_genre[lab['genre']])
        r = int(rng.integers(2))
        dec = lab['decade']
        if dec is not None and rng.random() < 0.85:
            start = 1900 + int(dec[0]) * 10 if dec != '00s' else 2000
            year = start + int(rng.integers(10))
        else:
            year = 0 if rng.random() < 0.7 else int(rng.integers(1955, 2011))
        duration = float(rng.uniform(120, 420))
        title = f'{_choice(rng, _ADJ)} {_choice(rng, _NOUN)}'
        if rng.random() < 0.08:
            title += ' (Café Version)'
        tracks.append(dict(
            index=i, track_id=track_ids[i], song_id=song_ids[i], track_7digitalid=int(seven[i]),
            artist=art, artist_id=art['artist_id'], artist_name=art['artist_name'], title=title,
            release=art['releases'][r], release_7digitalid=art['release_7digitalids'][r], year=year,
            duration=round(duration, 5), labels=lab, has_audio=True, audio_kind='ok'))

    # Culprits: disjoint sets of tracks, so each purge step removes exactly its own culprits.
    alloc = _allocate_culprits(n_tracks)
    perm = [int(i) for i in rng.permutation(n_tracks)]
    take = lambda k: [perm.pop() for _ in range(k)]  # noqa: E731
    ambiguous, dup_groups = [], []
    if alloc['ambiguous']:
        a, b = take(2)
        tracks[b]['labels'] = dict(tracks[a]['labels'])
        tracks[b]['track_7digitalid'] = tracks[a]['track_7digitalid']
        tracks[b]['audio_of'] = a
        ambiguous = [tracks[a]['track_7digitalid']]
    bad = {k: take(alloc[('bad', k)]) for k in BAD_KINDS}
    for k, idx in bad.items():
        for i in idx:
            tracks[i]['audio_kind'] = k
    no_audio = take(alloc['no_audio'])
    for i in no_audio:
        tracks[i].update(has_audio=False, audio_kind=None)
    mismatched = take(alloc['mismatched'])
    for g in range(alloc['dup_group']):
        size = 3 if (g % 3 == 2 and len(perm) > 0.4 * n_tracks + 3) else 2
        members = take(size)
        first = tracks[members[0]]
        for j in members[1:]:
            tracks[j].update(artist=first['artist'], artist_id=first['artist_id'], year=first['year'],
                             artist_name=first['artist_name'], title=first['title'],
                             labels=dict(first['labels'], tempo=round(first['labels']['tempo'] * 1.01, 3)))
        dup_groups.append(members)
    untagged = take(alloc['untagged'])
    not_in_db = take(alloc['not_in_db'])

    # Audio formats: the first four good clips cover all four (rate, channels) formats.
    fmt_idx = [int(x) for x in rng.choice(len(AUDIO_FORMATS), size=n_tracks, p=_AUDIO_FORMAT_P)]
    ok_tracks = [t['index'] for t in tracks if t['audio_kind'] == 'ok' and 'audio_of' not in t]
    for j, i in enumerate(ok_tracks[:len(AUDIO_FORMATS)]):
        fmt_idx[i] = j
    for t in tracks:
        src = tracks[t['audio_of']] if 'audio_of' in t else t
        sr, ch, kbps = AUDIO_FORMATS[fmt_idx[src['index']]]
        d = str(src['track_7digitalid'])
        t.update(sample_rate=sr, channels=ch, bitrate=kbps,
                 audio_path=f'{d[0]}/{d[1]}/{d}.clip.mp3' if t['has_audio'] else None)
    orphans = []
    for k in range(2 if n_tracks >= 10 else 1):
        d = str(seven[n_tracks + k])
        orphans.append(dict(index=n_tracks + k, track_7digitalid=int(d), audio_path=f'{d[0]}/{d[1]}/{d}.clip.mp3',
                            labels=labels(GENRES[k % len(GENRES)]), sample_rate=22050, channels=1, bitrate=64,
                            audio_kind='ok'))

    # DB-only tracks (the Last.fm DB covers tracks the summary file does not have): ~15% random
    # ones, plus top-ups so every genre/decade/ballad family has >= _MIN_FAMILY tagged tracks,
    # which keeps the designed count thresholds consistent down to a few dozen tracks.
    in_db_tagged = [t['labels'] for t in tracks if t['index'] not in set(untagged) | set(not_in_db)]
    extra_labels = [labels(GENRES[int(rng.integers(len(GENRES)))]) for _ in range(max(2, round(0.15 * n_tracks)))]
    for g in GENRES:
        have = sum(lab['genre'] == g for lab in in_db_tagged + extra_labels)
        extra_labels += [labels(g) for _ in range(max(0, _MIN_FAMILY - have))]
    for d in DECADES:
        have = sum(lab['decade'] == d for lab in in_db_tagged + extra_labels)
        hosts = [g for g in GENRES if _DECADE_PRIOR[g][DECADES.index(d)] > 0]
        extra_labels += [dict(labels(_choice(rng, hosts)), decade=d) for _ in range(max(0, _MIN_FAMILY - have))]
    have = sum(lab['ballad'] for lab in in_db_tagged + extra_labels)
    extra_labels += [dict(labels(_choice(rng, list(_BALLAD_PROB))), ballad=True)
                     for _ in range(max(0, _MIN_FAMILY - have))]
    extra_ids = _make_ids(rng, 'TR', len(extra_labels), used)
    extra = [dict(track_id=tid, labels=lab) for tid, lab in zip(extra_ids, extra_labels)]

    # ---- tags ----------------------------------------------------------------------------
    tagged = [t['track_id'] for t in tracks if t['index'] not in set(untagged) | set(not_in_db)]
    tagged += [e['track_id'] for e in extra]
    lab_of = {t['track_id']: t['labels'] for t in tracks}
    lab_of.update({e['track_id']: e['labels'] for e in extra})
    raw = {tid: [] for tid in tagged}
    for g, variants in GENRE_FAMILIES.items():
        _assign_family(rng, [t for t in tagged if lab_of[t]['genre'] == g], variants, raw)
    for v, variants in VOCAL_FAMILIES.items():
        _assign_family(rng, [t for t in tagged if lab_of[t]['vocal'] == v], variants, raw)
    for d, variants in DECADE_FAMILIES.items():
        _assign_family(rng, [t for t in tagged if lab_of[t]['decade'] == d], variants, raw)
    _assign_family(rng, [t for t in tagged if lab_of[t]['ballad']], MOOD_FAMILIES['ballad'], raw)
    vals = {tid: {} for tid in tagged}
    for tid in tagged:
        for j, tag in enumerate(raw[tid]):
            vals[tid][tag] = 100.0 if j == 0 else float(rng.integers(15, 101))
    for tag, p in zip(JUNK_TAGS, JUNK_PROB):
        for tid in tagged:
            if rng.random() < p:
                vals[tid][tag] = float(rng.integers(0, 61))
    for tag in MID_JUNK_TAGS:
        for k in rng.choice(len(tagged), size=min(2, len(tagged)), replace=False):
            vals[tagged[k]][tag] = float(rng.integers(0, 31))
    n_rare = min(len(RARE_TAGS), max(1, round(0.12 * len(tagged))))
    rare_used = list(RARE_TAGS[:n_rare])
    for tag in rare_used:
        vals[tagged[int(rng.integers(len(tagged)))]][tag] = float(rng.integers(0, 51))
    low_val = []
    for tid in tagged:
        if rng.random() < 0.05:
            wrong = _choice(rng, [g for g in GENRES if g != lab_of[tid]['genre']])
            tag = GENRE_FAMILIES[wrong][0][0]
            vals[tid][tag] = float(rng.integers(1, 7))
            low_val.append([tid, tag, vals[tid][tag]])
    # Shuffle each track's tag order (the DB is not sorted by strength).
    for tid in tagged:
        items = list(vals[tid].items())
        vals[tid] = dict(items[i] for i in rng.permutation(len(items)))

    # DB tids: h5 tracks (minus not_in_db) and DB-only tracks, shuffled.
    db_tids = [t['track_id'] for t in tracks if t['index'] not in set(not_in_db)] + [e['track_id'] for e in extra]
    db_tids = [db_tids[i] for i in rng.permutation(len(db_tids))]
    all_tags = sorted({tag for tid in tagged for tag in vals[tid]})
    all_tags = [all_tags[i] for i in rng.permutation(len(all_tags))]

    counts = {}
    for tid in tagged:
        for tag in vals[tid]:
            counts[tag] = counts.get(tag, 0) + 1
    thresholds = _design_thresholds(counts, rare_used)

    # Mismatch lines name a Taste-Profile song (fake id + other artist/title) != our track.
    mism_lines = []
    for i in mismatched:
        t = tracks[i]
        so = _make_ids(rng, 'SO', 1, used)[0]
        other = f'{_choice(rng, _FIRST)} {_choice(rng, _LAST)}  -  {_choice(rng, _ADJ)} {_choice(rng, _NOUN)}'
        mism_lines.append(f'ERROR: <{so} {t["track_id"]}> {other}  !=  {t["artist_name"]}  -  {t["title"]}')
    return dict(seed=seed, seconds=seconds, tracks=tracks, extra=extra, orphans=orphans, raw_vals=vals,
                db_tids=db_tids, all_tags=all_tags, counts=counts, thresholds=thresholds,
                mismatched=mismatched, mism_lines=mism_lines, dup_groups=dup_groups, untagged=untagged,
                not_in_db=not_in_db, no_audio=no_audio, ambiguous=ambiguous, rare=rare_used, low_val=low_val)


def _design_thresholds(counts, rare):
    """Cleaning thresholds the tag counts were designed for, and whether they hold.

    min_count: <= every P/T spelling of genre, mood and decade families, > every 'pool' spelling
    and mid-frequency junk tag; rounded down to a multiple of 5 where possible.
    pool_min_count: <= every pool spelling, > the rare tags' count (1).
    """
    fams = list(GENRE_FAMILIES.values()) + list(MOOD_FAMILIES.values()) + list(DECADE_FAMILIES.values())
    target = [counts[r] for f in fams for r, role in f if role in ('P', 'T') and r in counts]
    pool = [counts[r] for f in fams + list(VOCAL_FAMILIES.values()) for r, role in f if role == 'pool' and r in counts]
    pool += [counts[r] for f in VOCAL_FAMILIES.values() for r, role in f if role == 'T' and r in counts]
    mid = [counts[t] for t in MID_JUNK_TAGS if t in counts]
    lo = max(pool + mid + [1]) + 1
    hi = min(target) if target else lo
    min_count = hi - hi % 5 if hi - hi % 5 >= lo else hi
    pool_min = min(pool + mid) if pool + mid else 2
    ok = lo <= hi and pool_min >= 2 and all(counts.get(t, 0) <= 1 for t in rare)
    return dict(min_count=int(max(min_count, 2)), pool_min_count=int(max(pool_min, 2)), val_threshold=10, ok=bool(ok))


# =============================================================================================
# Audio files (run in worker processes)
# =============================================================================================

def encode_mp3(y, sr, kbps=128, quality=7):
    """float32 [n] or [n, channels] in [-1, 1] -> MP3 bytes (lameenc, CBR, deterministic).

    ``quality`` is LAME's 0 (best, slowest) … 9; 7 is fast, and enough for synthetic data.
    """
    try:
        import lameenc
    except ImportError as e:  # pinned in requirements.txt; say so rather than crash obscurely
        raise RuntimeError('msd.synthetic needs lameenc to write MP3s: pip install lameenc') from e
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 1:
        y = y[:, None]
    pcm = (np.clip(y, -1.0, 1.0) * 32767.0).round().astype('<i2')
    enc = lameenc.Encoder()
    enc.set_bit_rate(int(kbps))
    enc.set_in_sample_rate(int(sr))
    enc.set_channels(int(y.shape[1]))
    enc.set_quality(int(quality))
    return bytes(enc.encode(pcm.tobytes()) + enc.flush())


def _gap_mask(n, sr, seconds):
    """Sample mask that silences ~63% of a clip in two long gaps (> 3 s each at 30 s clips)."""
    keep = np.ones(n, dtype=bool)
    for a, b in ((4 / 30, 12 / 30), (15 / 30, 26 / 30)):
        keep[int(a * seconds * sr):int(b * seconds * sr)] = False
    return keep


def _render_job(job):
    """Write one audio file of the job's kind; returns a small report dict (never raises for content)."""
    path = Path(job['root']) / job['audio_path']
    path.parent.mkdir(parents=True, exist_ok=True)
    kind, sr, ch, seconds = job['kind'], job['sample_rate'], job['channels'], job['seconds']
    rng = _rng(job['seed'], 2, job['index'])
    data = b''
    clip = 0.0
    if kind == 'not-audio':
        if job.get('html'):
            data = _HTML_404
        else:  # random bytes without 0xFF, so no MPEG frame sync can be found by any decoder
            data = rng.integers(0, 255, size=int(rng.integers(20_000, 60_000)), dtype=np.uint8).tobytes()
    elif kind != 'zero-byte':
        clip = min(10.0, 0.5 * seconds) if kind == 'short' else seconds
        if kind == 'silent':
            y = np.zeros((int(round(clip * sr)), ch), dtype=np.float32)
        else:
            y = render_audio(job['labels'], sr, ch, clip, seed=[job['seed'], 3, job['index']])
            if kind == 'gappy':
                y[~_gap_mask(len(y), sr, clip)] = 0.0
        data = encode_mp3(y, sr, job['bitrate'])
        if kind == 'truncated':
            cut = int(len(data) * rng.uniform(0.3, 0.55))
            while data[cut:cut + 1] == b'\xff':  # never cut exactly at a frame header
                cut += 1
            data = data[:cut]
    tmp = path.with_name(path.name + '.part')
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return dict(index=job['index'], audio_path=job['audio_path'], kind=kind, size=len(data), clip_seconds=clip)


def _audio_jobs(plan, root):
    jobs = []
    n_html = 0
    for t in plan['tracks']:
        if not t['has_audio'] or 'audio_of' in t:
            continue
        html = False
        if t['audio_kind'] == 'not-audio':
            html = n_html % 2 == 1  # first one random bytes, then alternate with an HTML error page
            n_html += 1
        jobs.append(dict(root=str(root), index=t['index'], audio_path=t['audio_path'], kind=t['audio_kind'],
                         sample_rate=t['sample_rate'], channels=t['channels'], bitrate=t['bitrate'],
                         labels=t['labels'], seconds=plan['seconds'], seed=plan['seed'], html=html))
    for o in plan['orphans']:
        jobs.append(dict(root=str(root), index=o['index'], audio_path=o['audio_path'], kind='ok',
                         sample_rate=o['sample_rate'], channels=o['channels'], bitrate=o['bitrate'],
                         labels=o['labels'], seconds=plan['seconds'], seed=plan['seed'], html=False))
    return jobs


def _mp_context():
    """'fork' (works from unguarded scripts) unless a threaded runtime is loaded, else 'spawn'.

    Forking a process that already runs TensorFlow threads (pytest with conftest, notebooks) can
    deadlock; spawned workers only import numpy and this module, but need the caller's main module
    to be import-safe (``if __name__ == '__main__':``), as usual for multiprocessing.
    """
    threaded = any(m in sys.modules for m in ('tensorflow', 'torch', 'jax'))
    if threaded or 'fork' not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context('spawn')
    return multiprocessing.get_context('fork')


def _run_jobs(jobs, workers, progress=True):
    """Render jobs inline (workers <= 1) or on a spawn-context process pool; results in job order."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the pinned stack
        tqdm = None
    ctx = _mp_context()
    bar = tqdm(total=len(jobs), desc='audio', unit='file', disable=not progress) if tqdm else None
    results = []
    if workers <= 1:
        for job in jobs:
            results.append(_render_job(job))
            if bar:
                bar.update()
    else:
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
            for res in ex.map(_render_job, jobs, chunksize=1):
                results.append(res)
                if bar:
                    bar.update()
    if bar:
        bar.close()
    return results


# =============================================================================================
# Metadata files
# =============================================================================================

def _b(s, width):
    """UTF-8 bytes of ``s`` truncated to ``width`` bytes on a character boundary."""
    raw = s.encode('utf-8')
    while len(raw) > width:
        s = s[:-1]
        raw = s.encode('utf-8')
    return raw


def _write_h5(path, plan):
    """The three compound tables, rows aligned, PyTables-style attributes."""
    import h5py

    rng = _rng(plan['seed'], 4)
    tracks = plan['tracks']
    n = len(tracks)
    meta = np.zeros(n, H5_TABLES['/metadata/songs'])
    ana = np.zeros(n, H5_TABLES['/analysis/songs'])
    mb = np.zeros(n, H5_TABLES['/musicbrainz/songs'])
    for i, t in enumerate(tracks):
        a = t['artist']
        lab = t['labels']
        meta[i]['analyzer_version'] = b''
        meta[i]['artist_7digitalid'] = a['artist_7digitalid']
        meta[i]['artist_familiarity'] = a['artist_familiarity']
        meta[i]['artist_hotttnesss'] = a['artist_hotttnesss']
        meta[i]['artist_id'] = a['artist_id'].encode()
        meta[i]['artist_latitude'] = a['artist_latitude']
        meta[i]['artist_location'] = _b(a['artist_location'], _MAXSTR)
        meta[i]['artist_longitude'] = a['artist_longitude']
        meta[i]['artist_mbid'] = a['artist_mbid'].encode()
        meta[i]['artist_name'] = _b(t['artist_name'], _MAXSTR)
        meta[i]['artist_playmeid'] = a['artist_playmeid']
        meta[i]['genre'] = b''  # always empty in the real summary file
        meta[i]['release'] = _b(t['release'], _MAXSTR)
        meta[i]['release_7digitalid'] = t['release_7digitalid']
        meta[i]['song_hotttnesss'] = np.nan if rng.random() < 0.3 else rng.uniform(0.0, 0.9)
        meta[i]['song_id'] = t['song_id'].encode()
        meta[i]['title'] = _b(t['title'], _MAXSTR)
        meta[i]['track_7digitalid'] = t['track_7digitalid']
        dur = t['duration']
        ana[i]['analysis_sample_rate'] = 22050
        ana[i]['audio_md5'] = ''.join(rng.choice(list('0123456789abcdef'), 32)).encode()
        ana[i]['duration'] = dur
        ana[i]['end_of_fade_in'] = round(float(rng.uniform(0, 2.5)), 3)
        ana[i]['key'] = lab['key']
        ana[i]['key_confidence'] = round(float(rng.uniform(0.2, 1.0)), 3)
        ana[i]['loudness'] = round(float(rng.uniform(-9, -3) if lab['decade'] == '00s' else rng.uniform(-22, -6)), 3)
        ana[i]['mode'] = lab['mode']
        ana[i]['mode_confidence'] = round(float(rng.uniform(0.2, 1.0)), 3)
        ana[i]['start_of_fade_out'] = round(dur - float(rng.uniform(3, 15)), 3)
        ana[i]['tempo'] = lab['tempo']
        ana[i]['time_signature'] = 4
        ana[i]['time_signature_confidence'] = round(float(rng.uniform(0.5, 1.0)), 3)
        ana[i]['track_id'] = t['track_id'].encode()
        mb[i]['year'] = t['year']
    with h5py.File(path, 'w') as f:
        f.attrs['TITLE'] = np.bytes_('H5 file created with MuseTag msd.synthetic (PyTables layout)')
        for name, arr, title in (('/metadata/songs', meta, 'table of metadata for one song'),
                                 ('/analysis/songs', ana, 'table of Echo Nest analysis for one song'),
                                 ('/musicbrainz/songs', mb, 'table of data coming from MusicBrainz for one song')):
            grp = f.require_group(name.rsplit('/', 1)[0])
            grp.attrs['CLASS'] = np.bytes_('GROUP')
            grp.attrs['VERSION'] = np.bytes_('1.0')
            ds = grp.create_dataset('songs', data=arr, maxshape=(None,), chunks=(min(max(n, 1), 1024),),
                                    compression='gzip', compression_opts=1)
            ds.attrs['CLASS'] = np.bytes_('TABLE')
            ds.attrs['VERSION'] = np.bytes_('2.7')
            ds.attrs['TITLE'] = np.bytes_(title)
            ds.attrs['NROWS'] = np.int64(n)
            for k, field in enumerate(arr.dtype.names):
                ds.attrs[f'FIELD_{k}_NAME'] = np.bytes_(field)


def _write_db(path, plan):
    """lastfm_tags.db: tids, tags, tid_tag with implicit-rowid references (bound parameters)."""
    con = sqlite3.connect(path)
    try:
        tid_num = {tid: k for k, tid in enumerate(plan['db_tids'], start=1)}
        tag_num = {tag: k for k, tag in enumerate(plan['all_tags'], start=1)}
        rows = []
        for tid in plan['db_tids']:  # grouped by track, in tids order, like the real DB
            for tag, val in plan['raw_vals'].get(tid, {}).items():
                rows.append((tid_num[tid], tag_num[tag], val))
        write_tables(con, enumerate(plan['all_tags'], start=1), enumerate(plan['db_tids'], start=1), rows)
        con.commit()
    finally:
        con.close()


def _write_text(path, text):
    Path(path).write_text(text, encoding='utf-8')


def _mismatch_text(plan):
    return ''.join(line + '\n' for line in plan['mism_lines'])


def _duplicates_text(plan):
    tracks = plan['tracks']
    lines = ['# MILLION SONG DATASET - DUPLICATES (MuseTag synthetic mini corpus)',
             '# Each group starts with a line "%<group id> <artist> - <title>" followed by',
             '# one line per track of the group (same song, different releases).',
             '# Keeping one track per group removes the duplicates.',
             f'# {len(plan["dup_groups"])} groups, {sum(len(g) for g in plan["dup_groups"])} tracks',
             '#']
    rng = _rng(plan['seed'], 5)
    for g in plan['dup_groups']:
        first = tracks[g[0]]
        lines.append(f'%{int(rng.integers(1, 2_000_000))} {first["artist_name"]} - {first["title"]}')
        lines.extend(tracks[i]['track_id'] for i in g)
    return ''.join(line + '\n' for line in lines)


def _family_variants(counts):
    """{clean tag: [raw spellings present in the DB]} for every family."""
    out = {}
    for clean, variants in [*GENRE_FAMILIES.items(), *MOOD_FAMILIES.items(), *DECADE_FAMILIES.items(),
                            *VOCAL_FAMILIES.items()]:
        present = [raw for raw, _ in variants if counts.get(raw, 0) > 0]
        if present:
            out[clean] = present
    return out


def _truth(plan, results):
    counts = plan['counts']
    th = plan['thresholds']
    tracks = plan['tracks']
    clip_by_index = {r['index']: r['clip_seconds'] for r in results}
    variants = _family_variants(counts)
    tid_set = set(plan['raw_vals'])
    out_tracks = []
    for t in tracks:
        lab = t['labels']
        src = t.get('audio_of', t['index'])
        out_tracks.append(dict(
            track_id=t['track_id'], song_id=t['song_id'], track_7digitalid=t['track_7digitalid'],
            artist_id=t['artist_id'], artist_name=t['artist_name'], title=t['title'], release=t['release'],
            year=t['year'], duration=t['duration'], genre=lab['genre'], vocal=lab['vocal'], decade=lab['decade'],
            ballad=lab['ballad'], tempo=lab['tempo'], key=lab['key'], mode=lab['mode'],
            has_audio=t['has_audio'], audio_path=t['audio_path'], audio_kind=t['audio_kind'],
            sample_rate=t['sample_rate'] if t['has_audio'] else None,
            channels=t['channels'] if t['has_audio'] else None,
            bitrate=t['bitrate'] if t['has_audio'] else None,
            clip_seconds=clip_by_index.get(src) if t['has_audio'] else None,
            raw_tags=[[tag, val] for tag, val in plan['raw_vals'].get(t['track_id'], {}).items()]))
    genre_like = [*GENRE_FAMILIES, *MOOD_FAMILIES, *DECADE_FAMILIES]
    clean_genres = [g for g in GENRES if g in variants]
    clean_tags = [c for c in genre_like if c in variants] + [v for v in VOCALS if v in variants]
    junk_present = [t for t in JUNK_TAGS if t in counts]
    mid_present = [t for t in MID_JUNK_TAGS if t in counts]
    fams = {**GENRE_FAMILIES, **MOOD_FAMILIES, **DECADE_FAMILIES}
    genre_candidates = sorted(r for f in fams.values() for r, _ in f if counts.get(r, 0) >= th['min_count'])
    non_genre = sorted([t for t in junk_present if counts[t] >= th['min_count']]
                       + [r for f in VOCAL_FAMILIES.values() for r, _ in f if counts.get(r, 0) >= th['min_count']])
    return {
        'format_version': 1,
        'seed': plan['seed'], 'n_tracks': len(tracks), 'seconds': plan['seconds'],
        'tracks': out_tracks,
        'mismatched': [tracks[i]['track_id'] for i in plan['mismatched']],
        'duplicate_groups': [[tracks[i]['track_id'] for i in g] for g in plan['dup_groups']],
        'untagged': [t['track_id'] for t in tracks if t['track_id'] not in tid_set],
        'not_in_db': [tracks[i]['track_id'] for i in plan['not_in_db']],
        'no_audio': [tracks[i]['track_id'] for i in plan['no_audio']],
        'not_in_h5_tids': [e['track_id'] for e in plan['extra']],
        'db_only_tracks': [dict(track_id=e['track_id'], genre=e['labels']['genre'], vocal=e['labels']['vocal'],
                                decade=e['labels']['decade'], ballad=e['labels']['ballad'],
                                raw_tags=[[k, v] for k, v in plan['raw_vals'].get(e['track_id'], {}).items()])
                           for e in plan['extra']],
        'tag_variants': variants,
        'junk_tags': junk_present + mid_present + list(plan['rare']),
        'frequent_junk_tags': junk_present, 'mid_junk_tags': mid_present, 'rare_tags': list(plan['rare']),
        'low_val_tags': plan['low_val'],
        'clean_genres': clean_genres, 'clean_tags': clean_tags,
        'vocal_tags': {v: variants[v] for v in VOCALS if v in variants},
        'decade_tags': {d: variants[d] for d in DECADES if d in variants},
        'mood_tags': {m: variants[m] for m in MOOD_FAMILIES if m in variants},
        'genre_candidates': genre_candidates, 'non_genre_candidates': non_genre,
        'combine_list': COMBINE_LIST,
        'recommended_clean_args': dict(min_count=th['min_count'], pool_min_count=th['pool_min_count'],
                                       val_threshold=th['val_threshold']),
        'thresholds_consistent': th['ok'],
        'tag_counts': dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        'bad_files': {t['audio_path']: t['audio_kind'] for t in tracks
                      if t['has_audio'] and t['audio_kind'] not in ('ok', None)},
        'ambiguous_7digitalid': plan['ambiguous'],
        'orphan_audio': [dict(audio_path=o['audio_path'], track_7digitalid=o['track_7digitalid'],
                              genre=o['labels']['genre']) for o in plan['orphans']],
        'audio_formats': [list(f) for f in AUDIO_FORMATS],
    }


# =============================================================================================
# Entry points
# =============================================================================================

def generate(out, tracks=300, seconds=30.0, seed=0, workers=None, overwrite=False, progress=True):
    """Write the mini corpus into ``out`` and return the truth dict (also written as truth.json).

    Parameters
    ----------
    out : str or Path
        Output directory; must not exist or be empty unless ``overwrite``.
    tracks : int
        Number of h5 rows (>= 1; every culprit kind is present from about 24 tracks on).
    seconds : float
        Length of the good clips (s); 'short' clips are min(10, seconds / 2) s.
    seed : int
        Master seed; the output is identical for a given (tracks, seconds, seed) whatever ``workers``.
    workers : int or None
        Audio worker processes (None: ``os.cpu_count()``; <= 1: in this process).
    overwrite : bool
        Replace a non-empty ``out``.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    dict
        The truth (see ``TRUTH_KEYS`` and the module docstring).
    """
    t_start = time.time()
    tracks, seconds, seed = int(tracks), float(seconds), int(seed)
    if tracks < 1:
        raise ValueError(f'tracks must be >= 1, got {tracks}')
    if not 1.0 <= seconds <= 600.0:
        raise ValueError(f'seconds must be in [1, 600], got {seconds}')
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f'{out} exists and is not empty; pass overwrite=True (--overwrite) to replace it')
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f'.{out.name}.tmp-{os.getpid()}'
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        plan = _plan(tracks, seconds, seed)
        jobs = _audio_jobs(plan, tmp / 'audio')
        (tmp / 'audio').mkdir()
        results = _run_jobs(jobs, min(workers, max(1, len(jobs))), progress)
        _write_h5(tmp / 'msd_summary_file.h5', plan)
        _write_db(tmp / 'lastfm_tags.db', plan)
        _write_text(tmp / 'sid_mismatches.txt', _mismatch_text(plan))
        _write_text(tmp / 'msd_duplicates.txt', _duplicates_text(plan))
        truth = _truth(plan, results)
        _write_text(tmp / 'truth.json', json.dumps(truth, indent=1, ensure_ascii=False) + '\n')
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not truth['thresholds_consistent']:
        log.warning('corpus too small for the designed tag-count thresholds (tracks=%d); '
                    'recommended_clean_args are approximate', tracks)
    kinds = {}
    for r in results:
        kinds[r['kind']] = kinds.get(r['kind'], 0) + 1
    log.info('wrote %s: %d h5 tracks (%d without audio), %d DB-only tids, %d audio files (%s), '
             '%d tags, %d tag pairs; clean with min_count=%d pool_min_count=%d; %.1f s with %d worker(s)',
             out, tracks, len(truth['no_audio']), len(truth['not_in_h5_tids']), len(results),
             ', '.join(f'{k} {v}' for k, v in sorted(kinds.items())), len(plan['all_tags']),
             sum(len(v) for v in plan['raw_vals'].values()), truth['recommended_clean_args']['min_count'],
             truth['recommended_clean_args']['pool_min_count'], time.time() - t_start, workers)
    return truth


def main(argv=None):
    """CLI: ``python -m msd.synthetic --out DIR [--tracks N] [--seconds S] [--seed K] [--workers W]``."""
    p = argparse.ArgumentParser(prog='python -m msd.synthetic', description=__doc__.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='output directory (must not exist or be empty)')
    p.add_argument('--tracks', type=int, default=300, help='number of h5 rows (default 300)')
    p.add_argument('--seconds', type=float, default=30.0, help='clip length in seconds (default 30)')
    p.add_argument('--seed', type=int, default=0, help='master seed (default 0)')
    p.add_argument('--workers', type=int, default=None, help='audio worker processes (default: all CPUs)')
    p.add_argument('--overwrite', action='store_true', help='replace a non-empty output directory')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(levelname)s %(message)s')
    try:
        generate(args.out, tracks=args.tracks, seconds=args.seconds, seed=args.seed, workers=args.workers,
                 overwrite=args.overwrite, progress=not args.quiet)
    except (FileExistsError, ValueError) as e:
        p.error(str(e))
    return 0


if __name__ == '__main__':
    # Re-import under the package name so worker processes unpickle msd.synthetic._render_job.
    from msd.synthetic import main as _main

    sys.exit(_main())
