"""musetag similar / playlist --image FILE --image-run RUN: the picture encoded into the space its image
run learned, nearest tracks there; bad pictures and mismatched runs are exit 2 before any model loads."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imagemusic import pictures
from retrieval.cli import playlist_main, similar_main
from retrieval.index import Index
from tests._pictures_fixtures import BLUE, RED, build, make_picture_library, picture_bytes

ROOT = Path(__file__).resolve().parents[1]


class StandIn:
    """An image encoder for tests: a reddish picture → ``red`` vector, else ``blue`` (in ``space``)."""

    def __init__(self, space, red, blue, run):
        self.space, self.red, self.blue = space, red, blue
        self.meta = {'params': {'space': space, 'run': run}}
        self.encoded = 0

    def encode(self, data):
        r, g, b = np.asarray(pictures.decode(data)).reshape(-1, 3).mean(axis=0)
        self.encoded += 1
        return self.red if r > b else self.blue


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    lib = make_picture_library(tmp_path / 'lib')
    build(tmp_path / 'idx', tmp_path / 'lib')
    (tmp_path / 'image-run').mkdir()
    with Index.open(tmp_path / 'idx') as index:
        ids = {k: index.find(p).id for k, p in lib.items()}
        vectors = {s: dict(zip(ids, index.stores[s].get([ids[k] for k in ids])[0])) for s in ('embedding', 'tags')}
        run = index.manifest['run']
    loaded = []

    def install(space='embedding', run=run, dim=None):
        red, blue = vectors[space]['red1'], vectors[space]['blue2']
        if dim:
            red, blue = red[:dim], blue[:dim]
        enc = StandIn(space, red, blue, run)
        monkeypatch.setattr('imagemusic.encode.load_image_encoder', lambda r, *a, **k: loaded.append(r) or enc)
        return enc

    photo = tmp_path / 'photo.png'
    photo.write_bytes(picture_bytes(RED, (120, 90), 'PNG'))
    sea = tmp_path / 'sea.jpg'
    sea.write_bytes(picture_bytes(BLUE))
    return dict(lib=lib, ids=ids, idx=str(tmp_path / 'idx'), run=str(tmp_path / 'image-run'), photo=str(photo),
                sea=str(sea), install=install, loaded=loaded, tmp=tmp_path)


def _json(capsys):
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize('space', ['embedding', 'tags'])
def test_similar_by_image_searches_the_space_the_run_learned(setup, capsys, space):
    s = setup
    enc = s['install'](space)
    assert similar_main(['--index', s['idx'], '--image', s['photo'], '--image-run', s['run'], '-k', '2',
                         '--format', 'json']) == 0
    out = _json(capsys)
    assert out['results'][0]['id'] == s['ids']['red1'] and out['results'][0]['score'] == pytest.approx(1, abs=1e-5)
    assert out['query']['space'] == space and out['query']['image'] == s['photo']
    assert enc.encoded == 1 and s['loaded'] == [s['run']]
    assert similar_main(['--index', s['idx'], '--image', s['sea'], '--image-run', s['run'], '-k', '1',
                         '--format', 'json']) == 0
    assert _json(capsys)['results'][0]['id'] == s['ids']['blue2']


def test_playlist_by_image_starts_at_the_nearest_track(setup, capsys):
    s = setup
    s['install']('embedding')
    assert playlist_main(['--index', s['idx'], '--image', s['sea'], '--image-run', s['run'], '--length', '4',
                          '--format', 'json']) == 0
    out = _json(capsys)
    ids = [r['id'] for r in out['results']]
    assert ids[0] == s['ids']['blue2'] and len(ids) == 4 == len(set(ids))
    assert out['query']['seed'] == s['ids']['blue2'] and out['query']['length'] == 4


@pytest.mark.parametrize('content, reason', [(b'GIF89a broken', 'corrupt'), (b'hello', 'not-image'),
                                             (None, 'unreadable')])
def test_a_bad_picture_is_exit_2_before_any_model_loads(setup, capsys, content, reason):
    s = setup
    s['install']()
    bad = s['tmp'] / 'bad.gif'
    if content is not None:
        bad.write_bytes(content)
    for main, extra in ((similar_main, []), (playlist_main, ['--length', '3'])):
        assert main(['--index', s['idx'], '--image', str(bad), '--image-run', s['run'], *extra]) == 2
        err = capsys.readouterr().err
        assert reason in err and 'error' in err
    assert s['loaded'] == []


def test_image_options_go_together(setup, capsys):
    s = setup
    assert similar_main(['--index', s['idx'], '--image', s['photo']]) == 2
    assert '--image-run' in capsys.readouterr().err
    assert similar_main(['--index', s['idx'], '--track', s['lib']['red1'], '--image-run', s['run']]) == 2
    assert 'goes with --image' in capsys.readouterr().err
    assert similar_main(['--index', s['idx'], '--image', s['photo'], '--image-run', str(s['tmp'] / 'nope')]) == 2
    assert 'no such run' in capsys.readouterr().err
    with pytest.raises(SystemExit):                                 # one query at a time
        similar_main(['--index', s['idx'], '--image', s['photo'], '--text', 'x', '--image-run', s['run']])


def test_a_run_of_another_index_or_dimension_is_refused(setup, capsys):
    s = setup
    s['install'](run={'path': '/elsewhere', 'sha256': '0' * 64})
    assert similar_main(['--index', s['idx'], '--image', s['photo'], '--image-run', s['run']]) == 2
    assert 'trained on pairs of this index' in capsys.readouterr().err
    s['install'](dim=3)
    assert similar_main(['--index', s['idx'], '--image', s['photo'], '--image-run', s['run']]) == 2
    assert '3-dimensional' in capsys.readouterr().err
    s['install']('tags')
    assert similar_main(['--index', s['idx'], '--image', s['photo'], '--image-run', s['run'],
                         '--space', 'embedding']) == 2
    assert 'learned the tags space' in capsys.readouterr().err


@pytest.mark.slow
def test_a_real_image_run_trained_on_index_pairs_answers_by_image(tmp_path):
    """index pairs → the trainer (dataset.kind images) → similar/playlist --image and index evaluate-image
    with the trained run."""
    from retrieval.cli import index_main
    from tests._pictures_fixtures import write_mp3
    colours = [(220, 30, 30), (30, 30, 220), (30, 200, 40), (230, 220, 40)]
    for a in range(16):
        base = np.array(colours[a % 4])
        for k in range(2):
            write_mp3(tmp_path / 'lib' / f'al{a}' / f't{k}.mp3', artist=f'A{a}', album=f'Album {a}', title=f'T{k}',
                      picture=picture_bytes(tuple(int(c) for c in np.clip(base + 3 * a, 0, 255))), seconds=0.2)
    build(tmp_path / 'idx', tmp_path / 'lib')
    assert index_main(['pairs', '--index', str(tmp_path / 'idx'), '--out', str(tmp_path / 'pairs'),
                       '--fractions', '0.6,0.4,0']) == 0
    config = json.loads((ROOT / 'configs' / 'image_demo.json').read_text(encoding='utf-8'))
    config['dataset']['dir'] = str(tmp_path / 'pairs')
    config['optimization']['epochs'] = 2
    config['input']['batch_size'] = 8
    config['logging'] = {'tensorboard': False, 'progress': False}
    (tmp_path / 'cfg.json').write_text(json.dumps(config), encoding='utf-8')
    run = tmp_path / 'run'
    done = subprocess.run([sys.executable, '-m', 'training', '--config', str(tmp_path / 'cfg.json'), '--run', str(run),
                           '-q'], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, 'CUDA_VISIBLE_DEVICES': ''})
    assert done.returncode == 0, done.stderr[-3000:]
    photo = tmp_path / 'photo.jpg'
    photo.write_bytes(picture_bytes(colours[0], (200, 200)))
    cmd = [sys.executable, '-m', 'retrieval', 'similar', '--index', str(tmp_path / 'idx'), '--image', str(photo),
           '--image-run', str(run), '-k', '5', '--format', 'json']
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)
    assert len(got['results']) == 5 and got['query']['space'] == 'embedding'
    cmd = [sys.executable, '-m', 'retrieval', 'playlist', '--index', str(tmp_path / 'idx'), '--image', str(photo),
           '--image-run', str(run), '--length', '6', '--format', 'json']
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(json.loads(out.stdout)['results']) == 6
    cmd = [sys.executable, '-m', 'retrieval', 'index', 'evaluate-image', '--index', str(tmp_path / 'idx'),
           '--pairs', str(tmp_path / 'pairs'), '--image-run', str(run), '--split', 'validation', '-k', '3',
           '--json', str(tmp_path / 'eval.json')]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / 'eval.json').is_file()
