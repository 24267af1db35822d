"""``musetag train`` with a recipe and augmentations, end to end on waveform TFRecords and registry models."""
import json

import numpy as np
import pytest

from modeling import load_model
from tests.test_training_cli import _config, corpus, wave_dir  # noqa: F401  (module fixtures)
from training.__main__ import main


@pytest.mark.slow
def test_cli_trains_and_resumes_a_recipe_with_augmentation(tmp_path, wave_dir):  # noqa: F811
    run = tmp_path / 'run'
    sgd = {'momentum': 0.9, 'nesterov': True}
    cfg = _config(tmp_path, wave_dir, input={'feature_params': 'musicnn'},
                  optimization={'epochs': 2, 'phases': [
                      {'optimizer': 'Adam', 'learning_rate': 1e-3, 'weight_decay': 1e-4, 'epochs': 1},
                      {'optimizer': 'SGD', 'kwargs': sgd, 'learning_rate': 1e-2, 'weight_decay': 1e-4, 'epochs': None,
                       'reload_best': True}]},
                  callbacks={'early_stopping': {'monitor': 'val_loss', 'patience': None}},
                  augment={'spec_augment': {'time_masks': 1, 'time_mask_frames': 4, 'freq_masks': 1,
                                            'freq_mask_bands': 4},
                           'mixup': {'alpha': 0.3}, 'gain': {'min_db': -3, 'max_db': 3}})
    assert main(['--config', cfg, '--run', str(run), '--set', 'optimization.epochs=1']) == 0
    assert main(['--config', cfg, '--run', str(run), '--resume']) == 0       # into the SGD phase
    history = (run / 'history.csv').read_text().splitlines()
    assert len(history) == 3
    saved = json.loads((run / 'config.json').read_text())
    assert [p['optimizer'] for p in saved['optimization']['phases']] == ['Adam', 'SGD']
    model = load_model(str(run / 'model.keras'))        # the exported model: no augmentation layer
    assert not any('spec_augment' in layer.name for layer in model.layers)
    assert any(layer.name == 'log_mel' for layer in model.layers)
    assert np.isfinite(model.predict(np.zeros((1, model.input_shape[1]), np.float32), verbose=0)).all()


def test_spec_augment_wraps_the_mel_layer_of_the_won_et_al_models():
    import modeling
    from training import augment
    spec = modeling.InputSpec(kind='waveform', samples=59049, sr=16000)
    model = modeling.build_model('short', 4, spec, n_channels=2, dropout=0.0)   # no dropout: training is deterministic
    names = {x.name for x in model.layers}
    layer = next(name for name in augment.MEL_LAYERS if name in names)
    masks = augment.SpecAugment(time_masks=2, time_mask_frames=20, freq_masks=2, freq_mask_bands=20)
    wrapped = augment.with_spec_augment(model, layer, masks)
    masks.set_seed(augment.step_seed(0, augment.SPEC_AUGMENT, 1))
    x = np.random.default_rng(0).normal(size=(2, 59049)).astype(np.float32)
    np.testing.assert_array_equal(wrapped(x, training=False).numpy(), model(x, training=False).numpy())
    assert not np.array_equal(wrapped(x, training=True).numpy(), model(x, training=True).numpy())
