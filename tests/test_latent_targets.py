"""The target table folder: round trip, lookup, atomic write under a lock, bad folders named."""
import json
import os
import stat

import numpy as np
import pytest

from core.errors import MuseTagError, OutputExistsError
from core.locks import LockedError, OutputLock
from latent.targets import read_rare, read_targets, write_targets


def _write(out, n=5, d=3, **kw):
    ids = [f'TR{i:04d}' for i in range(n)]
    vecs = np.arange(n * d, dtype=np.float64).reshape(n, d) / 7.0
    return ids, vecs, write_targets(out, ids, vecs, {'kind': 'doc2vec', 'params': {'epochs': 3}}, **kw)


def test_round_trip_and_lookup(tmp_path):
    out = tmp_path / 'targets'
    ids, vecs, _ = _write(out, rare=[('TRX', 1, 'min-count 2'), {'track_id': 'TRY', 'count': 0, 'reason': 'no tags'}])
    t = read_targets(out)
    assert t.track_ids == ids
    assert t.vectors.dtype == np.float32 and t.vectors.shape == (5, 3)
    np.testing.assert_allclose(t.vectors, vecs.astype(np.float32))
    assert t.dim == 3 and len(t) == 5
    assert t.meta['kind'] == 'doc2vec' and t.meta['dim'] == 3 and t.meta['count'] == 5
    assert t.meta['key'] == 'track_id' and t.meta['params'] == {'epochs': 3} and t.meta['created']
    assert t.index['TR0003'] == 3
    got, missing = t.lookup(['TR0004', 'NOPE', 'TR0001'])
    np.testing.assert_allclose(got, t.vectors[[4, 1]])
    assert got.dtype == np.float32
    assert missing == ['NOPE']
    empty, missing = t.lookup(['A'])
    assert empty.shape == (0, 3) and missing == ['A']
    assert read_rare(out) == [{'track_id': 'TRX', 'count': 1, 'reason': 'min-count 2'},
                              {'track_id': 'TRY', 'count': 0, 'reason': 'no tags'}]
    # plain permissions (not tempfile's private 0600/0700)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(out / 'targets.npz').st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o777 & ~umask


def test_no_rare_file_when_not_given(tmp_path):
    _write(tmp_path / 't')
    assert not (tmp_path / 't' / 'rare.csv').exists()
    assert read_rare(tmp_path / 't') == []


def test_overwrite_and_lock(tmp_path):
    out = tmp_path / 't'
    _write(out)
    with pytest.raises(OutputExistsError):
        _write(out)
    _write(out, n=2, overwrite=True)
    assert len(read_targets(out)) == 2
    with OutputLock(out):
        with pytest.raises(LockedError):
            _write(out, overwrite=True)
    assert len(read_targets(out)) == 2


@pytest.mark.parametrize('ids,vecs,meta,match', [
    (['a', 'a'], np.zeros((2, 2)), {'kind': 'x'}, 'duplicate'),
    (['a'], np.zeros((2, 2)), {'kind': 'x'}, '1 track ids for 2'),
    (['a'], np.zeros(2), {'kind': 'x'}, '2-D'),
    (['a'], np.full((1, 2), np.nan), {'kind': 'x'}, 'NaN'),
    (['a'], np.zeros((1, 2)), {}, 'kind'),
])
def test_write_refuses_bad_tables(tmp_path, ids, vecs, meta, match):
    with pytest.raises(ValueError, match=match):
        write_targets(tmp_path / 't', ids, vecs, meta)
    assert not (tmp_path / 't').exists()


def test_bad_folders_are_named(tmp_path):
    with pytest.raises(MuseTagError, match='no target table folder'):
        read_targets(tmp_path / 'absent')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(MuseTagError, match='targets.npz is missing'):
        read_targets(tmp_path / 'empty')
    out = tmp_path / 't'
    _write(out)
    meta = json.loads((out / 'targets.json').read_text())
    meta['dim'] = 9
    (out / 'targets.json').write_text(json.dumps(meta))
    with pytest.raises(MuseTagError, match='dim 9'):
        read_targets(out)
    (out / 'targets.json').write_text('{not json')
    with pytest.raises(MuseTagError, match='malformed JSON'):
        read_targets(out)
    (out / 'targets.json').write_text('{}')
    (out / 'targets.npz').write_bytes(b'garbage')
    with pytest.raises(MuseTagError, match='not a readable target table'):
        read_targets(out)


def test_latent_labels_name_each_dimension():
    from latent.targets import latent_labels
    assert latent_labels(3) == ['dim_000', 'dim_001', 'dim_002']
    assert latent_labels(1001)[-1] == 'dim_1000'


def test_weights_csv_one_format_for_every_consumer(tmp_path):
    """The trainer's and the image source's readers are the same format with their own error kind
    (the bad lines themselves: tests/test_training_weights.py)."""
    from imagemusic.data import read_example_weights
    from latent.targets import read_weights
    from training.config import ConfigError
    from training.targets import read_weights as training_read
    path = tmp_path / 'w.csv'
    path.write_text('track_id,weight,note\nA,0.5,liked\nB,0,disliked\n', encoding='utf-8')
    assert read_weights(str(path)) == training_read(str(path)) == read_example_weights(str(path)) \
        == {'A': 0.5, 'B': 0.0}
    path.write_text('track_id,weight\nA,x\n', encoding='utf-8')
    with pytest.raises(ConfigError, match='dataset.weights'):
        training_read(str(path))
    with pytest.raises(MuseTagError, match='dataset.weights: .*line 2'):
        read_example_weights(str(path))
