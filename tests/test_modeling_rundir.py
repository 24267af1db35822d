"""Tests of modeling.rundir, the one module that owns the run directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modeling import rundir
from modeling.rundir import RunDirError

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {'sr': 16000, 'n_fft': 512, 'hop_length': 256, 'n_mels': 8, 'fmin': 0.0, 'fmax': None, 'power': 2.0,
          'center': True, 'pad_mode': 'constant', 'log': 'log10_1p', 'top_db': None, 'amin': 1e-10,
          'log_scale': 10000.0, 'float16': False}


def _write(run, labels=('rock', 'jazz'), **features):
    feats = rundir.features_json('log-mel', 16000, params=PARAMS, window_seconds=1.0, input_frames=63)
    feats.update(features)
    run.mkdir(parents=True, exist_ok=True)
    (run / 'labels.json').write_text(json.dumps(list(labels)))
    (run / 'features.json').write_text(json.dumps(feats))
    return run


def test_write_then_load_round_trip(tmp_path):
    run = tmp_path / 'run'
    feats = rundir.features_json('log-mel', 16000, params=PARAMS, window_seconds=1.0, input_frames=63)
    rundir.write_run_files(run, config={'seed': 1, 'dataset': {'dir': '/data/tfr'}}, labels=['a', 'b|c'],
                           features=feats)
    info = rundir.load_run_info(run)
    assert info.labels == ['a', 'b|c'] and info.kind == 'log-mel' and info.sr == 16000
    assert info.params.n_mels == 8 and info.input_frames == 63 and info.window_seconds == 1.0
    assert info.config['seed'] == 1
    assert rundir.resolve_dataset_dir(info) == '/data/tfr'
    assert rundir.resolve_dataset_dir(info, '/other') == '/other'


@pytest.mark.parametrize('change,match', [
    ({'input': 'spectrogram'}, '"input" must be'),
    ({'params': None}, 'needs "params"'),
    ({'sr': 22050}, 'sr 22050 != params.sr 16000'),
    ({'window_seconds': -1}, 'window_seconds'),
    ({'input_frames': 0}, 'input_frames'),
    ({'extra_key': 1}, 'unknown key'),
])
def test_bad_features_json_is_named(tmp_path, change, match):
    run = _write(tmp_path / 'run', **change)
    with pytest.raises(RunDirError, match=match) as info:
        rundir.load_run_info(run)
    assert 'features.json' in str(info.value)


@pytest.mark.parametrize('labels,match', [([], 'non-empty'), (['a', 'a'], "'a' more than once"),
                                          (['a', 3], 'non-empty JSON list of tag names')])
def test_bad_labels_json_is_named(tmp_path, labels, match):
    run = _write(tmp_path / 'run', labels=labels)
    with pytest.raises(RunDirError, match=match):
        rundir.load_run_info(run)


def test_missing_pieces_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        rundir.load_run_info(tmp_path / 'nope')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(RunDirError, match='no labels.json'):
        rundir.check_run_dir(tmp_path / 'empty')
    run = _write(tmp_path / 'run')
    (run / 'config.json').write_text('{not json')
    with pytest.raises(RunDirError, match='malformed JSON'):
        rundir.load_run_info(run)


def test_old_relative_dataset_dir_is_found_beside_the_run(tmp_path, monkeypatch):
    run = _write(tmp_path / 'runs' / 'old')
    (run / 'data').mkdir()
    (run / 'config.json').write_text(json.dumps({'dataset': {'dir': 'data'}}))
    monkeypatch.chdir(tmp_path)
    assert rundir.resolve_dataset_dir(rundir.load_run_info(run)) == os.path.join(run, 'data')
    (run / 'config.json').write_text(json.dumps({'dataset': {'dir': 'gone'}}))
    with pytest.raises(RunDirError, match='--tfrecords'):
        rundir.resolve_dataset_dir(rundir.load_run_info(run))


def test_reading_a_run_imports_no_tensorflow(tmp_path):
    run = _write(tmp_path / 'run')
    code = (f'import sys; sys.path.insert(0, {str(ROOT)!r}); from modeling import rundir; '
            f'rundir.check_run_dir({str(run)!r}); i = rundir.load_run_info({str(run)!r}); '
            'print(i.labels, "tensorflow" in sys.modules, "keras" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.stdout.strip() == "['rock', 'jazz'] False False", out.stderr[-1000:]


def test_history_rows_round_trip(tmp_path):
    path = tmp_path / 'history.csv'
    h = rundir.History(path)
    h.append({'epoch': 1, 'train_loss': 0.5, 'val_loss': float('nan'), 'lr': 1e-3, 'steps': 10})
    h.append({'epoch': 2, 'train_loss': 0.25, 'lr': 1e-3, 'steps': 10})
    again = rundir.History(path)
    assert [r['epoch'] for r in again.rows] == [1, 2]
    assert again.rows[0]['val_loss'] is None and again.rows[1]['train_loss'] == 0.25
    again.truncate(1)
    again.write()
    assert [r['epoch'] for r in rundir.History(path).rows] == [1]
    assert path.read_text().splitlines()[0] == ','.join(rundir.HISTORY_COLUMNS)


def test_export_then_load_model_and_checkpoints(tmp_path):
    import keras
    import tensorflow as tf
    old = os.umask(0o022)
    try:
        inp = keras.Input((63, 8))
        out = keras.layers.Dense(2, activation='sigmoid')(keras.layers.GlobalAveragePooling1D()(inp))
        model = keras.Model(inp, out)
        run = _write(tmp_path / 'run')
        rundir.export_model(model, run)
        tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(run / 'checkpoints'),
                                   max_to_keep=1).save(checkpoint_number=7)
    finally:
        os.umask(old)
    assert {p.stat().st_mode & 0o777 for p in [run / 'model.keras', *(run / 'saved_model').rglob('*')]} \
        <= {0o644, 0o755}
    loaded, step = rundir.load_run_model(run)
    assert step is None and loaded.output_names == ['tags']
    x = np.random.default_rng(0).normal(size=(3, 63, 8)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)
    _, step = rundir.load_run_model(run, 'last')
    assert step == 7
    with pytest.raises(FileNotFoundError, match="no 'best' checkpoint"):
        rundir.load_run_model(run, 'best')
    (run / 'labels.json').write_text(json.dumps(['a', 'b', 'c']))
    with pytest.raises(RunDirError, match='2 outputs but labels.json lists 3'):
        rundir.load_run_model(run)
