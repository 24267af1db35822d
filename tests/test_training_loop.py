"""The training loop on tiny in-memory data and a tiny deterministic model (2 logical CPUs).

Covers: every run-dir artifact; 1 vs 2 replicas; validation metrics = evaluation.metrics on
whole tracks; resume (in process, and after SIGKILL mid-epoch in a subprocess) restoring epoch,
optimizer iterations, weights, LR-schedule position and early-stopping/plateau state; fine-tuning
with a new tag set; the LR range test; multi-worker training (slow).
"""
import csv
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from modeling.rundir import HISTORY_COLUMNS
from tests._training_fixtures import (BATCHES_PER_EPOCH, TAGS, base_config, feature_params, input_info, make_arrays,
                                      make_source, tiny_model_fn)
from training.config import ConfigError, parse_config
from training.trainer import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, 'tests', '_training_fixtures.py')


def make_trainer(run_dir, *, resume=False, source=None, export=False, **sections):
    cfg = parse_config(base_config(**sections))
    return Trainer(cfg, run_dir=str(run_dir), resume=resume, export=export,
                   data=source or make_source(cfg.input.batch_size), model_fn=tiny_model_fn())


def read_history(run_dir):
    with open(os.path.join(run_dir, 'history.csv')) as fh:
        return list(csv.DictReader(fh))


def weights_of_checkpoint(path):
    model = tiny_model_fn()(len(TAGS), input_info())
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    return model.get_weights()


def assert_weights_equal(a, b, **tol):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, **tol)


def tb_tags(directory):
    tags = set()
    for path in glob.glob(os.path.join(directory, 'events.out.tfevents.*')):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add(value.tag)
    return tags


# ------------------------------------------------------------------------------------------
def test_short_run_writes_every_artifact(tmp_path):
    run = tmp_path / 'run'
    old_umask = os.umask(0o022)
    try:
        trainer = make_trainer(run, export=True, optimization={'epochs': 2})
        assert trainer.replicas == 2                               # both logical CPUs by default
        result = trainer.fit()
    finally:
        os.umask(old_umask)
    # every file a colleague needs is readable by the group: a plain open()'s mode, never 0600/0700
    modes = {str(p.relative_to(run)): p.stat().st_mode & 0o777 for p in [run, *run.rglob('*')]}
    assert {k: oct(v) for k, v in modes.items() if v not in (0o644, 0o755)} == {}
    for name in ('config.json', 'labels.json', 'features.json', 'history.csv', 'checkpoints/best/best.json',
                 'model.keras'):
        assert modes[name] == 0o644, name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]      # no lock or temp left
    assert result.epochs_completed == 2 and result.best_epoch in (1, 2)
    cfg = json.loads((run / 'config.json').read_text())
    assert parse_config(cfg).optimization.epochs == 2               # resolved config, valid
    assert cfg['logging']['run_dir'] == str(run)
    assert json.loads((run / 'labels.json').read_text()) == TAGS
    feats = json.loads((run / 'features.json').read_text())
    assert feats == {'input': 'log-mel', 'sr': 16000, 'params': feature_params(), 'window_seconds': 0.25,
                     'input_frames': 8, 'input_samples': None}
    rows = read_history(run)
    assert list(rows[0]) == list(HISTORY_COLUMNS)
    assert [int(r['epoch']) for r in rows] == [1, 2]
    assert float(rows[1]['train_loss']) < float(rows[0]['train_loss'])
    for r in rows:
        assert 0.5 < float(r['val_roc_auc_macro']) <= 1.0 and float(r['lr']) == pytest.approx(0.01)
        assert int(r['steps']) == 256 // 16
    ckpt = tf.train.latest_checkpoint(str(run / 'checkpoints'))
    assert ckpt.endswith('ckpt-2')
    best = json.loads((run / 'checkpoints' / 'best' / 'best.json').read_text())
    assert best['epoch'] == result.best_epoch and best['monitor'] == 'val_pr_auc_macro'
    assert tb_tags(str(run / 'tensorboard' / 'train')) >= {'epoch_loss', 'learning_rate', 'batch_loss', 'config'}
    assert tb_tags(str(run / 'tensorboard' / 'validation')) >= {'epoch_loss', 'roc_auc_macro', 'pr_auc_macro',
                                                                'roc_auc_micro', 'pr_auc_micro'}
    # exports hold the BEST weights and agree with each other
    best_w = weights_of_checkpoint(tf.train.latest_checkpoint(str(run / 'checkpoints' / 'best')))
    exported = keras.models.load_model(str(run / 'model.keras'), compile=False)
    assert exported.output_names == ['tags']
    assert_weights_equal(exported.get_weights(), best_w)
    x = make_arrays()['x_val'][:5]
    served = tf.saved_model.load(str(run / 'saved_model'))
    np.testing.assert_allclose(served.serve(tf.constant(x)).numpy(), exported(x).numpy(), atol=1e-6)


def test_one_vs_two_replicas_same_trajectory(tmp_path):
    runs = {}
    for name, strategy in (('one', 'one_device'), ('two', 'mirrored')):
        trainer = make_trainer(tmp_path / name, distribution={'strategy': strategy},
                               optimization={'epochs': 2, 'weight_decay': 1e-3})
        runs[name] = (trainer.replicas, trainer.fit(), trainer.model.get_weights(), trainer.iterations)
    assert runs['one'][0] == 1 and runs['two'][0] == 2
    loss1 = [r['train_loss'] for r in runs['one'][1].history]
    loss2 = [r['train_loss'] for r in runs['two'][1].history]
    np.testing.assert_allclose(loss1, loss2, rtol=1e-4)
    assert runs['one'][3] == runs['two'][3] == 32                   # same global batches, same steps
    assert_weights_equal(runs['one'][2], runs['two'][2], rtol=1e-3, atol=1e-5)


def test_validation_metrics_are_track_level_and_exact(tmp_path):
    from evaluation.metrics import aggregate_windows, tagging_metrics
    trainer = make_trainer(tmp_path / 'run', optimization={'epochs': 1})
    val = trainer.validate()
    a = make_arrays()
    probs = trainer.model(a['x_val'], training=False).numpy()
    ids, scores, labels = aggregate_windows(a['val_ids'], probs, a['y_val'])
    assert val['n_tracks'] == len(ids) == 24 and val['n_windows'] == 72
    m = tagging_metrics(labels, scores, labels=TAGS)
    for key in ('roc_auc_macro', 'pr_auc_macro', 'roc_auc_micro', 'pr_auc_micro'):
        assert val['val_' + key] == pytest.approx(m[key], abs=1e-6)
    bce = -np.mean(np.mean(a['y_val'] * np.log(np.clip(probs, 1e-7, 1)) +
                           (1 - a['y_val']) * np.log(np.clip(1 - probs, 1e-7, 1)), axis=1))
    assert val['val_loss'] == pytest.approx(bce, rel=1e-4)


def test_resume_in_process_equals_uninterrupted_run(tmp_path):
    sections = dict(distribution={'strategy': 'one_device'},
                    callbacks={'early_stopping': {'patience': 3, 'min_delta': 10.0},
                               'reduce_on_plateau': {'patience': 1, 'factor': 0.5, 'min_delta': 10.0}},
                    optimization={'epochs': 4})
    ref = make_trainer(tmp_path / 'ref', **sections)
    ref_result = ref.fit()
    # the monitored value can never improve by 10: reductions after epochs 2, 3, 4 (patience 1)
    # and early stopping after epoch 4 (wait 3)
    assert [r['lr'] for r in ref_result.history] == pytest.approx([0.01, 0.01, 0.005, 0.0025])
    assert ref_result.stopped_early and ref_result.epochs_completed == 4

    part = dict(sections, optimization={'epochs': 2})
    first = make_trainer(tmp_path / 'run', **part)
    first.fit()
    resumed = make_trainer(tmp_path / 'run', resume=True, **sections)
    assert int(resumed.state.epoch.numpy()) == 2 and resumed.iterations == 32
    assert float(resumed.state.lr_scale.numpy()) == pytest.approx(0.5)
    assert int(resumed.state.es_wait.numpy()) == 1
    assert resumed.current_lr() == pytest.approx(0.005)             # schedule position restored
    result = resumed.fit()
    assert result.stopped_early and result.epochs_completed == 4
    assert [int(r['epoch']) for r in read_history(tmp_path / 'run')] == [1, 2, 3, 4]
    assert [r['lr'] for r in result.history] == pytest.approx([0.01, 0.01, 0.005, 0.0025])
    assert_weights_equal(resumed.model.get_weights(), ref.model.get_weights(), rtol=1e-5, atol=1e-7)
    # an early-stopped run stays stopped when resumed again
    again = make_trainer(tmp_path / 'run', resume=True, **dict(sections, optimization={'epochs': 9}))
    assert again.fit().epochs_completed == 4


def test_run_dir_guards(tmp_path):
    trainer = make_trainer(tmp_path / 'run', optimization={'epochs': 1})
    trainer.fit()
    with pytest.raises(ConfigError, match=r'logging\.run_dir: .*already holds checkpoints.*--resume'):
        make_trainer(tmp_path / 'run')
    with pytest.raises(ConfigError, match=r'^config error: model\.hparams: differs from the resumed run'):
        make_trainer(tmp_path / 'run', resume=True, model={'hparams': {'width': 3}})
    # resume without any checkpoint simply starts (safe to always pass --resume)
    fresh = make_trainer(tmp_path / 'fresh', resume=True, optimization={'epochs': 1})
    assert int(fresh.state.epoch.numpy()) == 0


def test_a_training_split_smaller_than_one_batch_is_refused_at_once(tmp_path):
    """Partial batches are dropped: with steps_per_epoch (a repeated dataset) the pipeline would
    search for a full batch forever, so the trainer refuses before building anything."""
    few = make_arrays(n_train=10, n_tags=len(TAGS))
    with pytest.raises(ConfigError, match=r'input\.batch_size: the training split has fewer examples than one '
                                          r'batch of 16'):
        make_trainer(tmp_path / 'run', source=make_source(16, arrays=few),
                     optimization={'epochs': 1, 'steps_per_epoch': 3})
    assert not os.path.exists(tmp_path / 'run' / 'checkpoints')


def test_cyclic_schedule_drives_the_learning_rate(tmp_path):
    trainer = make_trainer(tmp_path / 'run', optimization={
        'epochs': 2, 'optimizer': {'name': 'SGD', 'kwargs': {'momentum': 0.9}},
        'schedule': {'name': 'cyclic', 'max_lr': 0.02, 'div_factor': 4, 'step_size_epochs': 0.5}})
    assert trainer.steps_per_epoch == 16                            # from the data source
    result = trainer.fit()
    s, lo, hi = 8.0, 0.005, 0.02

    def formula(step):
        cycle = np.floor(step / (2 * s))
        return lo + (hi - lo) * (1 - abs(step / s - 2 * cycle - 1))

    for row in result.history:
        assert row['lr'] == pytest.approx(formula(16 * row['epoch'] - 1), rel=1e-5)
    assert trainer.current_lr(4) == pytest.approx(formula(4), rel=1e-5)


def test_fine_tuning_new_tag_set(tmp_path):
    src_run = tmp_path / 'src'
    make_trainer(src_run, export=True, optimization={'epochs': 1}).fit()
    src = keras.models.load_model(str(src_run / 'model.keras'), compile=False)
    new_tags = ['rock', 'pop', 'metal']                              # 'metal' is new
    a = make_arrays(n_tags=3, seed=5)
    source = make_source(16, arrays=a, labels=new_tags)
    trainer = make_trainer(tmp_path / 'ft', source=source, optimization={'epochs': 1},
                           model={'init_from': str(src_run), 'freeze_frontend': True})
    rep = trainer.finetune_report
    assert set(rep['copied']) == {'frontend_dense', 'hidden'} and rep['output_tags_copied'] == 2
    assert rep['frozen'] == ['frontend_dense']
    m = trainer.model
    np.testing.assert_array_equal(m.get_layer('hidden').get_weights()[0], src.get_layer('hidden').get_weights()[0])
    k_new, b_new = m.get_layer('logits').get_weights()
    k_src, b_src = src.get_layer('logits').get_weights()
    np.testing.assert_array_equal(k_new[:, :2], k_src[:, :2])      # rock, pop columns copied
    fresh = tiny_model_fn()(3, input_info()).get_layer('logits').get_weights()[0]
    np.testing.assert_array_equal(k_new[:, 2], fresh[:, 2])         # metal: fresh initialisation
    frozen_before = m.get_layer('frontend_dense').get_weights()
    hidden_before = m.get_layer('hidden').get_weights()[0].copy()
    trainer.fit()
    assert_weights_equal(m.get_layer('frontend_dense').get_weights(), frozen_before)
    assert not np.allclose(m.get_layer('hidden').get_weights()[0], hidden_before)
    assert json.loads((tmp_path / 'ft' / 'labels.json').read_text()) == new_tags
    assert m.output_shape == (None, 3)


def test_lr_range_test(tmp_path):
    from training.lr_find import lr_range_test
    cfg = parse_config(base_config())
    res = lr_range_test(cfg, run_dir=str(tmp_path / 'lr'), min_lr=1e-5, max_lr=1e3, steps=60,
                        data=make_source(16), model_fn=tiny_model_fn())
    lrs = np.array(res['lr'])
    np.testing.assert_allclose(lrs, 1e-5 * (1e8) ** (np.arange(len(lrs)) / 60), rtol=1e-4)
    assert res['stopped_at'] is not None and len(lrs) < 60           # diverged before 1e3
    sm = np.array(res['smoothed'])
    assert sm[-1] > 4 * np.nanmin(sm[:-1]) or not np.isfinite(sm[-1])
    assert 1e-5 < res['suggestion']['steepest'] < lrs[-1]
    with open(res['files']['csv']) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(lrs) and float(rows[3]['lr']) == pytest.approx(lrs[3])
    with open(res['files']['png'], 'rb') as fh:
        assert fh.read(8) == b'\x89PNG\r\n\x1a\n'


# ------------------------------------------------------------------------------------------
def _subprocess_env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO)
    env.pop('TF_CONFIG', None)
    env.update(extra)
    return env


def wait_for(path, proc, what, limit=300):
    """Wait until ``path`` exists (the job reached a known point); fail if the job ended first."""
    deadline = time.time() + limit
    while not os.path.exists(path):
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ''
            raise AssertionError(f'the job ended before {what}: rc {proc.returncode}\n{out[-3000:]}')
        assert time.time() < deadline, f'the job did not reach {what}'
        time.sleep(0.05)


def test_resume_after_sigkill_mid_epoch(tmp_path):
    run = tmp_path / 'run'
    marker = tmp_path / 'in-epoch-2'
    cfg = base_config(distribution={'strategy': 'one_device'}, optimization={'epochs': 3})
    # the job blocks while making epoch 2's 4th batch: epoch 1 is checkpointed, epoch 2 has started
    proc = subprocess.Popen([sys.executable, FIXTURE, 'trainer', '--config-json', json.dumps(cfg),
                             '--run-dir', str(run), '--block-at-batch', str(BATCHES_PER_EPOCH + 4),
                             '--marker', str(marker)], env=_subprocess_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(marker, proc, 'epoch 2')
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert not (run / 'checkpoints' / 'ckpt-2.index').exists()       # killed mid-epoch 2
    assert [int(r['epoch']) for r in read_history(run)] == [1]
    ckpt1 = tf.train.latest_checkpoint(str(run / 'checkpoints'))
    reader = tf.train.load_checkpoint(ckpt1)
    assert reader.get_tensor('state/epoch/.ATTRIBUTES/VARIABLE_VALUE') == 1

    resumed = make_trainer(run, resume=True, distribution={'strategy': 'one_device'}, optimization={'epochs': 3})
    assert int(resumed.state.epoch.numpy()) == 1
    assert resumed.iterations == 16 == reader.get_tensor('optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE')
    assert_weights_equal(resumed.model.get_weights(), weights_of_checkpoint(ckpt1), rtol=0, atol=0)
    # Adam slots restored too: the first moment of every variable is non-zero after 16 steps
    assert all(np.any(v.numpy() != 0) for v in resumed.optimizer.variables if 'momentum' in v.path)
    result = resumed.fit()
    assert result.epochs_completed == 3 and resumed.iterations == 48
    assert [int(r['epoch']) for r in read_history(run)] == [1, 2, 3]
    # epoch 2 was re-run from its start with the same data: identical to an uninterrupted run
    ref = make_trainer(tmp_path / 'ref', distribution={'strategy': 'one_device'}, optimization={'epochs': 3})
    ref.fit()
    assert_weights_equal(resumed.model.get_weights(), ref.model.get_weights(), rtol=1e-5, atol=1e-7)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_two_processes_one_run(tmp_path):
    run = tmp_path / 'run'
    cfg = base_config(distribution={'strategy': 'auto'}, optimization={'epochs': 2},
                      logging={'run_dir': str(run), 'progress': False, 'log_every_steps': 5})
    cluster = {'worker': [f'127.0.0.1:{p}' for p in _free_ports(2)]}
    procs = []
    for i in range(2):
        tf_config = json.dumps({'cluster': cluster, 'task': {'type': 'worker', 'index': i}})
        procs.append(subprocess.Popen(
            [sys.executable, FIXTURE, 'trainer', '--config-json', json.dumps(cfg), '--run-dir', str(run)],
            env=_subprocess_env(TF_CONFIG=tf_config, TMPDIR=str(tmp_path)), cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-4000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert [o['chief'] for o in outs] == [True, False]
    assert outs[0]['replicas'] == outs[1]['replicas'] == 2
    assert outs[0]['iterations'] == outs[1]['iterations'] == 32
    np.testing.assert_allclose(outs[0]['losses'], outs[1]['losses'], rtol=1e-6)
    # one run directory, written by the chief only; the worker's temporary files are gone
    assert [int(r['epoch']) for r in read_history(run)] == [1, 2]
    assert (run / 'model.keras').exists() and (run / 'saved_model' / 'saved_model.pb').exists()
    assert tf.train.latest_checkpoint(str(run / 'checkpoints')).endswith('ckpt-2')
    assert not glob.glob(str(tmp_path / 'musetag-worker*'))
    # two workers x 1 replica == one process x 2 replicas (same global batches)
    local = make_trainer(tmp_path / 'local', optimization={'epochs': 2})
    np.testing.assert_allclose([r['train_loss'] for r in local.fit().history], outs[0]['losses'], rtol=1e-4)


def test_validation_leaves_other_modules_loggers_alone(tmp_path, monkeypatch):
    import logging

    import evaluation.metrics
    levels = []
    original = evaluation.metrics.tagging_metrics

    def spy(*args, **kwargs):
        levels.append(logging.getLogger('evaluation.metrics').level)
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluation.metrics, 'tagging_metrics', spy)
    before = logging.getLogger('evaluation.metrics').level
    make_trainer(tmp_path / 'run', optimization={'epochs': 1}).validate()
    assert levels == [before]
