"""Where training data comes from: TFRecords through ``preprocessing.dataset.make_dataset``, or
in-memory arrays (tests, benchmarks, quick experiments).

A *data source* gives the trainer four things:

- ``labels``: tag names in model output order (``dim_000`` … for a latent task);
- ``info``: an :class:`InputInfo` describing one model input window (it becomes features.json);
- ``train_dataset(seed, repeat)``: batches ``(x, y)`` or ``(x, y, w)`` of the GLOBAL batch size, ``x``
  float32 ``[B, T, n_mels]`` (log-mel, time-major) or ``[B, n_samples]`` (waveform), ``y`` float32
  ``[B, K]`` (multi-hot tags, or target vectors), ``w`` float32 ``[B]`` per-example loss weights;
- ``steps_hint()`` (optional): full batches in one pass over the training split, or None;
- ``validation_dataset()``: batches ``(x, y, track_id)`` covering every window of every validation
  track (``window='all'``), or None when there is no validation split.

:class:`TFRecordSource` serves both tasks: for ``task.kind = latent`` it replaces each window's
labels by its track's target vector (``training.targets.TargetLookup``, by track id) and leaves out
tracks without one; with ``dataset.weights`` it adds each example's weight. The image source of
``dataset.kind = images`` is ``imagemusic.data.ImageSource`` (same interface).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import tensorflow as tf

from . import targets as tg
from .config import Config, ConfigError
from .tasks import latent_labels

__all__ = ['InputInfo', 'TFRecordSource', 'ArraySource', 'resolve_feature_params', 'check_window_memory',
           'physical_memory_bytes']

log = logging.getLogger(__name__)

#: The largest share of the machine's memory one training batch plus one validation batch may need.
MEMORY_SHARE = 0.25


@dataclass(frozen=True)
class InputInfo:
    """One model input window.

    Attributes
    ----------
    kind : {'log-mel', 'waveform'}
        What the model receives.
    sr : int
        Sample rate of the audio in Hz.
    window_seconds : float
        Window length in seconds.
    frames : int or None
        Window length in spectrogram frames (log-mel input).
    samples : int or None
        Window length in samples (waveform input).
    n_mels : int or None
        Mel bands of log-mel input.
    params : dict or None
        ``FeatureParams.to_dict()`` of stored log-mel features (None for waveforms).
    feature_params : dict or None
        Front-end parameters for a log-mel model fed with waveforms (``input.feature_params``).
    """
    kind: str
    sr: int
    window_seconds: float
    frames: Optional[int] = None
    samples: Optional[int] = None
    n_mels: Optional[int] = None
    params: Optional[dict] = None
    feature_params: Optional[dict] = field(default=None)

    def features_json(self) -> dict:
        """The run directory's features.json (``modeling.rundir.features_json``, ``docs/run-directory.md``)."""
        from modeling.rundir import features_json
        return features_json(self.kind, self.sr, window_seconds=self.window_seconds, params=self.params,
                             input_frames=self.frames, input_samples=self.samples,
                             model_feature_params=self.feature_params)  # log-mel computed inside the model

    def window_bytes(self) -> int:
        """Bytes of one model input window as float32 (frames x mel bands, or samples)."""
        values = (self.frames or 1) * (self.n_mels or 1) if self.kind == 'log-mel' else (self.samples or 1)
        return 4 * int(values)


def resolve_feature_params(value) -> Optional[dict]:
    """``input.feature_params`` (None, preset name or {"preset": name, **overrides}) -> dict."""
    if value is None:
        return None
    from preprocessing.features import get_params  # lazy: only needed for waveform -> log-mel
    try:
        if isinstance(value, str):
            return get_params(value).to_dict()
        overrides = dict(value)
        preset = overrides.pop('preset', 'orpheus')
        return get_params(preset, **overrides).to_dict()
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError('input.feature_params', str(exc)) from None


def physical_memory_bytes() -> Optional[int]:
    """Physical memory of this machine in bytes (None where the OS does not say)."""
    try:
        return int(os.sysconf('SC_PAGE_SIZE')) * int(os.sysconf('SC_PHYS_PAGES'))
    except (AttributeError, ValueError, OSError):
        return None


def check_window_memory(info: InputInfo, batch_size: int, validation_batch_size: int,
                        memory: Optional[int] = None) -> int:
    """Refuse windows whose batches cannot fit in memory, before any data is read.

    One training batch plus one validation batch of float32 windows (``InputInfo.window_bytes``
    each) must need at most :data:`MEMORY_SHARE` of the physical memory: the input pipeline keeps
    a few batches in flight and pads every track to the window.

    Returns
    -------
    int
        Bytes of one training plus one validation batch.

    Raises
    ------
    ConfigError
        Naming ``input.window_seconds``, the window's size and the memory it would need.
    """
    memory = physical_memory_bytes() if memory is None else memory
    need = info.window_bytes() * (int(batch_size) + int(validation_batch_size))
    if memory and need > MEMORY_SHARE * memory:
        unit = f'{info.frames} frames x {info.n_mels} mel bands' if info.kind == 'log-mel' \
            else f'{info.samples} samples'
        raise ConfigError('input.window_seconds',
                          f'{info.window_seconds:g} s windows ({unit}, {_size(info.window_bytes())} each) '
                          f'in a training batch of {batch_size} and a validation batch of {validation_batch_size} '
                          f'need {_size(need)}, more than {MEMORY_SHARE:.0%} of the {_size(memory)} of memory '
                          'of this machine; use shorter windows or smaller batches')
    return need


def _size(n: int) -> str:
    """Bytes as KiB / MiB / GiB / TiB with one decimal."""
    for unit in ('KiB', 'MiB', 'GiB'):
        n /= 1024
        if n < 1024:
            return f'{n:.1f} {unit}'
    return f'{n / 1024:.1f} TiB'


def _full_batches(ds: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """Drop a partial last batch: every step then has exactly the global batch size, so the loss
    scaling is exact and no replica ever receives an empty batch (batch norm would give NaN)."""
    return ds.filter(lambda *t: tf.shape(t[1])[0] == batch_size)


class TFRecordSource:
    """Training/validation data from a TFRecord directory (``preprocessing.dataset``).

    Parameters
    ----------
    cfg : training.config.Config
    """

    def __init__(self, cfg: Config):
        from preprocessing import dataset as pds
        self._pds = pds
        self.cfg = cfg
        self.dir = cfg.dataset.dir
        try:
            self.manifest = pds.load_manifest(self.dir)
        except (FileNotFoundError, ValueError) as exc:
            raise ConfigError('dataset.dir', str(exc)) from None
        t = cfg.dataset.tags
        self.selection = pds.TagSelection(top=t.top, with_=tuple(t.with_), without=tuple(t.without),
                                          merge=tuple(tuple(g) for g in t.merge))
        try:
            # the tag labels of the records (a latent task reads and then replaces them)
            self.tag_labels = list(pds.resolve_labels(self.manifest, self.selection))
        except (KeyError, ValueError) as exc:
            raise ConfigError('dataset.tags', str(exc).strip('"\'')) from None
        self.labels = self.tag_labels
        for key in ('train_split', 'validation_split'):
            split = getattr(cfg.dataset, key)
            if split and split not in self.manifest['splits']:
                raise ConfigError(f'dataset.{key}', f'no split "{split}" in {self.dir} '
                                                    f'(splits: {", ".join(sorted(self.manifest["splits"]))})')
        self.info = self._input_info()
        c = cfg.input
        check_window_memory(self.info, c.batch_size, c.validation_batch_size or c.batch_size)
        self.targets, self._train_tracks = None, None
        if cfg.task.kind == 'latent':
            self._load_targets()
        self.weights = tg.WeightLookup(_read_weights_logged(cfg.dataset.weights)) if cfg.dataset.weights else None

    def _load_targets(self) -> None:
        """Read the target table, check its dimension and that it covers the splits (before training)."""
        task = self.cfg.task
        table = tg.load_target_table(task.targets)
        if task.dim is not None and table.dim != task.dim:
            raise ConfigError('task.dim', f'{task.dim}, but the target table {task.targets} holds vectors of '
                                          f'dimension {table.dim}')
        self.targets = tg.TargetLookup(table.track_ids, table.vectors)
        self.labels = latent_labels(table.dim)
        compression = self.manifest.get('compression') or ''
        for key in ('train_split', 'validation_split'):
            split = getattr(self.cfg.dataset, key)
            if not split:
                continue
            ids = tg.split_track_ids(self._pds.split_files(self.dir, self.manifest, split), compression)
            have = tg.check_target_coverage(split, ids, table.index, task.targets)
            if key == 'train_split':
                self._train_tracks = have
        log.info('latent targets: %s, %d vectors of dimension %d', task.targets, len(table.track_ids), table.dim)

    def _per_track(self, ds: tf.data.Dataset, batch_size: int, training: bool) -> tf.data.Dataset:
        """Batches ``(x, y, track_id)`` → the same windows with their track's target as ``y`` (tracks
        without one left out) and, when training, the track's weight, rebatched: ``(x, y)`` or
        ``(x, y, w)`` for training, ``(x, y, track_id)`` for validation."""
        ds = ds.unbatch()
        if self.targets is not None:
            lookup = self.targets
            ds = ds.map(lambda x, y, tid: (x, *lookup(tid), tid)).filter(lambda x, y, found, tid: found) \
                .map(lambda x, y, found, tid: (x, y, tid))
        if training and self.weights is not None:
            weigh = self.weights
            ds = ds.map(lambda x, y, tid: (x, y, weigh(tid)))
        elif training:
            ds = ds.map(lambda x, y, tid: (x, y))
        return ds.batch(batch_size)

    def _make(self, split: str, key: str, **kwargs) -> tf.data.Dataset:
        try:
            return self._pds.make_dataset(self.dir, split, labels=self.tag_labels, manifest=self.manifest,
                                          window_seconds=self.cfg.input.window_seconds, **kwargs)
        except FileNotFoundError as exc:  # split names were checked against the manifest already
            raise ConfigError('dataset.dir', f'cannot read split "{split}" of {self.dir}: {exc}') from None

    def _input_info(self) -> InputInfo:
        feats = self.manifest['features']
        kind = feats.get('format')
        if kind not in ('log-mel', 'waveform'):
            raise ConfigError('dataset.dir', f'manifest features.format must be log-mel or waveform, got {kind!r}')
        params = feats.get('params')
        sr = int(feats.get('sr', 16000))
        # The pipeline's own frame arithmetic (187 frames for 3 s musicnn), so features.json and
        # the model input always agree with the windows make_dataset cuts.
        length = int(self._pds.window_length(self.manifest, self.cfg.input.window_seconds))
        fp = resolve_feature_params(self.cfg.input.feature_params) if kind == 'waveform' else None
        if self.cfg.input.feature_params is not None and kind != 'waveform':
            log.warning('input.feature_params is ignored: the TFRecords already hold log-mel')
        return InputInfo(kind=kind, sr=sr, window_seconds=self.cfg.input.window_seconds,
                         frames=length if kind == 'log-mel' else None,
                         samples=length if kind == 'waveform' else None,
                         n_mels=int(params['n_mels']) if kind == 'log-mel' else (fp or {}).get('n_mels'),
                         params=params if kind == 'log-mel' else None, feature_params=fp)

    def steps_hint(self) -> Optional[int]:
        """Steps of one pass over the training split: make_dataset yields one window per track
        (tracks without a selected tag are kept, with all-zero labels; a latent task leaves out the
        tracks without a target), partial batches dropped."""
        tracks = self._train_tracks
        if tracks is None:
            tracks = self.manifest['splits'][self.cfg.dataset.train_split].get('tracks')
        return None if tracks is None else int(tracks) // self.cfg.input.batch_size

    def train_dataset(self, seed: int, repeat: bool) -> tf.data.Dataset:
        """Full global batches ``(x, y)`` (``(x, y, w)`` with weights) of random/centred windows; ``seed``
        varies per epoch."""
        c = self.cfg.input
        per_track = self.targets is not None or self.weights is not None
        ds = self._make(self.cfg.dataset.train_split, 'dataset.train_split', window=c.window,
                        batch_size=c.batch_size, shuffle=c.shuffle, shuffle_buffer=c.shuffle_buffer,
                        repeat=repeat, seed=seed, with_track_ids=per_track)
        if per_track:
            ds = self._per_track(ds, c.batch_size, training=True)
        return _full_batches(ds, c.batch_size)

    def validation_dataset(self) -> Optional[tf.data.Dataset]:
        """Every window of every validation track: ``(x, y, track_id)``; None without a split."""
        split = self.cfg.dataset.validation_split
        if not split:
            return None
        bs = self.cfg.input.validation_batch_size or self.cfg.input.batch_size
        ds = self._make(split, 'dataset.validation_split', window='all', batch_size=bs,
                        shuffle=False, repeat=False, with_track_ids=True)
        return self._per_track(ds, bs, training=False) if self.targets is not None else ds


def _read_weights_logged(path: str) -> dict:
    """``training.targets.read_weights`` with a one-line summary in the log."""
    weights = tg.read_weights(path)
    zero = sum(1 for w in weights.values() if w == 0)
    log.info('example weights: %s lists %d track(s) (%d with weight 0); other tracks weigh 1', path,
             len(weights), zero)
    return weights


class ArraySource:
    """Training data held in memory as NumPy arrays (already cut into windows).

    Parameters
    ----------
    x_train : float32 [N, ...]
        Training windows (``[N, T, n_mels]`` or ``[N, n_samples]``).
    y_train : float32 [N, K]
        Multi-hot labels.
    labels : list of str
        K tag names.
    info : InputInfo
    batch_size : int
        Global batch size.
    x_val, y_val, val_track_ids : optional
        Validation windows ``[M, ...]``, their labels ``[M, K]`` and the track id (str) of each
        window; windows of one track share an id and are averaged by the validation metrics.
    shuffle : bool
        Reshuffle the training windows every epoch (seeded).
    weights : float32 [N], optional
        Loss weight of each training window (training batches are then ``(x, y, w)``).
    """

    def __init__(self, x_train, y_train, labels, info: InputInfo, batch_size: int, *,
                 x_val=None, y_val=None, val_track_ids=None, shuffle: bool = True,
                 val_batch_size: Optional[int] = None, weights=None):
        self.x_train = np.asarray(x_train, np.float32)
        self.y_train = np.asarray(y_train, np.float32)
        self.weights = None if weights is None else np.asarray(weights, np.float32)
        self.labels = list(labels)
        self.info = info
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.val = None
        if x_val is not None:
            ids = np.asarray(val_track_ids if val_track_ids is not None else
                             [str(i) for i in range(len(x_val))]).astype(str)
            self.val = (np.asarray(x_val, np.float32), np.asarray(y_val, np.float32), ids)
        self.val_batch_size = val_batch_size or self.batch_size

    def steps_hint(self) -> int:
        return len(self.x_train) // self.batch_size

    def train_dataset(self, seed: int, repeat: bool) -> tf.data.Dataset:
        arrays = (self.x_train, self.y_train) if self.weights is None else (self.x_train, self.y_train, self.weights)
        ds = tf.data.Dataset.from_tensor_slices(arrays)
        if self.shuffle:
            ds = ds.shuffle(len(self.x_train), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        ds = ds.batch(self.batch_size)
        return _full_batches(ds, self.batch_size).prefetch(2)

    def validation_dataset(self) -> Optional[tf.data.Dataset]:
        if self.val is None:
            return None
        return tf.data.Dataset.from_tensor_slices(self.val).batch(self.val_batch_size)
