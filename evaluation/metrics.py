"""Exact (threshold-free) auto-tagging metrics and whole-track aggregation of window predictions.

The original Orpheus code reported Keras' 200-threshold AUC approximations, micro-averaged over one
random window per track. MuseTag reports what Pons et al. and musicnn report
(scikit-learn ROC-AUC and average precision per tag, macro-averaged over tags) *and* the micro
averages over all (track, tag) pairs, on whole-track predictions (the mean over every window of a
track).

This module needs only NumPy and scikit-learn (no TensorFlow), so the training loop, the evaluation
CLI and notebooks can all use it cheaply.

Conventions
-----------
* ``y_true`` is a {0, 1} matrix ``[n_tracks, n_tags]``; ``y_score`` holds probabilities (or any
  monotone score) of the same shape.
* A tag with a single class in the evaluated set (no positive or no negative track) has no defined
  ROC-AUC or average precision: it is reported with ``NaN`` per-tag values, listed in
  ``single_class_tags`` and left out of the macro averages. It still takes part in the micro
  averages (its pairs are ordinary pairs there).
* A tag that the model never "predicts" (constant scores) is *not* special: its ROC-AUC is 0.5 and
  its average precision equals its prevalence, exactly as scikit-learn computes them.
"""
from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = ['tagging_metrics', 'aggregate_windows', 'WindowAggregator', 'nan_to_none']

log = logging.getLogger(__name__)


def _check_matrices(y_true, y_score, labels):
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 2 or y_score.ndim != 2:
        raise ValueError(f'y_true and y_score must be 2-D [n_tracks, n_tags]; got shapes '
                         f'{y_true.shape} and {y_score.shape}')
    if y_true.shape != y_score.shape:
        raise ValueError(f'y_true shape {y_true.shape} != y_score shape {y_score.shape}')
    labels = [str(t) for t in labels]
    if len(labels) != y_true.shape[1]:
        raise ValueError(f'{len(labels)} labels for {y_true.shape[1]} score columns')
    if y_true.size and not np.all((y_true == 0) | (y_true == 1)):
        bad = np.unique(y_true[(y_true != 0) & (y_true != 1)])[:5]
        raise ValueError(f'y_true must contain only 0 and 1; found e.g. {bad.tolist()}')
    if not np.all(np.isfinite(y_score)):
        raise ValueError(f'y_score contains {int(np.sum(~np.isfinite(y_score)))} non-finite values')
    return y_true.astype(np.int8), y_score, labels


def tagging_metrics(y_true, y_score, labels: Sequence[str]) -> dict:
    """Per-tag, macro and micro ROC-AUC and average precision (scikit-learn, exact).

    Parameters
    ----------
    y_true : array-like {0, 1} [n_tracks, n_tags]
        Ground-truth tag matrix (one row per track, columns in ``labels`` order).
    y_score : array-like float [n_tracks, n_tags]
        Predicted probabilities (any finite score; only the ranking matters).
    labels : sequence of str, length n_tags
        Tag names in column order.

    Returns
    -------
    dict
        ``roc_auc_macro``, ``pr_auc_macro`` : float
            Unweighted means of the per-tag values over tags that have both classes (NaN when no tag
            has both classes). ``pr_auc`` is scikit-learn's average precision.
        ``roc_auc_micro``, ``pr_auc_micro`` : float
            Computed over all (track, tag) pairs flattened together (NaN if every pair has the
            same class).
        ``per_tag`` : list of dict
            One entry per tag in column order: ``tag``, ``roc_auc``, ``pr_auc`` (NaN for a
            single-class tag), ``n_pos``, ``n_neg`` (number of positive / negative tracks).
        ``single_class_tags`` : list of str
            Tags left out of the macro averages because the set has only one class for them.
        ``n_tracks``, ``n_tags``, ``n_tags_evaluated`` : int
            Matrix size and number of tags in the macro averages.

    Raises
    ------
    ValueError
        On shape mismatches, non-binary ``y_true`` or non-finite scores (a programming error, not
        a data condition: single-class tags are *not* errors).
    """
    y_true, y_score, labels = _check_matrices(y_true, y_score, labels)
    n_tracks, n_tags = y_true.shape
    n_pos = y_true.sum(axis=0).astype(int)
    per_tag, single, rocs, prs = [], [], [], []
    for k, tag in enumerate(labels):
        pos, neg = int(n_pos[k]), int(n_tracks - n_pos[k])
        if pos == 0 or neg == 0:
            roc = pr = float('nan')
            single.append(tag)
        else:
            roc = float(roc_auc_score(y_true[:, k], y_score[:, k]))
            pr = float(average_precision_score(y_true[:, k], y_score[:, k]))
            rocs.append(roc)
            prs.append(pr)
        per_tag.append({'tag': tag, 'roc_auc': roc, 'pr_auc': pr, 'n_pos': pos, 'n_neg': neg})
    flat_true, flat_score = y_true.ravel(), y_score.ravel()
    total_pos = int(flat_true.sum())
    if 0 < total_pos < flat_true.size:
        roc_micro = float(roc_auc_score(flat_true, flat_score))
        pr_micro = float(average_precision_score(flat_true, flat_score))
    else:
        roc_micro = pr_micro = float('nan')
    if single:
        log.debug('%d of %d tags have a single class in this set (reported, not averaged): %s',
                 len(single), n_tags, ', '.join(single[:10]) + (' …' if len(single) > 10 else ''))
    return {
        'roc_auc_macro': float(np.mean(rocs)) if rocs else float('nan'),
        'pr_auc_macro': float(np.mean(prs)) if prs else float('nan'),
        'roc_auc_micro': roc_micro,
        'pr_auc_micro': pr_micro,
        'per_tag': per_tag,
        'single_class_tags': single,
        'n_tracks': int(n_tracks),
        'n_tags': int(n_tags),
        'n_tags_evaluated': len(rocs),
    }


def _normalise_id(x):
    """Track ids arrive as ``bytes`` (tf.string), ``str`` or ints; compare them as ``str``."""
    if isinstance(x, (bytes, np.bytes_)):
        return bytes(x).decode('utf-8', 'replace')
    if isinstance(x, np.generic):
        return x.item()
    return x


class WindowAggregator:
    """Streaming mean of window predictions per track (memory ∝ tracks, not windows).

    Feed batches of window predictions with :meth:`update`; :meth:`result` returns one row per
    track in first-seen order. Windows of one track need not be contiguous.

    Parameters
    ----------
    n_tags : int or None
        Number of columns; inferred from the first batch when None.
    """

    def __init__(self, n_tags: int | None = None):
        self.n_tags = n_tags
        self._index: dict = {}
        self._ids: list = []
        self._sums = None     # float64 [capacity, K]
        self._labels = None   # int8 [capacity, K]
        self._counts = None   # int64 [capacity]
        self._inconsistent = 0

    def _grow(self, need: int):
        cap = 0 if self._sums is None else self._sums.shape[0]
        if need <= cap:
            return
        new = max(need, 2 * cap, 256)
        sums = np.zeros((new, self.n_tags), np.float64)
        labels = np.zeros((new, self.n_tags), np.int8)
        counts = np.zeros(new, np.int64)
        if cap:
            sums[:cap], labels[:cap], counts[:cap] = self._sums, self._labels, self._counts
        self._sums, self._labels, self._counts = sums, labels, counts

    def update(self, track_ids, window_scores, window_labels) -> None:
        """Add a batch of windows.

        Parameters
        ----------
        track_ids : array-like [N] of str, bytes or int
        window_scores : array-like float [N, K]
        window_labels : array-like {0, 1} [N, K]
            Labels are per track; windows of one track must carry the same labels (if they do not,
            the union is kept and a warning is logged once at :meth:`result`).
        """
        ids = [_normalise_id(t) for t in np.asarray(track_ids, dtype=object).ravel()]
        scores = np.asarray(window_scores, dtype=np.float64)
        labels = np.asarray(window_labels)
        if scores.ndim != 2 or labels.shape != scores.shape or len(ids) != scores.shape[0]:
            raise ValueError(f'track_ids {len(ids)}, window_scores {scores.shape} and window_labels '
                             f'{labels.shape} do not describe the same [N, K] windows')
        if self.n_tags is None:
            self.n_tags = scores.shape[1]
        elif scores.shape[1] != self.n_tags:
            raise ValueError(f'expected {self.n_tags} score columns, got {scores.shape[1]}')
        rows = np.empty(len(ids), np.int64)
        for i, t in enumerate(ids):
            r = self._index.get(t)
            if r is None:
                r = self._index[t] = len(self._ids)
                self._ids.append(t)
            rows[i] = r
        self._grow(len(self._ids))
        new = self._counts[rows] == 0
        np.add.at(self._sums, rows, scores)
        np.add.at(self._counts, rows, 1)
        lab = (labels > 0.5).astype(np.int8)
        # A track seen before must keep its labels; count disagreements (a data bug upstream).
        old = ~new
        if np.any(old):
            self._inconsistent += int(np.sum(np.any(self._labels[rows[old]] != lab[old], axis=1)))
        np.maximum.at(self._labels, rows, lab)

    def __len__(self) -> int:
        return len(self._ids)

    def result(self):
        """Return ``(track_ids [M], scores float64 [M, K], labels int8 [M, K])``, first-seen order."""
        if self._inconsistent:
            log.warning('%d windows carried labels different from earlier windows of the same track; '
                        'the union of the labels was used', self._inconsistent)
        m = len(self._ids)
        if m == 0:
            k = self.n_tags or 0
            return np.array([], dtype=object), np.zeros((0, k)), np.zeros((0, k), np.int8)
        ids = np.empty(m, dtype=object)
        ids[:] = self._ids
        return (ids, self._sums[:m] / self._counts[:m, None], self._labels[:m].copy())


def aggregate_windows(track_ids, window_scores, window_labels):
    """Whole-track predictions: the mean over each track's windows.

    Parameters
    ----------
    track_ids : array-like [N] of str, bytes or int
        Track id of every window (``bytes`` from ``tf.string`` are decoded as UTF-8).
    window_scores : array-like float [N, K]
        Per-window tag probabilities.
    window_labels : array-like {0, 1} [N, K]
        Per-window labels (identical for all windows of a track).

    Returns
    -------
    track_ids : ndarray object [M]
        Distinct track ids in first-seen order.
    scores : ndarray float64 [M, K]
        Mean window score per track.
    labels : ndarray int8 [M, K]
        Labels per track.
    """
    agg = WindowAggregator()
    agg.update(track_ids, window_scores, window_labels)
    return agg.result()


def nan_to_none(obj):
    """Recursively replace float NaN/inf by None so the result is strict JSON."""
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
