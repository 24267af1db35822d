"""`preprocessing write` under hostile use: two writers, kill -9, a full disk, paths outside the audio
root, junk lines, split rows for unknown tracks, and the permissions of every output file.

Jobs are interrupted at a known point: the writer's test hook (``preprocessing.tfrecords.PAUSE_ENV``)
stops it after its N-th track, creates ``paused`` and waits for ``resume``.
"""
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from core.locks import LockedError, lock_path
from core.procs import pid_alive
from msd.tables import read_master, write_master
from preprocessing.__main__ import main
from preprocessing.dataset import load_manifest
from preprocessing.encode import PAUSE_ENV as ENCODE_PAUSE_ENV
from preprocessing.splits import read_splits, write_splits
from preprocessing.tfrecords import PAUSE_ENV, write_tfrecords
from tests._audio_fixtures import music_like, write_wav
from tests._pipeline_fixtures import make_split_corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    return make_split_corpus(tmp_path_factory.mktemp('corpus'))


def _write(corpus, out, **kw):
    kw = {'format': 'log-mel', 'preset': 'musicnn', 'shards_per_split': 2, 'workers': 1, 'progress': False, **kw}
    return write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], str(out), **kw)


@pytest.fixture(scope='module')
def reference(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp('reference')
    _write(corpus, out)
    return str(out)


def _shard_bytes(directory):
    m = load_manifest(directory)
    return {s['file']: open(os.path.join(directory, s['file']), 'rb').read()
            for sp in m['splits'].values() for s in sp['shards']}


def _cli(corpus, out, *extra, workers=1, shards=(2,)):
    return [sys.executable, '-m', 'preprocessing', 'write', '--master', corpus['master'], '--tags', corpus['tags_db'],
            '--splits', corpus['splits'], '--out', str(out), '--format', 'log-mel', '--preset', 'musicnn',
            '--shards-per-split', *map(str, shards), '--workers', str(workers), '--no-progress', *extra]


def _paused(cmd, hook_dir, after, **kw):
    """Start ``cmd`` with the pause hook after ``after`` tracks; return it once it is paused there."""
    os.makedirs(hook_dir, exist_ok=True)
    env = dict(os.environ, **{PAUSE_ENV: f'{after}:{hook_dir}'})
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    deadline = time.monotonic() + 300
    while not os.path.exists(os.path.join(hook_dir, 'paused')):
        if proc.poll() is not None:
            pytest.fail(f'the writer ended before its pause point (rc {proc.returncode}): {proc.stderr.read()[-3000:]}')
        assert time.monotonic() < deadline, 'the writer never reached its pause point'
        time.sleep(0.05)
    return proc


def _shards_in_write_order(directory):
    m = load_manifest(directory)
    return [s['file'] for sp in ('train', 'validation', 'test') for s in m['splits'][sp]['shards']]


def _planned_tracks(directory, name):
    """Tracks the writer went through for one shard: written and skipped."""
    import json
    info = json.loads((Path(directory) / '_shards' / (name + '.json')).read_text())
    return info['examples'] + len(info['skipped'])


def _temps(out):
    """Hidden temporary files and partial shards left anywhere in ``out``."""
    found = []
    for folder, _, names in os.walk(out):
        found += [os.path.join(folder, n) for n in names if n.startswith('.') or '.partial' in n]
    return found


# ------------------------------------------------------------------------------------ two writers, kill -9

def test_second_writer_is_refused_naming_the_holder(corpus, reference, tmp_path, capsys):
    out = tmp_path / 'out'
    first = _paused(_cli(corpus, out), tmp_path / 'hook', after=2)
    try:
        partial = [n for n in os.listdir(out / '_shards') if '.partial' in n]
        assert partial and all(f'-{first.pid}-' in n for n in partial)   # temp names unique per process
        with pytest.raises(LockedError, match=f'pid {first.pid}') as e:
            _write(corpus, out)
        assert 'preprocessing write' in str(e.value)
        assert main(['write', '--master', corpus['master'], '--tags', corpus['tags_db'], '--splits',
                     corpus['splits'], '--out', str(out), '--workers', '1', '--no-progress']) == 3
        assert f'pid {first.pid}' in capsys.readouterr().err
    finally:
        (tmp_path / 'hook' / 'resume').touch()
        stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 1, stderr          # 1: the corpus has an unreadable file (reported)
    assert _shard_bytes(out) == _shard_bytes(reference)
    assert not _temps(out) and not os.path.exists(lock_path(out))


def test_kill_9_then_rerun_takes_over_the_lock_and_resumes_identically(corpus, reference, tmp_path):
    out = tmp_path / 'out'
    # stopped after the first track of the last shard: every other shard is complete
    shards = _shards_in_write_order(reference)
    before_last = sum(_planned_tracks(reference, name) for name in shards[:-1])
    proc = _paused(_cli(corpus, out), tmp_path / 'hook', after=before_last + 1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert os.path.exists(lock_path(out)) and not (out / 'manifest.json').exists()
    assert [n for n in os.listdir(out / '_shards') if '.partial' in n]
    r = subprocess.run(_cli(corpus, out), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    assert f'taking over a stale lock of pid {proc.pid}' in r.stderr
    assert f'1 new shard(s) ({len(shards) - 1} already complete) of {len(shards)}' in r.stdout
    assert _shard_bytes(out) == _shard_bytes(reference)
    assert not _temps(out) and not os.path.exists(lock_path(out))


def test_busy_workers_die_with_the_killed_writer(corpus, tmp_path):
    # each worker is stopped inside a task (as on a long file): only an exit-with-parent watch ends
    # it when the writer dies; idle pool workers would notice the closed task pipe by themselves
    hook = tmp_path / 'hook'
    hook.mkdir()
    env = dict(os.environ, **{ENCODE_PAUSE_ENV: str(hook)})
    err = tmp_path / 'stderr.txt'
    with open(err, 'w') as f:   # a file, not a pipe: the workers inherit it
        proc = subprocess.Popen(_cli(corpus, tmp_path / 'out', workers=2), cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=f)
    workers = []
    try:
        deadline = time.monotonic() + 300
        while len(workers) < 2:
            assert proc.poll() is None, err.read_text()[-3000:]
            assert time.monotonic() < deadline, 'the workers never reached their pause point'
            time.sleep(0.05)
            workers = [int(p.name.split('-')[1]) for p in hook.glob('worker-*')]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 15
        while any(pid_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [w for w in workers if pid_alive(w)], 'pool workers outlived their writer'
    finally:
        for w in workers:
            if pid_alive(w):
                os.kill(w, signal.SIGKILL)


# ------------------------------------------------------------------------------------ a full disk

def _file_size_limit(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_full_disk_removes_the_partial_shard_exits_4_and_resumes(corpus, tmp_path):
    # one track per train shard, one shard of several for validation: files may grow to the size
    # of the first (one-track) shard, so it completes and the validation shard cannot
    shards = (6, 1, 1)
    reference = tmp_path / 'reference'
    _write(corpus, reference, shards_per_split=dict(zip(('train', 'validation', 'test'), shards)))
    order = _shards_in_write_order(reference)
    sizes = [os.path.getsize(reference / f) for f in order]
    limit = sizes[0]
    assert max(sizes) > limit, sizes
    out = tmp_path / 'out'
    r = subprocess.run(_cli(corpus, out, shards=shards), cwd=ROOT, capture_output=True, text=True, timeout=300,
                       preexec_fn=_file_size_limit(limit))
    assert r.returncode == 4, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if 'error' in ln]
    assert len(errors) == 1 and 'no space left on the device' in errors[0] and 'resume' in errors[0]
    assert 'Traceback' not in r.stderr
    assert not _temps(out)
    assert (out / order[0]).exists() and (out / '_shards' / (order[0] + '.json')).exists()
    r = subprocess.run(_cli(corpus, out, shards=shards), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    assert 'already complete' in r.stdout
    assert _shard_bytes(out) == _shard_bytes(reference)



def test_full_disk_in_whole_shard_workers_exits_4_leaves_no_temp_and_resumes(corpus, tmp_path):
    # the workers write whole shards (forced: the small corpus would not balance), and hit the limit
    # (inherited from the writer) in their own processes
    shards = (6, 1, 1)
    reference = tmp_path / 'reference'
    _write(corpus, reference, shards_per_split=dict(zip(('train', 'validation', 'test'), shards)))
    limit = os.path.getsize(reference / _shards_in_write_order(reference)[0])     # a one-track shard
    out = tmp_path / 'out'
    script = ('import sys, preprocessing.tfrecords as t; t.SHARD_TASK_BALANCE = 100.0; '
              'from preprocessing.__main__ import main; sys.exit(main(sys.argv[1:]))')
    cmd = [sys.executable, '-c', script, *_cli(corpus, out, workers=2, shards=shards)[3:], '-v']
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       preexec_fn=_file_size_limit(limit))
    assert r.returncode == 4, r.stderr
    assert 'each writes whole shards' in r.stderr
    assert 'no space left on the device' in r.stderr and 'Traceback' not in r.stderr
    assert not _temps(out)
    for name in os.listdir(out):                                   # what is there is complete
        if name.endswith('.tfrecord'):
            assert (out / '_shards' / (name + '.json')).exists()
            assert (out / name).read_bytes() == (reference / name).read_bytes()
    r = subprocess.run(_cli(corpus, out, workers=2, shards=shards), cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode in (0, 1), r.stderr
    assert _shard_bytes(out) == _shard_bytes(reference)
    assert not _temps(out)


# ------------------------------------------------------------------------------------ inputs

def _copy_corpus(corpus, tmp_path):
    """A private copy of the corpus (master, tags, splits, audio) under tmp_path/c."""
    c = tmp_path / 'c'
    shutil.copytree(corpus['root'], c)
    master = read_master(c / 'master.csv')
    return c, master.frame.copy()


def test_paths_outside_the_audio_root_are_skipped_and_reported(corpus, tmp_path, capsys):
    c, df = _copy_corpus(corpus, tmp_path)
    audio = c / 'audio'
    outside = tmp_path / 'outside.wav'
    write_wav(outside, music_like(2.0, 16000, seed=99), 16000)
    os.symlink(outside, audio / 'link-out.wav')
    os.symlink(audio / '0.wav', audio / 'link-in.wav')
    df.loc[0, ['file_path', 'audio_path']] = ['../../outside.wav', None]          # ../
    df.loc[1, ['file_path', 'audio_path']] = [str(outside), None]                 # absolute file_path
    df.loc[2, ['file_path', 'audio_path']] = [None, str(outside)]                 # absolute audio_path
    df.loc[3, ['file_path', 'audio_path']] = ['link-out.wav', None]               # symlink leaving the root
    df.loc[4, ['file_path', 'audio_path']] = ['link-in.wav', None]                # symlink inside: fine
    write_master(df, c / 'master.csv', meta={'audio_root': str(audio)}, overwrite=True)
    out = tmp_path / 'out'
    code = main(['write', '--master', str(c / 'master.csv'), '--tags', str(c / 'clean_tags.db'), '--splits',
                 str(c / 'splits.csv'), '--out', str(out), '--workers', '1', '--no-progress',
                 '--shards-per-split', '1'])
    assert code == 1
    skipped = pd.read_csv(out / 'skipped.csv', keep_default_na=False)
    outside_ids = set(skipped.track_id[skipped.reason == 'outside-root'])
    assert outside_ids == set(df.track_id[:4])
    assert 'outside the audio root' in skipped.detail[skipped.reason == 'outside-root'].iloc[0]
    written = set()
    import tensorflow as tf
    for name in _shard_bytes(out):
        for rec in tf.data.TFRecordDataset(str(out / name)):
            written.add(tf.train.Example.FromString(rec.numpy()).features.feature['track_id'].bytes_list.value[0].decode())
    assert not written & outside_ids
    assert df.track_id[4] in written
    assert 'outside-root 4' in capsys.readouterr().out


def test_no_audio_root_is_a_clear_error(corpus, tmp_path, capsys):
    c, df = _copy_corpus(corpus, tmp_path)
    write_master(df, c / 'master.csv', overwrite=True)   # no '# audio_root=' line
    args = ['write', '--master', str(c / 'master.csv'), '--tags', str(c / 'clean_tags.db'), '--splits',
            str(c / 'splits.csv'), '--out', str(tmp_path / 'out'), '--workers', '1', '--no-progress']
    assert main(args) == 2
    err = capsys.readouterr().err
    assert 'records no audio root' in err and '--audio-root' in err
    assert not (tmp_path / 'out' / 'manifest.json').exists()
    assert main(args + ['--audio-root', str(c / 'audio')]) == 1       # 1: the corpus's unreadable file
    assert load_manifest(tmp_path / 'out')['inputs']['audio_root'] == str(c / 'audio')


def test_junk_master_lines_are_reported_and_hash_names_kept(corpus, tmp_path, capsys, caplog):
    c, df = _copy_corpus(corpus, tmp_path)
    os.rename(c / 'audio' / '0.wav', c / 'audio' / 'clip-005 #x.wav')
    df.loc[0, 'file_path'] = 'clip-005 #x.wav'
    df = df.drop(columns=['audio_path'])
    text = df.to_csv(index=False)   # pandas' default writer: '#' unquoted
    lines = text.splitlines()
    lines.insert(3, 'garbage line here')
    lines.insert(5, '"TRJUNK000000000001,AR1,oops')
    (c / 'master.csv').write_text(f'# musetag test\n# audio_root={c / "audio"}\n' + '\n'.join(lines) + '\n')
    out = tmp_path / 'out'
    code = main(['write', '--master', str(c / 'master.csv'), '--tags', str(c / 'clean_tags.db'), '--splits',
                 str(c / 'splits.csv'), '--out', str(out), '--workers', '1', '--no-progress'])
    assert code == 1
    captured = capsys.readouterr()
    assert 'bad-line 2' in captured.out
    logged = caplog.text
    assert "line 6: 1 field(s), expected 6: 'garbage line here'" in logged
    assert 'line 8: unterminated quote' in logged
    skipped = pd.read_csv(out / 'skipped.csv', keep_default_na=False)
    bad = skipped[skipped.reason == 'bad-line']
    assert len(bad) == 2 and bad.detail.str.contains('line 6').any() and bad.detail.str.contains('line 8').any()
    assert 'TRJUNK000000000001' not in set(skipped.track_id)
    m = load_manifest(out)
    total = sum(s['tracks'] for s in m['splits'].values())
    assert total == 10 and m['skipped']['bad-line'] == 2          # the '#' track is among those written


def test_split_rows_for_unknown_tracks_are_reported(corpus, tmp_path, caplog):
    c, _ = _copy_corpus(corpus, tmp_path)
    splits = read_splits(c / 'splits.csv').frame
    extra = pd.DataFrame({'track_id': [f'TRGONE{i:012d}' for i in range(7)], 'split': 'train'})
    write_splits(pd.concat([splits, extra]), c / 'splits.csv')
    summary = write_tfrecords(str(c / 'master.csv'), str(c / 'clean_tags.db'), str(c / 'splits.csv'),
                              str(tmp_path / 'out'), format='waveform', shards_per_split=1, progress=False)
    assert summary['input_problems'] == {'not-in-master': 7}
    warning = next(r.getMessage() for r in caplog.records if 'not in the master table' in r.getMessage())
    assert '7 row(s)' in warning and 'TRGONE000000000000' in warning
    skipped = pd.read_csv(tmp_path / 'out' / 'skipped.csv', keep_default_na=False)
    assert set(skipped.track_id[skipped.reason == 'not-in-master']) == set(extra.track_id)


# ------------------------------------------------------------------------------------ permissions

def test_outputs_of_split_and_write_have_normal_permissions(corpus, tmp_path):
    old = os.umask(0o022)
    try:
        assert main(['split', '--master', corpus['master'], '--out', str(tmp_path / 'splits.csv')]) == 0
        out = tmp_path / 'out'
        assert main(['write', '--master', corpus['master'], '--tags', corpus['tags_db'], '--splits',
                     str(tmp_path / 'splits.csv'), '--out', str(out), '--workers', '1', '--no-progress',
                     '--shards-per-split', '1']) == 1
    finally:
        os.umask(old)
    kinds = {'splits.csv': tmp_path / 'splits.csv', 'manifest.json': out / 'manifest.json',
             'skipped.csv': out / 'skipped.csv', 'plan.json': out / '_shards' / 'plan.json'}
    kinds['shard'] = next(out.glob('*.tfrecord'))
    kinds['shard state'] = next((out / '_shards').glob('*.tfrecord.json'))
    for kind, path in kinds.items():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, kind
    for folder in (out, out / '_shards'):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o755, folder
    assert not _temps(out) and not [n for n in os.listdir(tmp_path) if n.startswith('.')]
