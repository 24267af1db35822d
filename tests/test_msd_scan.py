"""msd scan: statuses, ids, ordering, worker-count independence, overwrite rules, resume after kill."""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from msd.common import OutputExistsError, read_comments, read_csv
from msd.parallel import PAUSE_ENV
from msd.scan import COLUMNS, iter_files, parse_7digitalid, scan
from tests._audio_fixtures import encode_mp3, tone, write_wav
from tests._msd_fixtures import msd_env, run_msd, write_file


@pytest.fixture(scope='module')
def good_mp3():
    return encode_mp3(tone(2.0, 22050), 22050, bitrate=64)


@pytest.fixture()
def tree(tmp_path, good_mp3):
    root = tmp_path / 'audio'
    write_file(root / '1' / '2' / '1234567.clip.mp3', good_mp3)
    write_file(root / '1' / '2' / '1299999.clip.mp3', b'<html><body>404 Not Found</body></html>' * 20)
    write_file(root / '3' / '3000001.clip.mp3', good_mp3[:len(good_mp3) // 3])  # truncated
    write_file(root / '3' / '3000002.clip.mp3', b'')                           # zero bytes
    write_file(root / '3' / 'song without id.mp3', good_mp3)
    write_wav(root / '3' / 'stereo.wav', tone(1.0, 44100, channels=2), 44100, subtype='FLOAT')
    write_file(root / 'readme.txt', b'not listed')
    write_file(root / '.hidden.mp3', good_mp3)
    return root


def test_parse_7digitalid():
    assert parse_7digitalid('8/9/8947470.clip.mp3') == 8947470
    assert parse_7digitalid('8947470.mp3') is None
    assert parse_7digitalid('abc.clip.mp3') is None


def test_scan_rows_statuses_and_order(tree, tmp_path):
    out = tmp_path / 'scan.csv'
    r = scan(tree, out, workers=1, progress=False)
    df = read_csv(out, keep_default_na=False)
    assert list(df.columns) == list(COLUMNS)
    # sorted by path components; hidden files and other extensions are not listed
    assert df['file_path'].tolist() == ['1/2/1234567.clip.mp3', '1/2/1299999.clip.mp3', '3/3000001.clip.mp3',
                                        '3/3000002.clip.mp3', '3/song without id.mp3', '3/stereo.wav']
    st = dict(zip(df['file_path'], df['status']))
    assert st['1/2/1234567.clip.mp3'] == 'ok'
    assert st['1/2/1299999.clip.mp3'] == 'not-audio'
    assert st['3/3000002.clip.mp3'] == 'empty'
    assert st['3/3000001.clip.mp3'] == 'ok'  # a truncated MP3 still has a header; silence decodes it
    assert st['3/stereo.wav'] == 'ok'
    row = df.set_index('file_path').loc['1/2/1234567.clip.mp3']
    assert int(row['track_7digitalid']) == 1234567
    assert int(row['channels']) == 1 and int(row['sample_rate']) == 22050 and int(row['bitrate']) == 64000
    assert abs(float(row['duration']) - 2.0) < 0.15
    assert int(row['file_size']) == os.path.getsize(tree / '1' / '2' / '1234567.clip.mp3')
    wav = df.set_index('file_path').loc['3/stereo.wav']
    assert int(wav['channels']) == 2 and int(wav['sample_rate']) == 44100
    assert df.set_index('file_path').loc['3/song without id.mp3', 'track_7digitalid'] == ''
    assert df.set_index('file_path').loc['1/2/1299999.clip.mp3', 'reason'] != ''
    assert r.statuses == {'ok': 4, 'not-audio': 1, 'empty': 1}
    assert r.walk.ignored == 1
    assert read_comments(out)[1]['root'] == str(tree)
    assert 'ok 4' in r.summary and 'empty 1' in r.summary


def test_workers_do_not_change_output(tree, tmp_path):
    a, b = tmp_path / 'a.csv', tmp_path / 'b.csv'
    scan(tree, a, workers=1, progress=False, command='x')
    scan(tree, b, workers=2, progress=False, command='x', chunk_size=1)
    assert a.read_bytes() == b.read_bytes()


def test_refuses_to_overwrite(tree, tmp_path):
    out = tmp_path / 'scan.csv'
    scan(tree, out, progress=False)
    with pytest.raises(OutputExistsError):
        scan(tree, out, progress=False)
    scan(tree, out, progress=False, overwrite=True)
    p = run_msd('scan', '--root', tree, '--out', out, check=False)
    assert p.returncode == 2 and 'exists' in p.stderr and '--overwrite' in p.stderr
    assert 'Traceback' not in p.stderr


def test_bad_cli_arguments_fail_at_once(tmp_path):
    p = run_msd('scan', '--root', tmp_path / 'missing', '--out', tmp_path / 's.csv', check=False)
    assert p.returncode == 2 and 'no such directory' in p.stderr
    p = run_msd('scan', '--root', tmp_path, '--out', tmp_path / 's.csv', '--workers', '0', check=False)
    assert p.returncode == 2 and '--workers' in p.stderr


def test_resume_from_torn_partial(tree, tmp_path):
    full = tmp_path / 'full.csv'
    scan(tree, full, progress=False, command='same')
    out = tmp_path / 'scan.csv'
    # a run killed after two rows, in the middle of writing the third
    lines = full.read_text().splitlines(keepends=True)
    n_head = 3  # provenance, root, header
    (tmp_path / 'scan.csv.partial').write_text(''.join(lines[:n_head + 2]) + lines[n_head + 2][:15])
    r = scan(tree, out, progress=False, command='same', workers=2)
    assert r.n_resumed == 2 and r.n_new == len(lines) - n_head - 2
    assert out.read_bytes() == full.read_bytes()
    assert not (tmp_path / 'scan.csv.partial').exists()


def test_partial_from_other_input_is_refused(tree, tmp_path):
    full = tmp_path / 'full.csv'
    scan(tree, full, progress=False, command='same')
    lines = full.read_text().splitlines(keepends=True)
    bad = lines[:3] + [lines[4]]  # row 1 is not the first input item
    (tmp_path / 'scan.csv.partial').write_text(''.join(bad))
    p = run_msd('scan', '--root', tree, '--out', tmp_path / 'scan.csv', check=False)
    assert p.returncode == 2 and '--restart' in p.stderr
    run_msd('scan', '--root', tree, '--out', tmp_path / 'scan.csv', '--restart')
    assert len(read_csv(tmp_path / 'scan.csv')) == len(lines) - 3


def _big_tree(root, mp3, n):
    """n hard links to one small MP3 in the 7digital layout (cheap to create, real to scan)."""
    src = root.parent / 'src.mp3'
    src.write_bytes(mp3)
    for i in range(n):
        d = root / str(i % 10) / str((i // 10) % 10)
        d.mkdir(parents=True, exist_ok=True)
        os.link(src, d / f'{1000000 + i}.clip.mp3')


def _data_rows(path):
    with open(path, newline='') as f:
        return sum(1 for line in f if not line.startswith('#')) - 1


N_BIG = 4000


@pytest.fixture(scope='module')
def big_tree(tmp_path_factory, good_mp3):
    base = tmp_path_factory.mktemp('big')
    root = base / 'audio'
    _big_tree(root, good_mp3, N_BIG)
    ref = base / 'ref.csv'
    scan(root, ref, workers=1, progress=False)
    return root, ref


def _start_pool_scan(root, out, pause_after):
    """``msd scan --workers 2`` in its own session (so a test can kill the group), paused by the
    test hook (:data:`msd.parallel.PAUSE_ENV`) once ``pause_after`` rows are in the partial file.

    Returns (proc, partial path, release path): the job waits until the release path exists.
    """
    release = str(out) + '.release'
    cmd = [sys.executable, '-m', 'msd', 'scan', '--root', str(root), '--out', str(out), '--workers', '2',
           '--no-progress']
    # Ctrl-C handled whatever this test run inherited: a job started in the background by a shell
    # without job control ignores SIGINT, and Python then installs no KeyboardInterrupt handler
    proc = subprocess.Popen(cmd, env=msd_env(**{PAUSE_ENV: f'{pause_after}:{release}'}), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return proc, str(out) + '.partial', release


def _wait_until_paused(proc, release):
    """Rows in the partial file once the job reached the hook (it stays paused until released)."""
    reached = release + '.reached'
    deadline = time.monotonic() + 120   # only a job that never gets there can fail here
    while not os.path.exists(reached):
        assert proc.poll() is None, f'scan ended before reaching the hook: {proc.communicate()}'
        assert time.monotonic() < deadline, 'scan never reached the hook'
        time.sleep(0.02)
    with open(reached) as f:
        return int(f.read())


def _gone(p):
    """True once process ``p`` has exited (a zombie nobody reaps yet counts as exited)."""
    import psutil
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGINT])
def test_killed_pool_run_resumes_to_identical_output(tmp_path, big_tree, sig):
    root, ref = big_tree
    out = tmp_path / 'run' / 'scan.csv'
    proc, partial, release = _start_pool_scan(root, out, pause_after=100)
    rows = _wait_until_paused(proc, release)
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, signal.SIGKILL)  # parent and workers, no chance to clean up
    else:
        os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and 'resume' in err and 'Traceback' not in err
    assert os.path.exists(partial) and not out.exists()
    assert _data_rows(partial) == rows and 100 <= rows < N_BIG
    p = run_msd('scan', '--root', root, '--out', out, '--workers', '2', '--no-progress')
    assert f'resumed {rows} rows' in p.stdout
    a = read_csv(ref, keep_default_na=False)
    b = read_csv(out, keep_default_na=False)
    assert len(b) == N_BIG and b['file_path'].is_unique
    pd.testing.assert_frame_equal(a, b)
    # the file body (everything but the provenance line) is byte-identical
    assert ref.read_text().splitlines()[1:] == out.read_text().splitlines()[1:]


def test_workers_exit_when_the_job_is_killed(tmp_path, big_tree):
    """``kill -9`` of the job alone (not its group): its two workers must not live on."""
    import psutil
    root, _ = big_tree
    proc, _, release = _start_pool_scan(root, tmp_path / 'scan.csv', pause_after=100)
    _wait_until_paused(proc, release)
    workers = psutil.Process(proc.pid).children()
    assert len(workers) == 2
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)   # not communicate(): surviving workers would hold its pipes open
        deadline = time.monotonic() + 10
        while not all(_gone(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(_gone(w) for w in workers), 'workers outlived their job'
    finally:
        for w in workers:
            if not _gone(w):
                w.kill()


def test_killed_worker_stops_the_run_with_a_message_and_resumes(tmp_path, big_tree):
    """A worker killed on its own (the OOM killer) must not hang the run: the parent stops with a
    clear message, keeps the partial file, and the same command resumes it."""
    import psutil
    root, ref = big_tree
    out = tmp_path / 'run' / 'scan.csv'
    proc, partial, release = _start_pool_scan(root, out, pause_after=50)
    _wait_until_paused(proc, release)
    victim = psutil.Process(proc.pid).children()[0]
    victim.kill()
    victim.wait(timeout=30)
    open(release, 'w').close()   # let the job go on, with one worker dead
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert 'worker process died' in err and 'resume' in err and 'Traceback' not in err
    assert os.path.exists(partial) and not out.exists()
    p = run_msd('scan', '--root', root, '--out', out, '--workers', '2', '--no-progress')
    assert 'resumed' in p.stdout
    assert ref.read_text().splitlines()[1:] == out.read_text().splitlines()[1:]


FREEZE_PROBE = """
import gc, json, sys
from msd.parallel import run_resumable
def row(item):
    return (item, gc.get_freeze_count())
def err(item, message):
    return (item, -1)
if __name__ == '__main__':
    r = run_resumable(sys.argv[1], ('file_path', 'frozen'), [str(i) for i in range(64)], row, key=str,
                      error_row=err, workers=2, progress=False)
    print(json.dumps({'parent_after': gc.get_freeze_count(), 'tensorflow': 'tensorflow' in sys.modules}))
"""


def test_forked_workers_start_with_the_parent_heap_frozen(tmp_path):
    # gc.freeze() before forking: the workers' collections skip the parent's objects (no walk, no
    # copy-on-write); the parent unfreezes afterwards
    script = tmp_path / 'probe.py'
    script.write_text(FREEZE_PROBE)
    out = tmp_path / 'rows.csv'
    p = subprocess.run([sys.executable, str(script), str(out)], env=msd_env(), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout.strip().splitlines()[-1])
    assert not info['tensorflow']  # so the pool forks
    rows = read_csv(out)
    assert len(rows) == 64 and (rows['frozen'] > 0).all()
    assert info['parent_after'] == 0


def test_iter_files_skips_dir_symlinks(tmp_path, good_mp3):
    root = tmp_path / 'r'
    write_file(root / 'a' / '1.clip.mp3', good_mp3)
    os.symlink(root, root / 'loop')
    assert list(iter_files(root)) == ['a/1.clip.mp3']


def test_bad_file_names_are_skipped_not_fatal(tmp_path, good_mp3):
    root = tmp_path / 'r'
    write_file(root / 'a' / '1.clip.mp3', good_mp3)
    with open(os.path.join(os.fsencode(root / 'a'), b'bad\xffname.mp3'), 'wb') as f:
        f.write(good_mp3)
    out = tmp_path / 's.csv'
    r = scan(root, out, progress=False)
    assert r.n_rows == 1 and r.walk.bad_names == 1 and 'bad names skipped' in r.summary


def test_msd_never_imports_tensorflow():
    code = ('import sys, msd.__main__, msd.scan, msd.silence, msd.build, msd.cleandb, msd.cooccurrence, '
            'msd.lastfm, msd.summary; import msd.silence as s; s.warm_up(); '
            'print("tensorflow" in sys.modules)')
    p = subprocess.run([sys.executable, '-c', code], env=msd_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == 'False'


def test_id3_tagged_mp3_reads_like_untagged(tmp_path, good_mp3):
    import mutagen.id3
    import mutagen.mp3
    plain = write_file(tmp_path / 'r' / '1.clip.mp3', good_mp3)
    tagged = write_file(tmp_path / 'r' / '2.clip.mp3', good_mp3)
    m = mutagen.mp3.MP3(tagged)
    m.add_tags()
    m.tags.add(mutagen.id3.TIT2(encoding=3, text='A title'))
    m.tags.add(mutagen.id3.APIC(encoding=3, mime='image/png', type=3, desc='cover', data=b'\x89PNG' + b'x' * 5000))
    m.save()
    assert open(tagged, 'rb').read(3) == b'ID3'
    out = tmp_path / 's.csv'
    scan(tmp_path / 'r', out, progress=False)
    df = read_csv(out).set_index('file_path')
    assert (df['status'] == 'ok').all()
    for col in ('duration', 'channels', 'sample_rate', 'bitrate'):
        assert df.loc['1.clip.mp3', col] == df.loc['2.clip.mp3', col], col
    assert df.loc['2.clip.mp3', 'duration'] == pytest.approx(mutagen.mp3.MP3(tagged).info.length, abs=1e-3)
    assert os.path.getsize(plain) < df.loc['2.clip.mp3', 'file_size']


def test_stop_pool_ends_the_executor_thread_stuck_on_half_a_result():
    # a worker terminated while sending its result leaves half a message in the result pipe; the
    # executor's manager thread then waits for the rest for ever, and the interpreter hangs at exit
    # joining it (a Ctrl-C'd scan that never exits). Half a message is put there by hand here.
    import multiprocessing
    import struct
    from concurrent.futures import ProcessPoolExecutor
    from msd.parallel import stop_pool
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'))
    assert pool.submit(abs, -1).result(timeout=60) == 1
    thread = pool._executor_manager_thread
    pool._result_queue._writer._send(struct.pack('!i', 1 << 20) + b'half')   # a header, then 4 of 1 MiB
    time.sleep(0.3)                                       # the thread is now inside recv(), waiting
    stop_pool(pool)
    thread.join(timeout=15)
    assert not thread.is_alive(), 'the manager thread is still waiting for the rest of the message'
