"""The latent task: config, losses, the linear head, validation metrics, training on in-memory data,
resume after a kill and 1 vs 2 replicas (in a subprocess), and the image source dispatch.

Also a command line for the subprocess tests (this file run as a script)::

    python tests/test_training_latent.py trainer --config-json '{...}' --run-dir DIR [--resume]
        [--block-at-batch N --marker PATH]
    python tests/test_training_latent.py replicas --config-json '{...}' --run-dir DIR
"""
import argparse
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

if __name__ == '__main__':  # run as a script: make the repo importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests._training_fixtures import BATCHES_PER_EPOCH, BatchGate, base_config, input_info, make_arrays  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIM = 6


def latent_arrays(seed=0):
    """:func:`make_arrays` with each example's tags mapped to a DIM-d target vector (a fixed projection)."""
    a = make_arrays(seed=seed)
    proj = np.random.default_rng(99).normal(size=(a['y_train'].shape[1], DIM)).astype(np.float32)
    return dict(a, y_train=a['y_train'] @ proj + 0.1, y_val=a['y_val'] @ proj + 0.1)


def latent_source(batch_size, gate=None, weights=None):
    import tensorflow as tf

    from training.data import ArraySource
    from training.tasks import latent_labels
    a = latent_arrays()
    src = ArraySource(a['x_train'], a['y_train'], latent_labels(DIM), input_info(), batch_size, x_val=a['x_val'],
                      y_val=a['y_val'], val_track_ids=a['val_ids'], weights=weights)
    if gate is not None:
        base = src.train_dataset

        def through_gate(x, *rest):
            return (x + tf.numpy_function(gate, [], tf.float32), *rest)

        src.train_dataset = lambda seed, repeat: base(seed, repeat).map(through_gate)
    return src


def latent_config(**sections):
    cfg = base_config(**sections)
    cfg.setdefault('task', {}).update({'kind': 'latent', 'targets': 'unused-in-memory-data'})
    return cfg


def make_trainer(run_dir, *, resume=False, source=None, model_fn=None, **sections):
    from tests._training_fixtures import tiny_model_fn
    from training.config import parse_config
    from training.trainer import Trainer
    cfg = parse_config(latent_config(**sections))
    return Trainer(cfg, run_dir=str(run_dir), resume=resume, export=False,
                   data=source or latent_source(cfg.input.batch_size), model_fn=model_fn or tiny_model_fn())


# ------------------------------------------------------------------------------------------ config
def test_latent_config_defaults_and_combinations():
    from training.config import ConfigError, config_to_dict, parse_config
    tags = parse_config({})
    assert tags.task.kind == 'tags' and tags.task.loss_name == 'bce'
    assert tags.callbacks.early_stopping.monitor == 'val_pr_auc_macro'
    latent = parse_config({'task': {'kind': 'latent', 'targets': 't'}})
    assert latent.task.loss_name == 'cosine'
    assert latent.callbacks.early_stopping.monitor == latent.callbacks.reduce_on_plateau.monitor == 'val_cosine'
    assert config_to_dict(latent)['callbacks']['early_stopping']['monitor'] == 'val_cosine'   # recorded
    chosen = parse_config({'task': {'kind': 'latent', 'targets': 't', 'loss': 'mse'},
                           'callbacks': {'early_stopping': {'monitor': 'val_recall_at_k'}}})
    assert chosen.task.loss_name == 'mse' and chosen.callbacks.early_stopping.monitor == 'val_recall_at_k'
    bad = [({'task': {'kind': 'latent'}}, 'task.targets'),
           ({'task': {'kind': 'latent', 'targets': 't', 'loss': 'bce'}}, 'task.loss'),
           ({'task': {'loss': 'cosine'}}, 'task.loss'),
           ({'task': {'targets': 't'}}, 'task.targets'),
           ({'task': {'kind': 'latent', 'targets': 't'},
             'callbacks': {'early_stopping': {'monitor': 'val_pr_auc_macro'}}}, 'callbacks.early_stopping.monitor'),
           ({'callbacks': {'reduce_on_plateau': {'monitor': 'val_cosine'}}}, 'callbacks.reduce_on_plateau.monitor'),
           ({'dataset': {'kind': 'images'}}, 'dataset.kind'),
           ({'dataset': {'weights': ''}}, 'dataset.weights'),
           ({'dataset': {'images': {'image_size': 64}}}, 'dataset.images'),
           ({'task': {'kind': 'latent', 'targets': 't', 'recall_k': 0}}, 'task.recall_k')]
    for data, key in bad:
        with pytest.raises(ConfigError) as e:
            parse_config(data)
        assert e.value.key == key, (data, str(e.value))
    # an image run may take its targets from its pairs folder
    assert parse_config({'dataset': {'kind': 'images'}, 'task': {'kind': 'latent'}}).task.targets is None
    images = parse_config({'dataset': {'kind': 'images', 'images': {'image_size': 64}}, 'task': {'kind': 'latent'}})
    assert images.dataset.images == {'image_size': 64}


def test_monitor_directions():
    from training.config import monitor_mode
    assert monitor_mode('val_cosine') == monitor_mode('val_recall_at_k') == 'max'
    assert monitor_mode('val_loss') == 'min'


# ------------------------------------------------------------------------------------------ pieces
def test_per_example_losses():
    import tensorflow as tf

    from training.tasks import per_example_loss
    y = tf.constant([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    p = tf.constant([[2.0, 0.0], [1.0, 0.0], [-3.0, -4.0]])
    np.testing.assert_allclose(per_example_loss('cosine', y, p).numpy(), [0.0, 1.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(per_example_loss('mse', y, p).numpy(), [0.5, 2.5, 50.0], atol=1e-6)
    assert per_example_loss('cosine', tf.zeros([1, 2]), tf.ones([1, 2])).numpy()[0] == pytest.approx(1.0)


def test_linear_head_replaces_the_sigmoid_and_shares_the_layers():
    from tests._training_fixtures import tiny_model_fn
    from training.tasks import linear_head, task_model_fn
    tagger = tiny_model_fn()(DIM, input_info())
    latent = linear_head(tagger)
    x = make_arrays()['x_val'][:4]
    logits = tagger.get_layer('logits')(tagger.get_layer('hidden')(tagger.get_layer('frontend_dense')(
        tagger.get_layer('flatten')(x))))
    np.testing.assert_allclose(latent(x).numpy(), logits.numpy(), rtol=1e-5, atol=1e-6)
    assert latent.output_names == ['tags'] and latent.get_layer('hidden') is tagger.get_layer('hidden')
    assert np.any(latent(x).numpy() < 0)                          # linear: not squashed into (0, 1)
    assert linear_head(latent) is latent                          # no sigmoid left: unchanged
    assert task_model_fn(tiny_model_fn(), 'tags')(DIM, input_info()).get_layer('tags').activation.__name__ == 'sigmoid'


def test_latent_metrics():
    from training.tasks import LatentAggregator, latent_metrics
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(20, 5))
    perfect = latent_metrics(2.0 * targets, targets, k=3)        # scale does not matter to cosine
    assert perfect['cosine'] == pytest.approx(1.0) and perfect['recall_at_k'] == 1.0 and perfect['k'] == 3
    noise = latent_metrics(rng.normal(size=(20, 5)), targets, k=3)
    assert noise['cosine'] < 0.5 and noise['recall_at_k'] < 0.6
    assert latent_metrics(targets[:3], targets[:3], k=10)['k'] == 2       # at most n - 1 neighbours
    assert np.isnan(latent_metrics(targets[:1], targets[:1], k=10)['recall_at_k'])
    agg = LatentAggregator()
    agg.update([b'a', b'b', b'a'], [[1.0, 0.0], [0.0, 1.0], [3.0, 2.0]], [[1, 1], [0, 1], [1, 1]])
    ids, preds, tr = agg.result()
    assert ids == ['a', 'b']
    np.testing.assert_allclose(preds, [[2.0, 1.0], [0.0, 1.0]])
    np.testing.assert_allclose(tr, [[1, 1], [0, 1]])


# ------------------------------------------------------------------------------------------ training
def test_latent_run_learns_and_records_its_task(tmp_path):
    from modeling.rundir import load_run_info
    run = tmp_path / 'run'
    trainer = make_trainer(run, optimization={'epochs': 3})
    result = trainer.fit()
    assert result.monitor == 'val_cosine'
    assert json.loads((run / 'labels.json').read_text()) == [f'dim_{i:03d}' for i in range(DIM)]
    cfg = json.loads((run / 'config.json').read_text())
    assert cfg['task']['kind'] == 'latent' and cfg['task']['targets'] == os.path.abspath('unused-in-memory-data')
    assert load_run_info(run).task == 'latent'
    header = (run / 'history.csv').read_text().splitlines()[0].split(',')
    assert header[-2:] == ['val_cosine', 'val_recall_at_k']
    rows = result.history
    assert rows[-1]['val_cosine'] > rows[0]['val_cosine'] and rows[-1]['val_cosine'] > 0.8
    assert rows[-1]['val_recall_at_k'] > 0.5                      # random: 10 / 23
    assert rows[-1]['train_loss'] < rows[0]['train_loss']
    best = json.loads((run / 'checkpoints' / 'best' / 'best.json').read_text())
    assert best['monitor'] == 'val_cosine'
    assert best['value'] == pytest.approx(max(r['val_cosine'] for r in rows))
    out = trainer.model(latent_arrays()['x_val'][:8]).numpy()
    assert out.shape == (8, DIM) and np.any(out < 0)               # linear outputs


def test_mse_loss_and_recall_monitor(tmp_path):
    trainer = make_trainer(tmp_path / 'run', task={'loss': 'mse'}, optimization={'epochs': 2},
                           callbacks={'early_stopping': {'monitor': 'val_recall_at_k', 'patience': 5}})
    result = trainer.fit()
    assert result.monitor == 'val_recall_at_k'
    assert result.history[-1]['train_loss'] < result.history[0]['train_loss']
    # the validation loss is the configured loss (MSE), not the cosine
    assert result.history[-1]['val_loss'] > 0.1


def test_tags_history_has_no_latent_columns(tmp_path):
    from modeling.rundir import HISTORY_COLUMNS, History
    h = History(tmp_path / 'history.csv')
    h.append({'epoch': 1, 'train_loss': 0.5})
    assert (tmp_path / 'history.csv').read_text().splitlines()[0] == ','.join(HISTORY_COLUMNS)


def test_latent_mixed_precision_path(tmp_path, monkeypatch):
    """The mixed_float16 code path (GPU check forced on): float16 compute, a float32 linear output, the
    cosine loss in float32, scaled by the LossScaleOptimizer; the run learns."""
    import keras

    import training.trainer as trainer_module
    monkeypatch.setattr(trainer_module, '_gpu_available', lambda: True)
    trainer = make_trainer(tmp_path / 'run', distribution={'strategy': 'one_device'},
                           optimization={'epochs': 2, 'mixed_precision': True})
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert trainer.model.get_layer('hidden').compute_dtype == 'float16'
    out = trainer.model.get_layer('tags')
    assert out.compute_dtype == 'float32' and out.activation.__name__ == 'linear'
    result = trainer.fit()
    assert result.history[1]['train_loss'] < result.history[0]['train_loss']
    assert np.isfinite(result.history[1]['val_cosine'])


def test_registry_model_gets_a_linear_head(tmp_path):
    """A registry model (sigmoid output ``tags``) trained on the latent task exports a linear output that
    the run directory loads back."""
    from modeling.rundir import load_run_model
    from training.config import parse_config
    from training.trainer import Trainer
    cfg = parse_config(latent_config(model={'name': 'musicnn+gru', 'hparams': {}},
                                     distribution={'strategy': 'one_device'}, optimization={'epochs': 1}))
    trainer = Trainer(cfg, run_dir=str(tmp_path / 'run'), data=latent_source(16))
    assert trainer.model.get_layer('tags').activation.__name__ == 'linear'
    trainer.fit()
    model, _ = load_run_model(tmp_path / 'run')
    x = latent_arrays()['x_val'][:4]
    np.testing.assert_allclose(model(x).numpy(), trainer.model(x).numpy(), rtol=1e-4, atol=1e-5)
    assert model.get_layer('tags').activation.__name__ == 'linear'


def test_command_line_trains_a_latent_run_and_sums_it_up(tmp_path, monkeypatch, capsys):
    import training.trainer
    from tests._training_fixtures import tiny_model_fn
    from training.__main__ import main
    monkeypatch.setattr(training.trainer, 'TFRecordSource', lambda cfg: latent_source(cfg.input.batch_size))
    monkeypatch.setattr(training.trainer, 'registry_model_fn', lambda model_cfg: tiny_model_fn())
    config = tmp_path / 'latent.json'
    config.write_text(json.dumps(latent_config(distribution={'strategy': 'one_device'}, optimization={'epochs': 1})))
    assert main(['--config', str(config), '--run', str(tmp_path / 'run'), '-q', '--no-progress'],
                prog='musetag train') == 0
    out = capsys.readouterr().out
    assert 'val cosine 0.' in out and 'recall@k' in out and 'ROC-AUC' not in out


def test_lr_range_test_on_a_latent_task(tmp_path):
    from tests._training_fixtures import tiny_model_fn
    from training.config import parse_config
    from training.lr_find import lr_range_test
    cfg = parse_config(latent_config(distribution={'strategy': 'one_device'}))
    res = lr_range_test(cfg, run_dir=str(tmp_path / 'lr'), data=latent_source(16), model_fn=tiny_model_fn(),
                        min_lr=1e-5, max_lr=1.0, steps=24)
    assert len(res['loss']) > 5 and all(0 <= v <= 2.0 for v in res['loss'][:5])   # 1 - cosine lies in [0, 2]
    assert (tmp_path / 'lr' / 'lr_find.png').exists()


def test_a_model_of_another_output_size_is_refused(tmp_path):
    from tests._training_fixtures import tiny_model_fn
    from training.config import ConfigError
    with pytest.raises(ConfigError) as e:
        make_trainer(tmp_path / 'run', source=latent_source(16), model_fn=lambda n, info: tiny_model_fn()(3, info))
    assert e.value.key == 'model.name' and 'target vectors of task.targets have dimension 6' in str(e.value)


# ------------------------------------------------------------------------------------------ image dispatch
class _ImageInfo:
    kind = 'image'

    def features_json(self):
        return {'kind': 'image', 'image_size': [4, 4], 'channels': 3}


class TinyImageSource:
    """A source of the image source's interface: 4x4 RGB pictures whose colour gives the target."""

    def __init__(self, cfg=None, n=64, batch_size=16, weights=True):
        rng = np.random.default_rng(3)
        self.cfg, self.labels, self.info, self.batch_size = cfg, ['dim_000', 'dim_001', 'dim_002'], _ImageInfo(), \
            batch_size
        colours = rng.random((n, 3)).astype(np.float32)
        self.x = np.clip(colours[:, None, None, :] + rng.normal(scale=0.05, size=(n, 4, 4, 3)), 0, 1).astype(np.float32)
        self.y = (colours - 0.5).astype(np.float32)
        self.w = np.ones(n, np.float32) if weights else None
        self.ids = np.array([f'IMG{i:03d}' for i in range(n)])

    def steps_hint(self):
        return len(self.x) // self.batch_size

    def train_dataset(self, seed, repeat):
        import tensorflow as tf
        arrays = (self.x, self.y) if self.w is None else (self.x, self.y, self.w)
        ds = tf.data.Dataset.from_tensor_slices(arrays).shuffle(len(self.x), seed=seed)
        return (ds.repeat() if repeat else ds).batch(self.batch_size, drop_remainder=True)

    def validation_dataset(self):
        import tensorflow as tf
        return tf.data.Dataset.from_tensor_slices((self.x[:24], self.y[:24], self.ids[:24])).batch(8)


def tiny_image_model(n_outputs, info):
    import keras
    inp = keras.Input((4, 4, 3), name='image')
    h = keras.layers.Flatten()(inp)
    h = keras.layers.Dense(16, activation='relu', kernel_initializer=keras.initializers.GlorotUniform(seed=1))(h)
    out = keras.layers.Dense(n_outputs, name='tags', kernel_initializer=keras.initializers.GlorotUniform(seed=2))(h)
    return keras.Model(inp, out)


def image_config(**extra):
    cfg = base_config(dataset={'kind': 'images', 'dir': 'pairs'}, task={'kind': 'latent'},
                      distribution={'strategy': 'one_device'}, optimization={'epochs': 3})
    cfg.update(extra)
    return cfg


def test_images_dispatch_to_imagemusic_and_train(tmp_path, monkeypatch):
    import types

    from modeling.rundir import load_run_info
    from training.config import parse_config
    from training.trainer import Trainer
    made = []

    def image_source(cfg):
        made.append(cfg)
        return TinyImageSource(cfg)

    fake = types.ModuleType('imagemusic.data')
    fake.ImageSource = image_source
    monkeypatch.setitem(sys.modules, 'imagemusic.data', fake)
    cfg = parse_config(image_config())
    trainer = Trainer(cfg, run_dir=str(tmp_path / 'run'), export=False, model_fn=tiny_image_model)
    assert made == [cfg] and isinstance(trainer.data, TinyImageSource)
    result = trainer.fit()
    assert result.history[-1]['val_cosine'] > result.history[0]['val_cosine']
    info = load_run_info(tmp_path / 'run')
    assert info.kind == 'image' and info.image_size == (4, 4) and info.sr is None
    assert json.loads((tmp_path / 'run' / 'features.json').read_text())['channels'] == 3


def test_audio_augmentation_is_refused_for_images(tmp_path):
    from training.config import ConfigError, parse_config
    from training.trainer import Trainer
    cfg = parse_config(image_config(augment={'spec_augment': {'time_masks': 1, 'time_mask_frames': 2}}))
    with pytest.raises(ConfigError) as e:
        Trainer(cfg, run_dir=str(tmp_path / 'run'), export=False, data=TinyImageSource(), model_fn=tiny_image_model)
    assert e.value.key == 'augment.spec_augment'


# ------------------------------------------------------------------------------------------ subprocesses
def test_latent_run_resumes_exactly_after_a_kill(tmp_path):
    from tests.test_training_loop import _subprocess_env, assert_weights_equal, read_history, wait_for
    run, marker = tmp_path / 'run', tmp_path / 'in-epoch-2'
    sections = {'distribution': {'strategy': 'one_device'}, 'optimization': {'epochs': 3}}
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), 'trainer', '--config-json',
                             json.dumps(latent_config(**sections)), '--run-dir', str(run),
                             '--block-at-batch', str(BATCHES_PER_EPOCH + 4), '--marker', str(marker)],
                            env=_subprocess_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        wait_for(marker, proc, 'epoch 2')
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert not (run / 'checkpoints' / 'ckpt-2.index').exists()       # killed mid-epoch 2
    assert [int(r['epoch']) for r in read_history(run)] == [1]
    resumed = make_trainer(run, resume=True, **sections)
    assert int(resumed.state.epoch.numpy()) == 1 and resumed.iterations == BATCHES_PER_EPOCH
    result = resumed.fit()
    assert result.epochs_completed == 3
    ref = make_trainer(tmp_path / 'ref', **sections)
    ref_result = ref.fit()
    assert_weights_equal(resumed.model.get_weights(), ref.model.get_weights(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose([r['val_cosine'] for r in result.history],
                               [r['val_cosine'] for r in ref_result.history], rtol=1e-5)


def test_latent_one_vs_two_replicas_same_trajectory(tmp_path):
    from tests.test_training_loop import _subprocess_env
    r = subprocess.run([sys.executable, os.path.abspath(__file__), 'replicas', '--config-json',
                        json.dumps(latent_config(optimization={'epochs': 2, 'weight_decay': 1e-3})),
                        '--run-dir', str(tmp_path)], env=_subprocess_env(), cwd=REPO, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = json.loads(r.stdout.strip().splitlines()[-1])
    assert runs['one']['replicas'] == 1 and runs['two']['replicas'] == 2
    np.testing.assert_allclose(runs['one']['losses'], runs['two']['losses'], rtol=1e-4)
    np.testing.assert_allclose(runs['one']['val_cosine'], runs['two']['val_cosine'], rtol=1e-4)


# ------------------------------------------------------------------------------------------ script
def _script_trainer(args) -> dict:
    from tests._training_fixtures import tiny_model_fn
    from training.config import parse_config
    from training.trainer import Trainer
    cfg = parse_config(json.loads(args.config_json))
    gate = BatchGate(args.block_at_batch, args.marker) if args.block_at_batch else None
    trainer = Trainer(cfg, run_dir=args.run_dir, resume=args.resume, export=False,
                      data=latent_source(cfg.input.batch_size, gate=gate), model_fn=tiny_model_fn())
    result = trainer.fit()
    return {'replicas': trainer.replicas, 'losses': [r['train_loss'] for r in result.history],
            'val_cosine': [r['val_cosine'] for r in result.history]}


def _script_replicas(args) -> dict:
    out = {}
    base = json.loads(args.config_json)
    for name, strategy in (('one', 'one_device'), ('two', 'mirrored')):
        cfg = dict(base, distribution={'strategy': strategy})
        out[name] = _script_trainer(argparse.Namespace(config_json=json.dumps(cfg), run_dir=os.path.join(
            args.run_dir, name), resume=False, block_at_batch=None, marker=None))
    return out


def _main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument('mode', choices=('trainer', 'replicas'))
    p.add_argument('--config-json', required=True)
    p.add_argument('--run-dir', required=True)
    p.add_argument('--resume', action='store_true')
    p.add_argument('--block-at-batch', type=int, default=None)
    p.add_argument('--marker', default=None)
    args = p.parse_args()
    from core.logs import import_tensorflow
    tf = import_tensorflow()
    cpu = tf.config.list_physical_devices('CPU')[0]      # two logical CPUs, as in the test session
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    result = _script_trainer(args) if args.mode == 'trainer' else _script_replicas(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(_main())
