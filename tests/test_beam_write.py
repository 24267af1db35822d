"""`preprocessing write --engine beam`: the Apache Beam pipeline writes the local writer's shards.

Beam runs in-process (``FnApiRunner``, named explicitly). The local writer's output is the reference:
same shards byte for byte (several splits and shards, an unreadable file skipped), same
``skipped.csv``, same manifest apart from the command and the engine. Jobs are interrupted at a
known point: the writer's test hook (``preprocessing.tfrecords.PAUSE_ENV``) stops it after its N-th
track, creates ``paused`` and waits for ``resume``.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from core.locks import lock_path
from preprocessing.__main__ import main
from preprocessing.beam_write import import_beam, pipeline_options
from preprocessing.dataset import load_manifest
from preprocessing.splits import write_splits
from preprocessing.tfrecords import PAUSE_ENV, write_tfrecords
from tests._pipeline_fixtures import make_split_corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARDS = {'train': 3, 'validation': 2, 'test': 2}


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    c = make_split_corpus(tmp_path_factory.mktemp('corpus'), n_tracks=16)
    # every split large enough for two shards: tracks 0, 1 of every four train, 2 validation, 3 test
    # (the unreadable file, the last track, is in test)
    ids = sorted(c['split_of'])
    split = pd.DataFrame({'track_id': ids, 'split': [('train', 'train', 'validation', 'test')[i % 4]
                                                     for i in range(len(ids))]})
    write_splits(split, c['splits'], command='test fixture', overwrite=True)
    return c


def _write(corpus, out, **kw):
    kw = {'format': 'log-mel', 'preset': 'musicnn', 'shards_per_split': SHARDS, 'workers': 1, 'progress': False,
          **kw}
    return write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], str(out), **kw)


@pytest.fixture(scope='module')
def reference(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp('local')
    _write(corpus, out)
    return str(out)


def _outputs(directory):
    """Every file of a dataset but the manifest, by name: shards, skipped.csv, per-shard JSON."""
    found = {}
    for folder, _, names in os.walk(directory):
        for n in names:
            if n != 'manifest.json' and n != 'plan.json':
                path = os.path.join(folder, n)
                found[os.path.relpath(path, directory)] = open(path, 'rb').read()
    return found


def _manifest_without(directory, *keys):
    m = load_manifest(directory)
    return {k: v for k, v in m.items() if k not in keys}


def _temps(out):
    return [os.path.join(f, n) for f, _, names in os.walk(out) for n in names if n.startswith('.') or '.partial' in n]


def _cli(corpus, out, *extra):
    return ['write', '--master', corpus['master'], '--tags', corpus['tags_db'], '--splits', corpus['splits'],
            '--out', str(out), '--format', 'log-mel', '--preset', 'musicnn',
            '--shards-per-split', *(str(SHARDS[s]) for s in ('train', 'validation', 'test')), '--no-progress',
            '--engine', 'beam', *extra]


# ------------------------------------------------------------------------------------ byte-identical

@pytest.mark.parametrize('workers', [1, 2])
def test_beam_shards_are_byte_identical_to_the_local_writer(corpus, reference, tmp_path, workers):
    out = tmp_path / 'beam'
    summary = _write(corpus, out, engine='beam', workers=workers)
    m = load_manifest(out)
    assert {sp: len(s['shards']) for sp, s in m['splits'].items()} == SHARDS      # several splits, several shards
    assert summary['tracks_skipped'] == {'not-audio': 1}                            # the bad file, skipped
    assert summary['shards_written'] == sum(SHARDS.values())
    beam, local = _outputs(out), _outputs(reference)
    assert sorted(beam) == sorted(local)
    assert [n for n in beam if beam[n] != local[n]] == []
    assert b'not-audio' in beam['skipped.csv']
    assert m['engine'] == {'name': 'beam', 'runner': 'FnApiRunner'}
    assert load_manifest(reference)['engine'] == {'name': 'local'}
    assert _manifest_without(out, 'engine', 'command') == _manifest_without(reference, 'engine', 'command')
    assert not _temps(out) and not os.path.exists(lock_path(out))


def test_beam_resumes_a_local_run_and_skips_complete_shards(corpus, reference, tmp_path):
    out = tmp_path / 'out'
    _write(corpus, out)
    first = load_manifest(out)['splits']['train']['shards'][0]['file']
    os.remove(out / 'manifest.json')
    os.remove(out / first)                        # one shard to redo, the others complete
    summary = _write(corpus, out, engine='beam')
    assert (summary['shards_written'], summary['shards_already_done']) == (1, sum(SHARDS.values()) - 1)
    assert _outputs(out) == _outputs(reference)


# ------------------------------------------------------------------------------------ the command

def test_engine_beam_through_the_command_line(corpus, reference, tmp_path, capsys):
    out = tmp_path / 'cli'
    assert main(_cli(corpus, out, '--workers', '2', '--runner', 'FnApiRunner',
                     '--beam-option', 'direct_running_mode=multi_threading')) == 1   # 1: the unreadable file
    stdout = capsys.readouterr().out
    tracks = sum(s['tracks'] for s in load_manifest(reference)['splits'].values())
    assert f'write: {tracks} tracks in {sum(SHARDS.values())} new shard(s)' in stdout
    assert _outputs(out) == _outputs(reference)
    m = load_manifest(out)
    assert '--engine beam' in m['command'] and m['engine']['runner'] == 'FnApiRunner'


def test_beam_options_without_the_beam_engine_are_refused(corpus, tmp_path, capsys):
    argv = [a for a in _cli(corpus, tmp_path / 'x', '--runner', 'FlinkRunner') if a not in ('--engine', 'beam')]
    assert main(argv) == 2
    assert '--engine beam' in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()


def test_pipeline_options_from_beam_option_pairs():
    import_beam()
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
    opts = pipeline_options('FlinkRunner', {'flink_master': 'host:8081', 'streaming': True}, workers=4)
    assert opts.get_all_options()['flink_master'] == 'host:8081'
    assert opts.view_as(StandardOptions).streaming is True
    assert opts.view_as(DirectOptions).direct_num_workers == 1          # not an in-process runner
    local = pipeline_options('FnApiRunner', {}, workers=3).view_as(DirectOptions)
    assert (local.direct_num_workers, local.direct_running_mode) == (3, 'multi_threading')
    assert isinstance(opts, PipelineOptions)


# ------------------------------------------------------------------------------------ kill -9, resume

def _shards_in_write_order(directory):
    m = load_manifest(directory)
    return [s['file'] for sp in ('train', 'validation', 'test') for s in m['splits'][sp]['shards']]


def _planned_tracks(directory, name):
    with open(os.path.join(directory, '_shards', name + '.json')) as f:
        info = json.load(f)
    return info['examples'] + len(info['skipped'])


@pytest.mark.slow
def test_beam_job_killed_mid_shard_resumes_identically(corpus, reference, tmp_path):
    out, hook = tmp_path / 'out', tmp_path / 'hook'
    hook.mkdir()
    # one worker: shards are written one after the other, in the order Beam takes them; stopped one
    # track past the largest shard, the first shard is complete whichever it was, and the stop lies
    # inside a later shard (the hook runs after a track is written, before its shard is renamed)
    order = _shards_in_write_order(reference)
    sizes = [_planned_tracks(reference, n) for n in order]
    after = max(sizes) + 1
    assert after < sum(sizes)
    cmd = [sys.executable, '-m', 'preprocessing', *_cli(corpus, out, '--workers', '1')]
    env = dict(os.environ, **{PAUSE_ENV: f'{after}:{hook}'})
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (hook / 'paused').exists():
        if proc.poll() is not None:
            pytest.fail(f'the writer ended before its pause point (rc {proc.returncode}): {proc.stderr.read()[-3000:]}')
        assert time.monotonic() < deadline, 'the writer never reached its pause point'
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    done = [n for n in order if (out / n).exists()]
    assert not (out / 'manifest.json').exists() and 0 < len(done) < len(order)
    assert [n for n in os.listdir(out / '_shards') if '.partial' in n]      # the half-written shard
    # resumed in a fresh process with two worker threads (they share its first TensorFlow import)
    r = subprocess.run([sys.executable, '-m', 'preprocessing', *_cli(corpus, out, '--workers', '2')], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert f'taking over a stale lock of pid {proc.pid}' in r.stderr
    assert f'({len(done)} already complete) of {len(order)}' in r.stdout
    assert _outputs(out) == _outputs(reference)
    assert not _temps(out) and not os.path.exists(lock_path(out))


# ------------------------------------------------------------------------------------ a full disk

def _file_size_limit(limit):
    import resource

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow
def test_beam_full_disk_exits_4_and_resumes(corpus, reference, tmp_path):
    # files may grow to the size of the smallest shard: that one completes, a larger one cannot
    order = _shards_in_write_order(reference)
    sizes = {n: os.path.getsize(os.path.join(reference, n)) for n in order}
    limit = min(sizes.values())
    assert max(sizes.values()) > limit
    out = tmp_path / 'out'
    cmd = [sys.executable, '-m', 'preprocessing', *_cli(corpus, out, '--workers', '1')]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=_file_size_limit(limit))
    assert r.returncode == 4, r.stderr[-3000:]
    errors = [ln for ln in r.stderr.splitlines() if 'error:' in ln]
    assert len(errors) == 1 and 'no space left on the device' in errors[0] and 'resume' in errors[0], r.stderr
    assert 'Traceback' not in r.stderr
    assert not _temps(out)
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr[-3000:]
    assert _outputs(out) == _outputs(reference)
