"""musetag index build / info: layout, payloads, incremental builds, locks, mismatches, resume after a kill."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests._retrieval_index_fixtures import LIBRARY, index_state, make_library, make_run, table_ids, write_track

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    return str(make_run(tmp_path_factory.mktemp('run') / 'run'))


@pytest.fixture(scope='module')
def tagger(run_dir):
    from evaluation.tagger import Tagger
    return Tagger.from_run(run_dir)


class Counting:
    """A Tagger whose embed_file calls are counted (per path)."""

    def __init__(self, tagger):
        self.tagger, self.calls = tagger, []
        self.info = tagger.info

    def embedding_layers(self):
        return self.tagger.embedding_layers()

    def embed_file(self, path, **kw):
        self.calls.append(os.path.basename(path))
        return self.tagger.embed_file(path, **kw)


def _build(index, run_dir, tagger, *paths, **kw):
    from retrieval.index import build_index
    kw.setdefault('commit_seconds', 0)
    return build_index(str(index), run_dir, [str(p) for p in paths], tagger=tagger, backend='numpy', **kw)


def test_build_writes_the_layout_and_payloads(tmp_path, run_dir, tagger):
    from retrieval.index import Index
    lib = make_library(tmp_path / 'lib')
    summary = _build(tmp_path / 'idx', run_dir, tagger, tmp_path / 'lib')
    assert summary.added == len(LIBRARY) and summary.tracks == len(LIBRARY) and not summary.skipped
    assert {p.name for p in (tmp_path / 'idx').iterdir()} >= {'index.json', 'tracks.sqlite', 'embedding', 'tags'}
    manifest = json.loads((tmp_path / 'idx' / 'index.json').read_text())
    assert manifest['layer'] == 'penultimate' and manifest['pooling'] == 'mean'
    assert manifest['run']['path'] == os.path.abspath(run_dir) and len(manifest['run']['sha256']) == 64
    assert manifest['roots'] == [str(tmp_path / 'lib')] and manifest['labels'] == tagger.info.labels
    with Index.open(tmp_path / 'idx') as index:
        t = index.find(lib['a/one.mp3'])
        assert (t.artist, t.album, t.title) == ('Ann', 'First', 'One')
        assert index.find(lib['seven.mp3']).artist is None
        assert 3.9 < t.duration < 4.2 and len(t.tags) == 5
        emb = tagger.embed_file(lib['a/one.mp3'])
        vec, payloads = index.stores['embedding'].get([t.id])
        np.testing.assert_allclose(vec[0], emb.vector / np.linalg.norm(emb.vector), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(t.probs, emb.tags.mean, rtol=1e-6)
        assert payloads[0] == {'path': lib['a/one.mp3'], 'duration': t.duration, 'tags': t.tags, 'artist': 'Ann',
                               'album': 'First', 'title': 'One'}
        assert t.tags == [tag for tag, _ in emb.tags.top(5)]
        assert index.stores['tags'].dim == len(tagger.info.labels)
        info = index.info()
        assert info['tracks'] == len(LIBRARY) and info['layer'] == 'penultimate'
        assert info['tracks_with_artist'] == len(LIBRARY) - 1 and info['artists'] == 3
        assert info['audio_seconds'] == pytest.approx(sum(t.duration for t in index.tracks()))


def test_incremental_build_equals_a_fresh_build_and_never_re_embeds(tmp_path, run_dir, tagger):
    lib = make_library(tmp_path / 'lib')
    counting = Counting(tagger)
    _build(tmp_path / 'idx', run_dir, counting, tmp_path / 'lib', commit_every=3)
    assert len(counting.calls) == len(LIBRARY)
    counting.calls.clear()
    s = _build(tmp_path / 'idx', run_dir, counting, tmp_path / 'lib')
    assert counting.calls == [] and s.unchanged == len(LIBRARY) and s.added == 0
    # add one, change one (new content, new mtime), delete one
    write_track(tmp_path / 'lib' / 'b' / 'new.mp3', 11, 600.0, 'Dee', 'Late', 'New')
    write_track(Path(lib['a/two.mp3']), 12, 250.0, 'Ann', 'First', 'Two (remix)')
    os.utime(lib['a/two.mp3'], ns=(time.time_ns(), time.time_ns() + 10**9))
    os.unlink(lib['b/five.mp3'])
    s = _build(tmp_path / 'idx', run_dir, counting, tmp_path / 'lib', commit_every=3)
    assert sorted(counting.calls) == ['new.mp3', 'two.mp3']
    assert (s.added, s.updated, s.removed, s.unchanged) == (1, 1, 1, len(LIBRARY) - 2)
    _build(tmp_path / 'fresh', run_dir, tagger, tmp_path / 'lib')
    inc, fresh = index_state(tmp_path / 'idx'), index_state(tmp_path / 'fresh')
    assert sorted(inc) == sorted(fresh) and len(inc) == len(LIBRARY)
    assert inc == fresh
    assert any(v[4] == 'Two (remix)' for v in inc.values())


def test_overwrite_starts_again_and_other_layer_is_refused(tmp_path, run_dir, tagger):
    from retrieval.index import BadIndexError
    make_library(tmp_path / 'lib', LIBRARY[:2])
    _build(tmp_path / 'idx', run_dir, tagger, tmp_path / 'lib')
    with pytest.raises(BadIndexError, match='layer'):
        _build(tmp_path / 'idx', run_dir, tagger, tmp_path / 'lib', layer='taggram')
    with pytest.raises(BadIndexError, match='pooling'):
        _build(tmp_path / 'idx', run_dir, tagger, tmp_path / 'lib', pooling='max')
    s = _build(tmp_path / 'idx', run_dir, tagger, tmp_path / 'lib', layer='taggram', overwrite=True)
    assert s.added == 2
    assert json.loads((tmp_path / 'idx' / 'index.json').read_text())['dim'] == len(tagger.info.labels)


def test_another_run_is_refused(tmp_path, run_dir, tagger):
    from evaluation.tagger import Tagger
    from retrieval.index import BadIndexError
    make_library(tmp_path / 'lib', LIBRARY[:2])
    _build(tmp_path / 'idx', run_dir, tagger, tmp_path / 'lib')
    other = str(make_run(tmp_path / 'other', seed=5))
    with pytest.raises(BadIndexError, match='different model'):
        _build(tmp_path / 'idx', other, Tagger.from_run(other), tmp_path / 'lib')


def test_a_second_build_is_refused_with_exit_3(tmp_path, run_dir):
    from core.locks import OutputLock
    from retrieval.cli import index_main
    make_library(tmp_path / 'lib', LIBRARY[:1])
    with OutputLock(tmp_path / 'idx'):
        code = index_main(['build', '--run', run_dir, str(tmp_path / 'lib'), '--index', str(tmp_path / 'idx'),
                           '-q'])
    assert code == 3
    assert not (tmp_path / 'idx' / 'index.json').exists()


def test_cli_skips_unreadable_files_with_exit_1_and_info(tmp_path, run_dir, capsys):
    from retrieval.cli import index_main
    make_library(tmp_path / 'lib', LIBRARY[:2])
    (tmp_path / 'lib' / 'broken.mp3').write_bytes(b'not audio at all' * 10)
    (tmp_path / 'lib' / 'empty.mp3').write_bytes(b'')
    code = index_main(['build', '--run', run_dir, str(tmp_path / 'lib'), '--index', str(tmp_path / 'idx'),
                       '--backend', 'numpy', '--no-progress'])
    err = capsys.readouterr().err
    assert code == 1
    assert 'broken.mp3: not-audio' in err and 'empty.mp3: empty' in err
    assert '2 added' in err and '2 skipped' in err
    assert index_main(['info', '--index', str(tmp_path / 'idx'), '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['tracks'] == 2 and info['backend'] == 'numpy' and info['counts']['skipped_last_build'] == 2
    assert index_main(['info', '--index', str(tmp_path / 'idx')]) == 0
    out = capsys.readouterr().out
    assert 'penultimate' in out and os.path.abspath(run_dir) in out
    assert index_main(['info', '--index', str(tmp_path / 'nope')]) == 2
    assert 'does not exist' in capsys.readouterr().err


def test_cli_refuses_another_layer_with_exit_2(tmp_path, run_dir, capsys):
    from retrieval.cli import index_main
    make_library(tmp_path / 'lib', LIBRARY[:1])
    args = ['build', '--run', run_dir, str(tmp_path / 'lib'), '--index', str(tmp_path / 'idx'), '-q']
    assert index_main(args + ['--backend', 'numpy']) == 0
    assert index_main(args + ['--layer', 'taggram']) == 2
    assert "layer 'penultimate'" in capsys.readouterr().err


def _build_process(run_dir, lib, index, env):
    code = ('import sys; from retrieval.cli import index_main; '
            f'sys.exit(index_main(["build", "--run", {run_dir!r}, {str(lib)!r}, "--index", {str(index)!r}, '
            '"--backend", "numpy", "--commit-every", "2", "--commit-seconds", "0", "-q"]))')
    return subprocess.Popen([sys.executable, '-c', code], cwd=str(ROOT), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=180):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise AssertionError(f'build ended before the hook: {proc.stderr.read()[-3000:]}')
        assert time.monotonic() < deadline, 'hook never reached'
        time.sleep(0.05)


@pytest.mark.parametrize('point', ['embedded:3', 'flushed:4'])
def test_a_killed_build_resumes_without_duplicates(tmp_path, run_dir, tagger, point):
    """Killed (SIGKILL) after embedding track 3 (one batch of 2 committed), or after the stores of the
    second batch were flushed but before the table committed (and one file of that batch deleted
    before the next build): the next build ends equal to a fresh one, stores and table alike."""
    lib = make_library(tmp_path / 'lib')
    marker = tmp_path / 'marker'
    env = dict(os.environ, MUSETAG_TEST_INDEX_BLOCK=point, MUSETAG_TEST_INDEX_MARKER=str(marker))
    proc = _build_process(run_dir, tmp_path / 'lib', tmp_path / 'idx', env)
    try:
        _wait_for(marker, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    committed = table_ids(tmp_path / 'idx')
    assert len(committed) == 2                  # the first batch only
    if point.startswith('flushed'):
        os.unlink(lib['a/three.mp3'])           # walk order: seven, a/one | a/three, a/two | …
    env.pop('MUSETAG_TEST_INDEX_BLOCK')
    proc = _build_process(run_dir, tmp_path / 'lib', tmp_path / 'idx', env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    _build(tmp_path / 'fresh', run_dir, tagger, tmp_path / 'lib')
    resumed, fresh = index_state(tmp_path / 'idx'), index_state(tmp_path / 'fresh')
    assert len(resumed) == len(LIBRARY) - point.startswith('flushed')
    assert resumed == fresh
    from retrieval.index import Index
    with Index.open(tmp_path / 'idx') as index:
        assert sorted(index.stores['embedding'].ids()) == sorted(index.stores['tags'].ids()) == table_ids(
            tmp_path / 'idx')


def test_tracks_outside_the_walked_roots_stay(tmp_path, run_dir, tagger):
    make_library(tmp_path / 'x', LIBRARY[:2])
    make_library(tmp_path / 'y', LIBRARY[3:4])
    _build(tmp_path / 'idx', run_dir, tagger, tmp_path / 'x')
    s = _build(tmp_path / 'idx', run_dir, tagger, tmp_path / 'y')
    assert (s.added, s.removed, s.tracks) == (1, 0, 3)
    shutil.rmtree(tmp_path / 'x' / 'a')
    s = _build(tmp_path / 'idx', run_dir, tagger, tmp_path / 'y')
    assert (s.removed, s.tracks) == (2, 1)      # files gone from anywhere are dropped too


def test_a_file_name_that_is_not_utf8_is_skipped_with_its_reason(tmp_path, run_dir, tagger):
    make_library(tmp_path / 'lib', LIBRARY[:1])
    bad = os.path.join(os.fsencode(tmp_path / 'lib'), b'caf\xe9.mp3')
    shutil.copy(os.path.join(tmp_path / 'lib', 'a', 'one.mp3'), bad)
    s = _build(tmp_path / 'idx', run_dir, tagger, tmp_path / 'lib')
    assert s.added == 1 and len(s.skipped) == 1
    path, reason, detail = s.skipped[0]
    assert reason == 'error' and 'UTF-8' in detail and path.endswith('caf\\xe9.mp3')


def test_a_qdrant_index_holds_what_a_numpy_one_holds(tmp_path, run_dir, tagger):
    """The scale-out backend through qdrant-client's local mode, incremental build included."""
    from retrieval.index import build_index
    lib = make_library(tmp_path / 'lib', LIBRARY[:3])
    build_index(str(tmp_path / 'q'), run_dir, [str(tmp_path / 'lib')], tagger=tagger, backend='qdrant',
                commit_seconds=0, commit_every=2)
    os.unlink(lib['a/one.mp3'])
    s = build_index(str(tmp_path / 'q'), run_dir, [str(tmp_path / 'lib')], tagger=tagger, commit_seconds=0)
    assert (s.removed, s.tracks) == (1, 2)
    _build(tmp_path / 'n', run_dir, tagger, tmp_path / 'lib')
    q, n = index_state(tmp_path / 'q'), index_state(tmp_path / 'n')
    assert sorted(q) == sorted(n)
    for track_id in q:
        assert q[track_id][:7] == n[track_id][:7] and q[track_id][9:] == n[track_id][9:]
        np.testing.assert_allclose(q[track_id][7], n[track_id][7], atol=1e-4)
    assert json.loads((tmp_path / 'q' / 'index.json').read_text())['backend'] == 'qdrant'


def test_a_track_whose_vector_is_all_zeros_is_skipped(tmp_path, run_dir, tagger):
    """A ReLU layer can give a silent track an all-zero vector, which cosine similarity cannot use."""
    make_library(tmp_path / 'lib', LIBRARY[:2])

    class ZeroForOne(Counting):
        def embed_file(self, path, **kw):
            emb = super().embed_file(path, **kw)
            if path.endswith('one.mp3'):
                emb.vector = np.zeros_like(emb.vector)
            return emb
    s = _build(tmp_path / 'idx', run_dir, ZeroForOne(tagger), tmp_path / 'lib')
    assert (s.added, s.tracks) == (1, 1)
    assert s.skipped[0][0].endswith('one.mp3') and 'all zeros' in s.skipped[0][2]
