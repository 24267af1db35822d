"""An image run trained by the trainer on synthetic pairs: it learns the mapping (beats the colour histogram
and random answers), its encoder agrees with its model, and the evaluation's figures mean what they say."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import MuseTagError
from tests._imagemusic_fixtures import make_pairs

ROOT = Path(__file__).resolve().parents[1]


def _train(pairs_dir, run_dir, model='image_stats', epochs=8):
    """Train an image run in a fresh process (the trainer's strategy state stays out of pytest)."""
    config = json.loads((ROOT / 'configs' / 'image_demo.json').read_text(encoding='utf-8'))
    config['dataset']['dir'] = str(pairs_dir)
    config['optimization']['epochs'] = epochs
    config['input']['batch_size'] = 16
    config['logging'] = {'tensorboard': False, 'progress': False}
    cfg = Path(run_dir).with_suffix('.json')
    cfg.write_text(json.dumps(config), encoding='utf-8')
    out = subprocess.run([sys.executable, '-m', 'training', '--config', str(cfg), '--run', str(run_dir), '-q'],
                         cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, 'CUDA_VISIBLE_DEVICES': ''})
    assert out.returncode == 0, out.stderr[-3000:]
    return run_dir


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp('imagerun')
    pairs = make_pairs(root / 'pairs', per_class=12, size=64)
    return pairs, _train(pairs['dir'], root / 'run')


@pytest.fixture(scope='module', params=['fixture', 'corpus'])
def trained_on(request, trained, tmp_path_factory):
    """A run trained on covers drawn by the test's own designer, or by the synthetic corpus's."""
    if request.param == 'fixture':
        return trained
    root = tmp_path_factory.mktemp('corpusrun')
    pairs = make_pairs(root / 'pairs', per_class=12, designer='corpus', seed=1)
    return pairs, _train(pairs['dir'], root / 'run')


def _catalogue(pairs):
    from retrieval.evaluate_image import Catalogue
    return Catalogue(list(pairs['ids']), pairs['vectors'], dict(pairs['tags']), 'fixture classes')


@pytest.mark.slow
def test_the_mapping_is_learned_and_beats_both_baselines(trained_on):
    from imagemusic.encode import load_image_encoder
    from retrieval.evaluate_image import evaluate_pairs, format_report
    pairs, run = trained_on
    encoder = load_image_encoder(run)
    report = evaluate_pairs(encoder, pairs['dir'], _catalogue(pairs), split='test', k=10, seed=0)
    s = report['systems']
    from imagemusic.data import read_pairs
    assert report['n_queries'] == sum(p.split == 'test' for p in read_pairs(pairs['dir'])) and report['k'] == 10
    print(format_report(report))
    assert s['image_run']['precision_at_k'] > s['colour_histogram']['precision_at_k'], format_report(report)
    assert s['image_run']['precision_at_k'] > s['random']['precision_at_k'] + 0.2, format_report(report)
    assert s['image_run']['recall_at_k'] > s['random']['recall_at_k'], format_report(report)
    assert s['colour_histogram']['recall_at_k'] == 0.0          # it answers with training tracks only
    assert 'image_run' in format_report(report)


@pytest.mark.slow
def test_encoder_agrees_with_the_model_and_names_its_space(trained):
    from imagemusic.data import picture_array
    from imagemusic.encode import load_image_encoder
    from imagemusic.pictures import PictureError, picture_from_bytes
    from modeling.rundir import load_run_model
    pairs, run = trained
    encoder = load_image_encoder(run)
    assert encoder.space == 'embedding' and encoder.dim == 8 and encoder.image_size == 96
    image = Path(pairs['dir']) / 'images' / 'pop000.jpg'
    data = image.read_bytes()
    model, _ = load_run_model(run)
    # a query is normalised as the index normalises pictures, then prepared as the validation pictures
    direct = np.asarray(model(picture_array(picture_from_bytes(data).data, 96)[None], training=False))[0]
    np.testing.assert_allclose(encoder.encode(data), direct, atol=1e-5)
    raw = np.asarray(model(picture_array(data, 96)[None], training=False))[0]      # without the JPEG round trip
    assert np.dot(raw, direct) / np.linalg.norm(raw) / np.linalg.norm(direct) > 0.999
    batch = encoder.encode_files([image, image.with_name('metal000.jpg')])
    assert batch.shape == (2, 8) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0], encoder.encode(data), atol=1e-5)
    with pytest.raises(PictureError, match='not-image'):
        encoder.encode(b'plain text, not a picture')


def test_a_run_that_is_not_an_image_run_is_refused(tmp_path):
    from imagemusic.encode import load_image_encoder
    (tmp_path / 'features.json').write_text(json.dumps({'input': 'log-mel', 'sr': 16000}), encoding='utf-8')
    (tmp_path / 'config.json').write_text('{}', encoding='utf-8')
    with pytest.raises(MuseTagError, match='not an image run'):
        load_image_encoder(tmp_path)
    with pytest.raises(MuseTagError, match='not a run directory'):
        load_image_encoder(tmp_path / 'nothing')


def test_scores_count_own_tracks_and_tag_overlap():
    from retrieval.evaluate_image import nearest, random_answers, score
    truth = {'a': {'x'}, 'b': {'x', 'y'}, 'c': {'z'}, 'd': set()}
    m = score([['a', 'c'], ['c', 'd']], ['a', 'b'], truth)
    assert m == {'recall_at_k': 0.5, 'precision_at_k': 0.25, 'queries': 2, 'tagged_queries': 2}
    assert score([['a']], ['d'], truth)['precision_at_k'] is None      # an untagged query is not scored
    vectors = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    assert nearest(np.array([[1, 0.1]]), vectors, ['a', 'b', 'c'], 2) == [['a', 'c']]
    r1, r2 = random_answers(3, list('abcdef'), 4, seed=1), random_answers(3, list('abcdef'), 4, seed=1)
    assert r1 == r2 and all(len(set(r)) == 4 for r in r1)


def test_colour_histogram_baseline_answers_with_the_nearest_colours():
    from imagemusic.histogram import HistogramBaseline, hsv_histograms
    red, green, dark_red = (np.zeros((1, 8, 8, 3), np.float32) for _ in range(3))
    red[..., 0], green[..., 1], dark_red[..., 0] = 1.0, 1.0, 0.3
    hist = hsv_histograms(np.concatenate([red, green]))
    np.testing.assert_allclose(hist.sum(axis=1), 1.0)
    base = HistogramBaseline(np.concatenate([green, red, red]), ['g', 'r1', 'r2'])
    assert base.query(dark_red * 0 + red, 2) == [['r1', 'r2']]
    assert base.query(green, 3)[0][0] == 'g'
