"""One interface over vector stores: exact NumPy, embedded HNSW, and a Qdrant server.

A store holds string ids, one float32 vector of a fixed dimension per id, and a JSON payload per
id (``path``, ``artist``, ``tags``, …). :func:`open_store` opens or creates one; every backend
implements :class:`VectorStore`:

* ``upsert(ids, vectors, payloads)`` adds or replaces; ``delete(ids)``; ``get(ids)``;
* ``search(queries, k, filter)`` returns the ``k`` nearest ids with their scores, best first;
  ``filter`` keeps only ids whose payload matches (:class:`Filter`);
* ``flush()`` makes the changes durable, atomically: a process killed after ``flush`` loses
  nothing, one killed before it leaves the previous flushed state (never a mix of the two).

With ``metric='cosine'`` (the default) vectors and queries are normalised to unit length on the
way in, so a score is the cosine similarity (1 = same direction, higher is better); ``get``
returns the normalised vectors. ``metric='dot'`` keeps vectors as given and scores by the inner
product.

Backends (see ``docs/vector-stores.md`` for the measurements behind the default):

``numpy``  exact brute force; the reference the others are tested against.
``hnsw``   hnswlib's HNSW graph, embedded and persisted beside its payloads (the default).
``qdrant`` Qdrant through its official client: a server (``url=``) for catalogues that outgrow
           one machine, or the client's in-process local mode (tests, small data).

Only one process may open a store for writing (a second gets :class:`core.locks.LockedError`,
exit code 3); any number may open it with ``read_only=True``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence

import numpy as np

from core.errors import MuseTagError
from core.files import atomic_path, write_json
from core.locks import OutputLock

__all__ = ['Filter', 'Hit', 'VectorStore', 'open_store', 'BACKENDS', 'DEFAULT_BACKEND', 'METRICS',
           'StoreError', 'UnknownIdError', 'ReadOnlyError', 'PayloadIndex', 'StoreFiles']

log = logging.getLogger(__name__)

#: backend name -> one-line description (for ``--help``)
BACKENDS = {
    'numpy': 'exact brute-force search in NumPy (the reference; fine up to ~100k tracks)',
    'hnsw': 'hnswlib HNSW graph on disk: fast approximate search with payload filters (default)',
    'qdrant': 'Qdrant through qdrant-client: a server (url=...) or the in-process local mode',
}
DEFAULT_BACKEND = 'hnsw'
METRICS = ('cosine', 'dot')

#: the file naming a file-based store's current state (written last, atomically, by ``flush``)
META_NAME = 'store.json'
FORMAT_VERSION = 1
#: test hook: the flush after the first ``$MUSETAG_STORE_HOLD_AFTER`` (default 0) of this process
#: creates ``<$MUSETAG_STORE_HOLD>.ready`` and blocks (between its data files and ``store.json``)
#: until the file ``$MUSETAG_STORE_HOLD`` exists
HOLD_ENV = 'MUSETAG_STORE_HOLD'
HOLD_AFTER_ENV = 'MUSETAG_STORE_HOLD_AFTER'
_commits = [0]


# ------------------------------------------------------------------------------------- errors
class StoreError(MuseTagError):
    """A vector store cannot do what was asked (bad vectors, ids, filter, path or backend)."""


class UnknownIdError(StoreError, KeyError):
    """An id is not in the store."""

    def __str__(self):
        return str(self.args[0]) if self.args else ''


class ReadOnlyError(StoreError):
    """A write to a store opened with ``read_only=True``."""


# -------------------------------------------------------------------------------- value types
@dataclasses.dataclass(frozen=True)
class Filter:
    """A payload filter; all conditions are ANDed.

    ``must={'tags': ['rock', 'pop']}`` keeps ids whose ``tags`` list contains ``rock`` or
    ``pop``; for a string field (``artist``) the field must equal one of the values.
    ``must_not={'artist': ['X']}`` drops ids whose field equals (or list contains) any value. A
    missing or ``None`` field has no values: it fails every ``must`` and passes every ``must_not``.
    ``must_all={'tags': ['rock', 'live']}`` keeps ids whose field has *every* value (a list
    field containing all of them). Values are strings or integers; a single string is taken as a
    one-value list. A ``must`` with an empty list matches nothing.
    """

    must: Mapping[str, Sequence] = dataclasses.field(default_factory=dict)
    must_not: Mapping[str, Sequence] = dataclasses.field(default_factory=dict)
    must_all: Mapping[str, Sequence] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        for name in ('must', 'must_not', 'must_all'):
            object.__setattr__(self, name, _condition(getattr(self, name), name))

    @property
    def empty(self) -> bool:
        """True when the filter keeps everything."""
        return not self.must and not self.must_not and not any(self.must_all.values())

    @property
    def impossible(self) -> bool:
        """True when a ``must`` lists no values (nothing can match)."""
        return any(not values for values in self.must.values())


def _condition(cond, name) -> dict:
    if cond is None:
        return {}
    if not isinstance(cond, Mapping):
        raise StoreError(f'Filter.{name} must map field names to lists of values, got {cond!r}')
    out = {}
    for field, values in cond.items():
        if not isinstance(field, str) or not field:
            raise StoreError(f'Filter.{name}: field names are non-empty strings, got {field!r}')
        if isinstance(values, (str, int)) and not isinstance(values, bool):
            values = (values,)
        if not isinstance(values, (Sequence, set, frozenset)) or isinstance(values, bytes):
            raise StoreError(f'Filter.{name}[{field!r}] must be a list of values, got {values!r}')
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                raise StoreError(f'Filter.{name}[{field!r}]: values are strings or integers, got {v!r}')
        out[field] = tuple(dict.fromkeys(values))
    return out


@dataclasses.dataclass(frozen=True)
class Hit:
    """One search result: the id, its score (cosine similarity for ``metric='cosine'``, higher is
    better) and its payload."""

    id: str
    score: float
    payload: dict


# ------------------------------------------------------------------------------ payload index
def field_values(value) -> tuple:
    """The values a filter matches in one payload field: the elements of a list, else the value
    itself; ``None`` (and nested objects) have none."""
    if value is None or isinstance(value, dict):
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(v for v in value if v is not None and not isinstance(v, (dict, list, tuple)))
    return (value,)


class PayloadIndex:
    """An inverted index over payloads: field -> value -> integer keys (rows or labels).

    :meth:`mask` turns a :class:`Filter` into a boolean array over keys ``0 … size-1``. The key
    array of each (field, value) is cached until that value changes, so a repeated filter costs a
    few array operations, not a pass over the payloads.
    """

    def __init__(self):
        self._keys: dict[str, dict[object, set]] = {}
        self._arrays: dict[tuple, np.ndarray] = {}

    def add(self, key: int, payload: Mapping) -> None:
        for field, value in payload.items():
            by_value = self._keys.setdefault(field, {})
            for v in field_values(value):
                by_value.setdefault(v, set()).add(key)
                self._arrays.pop((field, v), None)

    def remove(self, key: int, payload: Mapping) -> None:
        for field, value in payload.items():
            by_value = self._keys.get(field, {})
            for v in field_values(value):
                keys = by_value.get(v)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del by_value[v]
                self._arrays.pop((field, v), None)

    def keys(self, field: str, value) -> np.ndarray:
        """The sorted int64 keys whose ``field`` has ``value``."""
        arr = self._arrays.get((field, value))
        if arr is None:
            keys = self._keys.get(field, {}).get(value, ())
            arr = np.fromiter(keys, dtype=np.int64, count=len(keys))
            arr.sort()
            self._arrays[(field, value)] = arr
        return arr

    def mask(self, flt: Filter, size: int) -> np.ndarray:
        """Boolean array of length ``size``: True where the key's payload passes ``flt``."""
        mask = np.ones(size, dtype=bool)
        for field, values in flt.must.items():
            part = np.zeros(size, dtype=bool)
            for v in values:
                part[self.keys(field, v)] = True
            mask &= part
        for field, values in flt.must_all.items():
            for v in values:
                part = np.zeros(size, dtype=bool)
                part[self.keys(field, v)] = True
                mask &= part
        for field, values in flt.must_not.items():
            for v in values:
                mask[self.keys(field, v)] = False
        return mask


# --------------------------------------------------------------------------- the interface
class VectorStore:
    """Abstract base of every backend (see the module docstring for the contract).

    Attributes
    ----------
    path : str
        The store's directory.
    dim : int
        Vector dimension.
    metric : str
        ``'cosine'`` (vectors normalised on the way in) or ``'dot'``.
    read_only : bool
        Opened without the write lock; writes raise :class:`ReadOnlyError`.
    """

    backend = ''

    def __init__(self, path, dim: int, metric: str, read_only: bool):
        self.path = os.fspath(path) if path is not None else None
        self.dim = int(dim)
        self.metric = metric
        self.read_only = read_only
        self._closed = False

    def _open_on_disk(self, path, meta, dim, metric, read_only, new_meta, init_empty) -> None:
        """Open a store kept in :class:`StoreFiles` at ``path`` (``meta`` None: create it) under its
        writer lock, released again if opening fails. A new store gets ``new_meta()`` in its meta and
        ``init_empty()`` sets up its empty state before the first flush."""
        self._files = StoreFiles(path)
        self._lock = write_lock(path, read_only)
        try:
            if meta is None:
                VectorStore.__init__(self, path, dim, metric, read_only)
                self._meta = {'backend': self.backend, 'dim': self.dim, 'metric': self.metric, 'count': 0,
                              **new_meta()}
                init_empty()
                self._dirty = True
                self._flush()
            else:
                VectorStore.__init__(self, path, meta['dim'], meta['metric'], read_only)
                self._meta = self._files.load(meta, self._load)
                if not read_only:
                    self._files.clean(meta)
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise

    # ---- abstract operations (backends implement these; arguments arrive validated) ----
    def _upsert(self, ids: list, vectors: np.ndarray, payloads: list) -> None:
        raise NotImplementedError

    def _delete(self, ids: list) -> int:
        raise NotImplementedError

    def _search(self, queries: np.ndarray, k: int, flt: Filter | None) -> list:
        raise NotImplementedError

    def _get(self, ids: list) -> tuple:
        raise NotImplementedError

    def ids(self) -> list:
        """Every id in the store (order unspecified)."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def __contains__(self, id) -> bool:
        raise NotImplementedError

    def _flush(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Free resources and the write lock (after the final flush)."""

    # ---- public operations: validation, then the backend ----
    def upsert(self, ids, vectors, payloads=None) -> None:
        """Add ``ids`` with ``vectors`` (n, dim) and ``payloads`` (n dicts, JSON values; default
        empty); an id already present is replaced (vector and payload).

        Raises
        ------
        StoreError
            Wrong shape or dimension, a NaN/inf (or, for cosine, all-zero) vector, duplicate or
            non-string ids, payloads that are not JSON objects, or a read-only store.
        """
        self._check_writable()
        ids = self._check_ids(ids, unique=True)
        vectors = self._check_vectors(vectors, ids)
        payloads = self._check_payloads(payloads, ids)
        if ids:
            self._upsert(ids, vectors, payloads)

    def delete(self, ids) -> int:
        """Remove ``ids``; return how many were present (unknown ids are ignored)."""
        self._check_writable()
        ids = list(dict.fromkeys(self._check_ids(ids, unique=False)))
        return self._delete(ids) if ids else 0

    def search(self, queries, k: int = 10, filter: Filter | None = None) -> list:
        """The ``k`` nearest ids of each query, best first.

        Parameters
        ----------
        queries : array (q, dim) or (dim,)
            Query vectors (normalised here for cosine).
        k : int
            Results per query (fewer when fewer ids pass the filter).
        filter : Filter, optional
            Payload conditions a result must meet.

        Returns
        -------
        list of list of Hit
            One list per query row (a single list in a list for a 1-D query).
        """
        self._check_open()
        queries = self._check_queries(queries)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise StoreError(f'k must be a positive integer, got {k!r}')
        if filter is not None and not isinstance(filter, Filter):
            raise StoreError(f'filter must be a retrieval.store.Filter, got {type(filter).__name__}')
        if filter is not None and filter.empty:
            filter = None
        if len(self) == 0 or (filter is not None and filter.impossible):
            return [[] for _ in range(len(queries))]
        return self._search(queries, int(k), filter)

    def get(self, ids) -> tuple:
        """``(vectors (n, dim) float32, payloads)`` of ``ids``, in order.

        Raises
        ------
        UnknownIdError
            (a ``KeyError``) naming the first id not in the store.
        """
        self._check_open()
        ids = self._check_ids(ids, unique=False)
        if not ids:
            return np.zeros((0, self.dim), np.float32), []
        return self._get(ids)

    def flush(self) -> None:
        """Persist every change durably and atomically (no-op when read-only or unchanged)."""
        self._check_open()
        if not self.read_only:
            self._flush()

    def close(self) -> None:
        """Flush and release (idempotent)."""
        if self._closed:
            return
        try:
            if not self.read_only:
                self._flush()
        finally:
            self._closed = True
            self._release()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:   # an error mid-way: keep the last flushed state, do not persist a partial change
            self._closed = True
            self._release()

    def __repr__(self):
        return (f'{type(self).__name__}({self.path!r}, dim={self.dim}, metric={self.metric!r}, '
                f'read_only={self.read_only})')

    # ---- validation helpers ----
    def _check_open(self):
        if self._closed:
            raise StoreError(f'the vector store {self.path} is closed')

    def _check_writable(self):
        self._check_open()
        if self.read_only:
            raise ReadOnlyError(f'the vector store {self.path} was opened read-only')

    @staticmethod
    def _check_ids(ids, unique: bool) -> list:
        if isinstance(ids, str):
            raise StoreError(f'ids must be a list of strings, got the single string {ids!r}')
        ids = list(ids)
        for i in ids:
            if not isinstance(i, str) or not i:
                raise StoreError(f'ids are non-empty strings, got {i!r}')
        if unique and len(set(ids)) != len(ids):
            seen, dup = set(), []
            for i in ids:
                if i in seen and i not in dup:
                    dup.append(i)
                seen.add(i)
            raise StoreError(f'duplicate ids in one call: {", ".join(map(repr, dup[:5]))}'
                             + (f' and {len(dup) - 5} more' if len(dup) > 5 else ''))
        return ids

    def _check_vectors(self, vectors, ids: list) -> np.ndarray:
        try:
            arr = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise StoreError(f'vectors must be a numeric array (n, {self.dim}): {e}') from None
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise StoreError(f'vectors must have shape (n, {self.dim}) for this store, got {arr.shape}'
                             + (' (a store holds one dimension: the run and layer that built it)'
                                if arr.ndim == 2 else ''))
        if arr.shape[0] != len(ids):
            raise StoreError(f'{len(ids)} ids but {arr.shape[0]} vectors')
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            raise StoreError(f'{int(bad.sum())} vector(s) hold NaN or infinity, e.g. id {ids[int(np.argmax(bad))]!r}')
        return self._normalise(arr, ids)

    def _normalise(self, arr: np.ndarray, ids) -> np.ndarray:
        if self.metric != 'cosine' or not len(arr):
            return np.ascontiguousarray(arr)
        norms = np.linalg.norm(arr.astype(np.float64), axis=1)
        zero = norms < 1e-30
        if zero.any():
            which = f'id {ids[int(np.argmax(zero))]!r}' if ids is not None else f'row {int(np.argmax(zero))}'
            raise StoreError(f'an all-zero vector has no direction for cosine similarity ({which})')
        return np.ascontiguousarray((arr / norms[:, None]).astype(np.float32))

    def _check_queries(self, queries) -> np.ndarray:
        try:
            arr = np.asarray(queries, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise StoreError(f'queries must be a numeric array ({self.dim},) or (q, {self.dim}): {e}') from None
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise StoreError(f'queries must have shape ({self.dim},) or (q, {self.dim}) for this store, got '
                             f'{np.shape(queries)}')
        if not np.isfinite(arr).all():
            raise StoreError('a query vector holds NaN or infinity')
        return self._normalise(arr, None)

    @staticmethod
    def _check_payloads(payloads, ids: list) -> list:
        if payloads is None:
            return [{} for _ in ids]
        if isinstance(payloads, Mapping):
            raise StoreError('payloads must be a list with one dict per id, got a single dict')
        payloads = list(payloads)
        if len(payloads) != len(ids):
            raise StoreError(f'{len(ids)} ids but {len(payloads)} payloads')
        out = []
        for i, p in zip(ids, payloads):
            if p is None:
                p = {}
            if not isinstance(p, Mapping):
                raise StoreError(f'the payload of {i!r} must be a dict, got {type(p).__name__}')
            try:   # a deep copy that also checks the payload is plain JSON
                out.append(json.loads(json.dumps(dict(p), allow_nan=False)))
            except (TypeError, ValueError) as e:
                raise StoreError(f'the payload of {i!r} is not plain JSON (strings, numbers, lists, dicts; '
                                 f'no NaN): {e}') from None
        return out


# ----------------------------------------------------------------------- top-k (exact)
def top_k(scores: np.ndarray, k: int) -> tuple:
    """Indices and values of the ``k`` largest entries of each row of ``scores`` (q, n), best first
    (ties: lower index first)."""
    n = scores.shape[1]
    k = min(k, n)
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(vals, order, axis=1)


# ------------------------------------------------------------------- file-based persistence
class StoreFiles:
    """The on-disk layout of a file-based store: data files of one *generation* plus ``store.json``.

    ``flush`` writes a new generation's files under new names (``vectors-7.npy``,
    ``records-7.json`` …), then replaces ``store.json`` (which names them) atomically, then
    removes older generations. A kill before the ``store.json`` rename leaves the previous
    generation current, a kill after it the new one; files of an unfinished generation are removed
    by the next writer.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.meta_path = os.path.join(self.path, META_NAME)

    def exists(self) -> bool:
        return os.path.isfile(self.meta_path)

    def read_meta(self) -> dict:
        try:
            with open(self.meta_path, encoding='utf-8') as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise StoreError(f'no vector store at {self.path} (no {META_NAME}); create it first') from None
        except ValueError as e:
            raise StoreError(f'{self.meta_path}: malformed ({e})') from None
        if not isinstance(meta, dict) or meta.get('format') != FORMAT_VERSION:
            raise StoreError(f'{self.meta_path}: not a vector store of format {FORMAT_VERSION}')
        return meta

    def load(self, meta: dict, loader) -> dict:
        """Call ``loader(meta)`` to read a generation; if a writer replaced it meanwhile (its files
        are gone), read the new ``store.json`` and try again. Returns the metadata loaded."""
        for _ in range(10):
            try:
                loader(meta)
                return meta
            except FileNotFoundError:
                newer = self.read_meta()
                if newer.get('generation') == meta.get('generation'):
                    raise
                meta = newer
        raise StoreError(f'{self.path} changes too fast to be read (a writer flushing it in a loop?)')

    def file(self, meta: dict, name: str) -> str:
        """Absolute path of data file ``name`` of the generation ``meta`` names."""
        return os.path.join(self.path, meta['files'][name])

    def commit(self, meta: dict, writers: dict) -> dict:
        """Write a new generation and make it current.

        Parameters
        ----------
        meta : dict
            The store's metadata (backend, dim, metric, options, count …); ``generation`` and
            ``files`` are filled in here.
        writers : dict
            ``name -> (extension, write(path))``: each callable writes one data file at the path
            it is given (a temporary name, renamed into place once written and fsynced).

        Returns
        -------
        dict
            The metadata now in ``store.json``.
        """
        os.makedirs(self.path, exist_ok=True)
        generation = int(meta.get('generation', 0)) + 1
        files = {}
        for name, (ext, write) in writers.items():
            files[name] = f'{name}-{generation}{ext}'
            with atomic_path(os.path.join(self.path, files[name]), overwrite=True, suffix=ext) as tmp:
                write(tmp)
        _fsync_dir(self.path)
        _hold_for_tests()
        meta = {**meta, 'format': FORMAT_VERSION, 'generation': generation, 'files': files,
                'updated': time.strftime('%Y-%m-%dT%H:%M:%S%z')}
        write_json(self.meta_path, meta)
        _fsync_dir(self.path)
        self.clean(meta)
        return meta

    def clean(self, meta: dict) -> None:
        """Remove files of other generations (left by earlier flushes or a killed one)."""
        keep = set(meta.get('files', {}).values()) | {META_NAME}
        for name in os.listdir(self.path):
            full = os.path.join(self.path, name)
            if name not in keep and os.path.isfile(full) and _generation_file(name):
                os.unlink(full)


def _generation_file(name: str) -> bool:
    """True for data-file names ``<name>-<n>.<ext>`` and their temporary siblings."""
    base = name.lstrip('.').split('.', 1)[0]
    stem, _, gen = base.rpartition('-')
    return bool(stem) and gen.isdigit()


def _fsync_dir(path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _hold_for_tests() -> None:
    """If ``$MUSETAG_STORE_HOLD`` names a file and ``$MUSETAG_STORE_HOLD_AFTER`` commits have passed:
    announce ``<file>.ready`` and block until the file exists (a test kills the process here,
    between a generation's data files and ``store.json``)."""
    hold = os.environ.get(HOLD_ENV)
    _commits[0] += 1
    if not hold or _commits[0] <= int(os.environ.get(HOLD_AFTER_ENV, '0')):
        return
    with open(hold + '.ready', 'w', encoding='utf-8') as f:
        f.write(str(os.getpid()))
    while not os.path.exists(hold):
        time.sleep(0.05)


# ----------------------------------------------------------------------------- the factory
def open_store(path, *, backend: str | None = None, dim: int | None = None, metric: str = 'cosine',
               create: bool = False, read_only: bool = False, **options) -> VectorStore:
    """Open the vector store at ``path`` (a directory), or create it.

    Parameters
    ----------
    path : path
        The store's directory.
    backend : str, optional
        One of :data:`BACKENDS`. Default: the backend an existing store was made with, else
        :data:`DEFAULT_BACKEND`. Naming another backend than an existing store's is an error.
    dim : int, optional
        Vector dimension; required to create, checked against an existing store.
    metric : str
        ``'cosine'`` or ``'dot'`` (for a new store; an existing store keeps its own).
    create : bool
        Create the store if it does not exist (else a missing store is an error).
    read_only : bool
        Open without the write lock (any number of readers; writes raise).
    **options
        Backend options: hnsw ``M``, ``ef_construction``, ``ef``, ``exact_below``, ``threads``; qdrant ``url``,
        ``api_key``, ``collection``, ``batch_size``, ``timeout``.

    Raises
    ------
    StoreError
        Unknown backend or metric, missing store, mismatched dim/backend, bad option.
    core.locks.LockedError
        Another process has the store open for writing.
    """
    if backend is not None and backend not in BACKENDS:
        raise StoreError(f'unknown vector store backend {backend!r}; choose one of {", ".join(BACKENDS)}')
    if metric not in METRICS:
        raise StoreError(f'unknown metric {metric!r}; choose one of {", ".join(METRICS)}')
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1):
        raise StoreError(f'dim must be a positive integer, got {dim!r}')
    path = os.fspath(path)
    files = StoreFiles(path)
    if files.exists():
        meta = files.read_meta()
        if backend is not None and backend != meta.get('backend'):
            raise StoreError(f'{path} is a {meta.get("backend")!r} store, not {backend!r}; open it with '
                             f'backend={meta.get("backend")!r} or build a new store')
        backend = meta['backend']
        if dim is not None and int(dim) != int(meta['dim']):
            raise StoreError(f'{path} holds vectors of dimension {meta["dim"]}, not {dim} (a store is built '
                             'by one run and layer)')
    else:
        if not create:
            raise StoreError(f'no vector store at {path}; build it first (or pass create=True)')
        if read_only:
            raise StoreError(f'no vector store at {path} to open read-only')
        if dim is None:
            raise StoreError('dim is needed to create a vector store')
        if os.path.exists(path) and not os.path.isdir(path):
            raise StoreError(f'{path} is a file; a vector store is a directory')
        backend = backend or DEFAULT_BACKEND
        meta = None
    return _backend_class(backend)(path, meta=meta, dim=dim, metric=metric, read_only=read_only, **options)


def _backend_class(name: str):
    if name == 'numpy':
        from .store_numpy import NumpyStore
        return NumpyStore
    if name == 'hnsw':
        from .store_hnsw import HnswStore
        return HnswStore
    if name == 'qdrant':
        from .store_qdrant import QdrantStore
        return QdrantStore
    raise StoreError(f'unknown vector store backend {name!r}; choose one of {", ".join(BACKENDS)}')


def write_lock(path, read_only: bool) -> OutputLock | None:
    """The write lock of the store at ``path`` (``None`` for a read-only opening).

    Raises
    ------
    core.locks.LockedError
        Another process has the store open for writing.
    """
    return None if read_only else OutputLock(path).acquire()


def check_options(backend: str, options: dict, known: dict) -> dict:
    """Options with defaults filled from ``known`` (name -> default); unknown names are an error."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise StoreError(f'unknown option(s) for the {backend} backend: {", ".join(unknown)}; '
                         f'known: {", ".join(sorted(known)) or "none"}')
    return {**known, **{k: v for k, v in options.items() if v is not None}}


def positive(name: str, value, cast=int):
    """``value`` as a positive number, or a :class:`StoreError` naming option ``name``."""
    try:
        v = cast(value)
    except (TypeError, ValueError):
        raise StoreError(f'option {name} must be a positive number, got {value!r}') from None
    if not v > 0 or (isinstance(v, float) and not math.isfinite(v)):
        raise StoreError(f'option {name} must be a positive number, got {value!r}')
    return v
