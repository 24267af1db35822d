"""The exact vector store: brute-force search over a NumPy matrix (the reference backend).

Every query scores all stored vectors (one matrix product), so results are exact; a filter is
turned into a row mask by the payload index first and only the kept rows are scored. Search time
grows linearly with the store (about 10 ms per query at 100k × 200 on one core).

On disk (see :class:`retrieval.store.StoreFiles`): ``vectors-<g>.npy`` (n, dim) float32,
``records-<g>.json`` (``{"ids": [...], "payloads": [...]}``, row order) and ``store.json``.
"""
from __future__ import annotations

import json
import logging

import numpy as np

from .store import (Hit, PayloadIndex, StoreError, UnknownIdError, VectorStore, check_options,
                    top_k)

__all__ = ['NumpyStore']

log = logging.getLogger(__name__)


class NumpyStore(VectorStore):
    """Exact brute-force store; open it with :func:`retrieval.store.open_store` (``backend='numpy'``).

    Deleted rows are only marked dead in memory and compacted away by :meth:`flush`.
    """

    backend = 'numpy'

    def __init__(self, path, *, meta, dim, metric, read_only, **options):
        check_options(self.backend, options, {})
        self._open_on_disk(path, meta, dim, metric, read_only, dict,
                           lambda: self._set_rows(np.zeros((0, self.dim), np.float32), [], []))

    # ------------------------------------------------------------------------------ state
    def _set_rows(self, vectors: np.ndarray, ids: list, payloads: list) -> None:
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._n = len(ids)
        self._ids = list(ids)
        self._payloads = list(payloads)
        self._alive = np.ones(len(self._vectors), dtype=bool)
        self._row = {i: r for r, i in enumerate(self._ids)}
        self._index = PayloadIndex()
        for r, p in enumerate(self._payloads):
            self._index.add(r, p)
        self._dirty = False

    def _load(self, meta: dict) -> None:
        vectors = np.load(self._files.file(meta, 'vectors'), allow_pickle=False)
        with open(self._files.file(meta, 'records'), encoding='utf-8') as f:
            records = json.load(f)
        ids, payloads = records['ids'], records['payloads']
        if vectors.shape != (len(ids), self.dim) or len(payloads) != len(ids):
            raise StoreError(f'{self.path}: vectors {vectors.shape} do not match {len(ids)} ids; the store is '
                             'damaged')
        self._set_rows(vectors, ids, payloads)

    def _grow(self, extra: int) -> None:
        need = self._n + extra
        if need <= len(self._vectors):
            return
        cap = max(need, 2 * len(self._vectors), 1024)
        vectors = np.zeros((cap, self.dim), np.float32)
        vectors[:self._n] = self._vectors[:self._n]
        alive = np.zeros(cap, dtype=bool)
        alive[:self._n] = self._alive[:self._n]
        self._vectors, self._alive = vectors, alive

    # ------------------------------------------------------------------------- operations
    def _upsert(self, ids, vectors, payloads) -> None:
        new = [j for j, i in enumerate(ids) if i not in self._row]
        self._grow(len(new))
        for j, (i, p) in enumerate(zip(ids, payloads)):
            r = self._row.get(i)
            if r is None:
                r = self._n
                self._n += 1
                self._ids.append(i)
                self._payloads.append(p)
                self._row[i] = r
                self._alive[r] = True
            else:
                self._index.remove(r, self._payloads[r])
                self._payloads[r] = p
            self._index.add(r, p)
            self._vectors[r] = vectors[j]
        self._dirty = True

    def _delete(self, ids) -> int:
        n = 0
        for i in ids:
            r = self._row.pop(i, None)
            if r is None:
                continue
            self._index.remove(r, self._payloads[r])
            self._alive[r] = False
            self._ids[r] = None
            self._payloads[r] = None
            n += 1
        self._dirty = self._dirty or n > 0
        return n

    def _search(self, queries, k, flt) -> list:
        mask = self._alive[:self._n]
        if flt is not None:
            mask = mask & self._index.mask(flt, self._n)
        allowed = int(mask.sum())
        if not allowed:
            return [[] for _ in range(len(queries))]
        if allowed * 8 >= self._n:   # most rows: score all, mask the rest (cheaper than gathering)
            rows = None
            scores = queries @ self._vectors[:self._n].T
            if allowed < self._n:
                scores[:, ~mask] = -np.inf
        else:
            rows = np.flatnonzero(mask)
            scores = queries @ self._vectors[rows].T
        idx, vals = top_k(scores, min(k, allowed))
        if rows is not None:
            idx = rows[idx]
        return [[Hit(self._ids[r], float(s), dict(self._payloads[r])) for r, s in zip(ri, si)]
                for ri, si in zip(idx.tolist(), vals.tolist())]

    def _get(self, ids) -> tuple:
        rows = []
        for i in ids:
            r = self._row.get(i)
            if r is None:
                raise UnknownIdError(f'{i!r} is not in the vector store {self.path}')
            rows.append(r)
        return self._vectors[rows].copy(), [dict(self._payloads[r]) for r in rows]

    def ids(self) -> list:
        return list(self._row)

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, id) -> bool:
        return id in self._row

    # ------------------------------------------------------------------------ persistence
    def _compact(self) -> None:
        if len(self._row) == self._n:
            return
        rows = np.flatnonzero(self._alive[:self._n])
        self._set_rows(self._vectors[rows], [self._ids[r] for r in rows], [self._payloads[r] for r in rows])
        self._dirty = True

    def _flush(self) -> None:
        self._compact()
        if not self._dirty:
            return
        vectors = self._vectors[:self._n]
        records = {'ids': self._ids[:self._n], 'payloads': self._payloads[:self._n]}

        def write_vectors(tmp):
            with open(tmp, 'wb') as f:
                np.save(f, vectors, allow_pickle=False)

        def write_records(tmp):
            with open(tmp, 'w', encoding='utf-8') as f:
                json.dump(records, f, ensure_ascii=False, allow_nan=False)

        meta = {**self._meta, 'count': self._n}
        self._meta = self._files.commit(meta, {'vectors': ('.npy', write_vectors),
                                               'records': ('.json', write_records)})
        self._dirty = False

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
