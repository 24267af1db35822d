"""The Qdrant backend through the real qdrant-client (its in-process local mode): what differs from
the file-based stores. The shared contract (agreement with NumPy, filters, upsert, delete,
persistence, bad input) is in test_retrieval_store.py, which runs every backend."""
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('qdrant_client')

from core.locks import LockedError  # noqa: E402
from retrieval.store import Filter, StoreError, open_store  # noqa: E402
from retrieval.store_qdrant import ID_FIELD, point_id  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def small(tmp_path, n=20, **options):
    rng = np.random.default_rng(0)
    store = open_store(tmp_path / 'q', backend='qdrant', dim=8, create=True, **options)
    ids = [f'id/{i}' for i in range(n)]
    store.upsert(ids, rng.normal(size=(n, 8)), [{'year': 1990 + i % 3, 'tags': ['a' if i % 2 else 'b']}
                                               for i in range(n)])
    return store, ids


def test_string_ids_become_uuid5_points_with_the_id_in_the_payload(tmp_path):
    store, ids = small(tmp_path)
    records = store._client.retrieve(store._collection, [point_id(ids[3])], with_payload=True)
    assert records[0].id == point_id(ids[3]) and records[0].payload[ID_FIELD] == ids[3]
    assert sorted(store.ids()) == sorted(ids)
    assert ID_FIELD not in store.get([ids[3]])[1][0]                      # not shown to callers
    assert all(ID_FIELD not in h.payload for h in store.search(np.ones(8), k=5)[0])
    with pytest.raises(StoreError, match='reserved'):
        store.upsert(['x'], np.ones((1, 8)), [{ID_FIELD: 'y'}])
    store.close()


def test_integer_and_mixed_filter_values(tmp_path):
    store, ids = small(tmp_path)
    q = np.ones(8)
    hits = store.search(q, k=20, filter=Filter(must={'year': [1991]}))[0]
    assert {h.id for h in hits} == {ids[i] for i in range(20) if i % 3 == 1}
    hits = store.search(q, k=20, filter=Filter(must={'year': [1990, 'nope']}, must_not={'tags': ['a']}))[0]
    assert {h.id for h in hits} == {ids[i] for i in range(20) if i % 3 == 0 and i % 2 == 0}
    store.close()


def test_every_completed_call_survives_a_kill_without_flush(tmp_path):
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        import numpy as np
        from retrieval.store import open_store
        store = open_store({str(tmp_path / 'q')!r}, backend='qdrant', dim=4, create=True)
        store.upsert(['a', 'b'], np.eye(4)[:2], [{{'n': 1}}, {{'n': 2}}])
        store.delete(['a'])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    with open_store(tmp_path / 'q') as store:    # the dead writer's lock is taken over
        assert store.ids() == ['b'] and store.get(['b'])[1] == [{'n': 2}]


def test_second_writer_and_a_reader_beside_the_local_writer_are_refused(tmp_path):
    store, _ = small(tmp_path, n=3)
    with pytest.raises(LockedError):
        open_store(tmp_path / 'q')
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from retrieval.store import StoreError, open_store
        try:
            open_store({str(tmp_path / 'q')!r}, read_only=True)
        except StoreError as e:
            print('REFUSED', e)
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith('REFUSED') and 'local Qdrant folder' in out.stdout, out.stderr
    store.close()


def test_store_json_names_the_server_but_never_the_api_key(tmp_path):
    store, _ = small(tmp_path, n=2, collection='tracks')
    store.close()
    meta = json.loads((tmp_path / 'q' / 'store.json').read_text())
    assert meta['backend'] == 'qdrant' and meta['collection'] == 'tracks' and meta['url'] is None
    assert 'api_key' not in json.dumps(meta)
    assert len(open_store(tmp_path / 'q')) == 2                         # the collection is found again


def test_unreachable_server_is_a_clear_error(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(StoreError, match=r'cannot open the Qdrant server at http://127\.0\.0\.1:9'):
        open_store(tmp_path / 's', backend='qdrant', dim=4, create=True, url='http://127.0.0.1:9', timeout=5)
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / 's' / 'store.json').exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.lock')]


def test_existing_collection_is_not_silently_adopted(tmp_path):
    store, _ = small(tmp_path, n=2)
    store.close()
    os.unlink(tmp_path / 'q' / 'store.json')
    with pytest.raises(StoreError, match="collection 'musetag-q' already exists"):
        open_store(tmp_path / 'q', backend='qdrant', dim=8, create=True)


def test_batches_smaller_than_the_data(tmp_path):
    store, ids = small(tmp_path, n=25, batch_size=4)
    assert len(store) == 25 and sorted(store.ids()) == sorted(ids)
    vectors, _ = store.get(ids[::-1])
    assert vectors.shape == (25, 8)
    assert store.delete(ids[:10] + ['missing']) == 10 and len(store) == 15
    store.close()


def test_a_server_of_another_major_version_is_logged(caplog):
    from importlib.metadata import version

    from retrieval.store_qdrant import _check_version
    major, minor = (int(x) for x in version('qdrant-client').split('.')[:2])
    with caplog.at_level('WARNING', logger='retrieval.store_qdrant'):
        _check_version('http://h:6333', f'{major}.{minor + 1}.0')
        assert not caplog.records
        _check_version('http://h:6333', f'{major + 1}.0.0')
    assert 'http://h:6333 runs version' in caplog.text
