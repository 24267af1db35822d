"""PNG plots of evaluation results and taggrams (matplotlib, non-interactive Agg backend).

Every function writes one PNG atomically (:func:`core.files.atomic_path`: a temporary file renamed
into place, with the permissions a plain ``open()`` gives under the user's umask) and returns its path.
"""
from __future__ import annotations

import math
import os

import numpy as np

from core import files

__all__ = ['plot_per_tag_bars', 'plot_curves', 'plot_taggram', 'most_frequent_tags']


def _plt():
    import matplotlib
    matplotlib.use('Agg', force=True)   # no display needed; safe in threads and on servers
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path, overwrite=True):
    path = str(path)
    try:
        with files.atomic_path(path, overwrite=overwrite, suffix='.png') as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches='tight', format='png')
    finally:
        _plt().close(fig)
    return path


def plot_per_tag_bars(metrics: dict, key: str, path, *, title: str | None = None):
    """Horizontal bars of one per-tag metric, sorted descending, with the macro mean.

    Parameters
    ----------
    metrics : dict
        :func:`evaluation.metrics.tagging_metrics` output.
    key : {'roc_auc', 'pr_auc'}
    path : path of the PNG.
    """
    plt = _plt()
    rows = [r for r in metrics['per_tag'] if r[key] is not None and not math.isnan(r[key])]
    rows.sort(key=lambda r: r[key], reverse=True)
    n = max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.19 * n))
    names = [f"{r['tag']} ({r['n_pos']})" for r in rows]
    vals = [r[key] for r in rows]
    ax.barh(np.arange(len(rows)), vals, color='tab:blue' if key == 'roc_auc' else 'tab:orange')
    if key == 'pr_auc':   # chance level of average precision is the prevalence
        prev = [r['n_pos'] / max(r['n_pos'] + r['n_neg'], 1) for r in rows]
        ax.scatter(prev, np.arange(len(rows)), marker='|', color='k', s=40, label='prevalence (chance)')
    else:
        ax.axvline(0.5, color='k', lw=0.8, ls=':', label='chance')
    macro = metrics.get(f'{key}_macro')
    if macro is not None and not math.isnan(macro):
        ax.axvline(macro, color='r', lw=1, ls='--', label=f'macro {macro:.3f}')
    ax.legend(loc='lower right', fontsize=7)
    ax.set_yticks(np.arange(len(rows)))
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    label = {'roc_auc': 'ROC-AUC', 'pr_auc': 'PR-AUC (average precision)'}[key]
    ax.set_xlabel(label + '  —  tag (number of positive tracks)')
    skipped = metrics.get('single_class_tags') or []
    ax.set_title((title or label + ' per tag') + (f'\n{len(skipped)} single-class tag(s) not shown' if skipped else ''),
                 fontsize=9)
    return _save(fig, path)


def most_frequent_tags(y_true, labels, n=10) -> list:
    """Column indices of the ``n`` tags with most positives that have both classes."""
    y = np.asarray(y_true)
    pos = y.sum(axis=0)
    ok = (pos > 0) & (pos < y.shape[0])
    order = [int(i) for i in np.argsort(-pos, kind='stable') if ok[i]]
    return order[:n]


def plot_curves(y_true, y_score, labels, path_roc, path_pr, *, n=10):
    """ROC and precision-recall curves of the ``n`` most frequent tags (two PNGs).

    Parameters
    ----------
    y_true : {0, 1} [M, K]; y_score : float [M, K]; labels : list of K names.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve
    plt = _plt()
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    cols = most_frequent_tags(y_true, labels, n)
    fig_r, ax_r = plt.subplots(figsize=(6, 5.5))
    fig_p, ax_p = plt.subplots(figsize=(6, 5.5))
    cmap = plt.get_cmap('tab10')
    for i, k in enumerate(cols):
        c = cmap(i % 10)
        fpr, tpr, _ = roc_curve(y_true[:, k], y_score[:, k])
        ax_r.plot(fpr, tpr, color=c, lw=1.2,
                  label=f'{labels[k]} ({roc_auc_score(y_true[:, k], y_score[:, k]):.3f})')
        prec, rec, _ = precision_recall_curve(y_true[:, k], y_score[:, k])
        ax_p.step(rec, prec, where='post', color=c, lw=1.2,
                  label=f'{labels[k]} ({average_precision_score(y_true[:, k], y_score[:, k]):.3f})')
    ax_r.plot([0, 1], [0, 1], 'k:', lw=0.8)
    ax_r.set(xlabel='false positive rate', ylabel='true positive rate', xlim=(0, 1), ylim=(0, 1.01),
             title=f'ROC curves, {len(cols)} most frequent tags (ROC-AUC)')
    ax_p.set(xlabel='recall', ylabel='precision', xlim=(0, 1), ylim=(0, 1.01),
             title=f'Precision-recall curves, {len(cols)} most frequent tags (AP)')
    for ax in (ax_r, ax_p):
        ax.title.set_fontsize(9)
        if cols:
            ax.legend(fontsize=7, loc='lower right' if ax is ax_r else 'upper right')
    return _save(fig_r, path_roc), _save(fig_p, path_pr)


def plot_taggram(result, path, *, max_tags: int | None = None, overwrite: bool = True):
    """Taggram image: tags (rows, the most probable on top) × time (columns) of window probabilities.

    Parameters
    ----------
    result : evaluation.tagger.TagResult
    path : PNG path.
    max_tags : int or None
        Show only the tags with the highest mean probability (all when None).
    overwrite : bool
        Replace an existing ``path`` (else :class:`core.errors.OutputExistsError`).
    """
    plt = _plt()
    tg = np.asarray(result.taggram, dtype=np.float32)            # [n_windows, K]
    labels = list(result.labels)
    order = np.argsort(-np.asarray(result.mean), kind='stable')   # rows by mean probability, descending
    if max_tags is not None:
        order = order[:max_tags]
    img = tg[:, order].T                                           # [K', n_windows]
    starts = np.asarray(result.window_starts_s, dtype=np.float64)
    w = float(result.window_seconds)
    fig, ax = plt.subplots(figsize=(min(4 + 0.08 * tg.shape[0], 16), 1.2 + 0.17 * len(order)))
    # Column i spans from its window start to the next start (the last: its whole window), so
    # the end-aligned last window and overlapping hops are drawn at their true times.
    edges = np.append(starts, starts[-1] + w)
    mesh = ax.pcolormesh(edges, np.arange(len(order) + 1), img, cmap='viridis', vmin=0, vmax=1,
                         shading='flat')
    ax.set_yticks(np.arange(len(order)) + 0.5)
    ax.set_yticklabels([labels[i] for i in order], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel('time (s): window start')
    name = os.path.basename(result.path) if result.path else 'audio'
    ax.set_title(f'taggram of {name!r} ({tg.shape[0]} windows of {w:g} s; tags by mean probability)',
                 fontsize=9)
    fig.colorbar(mesh, ax=ax, fraction=0.03, pad=0.01, label='probability')
    return _save(fig, path, overwrite)
