"""The input source of image runs: (picture, target vector) pairs from a pairs folder (``docs/images.md``).

A training config with ``dataset.kind = "images"`` makes the trainer read its data through
:class:`ImageSource` (same interface as ``training.data.TFRecordSource``):

- ``labels``: ``dim_000 …`` (the run regresses a target vector: ``task.kind = "latent"``);
- ``info``: an :class:`ImageInfo` (features.json ``{"input": "image", "kind": "image", "image_size":
  [S, S], …}``, and the model's ``InputSpec(kind='image', image_size=(S, S))``);
- ``train_dataset(seed, repeat)``: full batches ``(x, y)`` or, with ``dataset.weights``, ``(x, y, w)``:
  ``x`` float32 ``[B, S, S, 3]`` RGB in [0, 1], randomly transformed (:mod:`imagemusic.augment`),
  ``copies`` variants of every training picture per epoch; ``y`` float32 ``[B, d]``; ``w`` float32 ``[B]``;
- ``validation_dataset()``: batches ``(x, y, track_id)`` of the validation pairs, not transformed.

The pairs folder (``musetag index pairs``) holds ``pairs.csv`` (``image``, ``track_id``, ``split``, …),
``images/`` and ``targets/`` (a target table keyed by the pairs' track ids, used unless ``task.targets``
names another). Pictures are decoded once (Pillow, checked by :mod:`imagemusic.pictures`) and kept in
memory as uint8 ``[S, S, 3]`` (27 KiB each at 96 px): a pair whose picture cannot be read, or whose track
has no target, is left out, logged and counted.

Every picture becomes a model input the same way, here and when a run encodes a query
(:func:`picture_array`): decoded to RGB and resized to ``S x S`` (bilinear, the aspect ratio not kept:
covers are square), values divided by 255.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from core.errors import MuseTagError
from core.records import dataclass_from_dict

from latent.targets import latent_labels

from .augment import AugmentParams

__all__ = ['ImageOptions', 'ImageInfo', 'ImageSource', 'Pair', 'read_pairs', 'picture_array', 'latent_labels',
           'read_example_weights', 'PAIRS_CSV', 'TARGETS_DIR']

log = logging.getLogger(__name__)

PAIRS_CSV = 'pairs.csv'
TARGETS_DIR = 'targets'


@dataclass(frozen=True)
class ImageOptions:
    """How pictures become training examples (the ``dataset.images`` section of a config).

    Attributes
    ----------
    image_size : int
        Side S in pixels of the square model input.
    copies : int
        Randomly transformed variants of every training picture per epoch.
    augment : AugmentParams
        The random transformations (:mod:`imagemusic.augment`).
    """
    image_size: int = 96
    copies: int = 8
    augment: AugmentParams = field(default_factory=AugmentParams)

    def __post_init__(self):
        if isinstance(self.augment, dict):
            object.__setattr__(self, 'augment', AugmentParams.from_dict(self.augment))
        if not isinstance(self.image_size, int) or not 16 <= self.image_size <= 1024:
            raise ValueError(f'image_size must be an integer from 16 to 1024, got {self.image_size!r}')
        if not isinstance(self.copies, int) or self.copies < 1:
            raise ValueError(f'copies must be a positive integer, got {self.copies!r}')

    @classmethod
    def from_dict(cls, d: dict) -> 'ImageOptions':
        return dataclass_from_dict(cls, d, 'image option')

    @classmethod
    def from_config(cls, cfg) -> 'ImageOptions':
        """The options of a training config: ``cfg.dataset.images`` (a dict or a dataclass) when the
        config has that section, else the defaults."""
        section = getattr(cfg.dataset, 'images', None)
        if section is None:
            return cls()
        if dataclasses.is_dataclass(section):
            section = dataclasses.asdict(section)
        try:
            return cls.from_dict(dict(section))
        except (TypeError, ValueError) as exc:
            raise MuseTagError(f'config error: dataset.images: {exc}') from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ImageInfo:
    """One model input: a square RGB picture of ``image_size`` pixels.

    The audio attributes of ``training.data.InputInfo`` are present and None, so code that reads
    them generically (logs, memory checks) works on image runs too.
    """
    image_size: int
    kind: str = 'image'
    sr: Optional[int] = None
    window_seconds: Optional[float] = None
    frames: Optional[int] = None
    samples: Optional[int] = None
    n_mels: Optional[int] = None
    params: Optional[dict] = None
    feature_params: Optional[dict] = None

    def features_json(self) -> dict:
        """The run directory's features.json of an image run."""
        s = int(self.image_size)
        return {'input': 'image', 'kind': 'image', 'image_size': [s, s], 'channels': 3, 'value_range': [0.0, 1.0],
                'resize': 'bilinear to image_size, aspect ratio not kept (imagemusic.data.picture_array)'}

    def input_spec(self):
        """``modeling.InputSpec`` of the model input."""
        from modeling import InputSpec
        return InputSpec(kind='image', image_size=(int(self.image_size), int(self.image_size)))

    def window_bytes(self) -> int:
        """Bytes of one model input as float32."""
        return 4 * 3 * int(self.image_size) ** 2


@dataclass(frozen=True)
class Pair:
    """One row of ``pairs.csv``: the picture's absolute path, the track id (target key) and the split."""
    image: str
    track_id: str
    split: str


def read_pairs(pairs_dir) -> list:
    """The pairs of a pairs folder, in file order.

    Raises
    ------
    MuseTagError
        No folder, no ``pairs.csv``, a missing column, or no row.
    """
    pairs_dir = os.fspath(pairs_dir)
    path = os.path.join(pairs_dir, PAIRS_CSV)
    if not os.path.isfile(path):
        raise MuseTagError(f'{pairs_dir} is not a pairs folder: it has no {PAIRS_CSV} '
                           '(write one with `musetag index pairs`)')
    with open(path, encoding='utf-8', newline='') as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ('image', 'track_id', 'split') if c not in (reader.fieldnames or [])]
        if missing:
            raise MuseTagError(f'{path}: no column {", ".join(missing)} (header: {",".join(reader.fieldnames or [])})')
        pairs = [Pair(os.path.join(pairs_dir, row['image']), row['track_id'].strip(), row['split'].strip())
                 for row in reader]
    if not pairs:
        raise MuseTagError(f'{path} lists no pair')
    return pairs


def picture_array(data: bytes, size: int) -> np.ndarray:
    """Encoded picture bytes -> the model input float32 [size, size, 3] RGB in [0, 1].

    Raises :class:`imagemusic.pictures.PictureError` for a picture that cannot be used.
    """
    from PIL import Image

    from .pictures import decode
    im = decode(data).resize((int(size), int(size)), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.float32) / 255.0


def read_example_weights(path) -> dict:
    """``latent.targets.read_weights`` (the one weights CSV format); a bad file is a MuseTagError
    on ``dataset.weights`` naming the file and line."""
    from latent.targets import WeightsError, read_weights
    try:
        return read_weights(path)
    except WeightsError as exc:
        raise MuseTagError(f'dataset.weights: {exc}') from None


def _load_pictures(paths: list, size: int) -> tuple:
    """Decode the distinct pictures: ``(uint8 [n, size, size, 3], {path: row}, {path: reason})``."""
    rows, bad, arrays = {}, {}, []
    from .pictures import PictureError
    for path in dict.fromkeys(paths):
        try:
            with open(path, 'rb') as fh:
                arrays.append(np.round(picture_array(fh.read(), size) * 255.0).astype(np.uint8))
            rows[path] = len(arrays) - 1
        except (OSError, PictureError) as exc:
            bad[path] = str(exc)
    stack = np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.uint8)
    return stack, rows, bad


class ImageSource:
    """Training and validation data of an image run (module docstring).

    Parameters
    ----------
    cfg : training config
        Reads ``dataset.dir`` (the pairs folder), ``dataset.train_split``/``validation_split``,
        ``dataset.weights``, ``dataset.images`` (:class:`ImageOptions`, when the config has it),
        ``task.targets`` (default ``<pairs>/targets``), ``input.batch_size``,
        ``input.validation_batch_size``, ``input.shuffle``.
    options : ImageOptions, optional
        Overrides the config's.
    """

    def __init__(self, cfg, options: Optional[ImageOptions] = None):
        from latent.targets import read_targets
        self.cfg = cfg
        self.dir = os.fspath(cfg.dataset.dir)
        self.options = options if options is not None else ImageOptions.from_config(cfg)
        pairs = read_pairs(self.dir)
        task = getattr(cfg, 'task', None)
        targets_dir = getattr(task, 'targets', None) or os.path.join(self.dir, TARGETS_DIR)
        self.targets = read_targets(targets_dir)
        self.labels = latent_labels(self.targets.dim)
        self.info = ImageInfo(self.options.image_size)
        weights_csv = getattr(cfg.dataset, 'weights', None)
        self.weights = read_example_weights(weights_csv) if weights_csv else None
        self.skipped = {}
        wanted = {cfg.dataset.train_split, cfg.dataset.validation_split} - {None, ''}
        pairs = self._with_targets([p for p in pairs if p.split in wanted])
        self._pictures, rows, bad = _load_pictures([p.image for p in pairs], self.options.image_size)
        for path, reason in bad.items():
            log.warning('picture left out: %s: %s', path, reason)
        self.skipped.update({f'picture {p}': r for p, r in bad.items()})
        pairs = [p for p in pairs if p.image in rows]
        self.train = self._split(pairs, rows, cfg.dataset.train_split)
        self.validation = self._split(pairs, rows, cfg.dataset.validation_split) \
            if cfg.dataset.validation_split else None
        if not len(self.train[0]):
            raise MuseTagError(f'{self.dir}: no usable pair in split {cfg.dataset.train_split!r} '
                               f'({len(self.skipped)} left out)')
        log.info('image pairs: %d training, %d validation, %d distinct pictures of %d px, %d left out; '
                 '%d variants per training picture per epoch', len(self.train[0]),
                 0 if self.validation is None else len(self.validation[0]), len(self._pictures),
                 self.options.image_size, len(self.skipped), self.options.copies)

    def _with_targets(self, pairs: list) -> list:
        missing = [p for p in pairs if p.track_id not in self.targets.index]
        if missing:
            log.warning('%d pair(s) left out: their track has no target in %s (e.g. %s)', len(missing),
                        self.targets.path, missing[0].track_id)
            self.skipped.update({f'track {p.track_id}': 'no target' for p in missing})
        return [p for p in pairs if p.track_id in self.targets.index]

    def _split(self, pairs: list, rows: dict, split: str) -> tuple:
        """``(picture rows int32 [n], targets float32 [n, d], track ids [n], weights float32 [n])``."""
        chosen = [p for p in pairs if p.split == split]
        ids = [p.track_id for p in chosen]
        y = self.targets.vectors[[self.targets.index[t] for t in ids]] if ids else \
            np.zeros((0, self.targets.dim), np.float32)
        w = np.asarray([(self.weights or {}).get(t, 1.0) for t in ids], np.float32)
        return np.asarray([rows[p.image] for p in chosen], np.int32), np.asarray(y, np.float32), ids, w

    def steps_hint(self) -> int:
        """Full batches of one epoch (``copies`` variants of every training pair)."""
        return len(self.train[0]) * self.options.copies // self.cfg.input.batch_size

    def train_dataset(self, seed: int, repeat: bool):
        """Full batches ``(x, y)`` (``(x, y, w)`` with weights) of transformed pictures; the same
        ``seed`` gives the same examples in the same order."""
        import tensorflow as tf

        from .augment import augment
        rows, y, _, w = self.train
        n, batch = len(rows), self.cfg.input.batch_size
        total = n * self.options.copies
        order = np.random.default_rng(seed).permutation(total) if self.cfg.input.shuffle else np.arange(total)
        pictures = tf.constant(self._pictures)
        params = self.options.augment
        seed = int(seed)

        def example(counter, i):
            image = tf.cast(tf.gather(pictures, tf.gather(rows, i)), tf.float32) / 255.0
            out = (augment(image, tf.stack([tf.constant(seed, tf.int64), counter]), params), tf.gather(y, i))
            return out + (tf.gather(w, i),) if self.weights is not None else out

        ds = tf.data.Dataset.from_tensor_slices(order % n)
        if repeat:
            ds = ds.repeat()
        ds = ds.enumerate().map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(batch, drop_remainder=True)
        return ds.prefetch(2)

    def validation_dataset(self):
        """Batches ``(x, y, track_id)`` of the validation pairs, untransformed; None without any."""
        if self.validation is None or not len(self.validation[0]):
            return None
        import tensorflow as tf
        rows, y, ids, _ = self.validation
        pictures = tf.constant(self._pictures)
        bs = self.cfg.input.validation_batch_size or self.cfg.input.batch_size
        ds = tf.data.Dataset.from_tensor_slices((rows, y, np.asarray(ids, dtype=object).astype(str)))
        ds = ds.map(lambda r, t, i: (tf.cast(tf.gather(pictures, r), tf.float32) / 255.0, t, i))
        return ds.batch(bs)

    def validation_arrays(self) -> tuple:
        """The validation pairs in memory: ``(x float32 [n, S, S, 3], y float32 [n, d], track ids)``."""
        if self.validation is None:
            size = self.options.image_size
            return np.zeros((0, size, size, 3), np.float32), np.zeros((0, self.targets.dim), np.float32), []
        rows, y, ids, _ = self.validation
        return self._pictures[rows].astype(np.float32) / 255.0, y, list(ids)
