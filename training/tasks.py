"""What a run learns (``task`` section of the config): tags, or latent vectors of a target space.

- ``tags``: one sigmoid output per tag, binary cross-entropy (mean over tags) per example.
- ``latent``: ``d`` linear outputs named ``dim_000`` … (labels.json), regressing each track's row of a
  target table (``training.targets``); per-example loss ``cosine`` = 1 - cos(prediction, target) or
  ``mse`` = mean over the d dimensions of the squared error. Validation measures the mean cosine of
  each validation track's predicted vector (mean over its windows) and its true one, and recall@k of
  the track's true neighbours in the target space (:func:`latent_metrics`).

The model registry builds every model with a sigmoid output layer named ``tags``; for a latent
task :func:`task_model_fn` rebuilds its top with a linear float32 ``tags`` layer on the same logits
(the layers are shared, the sigmoid has no weights), so every consumer of a run (``Tagger``, export,
the index) reads the predicted vector where a tagger's probabilities would be.
"""
from __future__ import annotations

import logging
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from latent.targets import latent_labels

__all__ = ['latent_labels', 'per_example_loss', 'task_model_fn', 'linear_head', 'LatentAggregator',
           'latent_metrics']

log = logging.getLogger(__name__)


def per_example_loss(loss: str, y: tf.Tensor, pred: tf.Tensor) -> tf.Tensor:
    """Loss of each example: ``y``, ``pred`` float32 [B, K] → float32 [B].

    ``bce``: binary cross-entropy, mean over the K tags; ``cosine``: 1 - cosine similarity (0 for
    the same direction, 2 for the opposite one; a zero vector counts as orthogonal); ``mse``: mean
    squared error over the K dimensions.
    """
    pred = tf.cast(pred, tf.float32)
    if loss == 'bce':
        return keras.losses.binary_crossentropy(y, pred)
    if loss == 'cosine':
        cos = tf.reduce_sum(tf.math.l2_normalize(y, axis=-1, epsilon=1e-12)
                            * tf.math.l2_normalize(pred, axis=-1, epsilon=1e-12), axis=-1)
        return 1.0 - cos
    if loss == 'mse':
        return tf.reduce_mean(tf.square(y - pred), axis=-1)
    raise ValueError(f'unknown loss {loss!r}')


def linear_head(model: keras.Model) -> keras.Model:
    """``model`` with its sigmoid output layer ``tags`` replaced by a linear float32 ``tags`` layer.

    The other layers are shared with ``model``; a model whose output layer is not a sigmoid
    activation (e.g. an image encoder with its own linear or normalised output) is returned as is.
    """
    try:
        out = model.get_layer('tags')
    except ValueError:
        return model
    activation = getattr(out, 'activation', None)
    if not isinstance(out, keras.layers.Activation) or getattr(activation, '__name__', '') != 'sigmoid':
        return model
    linear = keras.layers.Activation('linear', dtype='float32', name='tags')(out.input)
    return keras.Model(model.inputs[0] if len(model.inputs) == 1 else model.inputs, linear, name=model.name)


def task_model_fn(model_fn: Callable, kind: str) -> Callable:
    """The model factory of a task: ``model_fn`` itself for tags, with :func:`linear_head` for latent."""
    if kind == 'tags':
        return model_fn

    def build(n_outputs, info):
        return linear_head(model_fn(n_outputs, info))

    return build


class LatentAggregator:
    """Mean predicted vector per track over its windows, and its target (memory ∝ tracks)."""

    def __init__(self):
        self._index: dict = {}
        self._sums: list = []
        self._counts: list = []
        self._targets: list = []

    def update(self, track_ids, preds, targets) -> None:
        """``track_ids`` [N] (str or bytes), ``preds`` and ``targets`` float [N, d]."""
        preds, targets = np.asarray(preds, np.float64), np.asarray(targets, np.float32)
        for tid, p, t in zip(track_ids, preds, targets):
            key = tid.decode('utf-8') if isinstance(tid, bytes) else str(tid)
            i = self._index.get(key)
            if i is None:
                self._index[key] = len(self._sums)
                self._sums.append(p.copy())
                self._counts.append(1)
                self._targets.append(t)
            else:
                self._sums[i] += p
                self._counts[i] += 1

    def result(self):
        """(track ids list [n], mean predictions float32 [n, d], targets float32 [n, d])."""
        if not self._sums:
            return [], np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
        preds = np.stack(self._sums) / np.asarray(self._counts, np.float64)[:, None]
        return list(self._index), preds.astype(np.float32), np.stack(self._targets)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norm, 1e-12)


def _neighbours(unit: np.ndarray, k: int) -> np.ndarray:
    """int [n, k]: the k most cosine-similar other rows of each row (ties broken by row order)."""
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind='stable')[:, :k]


def latent_metrics(preds: np.ndarray, targets: np.ndarray, k: int) -> dict:
    """Track-level quality of predicted vectors.

    Parameters
    ----------
    preds, targets : float [n, d]
        Predicted (mean over windows) and true vectors of n tracks.
    k : int
        Neighbours per track (at most n - 1 are used).

    Returns
    -------
    dict
        ``cosine``: mean cosine similarity of each prediction and its target; ``recall_at_k``: mean
        over tracks of |true k neighbours ∩ predicted k neighbours| / k, the true neighbours being
        the k nearest targets (cosine) among the other tracks, the predicted ones the k nearest
        predictions (NaN with fewer than 2 tracks); ``k``: the k used.
    """
    n = len(preds)
    if n == 0:
        return {'cosine': float('nan'), 'recall_at_k': float('nan'), 'k': 0}
    up, ut = _unit(np.asarray(preds, np.float64)), _unit(np.asarray(targets, np.float64))
    cosine = float(np.mean(np.sum(up * ut, axis=1)))
    kk = min(int(k), n - 1)
    if kk < 1:
        return {'cosine': cosine, 'recall_at_k': float('nan'), 'k': 0}
    true_nb, pred_nb = _neighbours(ut, kk), _neighbours(up, kk)
    hits = [len(set(a) & set(b)) for a, b in zip(true_nb.tolist(), pred_nb.tolist())]
    return {'cosine': cosine, 'recall_at_k': float(np.mean(hits) / kk), 'k': kk}

