"""``python -m training`` end to end on real TFRecords (preprocessing) and registry models (modeling)."""
import json

import numpy as np
import pytest

from preprocessing.dataset import TagSelection, load_manifest, resolve_labels, window_length
from preprocessing.tfrecords import write_tfrecords
from tests._pipeline_fixtures import make_split_corpus
from training.__main__ import main

TINY_MUSICNN = {'n_timbral_filters': 4, 'n_temporal_filters': 2, 'n_midend_filters': 4, 'n_dense_units': 8}


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    return make_split_corpus(tmp_path_factory.mktemp('corpus'))


def _write(corpus, tmp_path_factory, fmt):
    out = str(tmp_path_factory.mktemp(fmt))
    write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], out, format=fmt, preset='musicnn',
                    shards_per_split=2, workers=1, progress=False)
    return out


@pytest.fixture(scope='module')
def logmel_dir(corpus, tmp_path_factory):
    return _write(corpus, tmp_path_factory, 'log-mel')


@pytest.fixture(scope='module')
def wave_dir(corpus, tmp_path_factory):
    return _write(corpus, tmp_path_factory, 'waveform')


def _config(tmp_path, data_dir, **extra):
    cfg = {'description': 'cli test',
           'dataset': {'dir': data_dir, 'tags': {'top': 5}},
           'input': {'window_seconds': 1.0, 'batch_size': 2},
           'model': {'name': 'musicnn', 'hparams': TINY_MUSICNN},
           'optimization': {'epochs': 2},
           'distribution': {'strategy': 'one_device'},   # multi-replica paths: test_training_loop
           'logging': {'progress': False, 'log_every_steps': 1}}
    for k, v in extra.items():
        cfg[k].update(v)
    path = tmp_path / 'cfg.json'
    path.write_text(json.dumps(cfg))
    return str(path)


def test_cli_trains_on_tfrecords_and_writes_an_evaluable_run(tmp_path, logmel_dir, capsys):
    run = tmp_path / 'run'
    cfg = _config(tmp_path, logmel_dir)
    assert main(['--config', cfg, '--run-dir', str(run), '--set', 'callbacks.early_stopping.patience=null']) == 0
    out = capsys.readouterr().out
    assert 'training: 2 epoch(s)' in out and str(run) in out
    manifest = load_manifest(logmel_dir)
    labels = json.loads((run / 'labels.json').read_text())
    assert labels == resolve_labels(manifest, TagSelection(top=5))
    feats = json.loads((run / 'features.json').read_text())
    frames = window_length(manifest, 1.0)
    assert feats == {'input': 'log-mel', 'sr': 16000, 'params': manifest['features']['params'],
                     'window_seconds': 1.0, 'input_frames': frames, 'input_samples': None}
    saved = json.loads((run / 'config.json').read_text())
    assert saved['model']['hparams'] == TINY_MUSICNN and saved['callbacks']['early_stopping']['patience'] is None
    hist = (run / 'history.csv').read_text().splitlines()
    assert len(hist) == 3
    from modeling import load_model
    model = load_model(str(run / 'model.keras'))
    x = np.zeros((3, frames, 96), np.float32)
    p = model(x).numpy()
    assert p.shape == (3, len(labels)) and np.all((p >= 0) & (p <= 1))
    assert (run / 'saved_model' / 'saved_model.pb').exists()
    # resuming a finished run trains nothing more and succeeds
    assert main(['--config', cfg, '--run-dir', str(run), '--resume']) == 0
    assert len((run / 'history.csv').read_text().splitlines()) == 3
    # a second start without --resume refuses to overwrite
    assert main(['--config', cfg, '--run-dir', str(run)]) == 2
    assert 'already holds checkpoints' in capsys.readouterr().err


def test_waveform_records_with_in_model_logmel(tmp_path, wave_dir):
    run = tmp_path / 'run'
    cfg = _config(tmp_path, wave_dir, input={'feature_params': 'musicnn'}, optimization={'epochs': 1})
    assert main(['--config', cfg, '--run-dir', str(run)]) == 0
    feats = json.loads((run / 'features.json').read_text())
    assert feats['input'] == 'waveform' and feats['input_samples'] == 16000 and feats['params'] is None
    assert feats['model_feature_params']['hop_length'] == 256
    from modeling import load_model
    model = load_model(str(run / 'model.keras'))
    assert model.input_shape == (None, 16000)
    assert any(layer.name == 'log_mel' for layer in model.layers)


def test_cli_config_errors_from_the_data_and_registry(tmp_path, logmel_dir, capsys):
    cfg = _config(tmp_path, logmel_dir)
    for override, message in [
            ('dataset.tags.with=["no-such-tag"]', "config error: dataset.tags: tag 'no-such-tag' is not in the dataset vocabulary"),
            ('dataset.validation_split=valid', 'config error: dataset.validation_split: no split "valid"'),
            ('model.name=nope', "config error: model.name: unknown model 'nope'"),
            ('model.hparams.n_filterz=3', 'config error: model.hparams.n_filterz: '),
            ('optimization.optimizer.name=Adamm', 'config error: optimization.optimizer.name: unknown Keras optimizer "Adamm"'),
            ('optimization.optimizer.kwargs.lr=0.1', 'config error: optimization.optimizer.kwargs.lr: not an argument'),
            ('dataset.dir="/nonexistent/x"', 'config error: dataset.dir: no manifest.json')]:
        assert main(['--config', cfg, '--run-dir', str(tmp_path / 'r'), '--set', override]) == 2, override
        assert message in capsys.readouterr().err, override
