"""Pictures into a music space with a trained image run: ``load_image_encoder(run).encode(bytes)``.

An image run (``dataset.kind = "images"``, ``docs/images.md``) regressed the vectors of one space of
an index (``embedding`` or ``tags``, named in its target table's ``params.space``); its encoder turns a
picture into a point of that space, where ``musetag similar --image`` / ``playlist --image`` and the
web page look for the nearest tracks.

A picture is prepared exactly as the run's validation pictures were: checked and normalised by
:mod:`imagemusic.pictures` (RGB, at most 256 px, JPEG), then :func:`imagemusic.data.picture_array`
(resized to the run's ``image_size``, values in [0, 1]).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from core.errors import MuseTagError
from core.files import read_json

from .data import TARGETS_DIR, picture_array
from .pictures import picture_from_bytes

__all__ = ['ImageEncoder', 'load_image_encoder', 'run_space', 'SPACES']

log = logging.getLogger(__name__)

#: The index spaces an image run can regress.
SPACES = ('embedding', 'tags')


def _targets_dir(run_dir: str, config: dict) -> str:
    task = config.get('task') or {}
    if task.get('targets'):
        return task['targets']
    return os.path.join((config.get('dataset') or {}).get('dir') or '', TARGETS_DIR)


def run_space(run_dir, config: dict | None = None) -> tuple:
    """``(space, target meta)`` of an image run: the index space its target table came from.

    Raises
    ------
    MuseTagError
        The run's target table cannot be found or names no index space.
    """
    run_dir = os.fspath(run_dir)
    config = read_json(os.path.join(run_dir, 'config.json')) if config is None else config
    where = os.path.join(_targets_dir(run_dir, config), 'targets.json')
    try:
        meta = read_json(where)
    except (OSError, ValueError) as exc:
        raise MuseTagError(f'image run {run_dir}: cannot read its target table {where} ({exc}); the pairs folder '
                           'it was trained on must still exist') from None
    space = ((meta.get('params') or {}).get('space'))
    if space not in SPACES:
        raise MuseTagError(f'image run {run_dir}: its target table {where} names no index space '
                           f'(params.space is {space!r}, expected embedding or tags)')
    return space, meta


@dataclass
class ImageEncoder:
    """A loaded image run.

    Attributes
    ----------
    run_dir : str
    model : keras.Model
        ``[B, S, S, 3]`` in [0, 1] -> ``[B, dim]``.
    image_size : int
        S, the side of the model input in pixels.
    space : str
        ``'embedding'`` or ``'tags'``: the index space of the vectors it predicts.
    dim : int
    meta : dict
        The run's target table meta (``targets.json``).
    """
    run_dir: str
    model: object
    image_size: int
    space: str
    dim: int
    meta: dict

    def __post_init__(self):
        import tensorflow as tf
        size = int(self.image_size)
        # one compiled graph for every batch size (an eager call re-runs Python per layer)
        self._forward = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True,
                                    input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])

    def prepare(self, image_bytes: bytes) -> np.ndarray:
        """Picture bytes -> model input float32 [S, S, 3]; PictureError for a bad picture."""
        return picture_array(picture_from_bytes(bytes(image_bytes)).data, self.image_size)

    def encode_arrays(self, pictures, batch_size: int = 64) -> np.ndarray:
        """Prepared pictures float32 [n, S, S, 3] -> vectors float32 [n, dim]."""
        pictures = np.asarray(pictures, np.float32)
        out = [np.asarray(self._forward(pictures[i:i + batch_size]), np.float32)
               for i in range(0, len(pictures), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode(self, image_bytes: bytes) -> np.ndarray:
        """Picture bytes (JPEG, PNG, WebP, GIF, BMP) -> float32 [dim], a point of :attr:`space`.

        Raises :class:`imagemusic.pictures.PictureError` (a MuseTagError) for a bad picture.
        """
        return self.encode_arrays(self.prepare(image_bytes)[None])[0]

    def encode_files(self, paths, batch_size: int = 64) -> np.ndarray:
        """Picture files -> float32 [n, dim] (a bad picture raises PictureError naming its reason)."""
        arrays = []
        for path in paths:
            with open(path, 'rb') as fh:
                arrays.append(self.prepare(fh.read()))
        size = self.image_size
        return self.encode_arrays(np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.float32),
                                  batch_size)


def load_image_encoder(run_dir, checkpoint=None) -> ImageEncoder:
    """Load image run ``run_dir`` (its exported model, or ``checkpoint``: see ``modeling.rundir``).

    Raises
    ------
    MuseTagError
        Not a run directory, not an image run, or its target table is gone.
    """
    from core.logs import import_tensorflow
    run_dir = os.fspath(run_dir)
    try:
        features = read_json(os.path.join(run_dir, 'features.json'))
        config = read_json(os.path.join(run_dir, 'config.json'))
    except (OSError, ValueError) as exc:
        raise MuseTagError(f'{run_dir} is not a run directory ({exc})') from None
    if 'image' not in (features.get('kind'), features.get('input')):
        raise MuseTagError(f'{run_dir} is not an image run: its features.json says input '
                           f'{features.get("input") or features.get("kind")!r} (train one with dataset.kind images)')
    space, meta = run_space(run_dir, config)
    import_tensorflow()
    from modeling import image  # noqa: F401  (registers the image encoders' layers for loading)
    from modeling.rundir import load_run_model
    try:
        model, _ = load_run_model(run_dir, checkpoint)
    except FileNotFoundError as exc:
        raise MuseTagError(f'image run {run_dir}: {exc}') from None
    size = int(features['image_size'][0])
    dim = int(model.output_shape[-1])
    if meta.get('dim') not in (None, dim):
        raise MuseTagError(f'image run {run_dir}: the model predicts {dim} values, its target table {meta.get("dim")}')
    log.info('image run %s: %d px pictures -> %d-dimensional %s space', run_dir, size, dim, space)
    return ImageEncoder(run_dir, model, size, space, dim, meta)
