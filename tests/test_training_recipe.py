"""The multi-optimizer recipe (optimization.phases): switches, best-weight reloads, exact resume; the
ready recipe configs; mixed precision."""
import glob
import json
import logging
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests._training_fixtures import BATCHES_PER_EPOCH, base_config, make_source, tiny_model_fn
from tests.test_training_loop import assert_weights_equal, wait_for, weights_of_checkpoint
from training import recipe
from training.config import ConfigError, load_config, parse_config, read_json_file
from training.trainer import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, 'tests', '_training_fixtures.py')
SGD = {'momentum': 0.9, 'nesterov': True}


def phases_config(epochs, *, monitor='val_loss', strategy='one_device'):
    """Adam 2 epochs; SGD 1 epoch (best reloaded, new optimizer); SGD until the end (best reloaded,
    same optimizer, lower LR)."""
    return base_config(
        distribution={'strategy': strategy},
        callbacks={'early_stopping': {'monitor': monitor, 'patience': None}},
        optimization={'epochs': epochs, 'phases': [
            {'optimizer': 'Adam', 'learning_rate': 0.01, 'weight_decay': 1e-3, 'epochs': 2},
            {'optimizer': 'SGD', 'kwargs': SGD, 'learning_rate': 0.05, 'weight_decay': 1e-3, 'epochs': 1,
             'reload_best': True},
            {'optimizer': 'SGD', 'kwargs': SGD, 'learning_rate': 0.02, 'weight_decay': 1e-3, 'epochs': None,
             'reload_best': True, 'keep_optimizer_state': True}]})


def make_trainer(run_dir, cfg_dict, *, resume=False, source=None):
    cfg = parse_config(cfg_dict)
    return Trainer(cfg, run_dir=str(run_dir), resume=resume, export=False,
                   data=source or make_source(cfg.input.batch_size), model_fn=tiny_model_fn())


def record_epoch_starts(monkeypatch):
    """{epoch: (weights, optimizer object, optimizer iterations)} seen when each epoch starts training."""
    seen = {}
    original = Trainer._train_epoch

    def train_epoch(self, epoch, tb_train):
        seen[epoch] = (self.model.get_weights(), self.optimizer, self.iterations)
        return original(self, epoch, tb_train)

    monkeypatch.setattr(Trainer, '_train_epoch', train_epoch)
    return seen


def script_val_loss(monkeypatch, losses):
    """Validation loss of epoch e is ``losses[e - 1]`` (the AUCs stay real)."""
    original = Trainer.validate

    def validate(self):
        out = original(self)
        out['val_loss'] = losses[int(self.state.epoch.numpy())]   # state.epoch = epochs done before this one
        return out

    monkeypatch.setattr(Trainer, 'validate', validate)


# ------------------------------------------------------------------------------------------ schedule arithmetic
def test_phase_of_epoch_counts_fixed_epochs_and_an_open_last_phase():
    phases = parse_config(phases_config(6)).optimization.phases
    assert recipe.phase_starts(phases, 6) == [0, 2, 3]
    assert [recipe.phase_of_epoch(phases, e, 6) for e in range(0, 8)] == [0, 0, 0, 1, 2, 2, 2, 2]
    assert recipe.first_epoch_of_phase(phases, 2, 6) == 4


def test_phase_config_errors_name_the_key(tmp_path):
    def error(**change):
        cfg = phases_config(6)
        phase = change.pop('phase', None)
        if phase is not None:
            cfg['optimization']['phases'][phase[0]].update(phase[1])
        cfg['optimization'].update(change)
        with pytest.raises(ConfigError) as exc:
            parse_config(cfg)
        return exc.value.key

    assert error(phase=(0, {'reload_best': True})) == 'optimization.phases[0].reload_best'
    assert error(phase=(1, {'epochs': None})) == 'optimization.phases[1].epochs'
    assert error(phase=(2, {'kwargs': {'momentum': 0.5}})) == 'optimization.phases[2].keep_optimizer_state'
    assert error(phase=(1, {'kwargs': {'weight_decay': 0.1}})) == 'optimization.phases[1].kwargs.weight_decay'
    assert error(phase=(2, {'epochs': 1})) == 'optimization.epochs'          # 2 + 1 + 1 < 6 epochs
    assert error(schedule={'name': 'step'}) == 'optimization.schedule.name'
    bad = phases_config(6)
    for phase in bad['optimization']['phases'][1:]:
        phase['optimizer'] = 'Sgd'
    with pytest.raises(ConfigError) as exc:
        make_trainer(tmp_path / 'run', bad)
    assert not (tmp_path / 'run').exists()
    assert exc.value.key == 'optimization.phases[1].optimizer'


# ------------------------------------------------------------------------------------------ switches
@pytest.mark.parametrize('strategy', ['one_device', 'mirrored'])   # mirrored: 2 replicas (tests/conftest.py)
def test_switches_reload_the_best_weights_and_change_the_optimizer(tmp_path, monkeypatch, strategy):
    # validation loss is best at epoch 2; epochs 3..5 are worse
    script_val_loss(monkeypatch, [0.5, 0.3, 0.9, 0.8, 0.7])
    seen = record_epoch_starts(monkeypatch)
    trainer = make_trainer(tmp_path / 'run', phases_config(5, strategy=strategy))
    assert trainer.replicas == (2 if strategy == 'mirrored' else 1)
    result = trainer.fit()
    run = tmp_path / 'run'
    assert result.best_epoch == 2
    best = weights_of_checkpoint(str(run / 'checkpoints' / 'best' / 'best-2'))
    after_3 = weights_of_checkpoint(str(run / 'checkpoints' / 'ckpt-3'))
    # phase 2 (epoch 3) and phase 3 (epoch 4) start from the best weights, not from the last epoch's
    assert_weights_equal(seen[3][0], best, rtol=0, atol=0)
    assert_weights_equal(seen[4][0], best, rtol=0, atol=0)
    assert any(not np.array_equal(a, b) for a, b in zip(after_3, best))
    # Adam for epochs 1-2; a new SGD at epoch 3 (counting from 0); the same SGD continues at epoch 4
    assert isinstance(seen[2][1], keras.optimizers.Adam) and seen[1][1] is seen[2][1]
    assert isinstance(seen[3][1], keras.optimizers.SGD) and seen[3][2] == 0
    assert seen[4][1] is seen[3][1] and seen[4][2] == BATCHES_PER_EPOCH
    assert [r['lr'] for r in result.history] == pytest.approx([0.01, 0.01, 0.05, 0.02, 0.02])
    assert trainer.global_step == 5 * BATCHES_PER_EPOCH


def test_without_reload_best_a_phase_continues_from_the_last_weights(tmp_path, monkeypatch):
    script_val_loss(monkeypatch, [0.5, 0.3, 0.9, 0.8])
    seen = record_epoch_starts(monkeypatch)
    cfg = phases_config(4)
    for phase in cfg['optimization']['phases']:
        phase['reload_best'] = False
    make_trainer(tmp_path / 'run', cfg).fit()
    after_2 = weights_of_checkpoint(str(tmp_path / 'run' / 'checkpoints' / 'ckpt-2'))
    after_3 = weights_of_checkpoint(str(tmp_path / 'run' / 'checkpoints' / 'ckpt-3'))
    assert_weights_equal(seen[3][0], after_2, rtol=0, atol=0)
    assert_weights_equal(seen[4][0], after_3, rtol=0, atol=0)


def test_coupled_weight_decay_is_the_gradient_of_half_l2_over_every_variable(tmp_path):
    trainer = make_trainer(tmp_path / 'run', phases_config(4))
    variables = trainer.model.trainable_variables
    assert any(not v.name.endswith('kernel') for v in variables)          # biases are decayed too
    with tf.GradientTape() as tape:
        reg = trainer._regularization(trainer.model, 0.25)
    grads = tape.gradient(reg, variables)
    for g, v in zip(grads, variables):
        np.testing.assert_allclose(g.numpy(), 0.25 * v.numpy(), rtol=1e-6)


# ------------------------------------------------------------------------------------------ exact resume
def _reference(tmp_path):
    ref = make_trainer(tmp_path / 'ref', phases_config(4))
    ref.fit()
    return ref.model.get_weights()


def test_resume_at_a_switch_equals_the_uninterrupted_run(tmp_path):
    ref = _reference(tmp_path)
    first = make_trainer(tmp_path / 'run', phases_config(2))     # stops after epoch 2: Adam, before the switch
    first.fit()
    resumed = make_trainer(tmp_path / 'run', phases_config(4), resume=True)
    assert isinstance(resumed.optimizer, keras.optimizers.Adam)  # the checkpoint's optimizer, restored
    assert resumed.iterations == 2 * BATCHES_PER_EPOCH
    result = resumed.fit()
    assert result.epochs_completed == 4
    assert isinstance(resumed.optimizer, keras.optimizers.SGD)
    assert [r['lr'] for r in result.history] == pytest.approx([0.01, 0.01, 0.05, 0.02])
    assert_weights_equal(resumed.model.get_weights(), ref, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_resume_after_a_kill_between_switches_equals_the_uninterrupted_run(tmp_path):
    run, marker = tmp_path / 'run', tmp_path / 'in-epoch-4'
    cfg = phases_config(4)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='')
    # blocks while making epoch 4's 4th batch: epoch 3 (the SGD phase, with momentum) is checkpointed
    proc = subprocess.Popen([sys.executable, FIXTURE, 'trainer', '--config-json', json.dumps(cfg), '--run-dir',
                             str(run), '--block-at-batch', str(3 * BATCHES_PER_EPOCH + 4), '--marker', str(marker)],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(marker, proc, 'epoch 4')
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert not (run / 'checkpoints' / 'ckpt-4.index').exists()
    resumed = make_trainer(run, cfg, resume=True)
    assert isinstance(resumed.optimizer, keras.optimizers.SGD) and resumed.iterations == BATCHES_PER_EPOCH
    # the SGD momentum of the killed run is restored (continued by the last phase)
    assert all(np.any(v.numpy() != 0) for v in resumed.optimizer.variables if 'momentum' in v.path)
    assert int(resumed.recipe.steps_before.numpy()) == 2 * BATCHES_PER_EPOCH
    resumed.fit()
    assert_weights_equal(resumed.model.get_weights(), _reference(tmp_path), rtol=1e-5, atol=1e-7)


def test_changing_the_phases_of_a_run_is_refused_on_resume(tmp_path):
    make_trainer(tmp_path / 'run', phases_config(2)).fit()
    changed = phases_config(4)
    changed['optimization']['phases'][1]['learning_rate'] = 0.5
    with pytest.raises(ConfigError) as exc:
        make_trainer(tmp_path / 'run', changed, resume=True)
    assert exc.value.key == 'optimization.phases'


# ------------------------------------------------------------------------------------------ ready configs
# every config's validity: test_training_config.py; here the recipe ones, found without parsing
RECIPE_CONFIGS = [p for p in sorted(glob.glob(os.path.join(REPO, 'configs', '*.json')))
                  if read_json_file(p).get('optimization', {}).get('phases')]


def test_ready_recipe_configs_exist_for_every_dataset():
    names = {os.path.basename(p) for p in RECIPE_CONFIGS}
    assert {'mtat_short_res.json', 'mtat_hcnn.json', 'mtat_fcn.json', 'jamendo_top50_short_res.json',
            'msd_short_res.json'} <= names


@pytest.mark.parametrize('path', RECIPE_CONFIGS, ids=[os.path.basename(p) for p in RECIPE_CONFIGS])
def test_ready_recipe_configs_follow_won_et_al(path):
    """Adam, then SGD at decreasing LRs, best weights by validation loss reloaded at every switch,
    batch 16, every phase's optimizer buildable; the model builds at the configured window."""
    from training.trainer import _check_phase_optimizers, make_optimizer, phase_optimizer_config
    cfg = load_config(path)
    phases = cfg.optimization.phases
    assert cfg.input.batch_size == 16
    assert cfg.callbacks.early_stopping.monitor == 'val_loss'
    assert [p.optimizer for p in phases] == ['Adam'] + ['SGD'] * (len(phases) - 1)
    lrs = [p.learning_rate for p in phases[1:]]
    assert lrs == sorted(lrs, reverse=True) and len(set(lrs)) == len(lrs)
    assert all(p.reload_best for p in phases[1:])
    assert all(p.kwargs.get('nesterov') for p in phases[1:])
    _check_phase_optimizers(phases)
    for i in range(len(phases)):
        assert make_optimizer(phase_optimizer_config(phases, i), phases[i].learning_rate) is not None
    assert recipe.phase_starts(phases, cfg.optimization.epochs)[-1] < cfg.optimization.epochs
    assert 'won16' in cfg.description


# ------------------------------------------------------------------------------------------ mixed precision
def test_mixed_precision_without_a_gpu_warns_and_trains_in_float32(tmp_path, caplog):
    cfg = base_config(optimization={'epochs': 1, 'mixed_precision': True})
    with caplog.at_level(logging.WARNING, logger='training.trainer'):
        trainer = make_trainer(tmp_path / 'run', cfg)
    assert 'no GPU' in caplog.text
    assert not isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert trainer.model.get_layer('hidden').compute_dtype == 'float32'


def test_mixed_precision_loss_scaling_path(tmp_path, monkeypatch):
    """With the GPU check forced on, the CPU runs the mixed_float16 code path: float16 compute,
    float32 variables, the loss scaled and the gradients unscaled by the LossScaleOptimizer."""
    import training.trainer as trainer_module
    monkeypatch.setattr(trainer_module, '_gpu_available', lambda: True)
    scaled = []
    original = keras.optimizers.LossScaleOptimizer.scale_loss

    def scale_loss(self, loss):
        scaled.append(loss)
        return original(self, loss)

    monkeypatch.setattr(keras.optimizers.LossScaleOptimizer, 'scale_loss', scale_loss)
    cfg = base_config(distribution={'strategy': 'one_device'}, optimization={'epochs': 2, 'mixed_precision': True})
    trainer = make_trainer(tmp_path / 'run', cfg)
    assert keras.mixed_precision.global_policy().name == 'float32'      # put back after the build
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    hidden = trainer.model.get_layer('hidden')
    assert hidden.compute_dtype == 'float16' and hidden.kernel.dtype == 'float32'
    result = trainer.fit()
    assert scaled, 'the training step never scaled its loss'
    losses = [r['train_loss'] for r in result.history]
    assert all(np.isfinite(losses)) and losses[1] < losses[0]
    assert float(trainer.optimizer.dynamic_scale.numpy()) > 1
    # the loss scale is checkpointed; the run resumes in mixed precision and in float32 alike
    reader = tf.train.load_checkpoint(str(tmp_path / 'run' / 'checkpoints' / 'ckpt-2'))
    assert any(k.startswith('loss_scale/') for k in reader.get_variable_to_shape_map())
    resumed = make_trainer(tmp_path / 'run', dict(cfg, optimization={'epochs': 3, 'mixed_precision': True}),
                           resume=True)
    assert float(resumed.optimizer.dynamic_scale.numpy()) == float(trainer.optimizer.dynamic_scale.numpy())
    resumed.close()
    monkeypatch.setattr(trainer_module, '_gpu_available', lambda: False)
    plain = make_trainer(tmp_path / 'run', dict(cfg, optimization={'epochs': 3, 'mixed_precision': False}),
                         resume=True)
    plain.close()
    assert plain.iterations == resumed.iterations == 2 * BATCHES_PER_EPOCH
    assert not isinstance(plain.optimizer, keras.optimizers.LossScaleOptimizer)


def test_lr_range_test_of_a_recipe_sweeps_its_first_phases_optimizer(tmp_path, monkeypatch):
    from training.lr_find import lr_range_test
    made = []
    original = Trainer._new_optimizer

    def new_optimizer(self, opt_cfg):
        made.append(opt_cfg.name)
        return original(self, opt_cfg)

    monkeypatch.setattr(Trainer, '_new_optimizer', new_optimizer)
    res = lr_range_test(parse_config(phases_config(4)), run_dir=str(tmp_path / 'lr'), min_lr=1e-5, max_lr=1e-1,
                        steps=10, data=make_source(16), model_fn=tiny_model_fn())
    assert made == ['Adam']
    np.testing.assert_allclose(res['lr'], 1e-5 * 1e4 ** (np.arange(len(res['lr'])) / 10), rtol=1e-4)


def test_set_addresses_one_phase_of_a_ready_config():
    """``--set optimization.phases[i].key=value`` changes one phase (a quick try of a ready recipe)."""
    path = os.path.join(REPO, 'configs', 'mtat_short_res.json')
    sets = ['optimization.epochs=4'] + [f'optimization.phases[{i}].epochs=1' for i in range(3)]
    cfg = load_config(path, sets)
    assert [p.epochs for p in cfg.optimization.phases][:3] == [1, 1, 1]
    assert recipe.phase_starts(cfg.optimization.phases, 4) == [0, 1, 2, 3]
    with pytest.raises(ConfigError) as exc:
        load_config(path, ['optimization.phases[9].epochs=1'])
    assert exc.value.key == 'optimization.phases[9]'
    with pytest.raises(ConfigError) as exc:
        load_config(path, ['optimization.phases[0].epoch=1'])              # misspelt: named in full
    assert exc.value.key == 'optimization.phases[0].epoch'


def test_mixed_precision_phase_switch_keeps_the_loss_scale(tmp_path, monkeypatch):
    import training.trainer as trainer_module
    monkeypatch.setattr(trainer_module, '_gpu_available', lambda: True)
    cfg = phases_config(3)
    cfg['optimization']['mixed_precision'] = True
    trainer = make_trainer(tmp_path / 'run', cfg)
    seen = record_epoch_starts(monkeypatch)
    trainer.optimizer.dynamic_scale.assign(64.0)      # as if overflows had lowered it
    result = trainer.fit()
    assert isinstance(seen[3][1], keras.optimizers.LossScaleOptimizer)
    assert isinstance(seen[3][1].inner_optimizer, keras.optimizers.SGD)
    assert float(trainer.optimizer.dynamic_scale.numpy()) <= 128.0          # not back at 2 ** 15
    assert all(np.isfinite(r['train_loss']) for r in result.history)
