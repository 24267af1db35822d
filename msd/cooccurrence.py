"""Tag co-occurrence analysis over a Last.fm DB (the Orpheus project's ``Matrix``, re-implemented with
sparse matrices; <https://github.com/pukkapies/urop2019>).

>>> from msd.lastfm import LastFmPandas                                  # doctest: +SKIP
>>> co = CoOccurrence(LastFmPandas('clean_tags.db'), tags=['rock', 'pop', 'indie'])
>>> co.tags_and(['rock', 'indie'])        # tracks carrying both
>>> co.tags_or(['rock', 'pop'])           # tracks carrying either
>>> co.correlation_matrix()               # C[i, j] = |i and j| / |i|
>>> co.are_equivalent(0.8); co.all_tag_is(0.7); co.all_tag_is_either(0.7)
>>> co.heatmap('cooc.png')

The tracks x tags membership is a SciPy CSR boolean matrix ``X`` [n_tracks, K]; pairwise counts are
``X.T @ X`` (the diagonal holds each tag's track count) and 3-way counts ``N[i, j, k]`` are computed
per tag as ``(X * X[:, i]).T @ X`` — exact counts, no inclusion-exclusion over a sparse tensor.
Unions are counted directly from ``X`` as well.
"""
from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd

from core.files import atomic_path

from .common import MsdError

log = logging.getLogger(__name__)

MAX_3D_TAGS = 400  # K^3 int64 counts: 400 tags = 0.5 GB; refuse more


class CoOccurrence:
    """Co-occurrence counts of a list of tags.

    Parameters
    ----------
    lastfm : msd.lastfm.LastFm or msd.lastfm.LastFmPandas
        Any object with ``fetch_all_tids_tags(threshold)``, ``get_tags()`` and ``tag_to_tag_num``.
    tags : list of str, optional
        Tags to analyse (default: all tags of the DB, in tag-number order). Unknown tags are dropped
        with a warning.
    threshold : float, optional
        Use only pairs with ``val > threshold``.
    """

    def __init__(self, lastfm, tags=None, threshold=None):
        from scipy import sparse
        names = list(lastfm.get_tags()) if tags is None else list(dict.fromkeys(tags))
        nums, kept = [], []
        for t in names:
            try:
                nums.append(int(lastfm.tag_to_tag_num(t)))
                kept.append(t)
            except KeyError:
                log.warning('co-occurrence: tag %r is not in the DB; ignored', t)
        if not kept:
            raise MsdError('co-occurrence: none of the tags is in the DB')
        self.tags = kept
        self._col = {t: i for i, t in enumerate(kept)}
        pairs = lastfm.fetch_all_tids_tags(threshold)
        col_of = pd.Series(np.arange(len(nums)), index=nums)
        pairs = pairs[pairs['tag'].isin(nums)].drop_duplicates(['tid', 'tag'])
        tids, rows = np.unique(pairs['tid'].to_numpy(), return_inverse=True)
        cols = col_of.reindex(pairs['tag'].to_numpy()).to_numpy()
        self.track_nums = tids
        self.X = sparse.csr_matrix((np.ones(len(rows), dtype=np.int64), (rows, cols)),
                                   shape=(len(tids), len(kept)))
        self._pair = None
        self._triple = None

    def __len__(self):
        return len(self.tags)

    # -- counts -----------------------------------------------------------------------------------
    def _cols(self, tags):
        tags = list(dict.fromkeys([tags] if isinstance(tags, str) else tags))
        try:
            return [self._col[t] for t in tags]
        except KeyError as e:
            raise KeyError(f'{e.args[0]!r} is not one of the analysed tags') from None

    def counts(self) -> np.ndarray:
        """Tracks per tag: int64 [K]."""
        return np.asarray(self.X.sum(axis=0)).ravel().astype(np.int64)

    def pairwise(self) -> pd.DataFrame:
        """N[i, j] = tracks carrying tags i and j (int64 [K, K], diagonal = N[i])."""
        if self._pair is None:
            self._pair = (self.X.T @ self.X).toarray().astype(np.int64)
        return pd.DataFrame(self._pair, index=self.tags, columns=self.tags)

    def triple(self) -> np.ndarray:
        """N[i, j, k] = tracks carrying tags i, j and k: int64 [K, K, K]."""
        if self._triple is None:
            k = len(self.tags)
            if k > MAX_3D_TAGS:
                raise MsdError(f'3-way counts for {k} tags need {k ** 3 * 8 / 1e9:.1f} GB; '
                               f'analyse at most {MAX_3D_TAGS} tags')
            out = np.zeros((k, k, k), dtype=np.int64)
            for i in range(k):
                xi = self.X.multiply(self.X[:, i]).tocsr()
                out[i] = (xi.T @ self.X).toarray()
            self._triple = out
        return self._triple

    def tags_and(self, tags) -> int:
        """Tracks carrying all of ``tags``."""
        cols = self._cols(tags)
        sub = self.X[:, cols]
        return int((np.asarray(sub.sum(axis=1)).ravel() == len(cols)).sum())

    def tags_or(self, tags) -> int:
        """Tracks carrying at least one of ``tags``."""
        cols = self._cols(tags)
        return int((np.asarray(self.X[:, cols].sum(axis=1)).ravel() > 0).sum())

    def with_one_without_many(self, tag, without) -> int:
        """Tracks with ``tag`` and none of ``without``."""
        cols = self._cols(without)
        has = np.asarray(self.X[:, self._cols(tag)].sum(axis=1)).ravel() > 0
        none = np.asarray(self.X[:, cols].sum(axis=1)).ravel() == 0
        return int((has & none).sum())

    def with_many_without_one(self, tags, without) -> int:
        """Tracks with all of ``tags`` and without ``without``."""
        cols = self._cols(tags)
        has = np.asarray(self.X[:, cols].sum(axis=1)).ravel() == len(cols)
        lacks = np.asarray(self.X[:, self._cols(without)].sum(axis=1)).ravel() == 0
        return int((has & lacks).sum())

    # -- correlations -----------------------------------------------------------------------------
    def correlation_matrix(self) -> pd.DataFrame:
        """C[i, j] = N[i, j] / N[i]: the fraction of tag-i tracks that also carry tag j (NaN if N[i] = 0)."""
        n = self.pairwise().to_numpy().astype(float)
        d = np.diag(n).copy()
        with np.errstate(invalid='ignore', divide='ignore'):
            c = n / d[:, None]
        c[d == 0] = np.nan
        return pd.DataFrame(c, index=self.tags, columns=self.tags)

    def correlation_matrix_3d(self) -> np.ndarray:
        """C[i, j, k] = |i and (j or k)| / |i| = (N[i,j] + N[i,k] - N[i,j,k]) / N[i]: float [K, K, K]."""
        n2 = self.pairwise().to_numpy().astype(float)
        n3 = self.triple().astype(float)
        d = np.diag(n2).copy()
        with np.errstate(invalid='ignore', divide='ignore'):
            c = (n2[:, :, None] + n2[:, None, :] - n3) / d[:, None, None]
        c[d == 0] = np.nan
        return c

    def are_equivalent(self, threshold=0.8) -> list:
        """Pairs (a, b, C[a,b], C[b,a]) with both fractions > threshold (a before b in tag order)."""
        c = self.correlation_matrix().to_numpy()
        out = []
        for i, j in itertools.combinations(range(len(self.tags)), 2):
            if c[i, j] > threshold and c[j, i] > threshold:
                out.append((self.tags[i], self.tags[j], float(c[i, j]), float(c[j, i])))
        return out

    def all_tag_is(self, threshold=0.7) -> list:
        """(a, b, C[a,b]) with C[a,b] > threshold, a != b: most a-tracks are also b-tracks."""
        c = self.correlation_matrix().to_numpy().copy()
        np.fill_diagonal(c, np.nan)
        ii, jj = np.nonzero(np.nan_to_num(c, nan=-1.0) > threshold)
        return [(self.tags[i], self.tags[j], float(c[i, j])) for i, j in zip(ii, jj)]

    def all_tag_is_either(self, threshold=0.7) -> list:
        """(a, b, c, C[a,b,c]) with C > threshold, b < c, a not in {b, c}: most a-tracks carry b or c."""
        c3 = self.correlation_matrix_3d()
        out = []
        k = len(self.tags)
        for i in range(k):
            for j in range(k):
                for m in range(j + 1, k):
                    if i in (j, m):
                        continue
                    v = c3[i, j, m]
                    if v > threshold:
                        out.append((self.tags[i], self.tags[j], self.tags[m], float(v)))
        return out

    # -- output -----------------------------------------------------------------------------------
    def heatmap(self, path, which='correlation', title=None, dpi=120, overwrite=True):
        """Save a PNG heat-map of the correlation matrix (or ``which='counts'``) to ``path``.

        Written atomically (:func:`core.files.atomic_path`); an existing ``path`` is replaced only
        if ``overwrite``.
        """
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        if which == 'correlation':
            m = self.correlation_matrix().to_numpy()
            label = 'fraction of row-tag tracks with column tag'
        elif which == 'counts':
            m = self.pairwise().to_numpy()
            label = 'tracks with both tags'
        else:
            raise ValueError(f"which must be 'correlation' or 'counts', got {which!r}")
        k = len(self.tags)
        size = max(4.0, min(24.0, 0.28 * k + 2))
        fig, ax = plt.subplots(figsize=(size + 1.5, size))
        im = ax.imshow(m, cmap='Blues', interpolation='nearest')
        fig.colorbar(im, ax=ax, label=label, fraction=0.046, pad=0.04)
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        fs = max(4, min(10, int(400 / max(k, 1))))
        ax.set_xticklabels(self.tags, rotation=90, fontsize=fs)
        ax.set_yticklabels(self.tags, fontsize=fs)
        ax.set_title(title or f'Tag co-occurrence ({self.X.shape[0]} tracks)')
        fig.tight_layout()
        try:
            with atomic_path(path, overwrite, suffix='.png') as tmp:
                fig.savefig(tmp, dpi=dpi, format='png')
        finally:
            plt.close(fig)
        return path
