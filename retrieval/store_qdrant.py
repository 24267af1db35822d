"""The scale-out vector store: Qdrant (https://qdrant.tech) through its official ``qdrant-client``.

Two modes, one code path:

* **server** (``url='http://host:6333'``, optional ``api_key=`` or ``$QDRANT_API_KEY``): the
  vectors live in a Qdrant server or cluster, which can outgrow one machine; the store's own
  directory only holds ``store.json`` (url, collection, dim, metric; never the API key). Start a
  server with ``docker run -p 6333:6333 -v qdrant_storage:/qdrant/storage qdrant/qdrant``.
* **local** (no ``url``): the client's in-process mode keeps the collection under
  ``<store>/qdrant/``. It searches exactly, in pure Python: for tests and small catalogues.

Qdrant point ids are integers or UUIDs, so a string id becomes ``uuid5(NAMESPACE, id)`` and the id
itself is kept in the payload under :data:`ID_FIELD`. The collection is ``collection=``, by
default ``musetag-<name of the store's folder>``; creating a store never adopts an existing
collection. Keyword payload indexes (``path``,
``artist``, ``album``, ``title``, ``tags``: ``keyword_fields=``) are created on a server, which
then filters inside its HNSW walk. Points are sent in batches of ``batch_size``.

Durability differs from the file-based backends: Qdrant applies each ``upsert``/``delete`` as it
returns (``wait=True``; the server logs it to its write-ahead log first), so every completed call
survives a kill and ``flush`` has nothing left to write. The write lock (one writer per store
directory) covers this machine only; a server collection written from several machines needs
the writers to agree among themselves.
"""
from __future__ import annotations

import logging
import os
import re
import uuid

import numpy as np

from .store import (Hit, StoreError, StoreFiles, UnknownIdError, VectorStore, check_options, positive,
                    write_lock)

__all__ = ['QdrantStore', 'ID_FIELD', 'point_id', 'default_collection']

log = logging.getLogger(__name__)

#: payload key holding the store's string id
ID_FIELD = '_id'
#: namespace of the uuid5 point ids
NAMESPACE = uuid.UUID('6f1d3a52-3c1e-5b8e-9d7a-4d7f0b1a2c3e')
KEYWORD_FIELDS = ('path', 'artist', 'album', 'title', 'tags')
DEFAULTS = {'url': None, 'api_key': None, 'collection': None, 'batch_size': 256, 'timeout': 60,
            'keyword_fields': KEYWORD_FIELDS}


def point_id(id: str) -> str:
    """The Qdrant point id (a UUID string) of store id ``id``."""
    return str(uuid.uuid5(NAMESPACE, id))


def default_collection(path) -> str:
    """``musetag-<name of the store's folder>`` (letters, digits, ``-`` and ``_`` kept)."""
    name = os.path.basename(os.path.abspath(os.fspath(path))) or 'store'
    return 'musetag-' + re.sub(r'[^A-Za-z0-9_-]+', '_', name)


class QdrantStore(VectorStore):
    """Qdrant-backed store; open it with :func:`retrieval.store.open_store` (``backend='qdrant'``).

    Options: ``url``, ``api_key``, ``collection``, ``batch_size``, ``timeout`` (seconds),
    ``keyword_fields``. See the module docstring.
    """

    backend = 'qdrant'

    def __init__(self, path, *, meta, dim, metric, read_only, **options):
        from qdrant_client import models
        self._models = models
        opts = check_options(self.backend, options, DEFAULTS)
        self._batch = positive('batch_size', opts['batch_size'])
        self._files = StoreFiles(path)
        self._lock = write_lock(path, read_only)
        self._client = None
        try:
            if meta is None:
                super().__init__(path, dim, metric, read_only)
                collection = opts['collection'] or default_collection(path)
                self._meta = {'backend': self.backend, 'dim': self.dim, 'metric': self.metric,
                              'url': opts['url'], 'collection': collection}
                self._connect({**opts, 'collection': collection})
                self._create_collection(opts['keyword_fields'])
                self._meta = self._files.commit(self._meta, {})
            else:
                super().__init__(path, meta['dim'], meta['metric'], read_only)
                self._meta = meta
                self._connect({**opts, 'url': opts['url'] or meta.get('url'), 'collection': meta['collection']})
                if not self._client.collection_exists(self._collection):
                    raise StoreError(f'the Qdrant collection {self._collection!r} of {path} is gone '
                                     f'({self._where}); rebuild the store')
        except BaseException:
            self._release()
            raise

    # ------------------------------------------------------------------------- connection
    def _connect(self, opts: dict) -> None:
        from qdrant_client import QdrantClient
        self._collection = opts['collection']
        url = opts['url']
        try:
            if url:
                api_key = opts['api_key'] or os.environ.get('QDRANT_API_KEY')
                # the client's own version check runs in a thread and warns from there; this one
                # runs here, fails here when the server cannot be reached, and logs a mismatch
                self._client = QdrantClient(url=url, api_key=api_key, timeout=int(opts['timeout']),
                                            check_compatibility=False)
                _check_version(url, self._client.info().version)
                self._where = f'server {url}'
            else:
                local = os.path.join(self.path, 'qdrant')
                self._client = QdrantClient(path=local)
                self._where = f'local mode in {local}'
        except Exception as e:
            if isinstance(e, StoreError):
                raise
            where = f'the Qdrant server at {url}' if url else f'the local Qdrant folder of {self.path}'
            raise StoreError(f'cannot open {where}: {e}') from e

    def _create_collection(self, keyword_fields) -> None:
        models = self._models
        if self._client.collection_exists(self._collection):
            raise StoreError(f'the Qdrant collection {self._collection!r} already exists ({self._where}); '
                             'choose another collection= name or open the store that made it')
        distance = models.Distance.COSINE if self.metric == 'cosine' else models.Distance.DOT
        self._client.create_collection(self._collection,
                                       vectors_config=models.VectorParams(size=self.dim, distance=distance))
        if self._meta['url']:   # local mode ignores payload indexes (and warns)
            for field in keyword_fields:
                self._client.create_payload_index(self._collection, field,
                                                  field_schema=models.PayloadSchemaType.KEYWORD)

    # ------------------------------------------------------------------------- operations
    def _upsert(self, ids, vectors, payloads) -> None:
        for p in payloads:
            if ID_FIELD in p:
                raise StoreError(f'payload field {ID_FIELD!r} is reserved by the qdrant backend')
        for a in range(0, len(ids), self._batch):
            points = [self._models.PointStruct(id=point_id(i), vector=v, payload={**p, ID_FIELD: i})
                      for i, v, p in zip(ids[a:a + self._batch], vectors[a:a + self._batch].tolist(),
                                         payloads[a:a + self._batch])]
            self._client.upsert(self._collection, points=points, wait=True)

    def _present(self, ids) -> list:
        """The store ids among ``ids`` that exist, in order."""
        found = set()
        for a in range(0, len(ids), self._batch):
            records = self._client.retrieve(self._collection, [point_id(i) for i in ids[a:a + self._batch]],
                                            with_payload=[ID_FIELD], with_vectors=False)
            found.update(r.payload[ID_FIELD] for r in records)
        return [i for i in ids if i in found]

    def _delete(self, ids) -> int:
        present = self._present(ids)
        for a in range(0, len(present), self._batch):
            selector = self._models.PointIdsList(points=[point_id(i) for i in present[a:a + self._batch]])
            self._client.delete(self._collection, points_selector=selector, wait=True)
        return len(present)

    def _search(self, queries, k, flt) -> list:
        qfilter = self._filter(flt)
        requests = [self._models.QueryRequest(query=q, filter=qfilter, limit=k, with_payload=True)
                    for q in queries.tolist()]
        responses = self._client.query_batch_points(self._collection, requests=requests)
        return [[Hit(p.payload[ID_FIELD], float(p.score), _user_payload(p.payload)) for p in r.points]
                for r in responses]

    def _filter(self, flt):
        """The Qdrant filter of a :class:`~retrieval.store.Filter` (``MatchAny`` per field: a list
        field matches when it contains a value, a keyword field when it equals one; ``must_all``:
        one condition per value)."""
        if flt is None:
            return None
        models = self._models

        def conditions(field, values):
            by_type = [[v for v in values if isinstance(v, str)], [v for v in values if not isinstance(v, str)]]
            return [models.FieldCondition(key=field, match=models.MatchAny(any=vs)) for vs in by_type if vs]

        must = []
        for field, values in flt.must.items():
            conds = conditions(field, values)
            must.append(conds[0] if len(conds) == 1 else models.Filter(should=conds))
        must += [c for field, values in flt.must_all.items() for v in values for c in conditions(field, [v])]
        must_not = [c for field, values in flt.must_not.items() for c in conditions(field, values)]
        return models.Filter(must=must or None, must_not=must_not or None)

    def _get(self, ids) -> tuple:
        by_id = {}
        for a in range(0, len(ids), self._batch):
            chunk = list(dict.fromkeys(ids[a:a + self._batch]))
            for r in self._client.retrieve(self._collection, [point_id(i) for i in chunk], with_payload=True,
                                           with_vectors=True):
                by_id[r.payload[ID_FIELD]] = r
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise UnknownIdError(f'{missing[0]!r} is not in the vector store {self.path}')
        vectors = np.array([by_id[i].vector for i in ids], dtype=np.float32).reshape(len(ids), self.dim)
        return vectors, [_user_payload(by_id[i].payload) for i in ids]

    def ids(self) -> list:
        out, offset = [], None
        while True:
            records, offset = self._client.scroll(self._collection, limit=1000, offset=offset,
                                                  with_payload=[ID_FIELD], with_vectors=False)
            out.extend(r.payload[ID_FIELD] for r in records)
            if offset is None:
                return out

    def __len__(self) -> int:
        return int(self._client.count(self._collection, exact=True).count)

    def __contains__(self, id) -> bool:
        return isinstance(id, str) and bool(id) and bool(self._present([id]))

    # ------------------------------------------------------------------------ persistence
    def _flush(self) -> None:
        """Nothing to do: Qdrant applied every completed call durably."""

    def _release(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception as e:  # closing must not hide the error that got us here
                log.debug('closing the Qdrant client: %s', e)
        if getattr(self, '_lock', None) is not None:
            self._lock.release()
            self._lock = None


def _check_version(url: str, server: str) -> None:
    """Log a warning when the server's major version differs from the client's or the minor
    versions are more than one apart (Qdrant's compatibility rule)."""
    from importlib.metadata import version
    client = version('qdrant-client')
    try:
        (cmaj, cmin), (smaj, smin) = (tuple(int(x) for x in v.split('.')[:2]) for v in (client, server))
    except ValueError:
        return
    if cmaj != smaj or abs(cmin - smin) > 1:
        log.warning('the Qdrant server at %s runs version %s; qdrant-client %s may not work with it',
                    url, server, client)


def _user_payload(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k != ID_FIELD}
