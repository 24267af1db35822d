"""A map of an index: every track's embedding projected to 2-D, coloured by its top predicted tag,
with a playlist drawn on it (``musetag playlist --map map.png``).

Projection: PCA (default; linear, deterministic) or t-SNE (``method='tsne'``: neighbourhoods kept,
distances between clusters not meaningful; perplexity ``min(30, (n - 1) / 3)``, seeded) from
scikit-learn, on the unit-length vectors the ``embedding`` store holds. The ten most frequent top
tags get their own colour, the others are grey. The playlist is a line through its tracks, with
the first track marked by a circle and the last by a star.
"""
from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from core import files

__all__ = ['project', 'draw_map']

log = logging.getLogger(__name__)

MAX_COLOURED_TAGS = 10


def project(vectors: np.ndarray, method: str = 'pca', seed: int = 0) -> np.ndarray:
    """2-D coordinates [n, 2] of ``vectors`` [n, d] (``method``: ``pca`` or ``tsne``)."""
    v = np.asarray(vectors, dtype=np.float64)
    n = v.shape[0]
    if n < 3:
        return np.pad(v[:, :2], ((0, 0), (0, max(0, 2 - v.shape[1]))))
    if method == 'tsne':
        from sklearn.manifold import TSNE
        return TSNE(n_components=2, perplexity=max(1.0, min(30.0, (n - 1) / 3)), init='pca',
                    random_state=seed).fit_transform(v)
    if method != 'pca':
        raise ValueError(f'unknown projection {method!r}; choose pca or tsne')
    from sklearn.decomposition import PCA
    return PCA(n_components=2, random_state=seed).fit_transform(v)


def draw_map(index, out, *, playlist=None, method: str = 'pca', seed: int = 0, overwrite: bool = True) -> str:
    """Write the map of ``index`` (with ``playlist``, a list of track ids, drawn on it) to PNG ``out``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    store = index.stores['embedding']
    ids = sorted(store.ids())
    vectors, payloads = store.get(ids)
    xy = project(vectors, method, seed)
    top = [(p.get('tags') or ['(none)'])[0] for p in payloads]
    common = [t for t, _ in Counter(top).most_common(MAX_COLOURED_TAGS)]
    cmap = plt.get_cmap('tab10')
    fig, ax = plt.subplots(figsize=(9, 7), dpi=110)
    other = np.array([t not in common for t in top])
    if other.any():
        ax.scatter(xy[other, 0], xy[other, 1], s=10, c='#bbbbbb', label='other', alpha=0.6)
    for i, tag in enumerate(common):
        sel = np.array([t == tag for t in top])
        ax.scatter(xy[sel, 0], xy[sel, 1], s=12, color=cmap(i % 10), label=tag, alpha=0.8)
    if playlist:
        row = {t: i for i, t in enumerate(ids)}
        pts = xy[[row[t] for t in playlist]]
        ax.plot(pts[:, 0], pts[:, 1], '-', color='black', lw=1.2, zorder=3)
        ax.scatter(pts[:, 0], pts[:, 1], s=25, color='black', zorder=4)
        ax.scatter(pts[:1, 0], pts[:1, 1], s=140, facecolors='none', edgecolors='red', lw=2, zorder=5,
                   label='start')
        ax.scatter(pts[-1:, 0], pts[-1:, 1], s=200, marker='*', color='red', zorder=5, label='end')
    ax.set_title(f'{len(ids)} tracks, layer {index.manifest["layer"]} ({method.upper()})')
    ax.legend(fontsize=7, markerscale=1.5, loc='best')
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    with files.atomic_path(out, overwrite=overwrite, suffix='.png') as tmp:
        fig.savefig(tmp, format='png')
    plt.close(fig)
    return str(out)
