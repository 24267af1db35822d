"""Training under hostile conditions: two jobs on one run directory, a killed job's stale lock, a full
disk while saving, a run stopped between its files, SIGTERM, huge windows, a command line that must
answer before TensorFlow loads.

Jobs that must be caught at a known point run ``tests/_training_fixtures.py cli`` (the real command
line on the tiny in-memory setup) with a hook that blocks their data pipeline in epoch 2, or that
limits the size of the files they write from the save of epoch 2 on; no test depends on timing.
"""
import errno
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from core.errors import EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_NO_SPACE, NoSpaceError
from core.locks import LockedError, OutputLock, lock_path
from tests._training_fixtures import BATCHES_PER_EPOCH, base_config, make_source, tiny_model_fn
from modeling import rundir
from training.__main__ import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, 'tests', '_training_fixtures.py')
PROG = 'musetag train'


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO)
    env.pop('TF_CONFIG', None)
    return env


def _config_file(tmp_path, **sections):
    sections.setdefault('distribution', {'strategy': 'one_device'})
    sections.setdefault('optimization', {'epochs': 2})
    cfg = base_config(**sections)
    cfg['dataset'] = {'dir': str(tmp_path / 'unused-tfrecords')}   # the fixture replaces the TFRecord source
    path = tmp_path / 'tiny.json'
    path.write_text(json.dumps(cfg))
    return str(path)


def _start(args, *cli_args):
    return subprocess.Popen([sys.executable, FIXTURE, 'cli', *args, '--', *cli_args], env=_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _blocked_in_epoch_2(tmp_path, cfg, run):
    """Start a training job and return it once it holds ``run`` at a known point (epoch 2 started)."""
    marker = tmp_path / 'in-epoch-2'
    proc = _start(['--block-at-batch', str(BATCHES_PER_EPOCH + 4), '--marker', str(marker)],
                  '--config', cfg, '--run', str(run))
    deadline = time.time() + 300
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f'the job ended before epoch 2: rc {proc.returncode}\n{proc.stderr.read()[-3000:]}')
        assert time.time() < deadline, 'the job did not reach epoch 2'
        time.sleep(0.05)
    return proc, marker


def _epochs(run):
    with open(os.path.join(run, 'history.csv')) as f:
        return [int(line.split(',')[0]) for line in f.read().splitlines()[1:]]


@pytest.fixture
def tiny_data(monkeypatch):
    """The command line in this process on the tiny in-memory setup (as the fixture's ``cli`` mode)."""
    monkeypatch.setattr('training.trainer.TFRecordSource', lambda cfg: make_source(cfg.input.batch_size))
    monkeypatch.setattr('training.trainer.registry_model_fn', lambda model_cfg: tiny_model_fn())


def _make_trainer(run, **kwargs):
    from training.config import parse_config
    from training.trainer import Trainer
    validation = kwargs.pop('validation', True)
    cfg = parse_config(base_config(distribution={'strategy': 'one_device'}, **kwargs.pop('sections', {})))
    return Trainer(cfg, run_dir=str(run), export=False, model_fn=tiny_model_fn(),
                   data=make_source(cfg.input.batch_size, validation=validation), **kwargs)


# ------------------------------------------------------------------ one job per run directory
def test_second_run_is_refused_and_a_killed_jobs_lock_is_taken_over(tmp_path, tiny_data, capsys, caplog):
    cfg, run = _config_file(tmp_path), tmp_path / 'run'
    proc, _marker = _blocked_in_epoch_2(tmp_path, cfg, run)
    try:
        # a second run, with or without --overwrite, is refused at once, naming the first job
        for extra in ([], ['--overwrite'], ['--resume']):
            assert main(['--config', cfg, '--run', str(run), *extra], prog=PROG) == EXIT_LOCKED, extra
            err = capsys.readouterr().err
            assert f'{PROG}: error: {run} is being written by another job (pid {proc.pid} ' in err, err
            assert 'Traceback' not in err
        # --overwrite deleted nothing: epoch 1 of the first job is still there
        assert rundir.latest_checkpoint(str(run / 'checkpoints')) == str(run / 'checkpoints' / 'ckpt-1')
        assert _epochs(run) == [1]
        with pytest.raises(LockedError, match=f'pid {proc.pid} '):   # the library refuses too
            _make_trainer(run, resume=True)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    # the killed job's lock file is left behind; the next run takes it over and finishes the run
    assert os.path.exists(lock_path(run))
    assert main(['--config', cfg, '--run', str(run), '--resume'], prog=PROG) == 0
    assert f'taking over a stale lock of pid {proc.pid} ' in caplog.text
    assert _epochs(run) == [1, 2]
    assert not os.path.exists(lock_path(run))                        # released at the end


def test_sigterm_interrupts_with_exit_130_and_the_resume_command(tmp_path, tiny_data):
    cfg, run = _config_file(tmp_path), tmp_path / 'run'
    proc, marker = _blocked_in_epoch_2(tmp_path, cfg, run)
    proc.send_signal(signal.SIGTERM)
    (tmp_path / 'in-epoch-2.release').write_text('')                # let the pipeline return to Python
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_INTERRUPTED, err[-3000:]
    assert err.strip().splitlines()[-1] == (f'{PROG}: interrupted; continue with: {PROG} --config {cfg} '
                                            f'--run {run} --resume')
    assert not os.path.exists(lock_path(run))
    assert _epochs(run) == [1] and rundir.latest_checkpoint(str(run / 'checkpoints')).endswith('ckpt-1')


# ------------------------------------------------------------------ a full disk
def _files(run):
    return sorted(os.path.relpath(p, run) for p in glob.glob(os.path.join(run, '**'), recursive=True)
                  + glob.glob(os.path.join(run, '**', '.*'), recursive=True))


def test_disk_full_while_saving_leaves_the_last_checkpoint_resumable(tmp_path, tiny_data):
    cfg, run = _config_file(tmp_path, optimization={'epochs': 3}), tmp_path / 'run'
    # from the save of epoch 2 on, no file may grow past 4 kB: the checkpoint data (~14 kB) fails with EFBIG
    proc = _start(['--file-size-limit-at-save', '2', '--file-size-limit', '4096'], '--config', cfg, '--run', str(run))
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_NO_SPACE, err[-3000:]
    assert 'Traceback' not in err
    ckpt1 = str(run / 'checkpoints' / 'ckpt-1')
    assert err.strip().splitlines()[-1] == (
        f'{PROG}: error: no space left on the device while saving epoch 2 of {run} (File too large); '
        f'the last complete checkpoint is epoch 1 ({ckpt1}); incomplete checkpoint files were removed. Free some '
        f'space, then continue the run with --resume: {PROG} --config {cfg} --run {run} --resume')
    # nothing half-written: no file of epoch 2's checkpoint, the index lists only complete ones
    files = _files(run)
    assert not [f for f in files if 'ckpt-2' in f or '_temp' in f or '.tmp' in f], files
    assert rundir.listed_checkpoints(str(run / 'checkpoints')) == [ckpt1] and rundir.checkpoint_complete(ckpt1)
    import tensorflow as tf
    assert tf.train.latest_checkpoint(str(run / 'checkpoints')) == ckpt1
    assert _epochs(run) == [1]                                       # history agrees with the checkpoints
    assert not os.path.exists(lock_path(run))
    # the same command with --resume finishes the run from epoch 1's checkpoint
    assert main(['--config', cfg, '--run', str(run), '--resume'], prog=PROG) == 0
    assert _epochs(run) == [1, 2, 3]
    assert rundir.latest_checkpoint(str(run / 'checkpoints')) == str(run / 'checkpoints' / 'ckpt-3')
    best = json.loads((run / 'checkpoints' / 'best' / 'best.json').read_text())
    assert rundir.latest_checkpoint(str(run / 'checkpoints' / 'best')).endswith(f'best-{best["epoch"]}')
    assert (run / 'model.keras').exists()


def _failing_once(monkeypatch, owner, name, when):
    """Replace ``owner.name`` by a wrapper raising ENOSPC the first time ``when(*args)`` is true."""
    original = getattr(owner, name)
    seen = []

    def wrapper(*args, **kwargs):
        if not seen and when(*args):
            seen.append(args)
            raise OSError(errno.ENOSPC, 'No space left on device')
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return seen


def test_history_row_lost_to_a_full_disk_comes_back_from_the_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / 'run'
    # history.csv cannot be written after epoch 2's checkpoint
    from modeling.rundir import History
    seen = _failing_once(monkeypatch, History, 'write', lambda h: h.rows[-1]['epoch'] == 2)
    trainer = _make_trainer(run)
    with pytest.raises(NoSpaceError, match=r'while saving epoch 2 of .*the last complete checkpoint is epoch 2 '):
        trainer.fit()
    lost = dict(seen[0][0].rows[-1])
    assert _epochs(run) == [1]
    assert rundir.latest_checkpoint(str(run / 'checkpoints')).endswith('ckpt-2')
    resumed = _make_trainer(run, resume=True)
    assert _epochs(run) == [1, 2]                                    # rewritten from the checkpoint at once
    resumed.fit()
    assert _epochs(run) == [1, 2, 3]
    import csv
    with open(run / 'history.csv') as f:
        row = list(csv.DictReader(f))[1]
    assert float(row['train_loss']) == lost['train_loss'] and float(row['lr']) == lost['lr']


def test_best_checkpoint_lost_to_a_full_disk_is_kept_on_resume(tmp_path, monkeypatch):
    run = tmp_path / 'run'
    best_dir = str(run / 'checkpoints' / 'best')
    # without validation every epoch is the best one; keeping epoch 2 as the best fails
    _failing_once(monkeypatch, rundir, 'keep_checkpoint_as', lambda src, d, name: name == 'best-2')
    with pytest.raises(NoSpaceError, match='the last complete checkpoint is epoch 2 '):
        _make_trainer(run, validation=False).fit()
    assert rundir.latest_checkpoint(best_dir).endswith('best-1')
    assert json.loads((run / 'checkpoints' / 'best' / 'best.json').read_text())['epoch'] == 1
    resumed = _make_trainer(run, resume=True, validation=False)
    assert rundir.latest_checkpoint(best_dir).endswith('best-2')           # kept from ckpt-2 on resume
    assert json.loads((run / 'checkpoints' / 'best' / 'best.json').read_text())['epoch'] == 2
    resumed.fit()
    assert rundir.listed_checkpoints(best_dir) == [os.path.join(best_dir, 'best-3')]
    assert sorted(os.listdir(best_dir)) == ['best-3.data-00000-of-00001', 'best-3.index', 'best.json', 'checkpoint']


def test_incomplete_checkpoint_files_are_removed_on_resume(tmp_path):
    run = tmp_path / 'run'
    _make_trainer(run, sections={'optimization': {'epochs': 1}}).fit()
    ckpt = run / 'checkpoints'
    # what a job killed while saving epoch 2 leaves: TensorFlow's staging folder, an unlisted data file
    (ckpt / 'ckpt-2_temp').mkdir()
    (ckpt / 'ckpt-2_temp' / 'part-00000-of-00001.data-00000-of-00001.tempstate1').write_bytes(b'x' * 100)
    (ckpt / 'ckpt-2.data-00000-of-00001').write_bytes(b'x' * 100)
    resumed = _make_trainer(run, resume=True, sections={'optimization': {'epochs': 2}})
    assert not (ckpt / 'ckpt-2_temp').exists() and not (ckpt / 'ckpt-2.data-00000-of-00001').exists()
    assert (ckpt / 'ckpt-1.index').exists()
    resumed.fit()
    assert rundir.latest_checkpoint(str(ckpt)).endswith('ckpt-2') and _epochs(run) == [1, 2]


# ------------------------------------------------------------------ windows that cannot fit
def test_window_batches_larger_than_memory_are_a_config_error():
    from training.config import ConfigError
    from training.data import InputInfo, check_window_memory
    info = InputInfo('log-mel', 16000, 600.0, frames=37500, n_mels=96)   # 14.4 MB per float32 window
    assert check_window_memory(info, 32, 32, memory=64 * 2**30) == 64 * 37500 * 96 * 4
    with pytest.raises(ConfigError, match=r'^config error: input\.window_seconds: 600 s windows \(37500 frames x 96 '
                                          r'mel bands, 13\.7 MiB each\) .* need 13\.7 GiB, more than 25% of the '
                                          r'8\.0 GiB of memory'):
        check_window_memory(info, 512, 512, memory=8 * 2**30)
    wave = InputInfo('waveform', 16000, 3600.0, samples=57_600_000)
    with pytest.raises(ConfigError, match=r'57600000 samples'):
        check_window_memory(wave, 64, 64, memory=16 * 2**30)


# ------------------------------------------------------------------ answers before TensorFlow loads
_PROBE = '''
import sys, time
from core.locks import OutputLock
sys.argv[0] = 'probe'
lock = OutputLock(sys.argv[1]).acquire() if sys.argv[1] != '-' else None
from {module} import main
t0 = time.perf_counter()
try:
    code = main(sys.argv[2:], prog='musetag x')
except SystemExit as e:
    code = e.code
print(code, 'tensorflow' in sys.modules, round(time.perf_counter() - t0, 3))
'''


def _probe(module, locked, *argv):
    r = subprocess.run([sys.executable, '-c', _PROBE.format(module=module), locked, *argv], env=_env(), cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    code, tf_loaded, seconds = r.stdout.split()[-3:]
    return int(code), tf_loaded == 'True', float(seconds), r.stderr


def test_help_config_errors_and_a_locked_run_answer_without_tensorflow(tmp_path):
    good = _config_file(tmp_path)
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'optimizaton': {'epochs': 3}}))
    run = str(tmp_path / 'run')
    cases = [('training.__main__', '-', ['--help'], 0, ''),
             ('training.__main__', '-', ['--explain'], 0, ''),
             ('training.__main__', '-', ['--print-default-config'], 0, ''),
             ('training.__main__', '-', ['--config', str(bad)], 2, 'config error: optimizaton: unknown key'),
             ('training.__main__', '-', ['--config', good, '--set', 'input.window_seconds=1e9'], 2,
              'config error: input.window_seconds: must be <= 3600'),
             ('training.__main__', '-', ['--config', good, '--set', 'novalue'], 2, 'expected KEY=VALUE'),
             ('training.__main__', run, ['--config', good, '--run', run], EXIT_LOCKED, 'is being written by another'),
             ('training.lr_find', '-', ['--help'], 0, ''),
             ('training.lr_find', '-', ['--config', str(bad)], 2, 'config error: optimizaton')]
    for module, locked, argv, want, message in cases:
        code, tf_loaded, seconds, err = _probe(module, locked, *argv)
        assert (code, tf_loaded) == (want, False), (module, argv, err[-2000:])
        assert message in err, (argv, err)
        assert 'Traceback' not in err
        assert seconds < 5, (argv, seconds)          # loosely: TensorFlow alone takes several seconds here


def test_lock_is_held_only_by_the_chief(monkeypatch):
    from training.strategy import expects_chief
    cluster = {'worker': ['127.0.0.1:1', '127.0.0.1:2']}
    for task, chief in (({'type': 'worker', 'index': 0}, True), ({'type': 'worker', 'index': 1}, False)):
        monkeypatch.setenv('TF_CONFIG', json.dumps({'cluster': cluster, 'task': task}))
        assert expects_chief('auto') is chief
        assert expects_chief('mirrored') is True         # not a multi-worker run: one process
    with_chief = {'cluster': dict(cluster, chief=['127.0.0.1:3']), 'task': {'type': 'worker', 'index': 0}}
    monkeypatch.setenv('TF_CONFIG', json.dumps(with_chief))
    assert expects_chief('auto') is False
    monkeypatch.delenv('TF_CONFIG')
    assert expects_chief('auto') is True


def test_output_lock_is_the_run_directorys(tmp_path):
    # a job holding the run directory's lock (modeling.rundir.run_lock) blocks the trainer
    run = tmp_path / 'run'
    with OutputLock(run):
        with pytest.raises(LockedError):
            _make_trainer(run)
    trainer = _make_trainer(run, sections={'optimization': {'epochs': 1}})
    assert os.path.exists(lock_path(run))
    trainer.fit()
    assert not os.path.exists(lock_path(run))
