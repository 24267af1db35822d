"""Tests of the bottom layer (core/): atomic writes and their permissions, output locks, workers that
exit with their job, exit codes, the TensorFlow import filter and the shared CLI helpers."""
from __future__ import annotations

import argparse
import errno
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core import cli, errors, files, locks, logs, procs
from core.records import dataclass_from_dict

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p) -> int:
    return os.stat(p).st_mode & 0o777


# ----------------------------------------------------------------------------------------- files
def test_atomic_writes_get_the_umask_permissions(tmp_path, umask022):
    files.write_json(tmp_path / 'a.json', {'x': 1})
    files.atomic_write_text(tmp_path / 'b.txt', 'hello')
    with files.atomic_path(tmp_path / 'c.png', suffix='.png') as tmp:
        assert tmp.endswith('.png') and os.path.dirname(tmp) == str(tmp_path)
        Path(tmp).write_bytes(b'png')
    with files.atomic_dir(tmp_path / 'd') as tmp:
        (Path(tmp) / 'inside.txt').write_text('x')
    assert {_mode(tmp_path / n) for n in ('a.json', 'b.txt', 'c.png')} == {0o644}
    assert _mode(tmp_path / 'd') == 0o755
    assert json.loads((tmp_path / 'a.json').read_text()) == {'x': 1}
    os.umask(0o002)                                   # a group-writable umask is honoured too
    files.atomic_write_text(tmp_path / 'e.txt', 'x')
    assert _mode(tmp_path / 'e.txt') == 0o664
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.json', 'b.txt', 'c.png', 'd', 'e.txt']


def test_atomic_path_leaves_nothing_on_error_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / 'out.csv'
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as tmp:
            Path(tmp).write_text('half')
            raise RuntimeError('crash while writing')
    assert list(tmp_path.iterdir()) == []
    target.write_text('old')
    with pytest.raises(errors.OutputExistsError, match='--overwrite'):
        with files.atomic_path(target):
            pass
    with files.atomic_path(target, overwrite=True) as tmp:
        Path(tmp).write_text('new')
    assert target.read_text() == 'new' and list(tmp_path.iterdir()) == [target]
    with pytest.raises(errors.MuseTagError, match='is a directory; give a file name'):
        with files.atomic_path(tmp_path, overwrite=True):
            pass
    with pytest.raises(errors.MuseTagError, match='is a file; give a folder name'):
        with files.atomic_dir(target, overwrite=True):
            pass


def test_atomic_dir_replaces_whole_tree_or_nothing(tmp_path):
    out = tmp_path / 'run'
    with files.atomic_dir(out) as tmp:
        (Path(tmp) / 'old.txt').write_text('1')
    with pytest.raises(ValueError):
        with files.atomic_dir(out, overwrite=True) as tmp:
            (Path(tmp) / 'new.txt').write_text('2')
            raise ValueError('failed half way')
    assert [p.name for p in out.iterdir()] == ['old.txt']          # untouched
    with files.atomic_dir(out, overwrite=True) as tmp:
        (Path(tmp) / 'new.txt').write_text('2')
    assert [p.name for p in out.iterdir()] == ['new.txt']
    assert [p.name for p in tmp_path.iterdir()] == ['run']          # no temp or old trees left


def test_a_full_disk_is_reported_as_no_space_and_cleaned_up(tmp_path):
    """A real write failure (the file-size limit makes write() fail with EFBIG) becomes NoSpaceError
    and leaves no temporary file."""
    code = textwrap.dedent(f'''
        import resource, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from core import files, errors
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            files.atomic_write_bytes({str(tmp_path / 'big.bin')!r}, b'x' * 100_000)
        except errors.NoSpaceError as e:
            print('NoSpaceError', errors.exit_code(e))
    ''')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.stdout.split() == ['NoSpaceError', '4'], proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_is_no_space_sees_through_wrapped_errors():
    assert errors.is_no_space(OSError(errno.ENOSPC, 'No space left on device'))
    try:
        try:
            raise OSError(errno.EDQUOT, 'quota')
        except OSError as inner:
            raise RuntimeError('checkpoint write failed') from inner
    except RuntimeError as outer:
        assert errors.is_no_space(outer)
    assert errors.is_no_space(RuntimeError('ResourceExhaustedError: ... No space left on device'))
    assert not errors.is_no_space(OSError(errno.EACCES, 'Permission denied'))


def test_exit_codes():
    assert errors.exit_code(KeyboardInterrupt()) == 130
    assert errors.exit_code(errors.MuseTagError('bad')) == 2
    assert errors.exit_code(errors.NoSpaceError('full')) == 4
    assert errors.exit_code(locks.LockedError('x', None)) == 3
    assert errors.exit_code(FileNotFoundError('x')) == 2
    assert errors.exit_code(RuntimeError('bug')) == 1


def test_urls_are_joined_as_urls():
    assert files.is_url('s3://bucket/x') and not files.is_url('/tmp/x')
    assert files.join('s3://bucket/data/', 'a', '/b.json') == 's3://bucket/data/a/b.json'
    assert files.join('/tmp', 'a') == '/tmp/a'
    assert files.temp_name('s3://b/dir/out.json').startswith('s3://b/dir/.out.json.tmp-')


# ----------------------------------------------------------------------------------------- locks
_HOLDER = textwrap.dedent('''
    import os, sys, time
    sys.path.insert(0, {root!r})
    from core.locks import OutputLock
    lock = OutputLock({target!r}, command='holder job').acquire()
    open({ready!r}, 'w').close()         # the known point: the lock is held
    if {die}:
        os.kill(os.getpid(), 9)
    while not os.path.exists({release!r}):
        time.sleep(0.05)
    lock.release()
''')


def _start_holder(tmp_path, target, die=False):
    ready, release = tmp_path / 'ready', tmp_path / 'release'
    code = _HOLDER.format(root=str(ROOT), target=str(target), ready=str(ready), release=str(release), die=die)
    proc = subprocess.Popen([sys.executable, '-c', code])
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None or die, 'holder died before taking the lock'
        assert time.monotonic() < deadline, 'holder never took the lock'
        time.sleep(0.05)
    return proc, release


def test_a_second_job_is_refused_naming_the_holder(tmp_path):
    target = tmp_path / 'dataset'
    proc, release = _start_holder(tmp_path, target)
    try:
        with pytest.raises(locks.LockedError) as info:
            locks.OutputLock(target).acquire()
        msg = str(info.value)
        assert f'pid {proc.pid}' in msg and 'holder job' in msg and str(target) in msg
        assert info.value.exit_code == 3
    finally:
        release.touch()
        proc.wait(timeout=60)
    with locks.OutputLock(target) as lock:                # free again once the holder released it
        assert lock.held and lock.previous is None
    assert not Path(locks.lock_path(target)).exists()


def test_a_stale_lock_of_a_killed_job_is_taken_over(tmp_path, caplog):
    target = tmp_path / 'run'
    proc, _ = _start_holder(tmp_path, target, die=True)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert Path(locks.lock_path(target)).exists()        # kill -9 left the file behind
    with caplog.at_level('WARNING', logger='core.locks'):
        lock = locks.OutputLock(target).acquire()
    try:
        assert lock.previous['pid'] == proc.pid
        assert 'stale lock' in caplog.text and str(proc.pid) in caplog.text
    finally:
        lock.release()


def test_waiting_for_a_lock_gives_up_after_the_timeout(tmp_path):
    target = tmp_path / 'cache'
    proc, release = _start_holder(tmp_path, target)
    try:
        t0 = time.monotonic()
        with pytest.raises(locks.LockedError):
            locks.OutputLock(target).acquire(wait=0.5)
        assert time.monotonic() - t0 >= 0.5
    finally:
        release.touch()
        proc.wait(timeout=60)
    locks.OutputLock(target).acquire(wait=5).release()


# ----------------------------------------------------------------------------------------- procs
def _worker(owner, ready):
    procs.exit_with_parent(owner, interval=0.1)
    open(ready, 'w').close()
    time.sleep(600)


def _job(ready_dir):
    """A 'job' process that starts a worker, then waits to be killed."""
    ctx = mp.get_context('fork')
    worker = ctx.Process(target=_worker, args=(os.getpid(), os.path.join(ready_dir, 'worker')))
    worker.start()
    with open(os.path.join(ready_dir, 'worker.pid'), 'w') as f:
        f.write(str(worker.pid))
    time.sleep(600)


def test_workers_exit_when_their_job_is_killed(tmp_path):
    psutil = pytest.importorskip('psutil')
    job = mp.get_context('fork').Process(target=_job, args=(str(tmp_path),))
    job.start()
    deadline = time.monotonic() + 60
    while not (tmp_path / 'worker').exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    worker_pid = int((tmp_path / 'worker.pid').read_text())
    assert psutil.pid_exists(worker_pid)
    os.kill(job.pid, signal.SIGKILL)                        # the job dies without cleaning up
    job.join(timeout=30)
    deadline = time.monotonic() + 20
    while psutil.pid_exists(worker_pid) and psutil.Process(worker_pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, 'the worker outlived its job'
        time.sleep(0.05)


def test_pid_alive():
    assert procs.pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, '-c', 'pass'])
    child.wait()
    assert not procs.pid_alive(child.pid)


# ------------------------------------------------------------------------------------- logs, cli
def test_import_tensorflow_keeps_its_noise_off_the_terminal():
    code = f'import sys; sys.path.insert(0, {str(ROOT)!r}); from core.logs import import_tensorflow; ' \
           'tf = import_tensorflow(); print(tf.__version__)'
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip().startswith('2.')
    assert not logs.TF_NOISE.search(proc.stderr), proc.stderr
    raw = subprocess.run([sys.executable, '-c', 'import tensorflow'], capture_output=True, text=True, env=env)
    assert logs.TF_NOISE.search(raw.stderr), 'TensorFlow no longer prints this noise: drop the filter'


def test_setup_logging_levels_and_one_handler(capsys):
    import io
    import logging
    logs.setup_logging(-1)
    logs.setup_logging(1)
    root = logging.getLogger()
    assert root.level == logging.DEBUG
    assert [h.get_name() for h in root.handlers].count('musetag') == 1
    logs.setup_logging(0)
    assert root.level == logging.INFO and logging.getLogger('tensorflow').level == logging.WARNING
    # messages go to the stderr of the moment, not to the one current when logging was set up
    old, sys.stderr = sys.stderr, io.StringIO()
    try:
        logging.getLogger('core.test').info('hello now')
        assert 'INFO core.test: hello now' in sys.stderr.getvalue()
    finally:
        sys.stderr = old


def test_key_value_and_overrides():
    assert cli.key_value('model.hparams={"a": 1}') == ('model.hparams', {'a': 1})
    assert cli.key_value('dataset.dir=data/x') == ('dataset.dir', 'data/x')
    assert cli.key_value('n=3') == ('n', 3)
    with pytest.raises(argparse.ArgumentTypeError):
        cli.key_value('no-equals-sign')
    assert cli.parse_overrides([('a', 1), '{"b": 2}']) == {'a': 1, 'b': 2}
    with pytest.raises(errors.MuseTagError):
        cli.parse_overrides(['[1, 2]'])


def test_run_command_maps_errors_to_exit_codes(capsys):
    args = argparse.Namespace(quiet=0, verbose=0)

    def raising(exc):
        def body(_):
            raise exc
        return body
    assert cli.run_command(lambda a: None, args, 'prog') == 0
    assert cli.run_command(raising(errors.MuseTagError('bad input x')), args, 'prog') == 2
    assert 'prog: error: bad input x' in capsys.readouterr().err
    assert cli.run_command(raising(locks.LockedError('out', {'pid': 1})), args, 'prog') == 3
    assert cli.run_command(raising(OSError(errno.ENOSPC, 'No space left on device')), args, 'prog') == 4
    assert cli.run_command(raising(KeyboardInterrupt()), args, 'prog') == 130
    with pytest.raises(ZeroDivisionError):               # a bug keeps its traceback
        cli.run_command(raising(ZeroDivisionError()), args, 'prog')


def test_help_formatter_shows_defaults():
    p = argparse.ArgumentParser(formatter_class=cli.HelpFormatter)
    p.add_argument('--workers', type=int, default=4, help='worker processes')
    p.add_argument('--top', type=int, default=10, help='tags to print (default %(default)s)')
    p.add_argument('--min-size', type=int, default=0, help='smallest file size')
    p.add_argument('--flag', action='store_true', help='a switch')
    p.add_argument('-q', '--quiet', action='count', default=0, help='fewer messages')
    text = ' '.join(p.format_help().split())
    assert 'worker processes (default: 4)' in text and 'tags to print (default 10)' in text
    assert 'smallest file size (default: 0)' in text and 'a switch (default' not in text
    assert 'fewer messages (default' not in text


def test_dataclass_from_dict_names_unknown_keys():
    from preprocessing.features import FeatureParams
    with pytest.raises(ValueError, match=r'n_mel \(did you mean n_mels\?\)'):
        dataclass_from_dict(FeatureParams, {'n_mel': 96}, 'feature parameter')


def test_add_run_options_run_or_model_and_the_old_spelling():
    from core.cli import add_run_options
    p = argparse.ArgumentParser()
    add_run_options(p)
    assert p.parse_args(['--run-dir', 'r']).run == 'r'
    assert p.parse_args(['--model', 'MSD_musicnn']).model == 'MSD_musicnn'
    for bad in ([], ['--run', 'r', '--model', 'm']):
        with pytest.raises(SystemExit):
            p.parse_args(bad)
    assert '--run-dir' not in p.format_help()
    q = argparse.ArgumentParser()
    add_run_options(q, model=False)
    assert q.parse_args(['--run-dir', 'r']).run == 'r' and '--model' not in q.format_help()


def test_check_inputs_exist_names_the_missing_ones_escaped(tmp_path):
    from core.cli import check_inputs_exist
    from core.errors import MuseTagError
    (tmp_path / 'here.mp3').write_bytes(b'')
    check_inputs_exist([tmp_path / 'here.mp3'])
    missing = [str(tmp_path / f'gone{i}\n.mp3') for i in range(5)]
    with pytest.raises(MuseTagError) as e:
        check_inputs_exist([tmp_path / 'here.mp3', *missing])
    text = str(e.value)
    assert 'gone0\\n.mp3' in text and '\n' not in text and '(and 2 more)' in text and 'here.mp3' not in text


def test_dispatch_hands_over_to_the_named_command(capsys):
    from core.cli import dispatch
    commands = {'split': ('os.path', 'split')}
    with pytest.raises(TypeError, match='prog'):      # called as function(rest, prog='PROG split')
        dispatch(commands, ['split', 'a/b'], 'python -m x')
    assert dispatch({'ok': ('tests.test_core', '_echo')}, ['ok', '1', '2'], 'python -m x') == 3
    assert dispatch(commands, [], 'python -m x') == 2
    assert dispatch(commands, ['--help'], 'python -m x') == 0
    assert dispatch(commands, ['nope'], 'python -m x') == 2
    assert 'usage: python -m x {split}' in capsys.readouterr().err


def _echo(argv, prog):
    assert prog == 'python -m x ok'
    return len(argv) + 1


def test_an_interrupted_command_exits_at_once_even_with_a_stuck_thread():
    # the interpreter's shutdown would join the thread (as it joins a stopped pool's threads) for ever
    script = ('import threading, time\n'
              'from core.cli import exit_with\n'
              'threading.Thread(target=time.sleep, args=(600,)).start()\n'
              'print("kept 12 rows", flush=False)\n'
              'exit_with(130)\n')
    root = str(ROOT)
    proc = subprocess.run([sys.executable, '-c', script], cwd=root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130 and proc.stdout == 'kept 12 rows\n'
    done = subprocess.run([sys.executable, '-c', 'from core.cli import exit_with; exit_with(2)'], cwd=root,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
