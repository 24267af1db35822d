"""The ``tf.data`` input pipeline over MuseTag TFRecords (format: ``docs/tfrecords.md``).

``make_dataset(dir, split, …)`` reads the shards listed for ``split`` in ``dir/manifest.json``
(never a directory listing), turns each track's clean tag numbers into a multi-hot label vector
for a resolved label list, cuts windows given in **seconds** (frames derived from the manifest's
feature parameters, never a hard-coded hop) and batches them:

* ``window='random'``: one random window per track per pass (training);
* ``window='center'``: the centred window (deterministic validation on one window);
* ``window='all'``: every non-overlapping window of each track plus, when the length is not a
  multiple of the window, one window aligned to the track end, each with its track id (whole-track
  evaluation: average the predictions per track);
* ``window='spaced'``: ``windows_per_track`` (default 16) equally spaced windows of each track, with
  its track id, the first at the start and the last at the end: window ``i`` of ``k`` starts at
  ``floor(i · (n − L) / (k − 1))`` for a track of ``n`` samples or frames and windows of ``L``
  (``numpy.linspace(0, n − L, k)`` rounded down), the evaluation protocol of Won et al., "Evaluation
  of CNN-based automatic music tagging models", SMC 2020 (``docs/evaluation.md``).

Tracks shorter than a window are padded (``pad='repeat'`` tiles the track, ``'zero'`` appends
zeros), never dropped or crashed on.

Labels (:func:`resolve_labels`): the ``top`` most frequent clean tags of the *train* split (ties
by tag number), plus ``with_`` and minus ``without``; ``merge`` groups several tags into one
label, named by joining the members with ``|`` (e.g. ``"hip-hop|rap"``), positive when the track
has any of them. A label list is all a run dir needs to reproduce its outputs' meaning.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from core.files import exists, join, read_json
from preprocessing.features import FeatureParams

__all__ = ['TagSelection', 'load_manifest', 'resolve_labels', 'label_lookup', 'window_length',
           'check_features', 'make_dataset', 'split_files']

WINDOWS = ('random', 'center', 'all', 'spaced')


@dataclass(frozen=True)
class TagSelection:
    """Which tags become labels. See the module docstring."""
    top: int | None = 50
    with_: tuple = field(default_factory=tuple)
    without: tuple = field(default_factory=tuple)
    merge: tuple = field(default_factory=tuple)

    def __post_init__(self):
        object.__setattr__(self, 'with_', tuple(self.with_))
        object.__setattr__(self, 'without', tuple(self.without))
        object.__setattr__(self, 'merge', tuple(tuple(g) for g in self.merge))
        if self.top is not None and (not isinstance(self.top, int) or self.top < 0):
            raise ValueError(f'tags.top must be a non-negative integer or null, got {self.top!r}')
        for group in self.merge:
            if len(group) < 2:
                raise ValueError(f'tags.merge groups need at least two tags, got {list(group)}')


def load_manifest(directory) -> dict:
    """Read ``directory/manifest.json`` (clear errors for a missing or incomplete dataset)."""
    path = join(directory, 'manifest.json')
    if not exists(path):
        state = join(directory, '_shards', 'plan.json')
        hint = (' (writing has not finished: re-run `python -m preprocessing write` to complete it)'
                if exists(state) else '')
        raise FileNotFoundError(f'no manifest.json in {directory}: not a MuseTag TFRecord dataset{hint}')
    manifest = read_json(path)
    for key in ('features', 'splits', 'tags'):
        if key not in manifest:
            raise ValueError(f'{path}: manifest lacks {key!r}')
    return manifest


def _vocab(manifest):
    return {v['tag']: v for v in manifest['tags']['vocabulary']}


def resolve_labels(manifest, selection: TagSelection = TagSelection()) -> list:
    """Label names in model output order for a tag selection (see the module docstring)."""
    vocab = _vocab(manifest)
    for name in [*selection.with_, *selection.without, *(t for g in selection.merge for t in g)]:
        if name not in vocab:
            raise ValueError(f'tag {name!r} is not in the dataset vocabulary')
    grouped = {t: g for g in selection.merge for t in g}
    seen = set()
    for g in selection.merge:
        for t in g:
            if t in seen:
                raise ValueError(f'tag {t!r} appears in two merge groups')
            seen.add(t)
    ranked = sorted(vocab.values(), key=lambda v: (-v['counts'].get('train', 0), v['num']))
    names = [v['tag'] for v in ranked]
    chosen = names if selection.top is None else names[:selection.top]
    chosen = chosen + [t for t in selection.with_ if t not in chosen]
    chosen = [t for t in chosen if t not in set(selection.without)]
    labels = []
    for t in chosen:
        label = '|'.join(grouped[t]) if t in grouped else t
        if label not in labels:
            labels.append(label)
    if not labels:
        raise ValueError('the tag selection leaves no labels')
    return labels


def label_lookup(manifest, labels) -> np.ndarray:
    """int32 [max_tag_num + 1]: clean tag number -> output index (or -1), for ``labels``."""
    vocab = _vocab(manifest)
    size = max(v['num'] for v in vocab.values()) + 1
    table = np.full(size, -1, np.int32)
    for i, label in enumerate(labels):
        for name in label.split('|'):
            if name not in vocab:
                raise ValueError(f'label {label!r}: tag {name!r} is not in the dataset vocabulary')
            table[vocab[name]['num']] = i
    return table


def window_length(manifest, window_seconds) -> int:
    """Window size in stored units: samples (waveform) or frames (log-mel).

    For log-mel this is the number of frames whose centre lies in the window,
    ``floor((seconds·sr − n_fft/2) / hop) + 1`` — 187 frames for 3 s with the musicnn preset, as
    musicnn's models were trained.
    """
    if window_seconds is None or window_seconds <= 0:
        raise ValueError(f'window_seconds must be positive, got {window_seconds!r}')
    feats = manifest['features']
    n = int(round(window_seconds * feats['sr']))
    if feats['format'] == 'waveform':
        return n
    p = FeatureParams.from_dict(feats['params'])
    return max(1, (n - p.n_fft // 2) // p.hop_length + 1) if p.center else max(1, (n - p.n_fft) // p.hop_length + 1)


def check_features(manifest, expect):
    """Raise ``ValueError`` naming every mismatch between the manifest and ``expect``.

    ``expect`` is a dict with any of ``format``, ``sr``, ``params`` (dict or FeatureParams).
    """
    if not expect:
        return
    feats = manifest['features']
    problems = []
    if 'format' in expect and expect['format'] != feats['format']:
        problems.append(f"format: dataset has {feats['format']!r}, expected {expect['format']!r}")
    if 'sr' in expect and expect['sr'] is not None and int(expect['sr']) != int(feats['sr']):
        problems.append(f"sr: dataset has {feats['sr']}, expected {expect['sr']}")
    want = expect.get('params')
    if want is not None:
        want = want.to_dict() if isinstance(want, FeatureParams) else dict(want)
        have = feats.get('params') or {}
        for key in sorted(want):
            if have.get(key) != want[key]:
                problems.append(f'params.{key}: dataset has {have.get(key)!r}, expected {want[key]!r}')
    if problems:
        raise ValueError('the dataset was written with other feature parameters: ' + '; '.join(problems))


def split_files(directory, manifest, split) -> list:
    """Shard paths of ``split`` in manifest order."""
    if split not in manifest['splits']:
        raise ValueError(f'unknown split {split!r}; the dataset has {sorted(manifest["splits"])}')
    files = [join(directory, s['file']) for s in manifest['splits'][split]['shards']]
    if not files:
        raise ValueError(f'split {split!r} of {directory} has no shards')
    return files


class _TrackReader:
    """The per-record steps of :func:`make_dataset` for one split, with the dataset's constants.

    ``window_of`` and ``all_windows`` map one serialized track to its window(s); they are traced
    once by ``tf.data`` (Python runs only while the graph is built).
    """

    def __init__(self, manifest, split, labels, window_seconds, pad, with_track_ids, windows_per_track=16):
        import tensorflow as tf
        self.tf = tf
        self.windows_per_track = int(windows_per_track)
        self.split, self.pad, self.with_track_ids = split, pad, with_track_ids
        self.lookup = label_lookup(manifest, labels)
        # row t: the multi-hot contribution of clean tag number t; the extra last row (zeros) takes
        # padding and numbers outside the vocabulary
        hot_rows = np.zeros((len(self.lookup) + 1, len(labels)), np.float32)
        hot_rows[np.nonzero(self.lookup >= 0)[0], self.lookup[self.lookup >= 0]] = 1.0
        self.hot_rows = tf.constant(hot_rows)
        feats = manifest['features']
        is_wave = feats['format'] == 'waveform'
        self.length = window_length(manifest, window_seconds)
        self.rank = 1 if is_wave else 2
        self.scale = float(feats.get('scale') or 1.0)
        self.dtype = tf.int16 if feats['dtype'] == 'int16' else tf.float16
        itemsize = 2
        n_mels = None if is_wave else int(feats['params']['n_mels'])
        self.row_bytes = itemsize * (1 if is_wave else n_mels)
        self.window_shape = [self.length] if is_wave else [self.length, n_mels]
        self.window_bytes = self.length * self.row_bytes
        self.zlib_audio = feats.get('audio_encoding', 'raw') == 'zlib'
        self.spec = {
            'track_id': tf.io.FixedLenFeature([], tf.string),
            'tags': tf.io.VarLenFeature(tf.int64),
            'audio': tf.io.FixedLenFeature([], tf.string),
            'shape': tf.io.FixedLenFeature([self.rank], tf.int64),
        }
        # records written with the audio bytes last (format 2, raw audio): a window is cut straight
        # out of the serialized record and the parser never copies the track's audio
        self.audio_last = feats.get('layout') == 'audio-last' and not self.zlib_audio
        self.meta_spec = {k: v for k, v in self.spec.items()
                          if not (k == 'audio' and self.audio_last) and not (k == 'track_id' and not with_track_ids)}
        # the manifest's shortest track (format 2) tells whether any window needs padding at all
        self.min_length = manifest['splits'][split].get('min_length')
        self.no_short_tracks = (self.min_length or 0) >= self.length

    # ------------------------------------------------------------------------------- values
    def audio_bytes(self, raw):
        # per-example zlib: decompressed here, in parallel map threads (a whole-file ZLIB stream is
        # inflated by one reader thread per file, which made reading 3x slower)
        return self.tf.io.decode_compressed(raw, 'ZLIB') if self.zlib_audio else raw

    def multi_hot(self, nums):
        """Clean tag numbers int64 [n] -> multi-hot float32 [K]."""
        tf = self.tf
        outside = len(self.lookup)
        idx = tf.where(tf.logical_and(nums >= 0, nums < outside), nums, outside)
        return tf.minimum(tf.reduce_sum(tf.gather(self.hot_rows, idx), 0), 1.0)

    def to_float(self, raw):
        """Stored bytes (string tensor of any shape) -> float32 values, one more axis."""
        tf = self.tf
        audio = tf.cast(tf.io.decode_raw(raw, self.dtype, little_endian=True), tf.float32)
        return audio * self.scale if self.scale != 1.0 else audio

    def padded(self, audio):
        """Decoded track [n, …] -> at least one window long (repeat-tiled or zero-padded)."""
        tf, length = self.tf, self.length
        n = tf.shape(audio)[0]
        if self.pad == 'repeat':
            reps = (length + n - 1) // tf.maximum(n, 1)
            tiled = tf.tile(audio, tf.concat([[reps], tf.ones([self.rank - 1], tf.int32)], 0))
            return tf.cond(n < length, lambda: tiled[:length], lambda: audio)
        extra = tf.maximum(length - n, 0)
        return tf.pad(audio, tf.concat([[[0, extra]], tf.zeros([self.rank - 1, 2], tf.int32)], 0))

    # ------------------------------------------------------------------------------- one window
    def _cut(self, src, start, offset):
        """The window's bytes: ``window_bytes`` from ``start + offset`` rows."""
        return self.tf.strings.substr(src, start + offset * self.row_bytes, self.window_bytes)

    def _short(self, src, start, rows, n_bytes):
        """The window's bytes of a track shorter than the window (``rows``, ``n_bytes`` long),
        padded in the byte domain."""
        tf = self.tf
        whole = tf.strings.substr(src, start, n_bytes)
        parts = [tf.strings.reduce_join(tf.fill([(self.length + rows - 1) // tf.maximum(rows, 1)], whole))] \
            if self.pad == 'repeat' else [whole]
        # zeros last: the whole pad for 'zero', only reached by an empty track for 'repeat'
        filled = tf.strings.join(parts + [tf.constant(bytes(self.window_bytes))])
        return tf.strings.substr(filled, 0, self.window_bytes)

    def _checked_cut(self, src, start, offset, rows):
        # free, unlike a tf.cond per track (~9% of the reader's CPU): a manifest whose min_length
        # does not match its shards (edited by hand, or shards swapped) fails clearly here
        tf = self.tf
        check = tf.debugging.assert_greater_equal(
            rows, self.length, message=f'a track of split {self.split} has fewer rows than the min_length of '
                                       f'manifest.json ({self.min_length}): the manifest does not describe these '
                                       'shards; rewrite the dataset')
        with tf.control_dependencies([check]):
            return self._cut(src, start, offset)

    def window_of(self, record, rnd=None):
        """One serialized track -> (float32 window, labels [K][, track id]).

        ``rnd`` (int64) picks the random offset; None takes the centred window. Only the window's
        bytes are copied and decoded; a track shorter than the window is padded in the byte
        domain (repeat: the track tiled; zero: zero bytes appended).
        """
        tf, length = self.tf, self.length
        ex = tf.io.parse_single_example(record, self.meta_spec)
        rows = tf.cast(ex['shape'][0], tf.int32)
        n_bytes = rows * self.row_bytes
        if self.audio_last:
            src, start = record, tf.strings.length(record) - n_bytes
        else:
            src, start = self.audio_bytes(ex['audio']), 0
        if rnd is None:
            offset = tf.maximum(rows - length, 0) // 2
        else:
            offset = tf.cast(tf.math.floormod(rnd, tf.cast(tf.maximum(rows - length + 1, 1), tf.int64)), tf.int32)
        if self.no_short_tracks:
            part = self._checked_cut(src, start, offset, rows)
        else:
            part = tf.cond(rows >= length, functools.partial(self._cut, src, start, offset),
                           functools.partial(self._short, src, start, rows, n_bytes))
        out = (tf.reshape(self.to_float(part), self.window_shape), self.multi_hot(ex['tags'].values))
        return out + (ex['track_id'],) if self.with_track_ids else out

    def random_window(self, record):
        """:meth:`window_of` at an unseeded random offset drawn in the map (no extra pipeline stage)."""
        return self.window_of(record, self.tf.random.uniform([], 0, 2 ** 62, self.tf.int64))

    def seeded_window(self, record, rnd):
        """:meth:`window_of` at the offset ``rnd`` of a seeded random stream zipped with the tracks."""
        return self.window_of(record, rnd)

    # ------------------------------------------------------------------------------- every window
    def tiled_starts(self, n):
        """Starts int32 [k] of every non-overlapping window of a track of ``n`` rows (n >= length), plus
        one aligned to the track end when ``n`` is not a multiple of the window."""
        tf, length = self.tf, self.length
        starts = tf.range(n // length) * length
        return tf.cond(n % length > 0, lambda: tf.concat([starts, [n - length]], 0), lambda: starts)

    def spaced_starts(self, n):
        """Starts int32 [windows_per_track] of equally spaced windows of a track of ``n`` rows
        (n >= length): ``floor(i · (n − length) / (k − 1))``, exact integer arithmetic."""
        tf, k = self.tf, self.windows_per_track
        if k == 1:
            return tf.zeros([1], tf.int32)
        span = tf.cast(n - self.length, tf.int64)
        return tf.cast(tf.range(k, dtype=tf.int64) * span // (k - 1), tf.int32)

    def all_windows(self, record, starts_of=None):
        """One serialized track -> dataset of (window, labels, track id) at the starts
        ``starts_of(n_rows)`` (default :meth:`tiled_starts`); a track shorter than a window is padded
        first."""
        tf, length = self.tf, self.length
        starts_of = starts_of or self.tiled_starts
        ex = tf.io.parse_single_example(record, self.spec)
        rows = tf.cast(ex['shape'][0], tf.int32)
        audio = self.padded(tf.reshape(self.to_float(self.audio_bytes(ex['audio'])), [rows] + self.window_shape[1:]))
        y = self.multi_hot(ex['tags'].values)
        starts = starts_of(tf.shape(audio)[0])
        idx = starts[:, None] + tf.range(length)[None, :]
        windows = tf.ensure_shape(tf.gather(audio, idx), [None] + self.window_shape)
        k = tf.shape(starts)[0]
        return tf.data.Dataset.from_tensor_slices((windows, tf.tile(y[None], [k, 1]), tf.fill([k], ex['track_id'])))


def _records(files, compression, shuffle, seed, deterministic, cycle_length):
    """Serialized tracks of ``files``: file order reshuffled every pass, ``cycle_length`` files read
    at once."""
    import tensorflow as tf

    def records(path):
        return tf.data.TFRecordDataset(path, compression_type=compression)
    if len(files) == 1:
        return records(files[0])
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    # one reader thread per file of the cycle, from the start (autotuning ramps up too slowly for
    # the short passes of validation)
    cycle = min(cycle_length, len(files))
    return ds.interleave(records, cycle_length=cycle, block_length=1, num_parallel_calls=cycle,
                         deterministic=deterministic)


def _one_window_per_track(ds, reader, window, shuffle, shuffle_buffer, seed, deterministic):
    """Tracks -> one window each (random or centred), by one map per track.

    The map does everything (parse the small fields, cut and decode only the window's bytes,
    labels); tf.data fuses it with the batch that follows (map_and_batch fusion), so the windows
    are written straight into the batch. Whole serialized tracks are shuffled before it: a
    shuffle in between would prevent the fusion.
    """
    import tensorflow as tf
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    fn = reader.window_of
    if window == 'random' and seed is not None:
        # reproducible offsets: a seeded random stream zipped with the tracks
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)))
        fn = reader.seeded_window
    elif window == 'random':
        fn = reader.random_window
    return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


def _finish(ds, repeat):
    """Repeat, the threading option, prefetch."""
    import tensorflow as tf
    if repeat is True:
        ds = ds.repeat()
    elif repeat:
        ds = ds.repeat(int(repeat))
    options = tf.data.Options()
    # each element's ops are small: running them on the calling tf.data thread beats handing them
    # to the intra-op pool (measured: ~25% more windows/s, benchmarks/bench_pipeline.py)
    options.threading.max_intra_op_parallelism = 1
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def make_dataset(directory, split, *, tags=TagSelection(), labels=None, window_seconds=3.0, window='random',
                 batch_size=32, shuffle=None, shuffle_buffer=128, repeat=False, with_track_ids=False, seed=None,
                 deterministic=None, pad='repeat', drop_remainder=False, cycle_length=4, expect_features=None,
                 manifest=None, windows_per_track=16):
    """Build the input pipeline for one split.

    Parameters
    ----------
    directory : TFRecord directory (local or URL) written by ``python -m preprocessing write``.
    split : 'train', 'validation' or 'test'.
    tags : TagSelection, used unless ``labels`` (an explicit label list, e.g. a run's
        labels.json) is given.
    window_seconds : window length in seconds.
    window : 'random', 'center', 'all' or 'spaced' (module docstring).
    batch_size : windows per batch (the global batch under a distribution strategy).
    shuffle : shuffle file order every pass and tracks in a buffer of ``shuffle_buffer`` tracks
        (memory: that many tracks' stored bytes); default True for 'random'.
    repeat : False (one pass), True (forever) or an int.
    with_track_ids : also yield the track id of each window (always on for 'all' and 'spaced').
    seed : seeds file shuffling, window offsets and the shuffle buffer (reproducible order).
    deterministic : keep element order under parallelism (default: True if a seed is given).
    pad : 'repeat' or 'zero' for tracks shorter than the window.
    expect_features : dict checked against the manifest (see :func:`check_features`).
    windows_per_track : windows of each track for ``window='spaced'``.

    Returns
    -------
    tf.data.Dataset of ``(audio, labels)`` or ``(audio, labels, track_id)``:
    audio float32 [B, L, n_mels] (log-mel) or [B, L] (waveform); labels float32 [B, K]; track_id
    string [B].
    """
    if window not in WINDOWS:
        raise ValueError(f'window must be one of {WINDOWS}, got {window!r}')
    if pad not in ('repeat', 'zero'):
        raise ValueError(f"pad must be 'repeat' or 'zero', got {pad!r}")
    manifest = manifest or load_manifest(directory)
    check_features(manifest, expect_features)
    files = split_files(directory, manifest, split)
    labels = list(labels) if labels is not None else resolve_labels(manifest, tags)
    shuffle = window == 'random' if shuffle is None else shuffle
    deterministic = seed is not None if deterministic is None else deterministic
    if window == 'spaced' and (not isinstance(windows_per_track, int) or windows_per_track < 1):
        raise ValueError(f'windows_per_track must be a positive integer, got {windows_per_track!r}')
    with_track_ids = with_track_ids or window in ('all', 'spaced')
    reader = _TrackReader(manifest, split, labels, window_seconds, pad, with_track_ids, windows_per_track)
    ds = _records(files, manifest.get('compression') or '', shuffle, seed, deterministic, cycle_length)
    if window == 'all':
        ds = ds.flat_map(reader.all_windows)
    elif window == 'spaced':
        ds = ds.flat_map(functools.partial(reader.all_windows, starts_of=reader.spaced_starts))
    else:
        ds = _one_window_per_track(ds, reader, window, shuffle, shuffle_buffer, seed, deterministic)
    return _finish(ds.batch(batch_size, drop_remainder=drop_remainder), repeat)
