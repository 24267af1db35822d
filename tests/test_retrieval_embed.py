"""retrieval.embeddings (Parquet / NPZ files, track ids) and ``musetag embed`` (retrieval.cli_embed)."""
from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

from core.errors import MuseTagError, OutputExistsError
from retrieval.embeddings import (BadEmbeddingsFile, EmbeddingWriter, embeddings_format, read_embeddings,
                                  track_id_for, windows_path)


def _fake_embeddings(n_tracks=5, d=4, pooling='meanstd', seed=0):
    """Embedding-like records (layer, pooling, windows, starts, vector, duration) of 1..n windows."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_tracks):
        w = rng.normal(size=(i + 1, d)).astype(np.float32)
        vector = np.concatenate([w.mean(0), w.std(0)]) if pooling == 'meanstd' else w.mean(0)
        out.append(SimpleNamespace(layer='penultimate', pooling=pooling, windows=w, starts=np.arange(i + 1) * 3.0,
                                   vector=vector.astype(np.float32), duration=3.0 * (i + 1) + 0.25))
    return out


def test_track_id_is_stable_relative_to_its_root(tmp_path):
    a, b = tmp_path / 'lib' / 'rock' / 'a.mp3', tmp_path / 'moved' / 'rock' / 'a.mp3'
    ida = track_id_for(a, root=tmp_path / 'lib')
    assert len(ida) == 16 and int(ida, 16) >= 0
    assert track_id_for(b, root=str(tmp_path / 'moved') + os.sep) == ida          # the folder moved: same id
    assert track_id_for(str(a), root=tmp_path / 'lib') == ida
    assert track_id_for(tmp_path / 'lib' / 'rock' / 'b.mp3', root=tmp_path / 'lib') != ida
    # without a root (or a root not holding it, or the file itself) the absolute path decides
    assert track_id_for(a) != ida and track_id_for(a) == track_id_for(a, root=tmp_path / 'other')
    assert track_id_for(a, root=a) == track_id_for(a) != track_id_for(b)
    assert track_id_for(tmp_path / 'lib' / 'x' / '..' / 'rock' / 'a.mp3') == track_id_for(a)
    assert track_id_for(tmp_path / 'b\udcff.mp3') != track_id_for(tmp_path / 'b.mp3')   # undecodable name bytes


@pytest.mark.parametrize('ext', ['.parquet', '.npz'])
@pytest.mark.parametrize('windows', [False, True])
def test_round_trip(tmp_path, ext, windows):
    embs = _fake_embeddings()
    out = tmp_path / f'emb{ext}'
    paths = [str(tmp_path / f'a{i}.wav') for i in range(len(embs))]
    paths[2] = str(tmp_path / 'odd\tname é.wav')
    with EmbeddingWriter(out, windows=windows, meta={'run': '/runs/x', 'hop_seconds': None}) as w:
        for p, e in zip(paths, embs):
            w.add(track_id_for(p, tmp_path), p, e)
    assert w.count == 5
    names = sorted(p.name for p in tmp_path.iterdir())
    want = [f'emb{ext}'] + ([f'emb.windows{ext}'] if windows and ext == '.parquet' else [])
    assert names == sorted(want)                                                    # no temporary file left
    assert (out.stat().st_mode & 0o777) == 0o666 & ~_umask()
    t = read_embeddings(out)
    assert t.ids == [track_id_for(p, tmp_path) for p in paths] and t.paths == paths
    np.testing.assert_array_equal(t.vectors, np.stack([e.vector for e in embs]))
    assert t.vectors.dtype == np.float32 and t.vectors.shape == (5, 8)
    np.testing.assert_array_equal(t.durations, [e.duration for e in embs])
    np.testing.assert_array_equal(t.n_windows, [1, 2, 3, 4, 5])
    assert t.layer == 'penultimate' and t.pooling == 'meanstd' and t.meta['dim'] == 8 and t.meta['window_dim'] == 4
    assert t.meta['run'] == '/runs/x' and t.meta['n_tracks'] == 5 and t.meta['format_version'] == 1
    if windows:
        assert t.windows.shape == (15, 4)
        for i, e in enumerate(embs):
            np.testing.assert_array_equal(t.track_windows(i), e.windows)
            np.testing.assert_array_equal(t.window_start[t.window_track == i], e.starts)
            np.testing.assert_array_equal(t.window_index[t.window_track == i], np.arange(i + 1))
    else:
        assert t.windows is None
        with pytest.raises(ValueError, match='no window vectors'):
            t.track_windows(0)


def _umask():
    old = os.umask(0)
    os.umask(old)
    return old


def test_parquet_streams_row_groups_and_reads_with_plain_pyarrow(tmp_path, monkeypatch):
    import pyarrow.parquet as pq
    import retrieval.embeddings as emb_mod
    monkeypatch.setattr(emb_mod, '_ROW_GROUP', 2)
    embs = _fake_embeddings(n_tracks=5, pooling='mean')
    out = tmp_path / 'e.parquet'
    with EmbeddingWriter(out, windows=True) as w:
        for i, e in enumerate(embs):
            w.add(f'id{i}', f'/x/{i}.wav', e)
    pf = pq.ParquetFile(out)
    assert pf.num_row_groups == 3                                                   # 2 + 2 + 1 tracks
    table = pf.read()
    assert table.column_names == ['track_id', 'path', 'layer', 'pooling', 'duration', 'n_windows', 'vector']
    import pyarrow as pa
    assert pa.types.is_list(table.schema.field('vector').type)
    assert table.schema.field('vector').type.value_type == pa.float32()
    assert table.column('vector').to_pylist()[4] == pytest.approx(embs[4].vector.tolist())
    wt = pq.read_table(windows_path(out))
    assert wt.column_names == ['track_id', 'window', 'start', 'vector'] and wt.num_rows == 15
    assert json.loads(pf.metadata.metadata[b'musetag'])['n_tracks'] == 5


def test_existing_output_refused_and_overwritten(tmp_path):
    out = tmp_path / 'e.npz'
    out.write_bytes(b'old')
    with pytest.raises(OutputExistsError):
        EmbeddingWriter(out)
    (tmp_path / 'p.windows.parquet').write_bytes(b'old')
    with pytest.raises(OutputExistsError):                       # the window file counts too
        EmbeddingWriter(tmp_path / 'p.parquet', windows=True)
    with EmbeddingWriter(out, overwrite=True) as w:
        w.add('a', 'a.wav', _fake_embeddings(1)[0])
    assert read_embeddings(out).ids == ['a']


def test_an_error_leaves_nothing(tmp_path):
    out = tmp_path / 'e.parquet'
    embs = _fake_embeddings(3)
    with pytest.raises(RuntimeError, match='boom'):
        with EmbeddingWriter(out, windows=True) as w:
            w.add('a', 'a.wav', embs[0])
            raise RuntimeError('boom')
    assert list(tmp_path.iterdir()) == []
    other = SimpleNamespace(**{**vars(embs[1]), 'layer': 'taggram'})
    with pytest.raises(ValueError, match="one layer; this one has 'taggram', the file 'penultimate'"):
        with EmbeddingWriter(out) as w:
            w.add('a', 'a.wav', embs[0])
            w.add('b', 'b.wav', other)
    assert list(tmp_path.iterdir()) == []


def test_format_from_suffix_and_bad_files(tmp_path):
    assert embeddings_format('x.PARQUET') == 'parquet' and embeddings_format('a/b.npz') == 'npz'
    assert windows_path('a/b.parquet') == 'a/b.windows.parquet'
    with pytest.raises(MuseTagError, match=r'ends in \.parquet or \.npz, not \.csv'):
        embeddings_format('x.csv')
    with pytest.raises(FileNotFoundError):
        read_embeddings(tmp_path / 'none.npz')
    np.savez(tmp_path / 'other.npz', x=np.zeros(3))
    with pytest.raises(BadEmbeddingsFile, match='not a MuseTag embeddings file'):
        read_embeddings(tmp_path / 'other.npz')
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({'x': [1]}), tmp_path / 'other.parquet')
    with pytest.raises(BadEmbeddingsFile, match='no "musetag" metadata'):
        read_embeddings(tmp_path / 'other.parquet')
