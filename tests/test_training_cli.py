"""``python -m training`` end to end on real TFRecords (preprocessing) and registry models (modeling)."""
import json
import os

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
        cfg.setdefault(k, {}).update(v)
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
            ('dataset.tags.with=["no-such-tag"]',
             "config error: dataset.tags: tag 'no-such-tag' is not in the dataset vocabulary"),
            ('dataset.validation_split=valid', 'config error: dataset.validation_split: no split "valid"'),
            ('model.name=nope', "config error: model.name: unknown model 'nope'"),
            ('model.hparams.n_filterz=3', 'config error: model.hparams.n_filterz: '),
            ('optimization.optimizer.name=Adamm',
             'config error: optimization.optimizer.name: unknown Keras optimizer "Adamm"'),
            ('optimization.optimizer.kwargs.lr=0.1', 'config error: optimization.optimizer.kwargs.lr: not an argument'),
            ('dataset.dir="/nonexistent/x"', 'config error: dataset.dir: no manifest.json')]:
        assert main(['--config', cfg, '--run-dir', str(tmp_path / 'r'), '--set', override]) == 2, override
        assert message in capsys.readouterr().err, override


# ---------------------------------------------------------------- --auto-restart
# The retry loop lives in training.__main__.main; the crash is injected at the per-epoch seam
# Trainer._train_epoch (called once per epoch by Trainer.fit). The registry model is swapped for the
# tiny fixture model (same TFRecords, same CLI path) so that the re-built trainer traces fast.

class _CrashOnce:
    """Wrap ``Trainer._train_epoch``: train epoch ``at`` normally, then raise once (before its checkpoint)."""

    def __init__(self, monkeypatch, at=2, error=RuntimeError):
        from training.trainer import Trainer
        self.at, self.crashed, self.calls = at, 0, []   # calls: (epoch, optimizer steps before it)
        self.history_at_crash = None
        original = Trainer._train_epoch

        def train_epoch(trainer, epoch, tb_train):
            self.calls.append((epoch, trainer.iterations))
            result = original(trainer, epoch, tb_train)
            if epoch == self.at and not self.crashed:
                self.crashed += 1
                with open(trainer.paths.history, encoding='utf-8') as fh:
                    self.history_at_crash = (trainer.paths.history, fh.read())
                raise error(f'injected crash in epoch {epoch}')
            return result

        monkeypatch.setattr(Trainer, '_train_epoch', train_epoch)


@pytest.fixture
def tiny_registry(monkeypatch):
    from tests._training_fixtures import tiny_model_fn
    monkeypatch.setattr('training.trainer.registry_model_fn', lambda model_cfg: tiny_model_fn(hidden=8))


def _history_rows(run):
    import csv
    with open(run / 'history.csv', newline='') as fh:
        return list(csv.DictReader(fh))


_RESTART_MSG = 'training failed; restarting from the last checkpoint'


def test_auto_restart_resumes_from_the_last_checkpoint_after_a_crash(tmp_path, logmel_dir, tiny_registry,
                                                                     monkeypatch, caplog, capsys):
    crash = _CrashOnce(monkeypatch, at=2)
    run = tmp_path / 'run'
    cfg = _config(tmp_path, logmel_dir, optimization={'epochs': 3}, callbacks={'early_stopping': {'patience': None}})
    assert main(['--config', cfg, '--run-dir', str(run), '--auto-restart', '1']) == 0
    assert 'training: 3 epoch(s)' in capsys.readouterr().out
    # epoch 1 trained once; epoch 2 crashed (before its checkpoint) and was re-run; then epoch 3
    assert [e for e, _ in crash.calls] == [1, 2, 2, 3] and crash.crashed == 1
    steps_1 = crash.calls[1][1]
    assert steps_1 > 0
    # the re-run epoch 2 starts from ckpt-1's optimizer state, not from scratch nor from the lost epoch 2
    assert crash.calls[2][1] == steps_1 and crash.calls[3][1] == 2 * steps_1
    # history.csv: each epoch exactly once; epoch 1's row is the one written before the crash
    rows = _history_rows(run)
    assert [r['epoch'] for r in rows] == ['1', '2', '3']
    path, before = crash.history_at_crash
    assert path == str(run / 'history.csv')
    assert before.splitlines()[:2] == (run / 'history.csv').read_text().splitlines()[:2]
    assert len(before.splitlines()) == 2   # the crash came before epoch 2's row
    import tensorflow as tf
    assert tf.train.latest_checkpoint(str(run / 'checkpoints')).endswith('ckpt-3')
    assert (run / 'model.keras').exists()
    # the crash was logged with its traceback, and the second attempt resumed from ckpt-1
    failed = [r for r in caplog.records if _RESTART_MSG in r.getMessage()]
    assert len(failed) == 1 and '(1/1)' in failed[0].getMessage()
    assert failed[0].exc_info and isinstance(failed[0].exc_info[1], RuntimeError)
    assert 'injected crash in epoch 2' in caplog.text
    resumed = [r.getMessage().split()[2] for r in caplog.records if r.getMessage().startswith('resumed from ')]
    assert resumed == [str(run / 'checkpoints' / 'ckpt-1') + ':']


def test_without_auto_restart_the_crash_propagates_and_resume_continues(tmp_path, logmel_dir, tiny_registry,
                                                                        monkeypatch, caplog, capsys):
    crash = _CrashOnce(monkeypatch, at=2)
    run = tmp_path / 'run'
    cfg = _config(tmp_path, logmel_dir, optimization={'epochs': 3}, callbacks={'early_stopping': {'patience': None}})
    with pytest.raises(RuntimeError, match='injected crash in epoch 2'):
        main(['--config', cfg, '--run-dir', str(run), '--auto-restart', '0'])
    assert [e for e, _ in crash.calls] == [1, 2]        # no second attempt
    assert _RESTART_MSG not in caplog.text
    import tensorflow as tf
    assert tf.train.latest_checkpoint(str(run / 'checkpoints')).endswith('ckpt-1')
    assert [r['epoch'] for r in _history_rows(run)] == ['1']
    # the kept checkpoint lets --resume finish the run (the injected crash does not repeat)
    assert main(['--config', cfg, '--run-dir', str(run), '--resume']) == 0
    assert [e for e, _ in crash.calls] == [1, 2, 2, 3]
    assert crash.calls[2][1] == crash.calls[1][1] > 0
    assert [r['epoch'] for r in _history_rows(run)] == ['1', '2', '3']
    assert 'training: 3 epoch(s)' in capsys.readouterr().out


def test_auto_restart_does_not_retry_config_errors(tmp_path, logmel_dir, tiny_registry, monkeypatch, caplog, capsys):
    import training.trainer
    calls = []
    original = training.trainer.train
    monkeypatch.setattr(training.trainer, 'train', lambda *a, **k: calls.append(k) or original(*a, **k))
    cfg = _config(tmp_path, logmel_dir)
    assert main(['--config', cfg, '--run-dir', str(tmp_path / 'r'), '--auto-restart', '3',
                 '--set', 'optimization.optimizer.name=Adamm']) == 2
    assert 'config error: optimization.optimizer.name' in capsys.readouterr().err
    assert len(calls) == 1 and _RESTART_MSG not in caplog.text


def test_auto_restart_does_not_retry_a_non_finite_loss(tmp_path, logmel_dir, tiny_registry, monkeypatch, caplog,
                                                      capsys):
    # a non-finite loss recurs from the same checkpoint with the same settings: stop with advice instead
    crash = _CrashOnce(monkeypatch, at=2, error=FloatingPointError)
    run = tmp_path / 'run'
    cfg = _config(tmp_path, logmel_dir, optimization={'epochs': 3}, callbacks={'early_stopping': {'patience': None}})
    assert main(['--config', cfg, '--run-dir', str(run), '--auto-restart', '2']) == 1
    assert [e for e, _ in crash.calls] == [1, 2]
    err = capsys.readouterr().err
    assert 'injected crash in epoch 2' in err and 'lower the learning rate' in err and str(run) in err
    assert _RESTART_MSG not in caplog.text


def test_run_stores_dataset_dir_absolute_so_it_resolves_from_anywhere(tmp_path, logmel_dir, tiny_registry,
                                                                       monkeypatch):
    from modeling.rundir import load_run_info, resolve_dataset_dir
    parent, name = os.path.split(logmel_dir)
    monkeypatch.chdir(parent)                       # train with a path relative to the working directory
    cfg = _config(tmp_path, name, optimization={'epochs': 1})
    run = tmp_path / 'run'
    assert main(['--config', cfg, '--run', str(run)]) == 0
    stored = json.loads((run / 'config.json').read_text())['dataset']['dir']
    assert stored == os.path.abspath(logmel_dir)
    monkeypatch.chdir(tmp_path)                     # evaluation runs from somewhere else
    assert resolve_dataset_dir(load_run_info(run)) == stored


def test_windows_whose_batches_cannot_fit_in_memory_are_refused_before_training(tmp_path, logmel_dir, capsys,
                                                                               monkeypatch):
    # a machine with 256 KiB of memory: one 1 s window of 96 mel bands takes 24 KiB as float32
    monkeypatch.setattr('training.data.physical_memory_bytes', lambda: 256 * 1024)
    cfg = _config(tmp_path, logmel_dir)
    run = tmp_path / 'run'
    assert main(['--config', cfg, '--run', str(run), '--set', 'input.batch_size=4']) == 2
    err = capsys.readouterr().err
    frames = window_length(load_manifest(logmel_dir), 1.0)
    size = frames * 96 * 4
    assert (f'config error: input.window_seconds: 1 s windows ({frames} frames x 96 mel bands, {size / 1024:.1f} KiB '
            f'each) in a training batch of 4 and a validation batch of 4 need {8 * size / 1024:.1f} KiB, more than 25% '
            'of the 256.0 KiB of memory of this machine; use shorter windows or smaller batches') in err, err
    assert not (run / 'checkpoints').exists()
