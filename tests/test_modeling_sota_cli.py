"""Each Won et al. 2020 tagger trains one short epoch through ``musetag train`` on waveform TFRecords of
the mini corpus, at its reference window (narrowed to 4 channels, batch 2, one step), and its run
holds a model that loads and tags that window."""
from __future__ import annotations

import json

import numpy as np
import pytest

from modeling.sota import REFERENCE_SAMPLES
from preprocessing.tfrecords import write_tfrecords
from tests._pipeline_fixtures import make_split_corpus
from training.__main__ import main


@pytest.fixture(scope='module')
def wave_dir(tmp_path_factory):
    corpus = make_split_corpus(tmp_path_factory.mktemp('corpus'))
    out = str(tmp_path_factory.mktemp('waveform'))
    write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], out, format='waveform', preset='musicnn',
                    shards_per_split=1, workers=1, progress=False)
    return out


def _config(tmp_path, data_dir, name):
    hparams = {'n_channels': 4, **{'crnn': {'n_units': 4}, 'attention': {'intermediate': 16}}.get(name, {})}
    cfg = {'description': f'{name} smoke test',
           'dataset': {'dir': data_dir, 'tags': {'top': 5}},
           'input': {'window_seconds': REFERENCE_SAMPLES[name] / 16000, 'batch_size': 2},
           'model': {'name': name, 'hparams': hparams},
           'optimization': {'epochs': 1, 'steps_per_epoch': 1},
           'distribution': {'strategy': 'one_device'},
           'logging': {'progress': False, 'log_every_steps': 1}}
    path = tmp_path / 'cfg.json'
    path.write_text(json.dumps(cfg))
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(REFERENCE_SAMPLES))
def test_one_epoch_through_the_cli(tmp_path, wave_dir, name):
    run = tmp_path / 'run'
    assert main(['--config', _config(tmp_path, wave_dir, name), '--run', str(run)]) == 0
    feats = json.loads((run / 'features.json').read_text())
    assert feats['input'] == 'waveform' and feats['input_samples'] == REFERENCE_SAMPLES[name]
    assert len((run / 'history.csv').read_text().splitlines()) == 2          # header + epoch 1
    from modeling import load_model
    model = load_model(str(run / 'model.keras'))
    assert model.input_shape == (None, REFERENCE_SAMPLES[name])
    p = model(np.zeros((1, REFERENCE_SAMPLES[name]), np.float32)).numpy()
    assert p.shape == (1, 5) and np.all((p > 0) & (p < 1))
