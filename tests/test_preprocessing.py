"""TFRecord writing, split manifests and the tf.data pipeline."""
import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from preprocessing.audio import load_audio
from preprocessing.dataset import (TagSelection, check_features, label_lookup, load_manifest, make_dataset,
                                   resolve_labels, window_length)
from preprocessing.features import get_params, log_mel
from preprocessing.splits import make_split, read_split_lists, read_splits
from preprocessing.tfrecords import write_tfrecords
from tests._pipeline_fixtures import TAGS, make_split_corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    return make_split_corpus(tmp_path_factory.mktemp('corpus'))


@pytest.fixture(scope='module')
def logmel_dir(corpus, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('logmel'))
    write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], out, format='log-mel', preset='musicnn',
                    shards_per_split=2, workers=1, progress=False)
    return out


@pytest.fixture(scope='module')
def wave_dir(corpus, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('wave'))
    write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], out, format='waveform',
                    shards_per_split=1, workers=1, progress=False)
    return out


def _read_all(directory, split, labels, seconds):
    ds = make_dataset(directory, split, labels=labels, window='all', window_seconds=seconds, batch_size=64)
    out = {}
    for a, y, t in ds:
        for i, tid in enumerate(t.numpy()):
            out.setdefault(tid.decode(), []).append((a[i].numpy(), y[i].numpy()))
    return out


# ---------------------------------------------------------------- splits

def test_artist_split_is_disjoint_and_deterministic():
    master = pd.DataFrame({'track_id': [f'TR{i:016d}' for i in range(400)],
                           'artist_id': [f'AR{i // 4:016d}' for i in range(400)]})
    a, rep = make_split(master, by='artist', seed=7)
    b, _ = make_split(master, by='artist', seed=7)
    pd.testing.assert_frame_equal(a, b)
    merged = master.merge(a, on='track_id')
    assert (merged.groupby('artist_id')['split'].nunique() == 1).all()
    assert 0.7 < rep['train'] / 400 < 0.9 and rep['validation'] > 10 and rep['test'] > 10
    c, _ = make_split(master, by='artist', seed=8)
    assert not a.equals(c)
    # stable: adding tracks does not move existing ones
    more = pd.concat([master, pd.DataFrame({'track_id': ['TRNEW0000000000001'], 'artist_id': ['ARNEW']})])
    d, _ = make_split(more, by='artist', seed=7)
    pd.testing.assert_frame_equal(d.iloc[:400], a)


def test_list_split(tmp_path):
    master = pd.DataFrame({'track_id': [f'TR{i:016d}' for i in range(6)]})
    files = []
    for name, ids in (('tr', [0, 1, 2]), ('va', [3]), ('te', [4, 99])):
        p = tmp_path / f'{name}.txt'
        p.write_text('# comment\n' + ''.join(f'TR{i:016d}\textra\n' for i in ids))
        files.append(str(p))
    lists = read_split_lists(files)
    out, rep = make_split(master, by='list', lists=lists)
    expect = [(0, 'train'), (1, 'train'), (2, 'train'), (3, 'validation'), (4, 'test')]
    assert dict(zip(out.track_id, out.split)) == {f'TR{i:016d}': s for i, s in expect}
    assert rep['unlisted'] == 1 and rep['missing'] == 1
    (tmp_path / 'va.txt').write_text('TR0000000000000000\n')
    with pytest.raises(ValueError, match='both'):
        read_split_lists(files)


def test_split_cli_and_bad_manifest(tmp_path, corpus):
    out = tmp_path / 's.csv'
    cmd = [sys.executable, '-m', 'preprocessing', 'split', '--master', corpus['master'], '--out', str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert 'split (artist)' in r.stdout
    assert set(read_splits(out).frame.split) <= {'train', 'validation', 'test'}
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and '--overwrite' in r.stderr
    bad = tmp_path / 'bad.csv'
    bad.write_text('track_id,split\nTR1,training\n')
    with pytest.raises(ValueError, match='unknown split'):
        read_splits(bad)


# ---------------------------------------------------------------- writing + reading

def test_round_trip_log_mel_exact(corpus, logmel_dir):
    m = load_manifest(logmel_dir)
    params = get_params('musicnn')
    labels = list(TAGS)
    seen = {}
    for split in ('train', 'validation', 'test'):
        if not m['splits'][split]['shards']:
            continue
        # 1000 s windows: each track comes back whole, once (repeat-padded to the window)
        ds = make_dataset(logmel_dir, split, labels=labels, window='all', window_seconds=1000, batch_size=1,
                          pad='zero')
        for a, y, t in ds:
            seen[t.numpy()[0].decode()] = (a.numpy()[0], y.numpy()[0], split)
    good = [r for r in corpus['rows'] if r['track_id'] in corpus['tags_of'] and r['audio_path'].endswith('.wav')]
    assert sorted(seen) == sorted(r['track_id'] for r in good)
    for row in good:
        spec, y, split = seen[row['track_id']]
        assert split == corpus['split_of'][row['track_id']]
        ref = log_mel(load_audio(row['audio_path']), params).astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(spec[:len(ref)], ref)
        assert not spec[len(ref):].any()
        expected = np.isin(labels, corpus['tags_of'][row['track_id']]).astype(np.float32)
        np.testing.assert_array_equal(y, expected)


def test_round_trip_waveform_exact(corpus, wave_dir):
    got = _read_all(wave_dir, 'train', list(TAGS), 1000)
    assert got
    for tid, [(audio, _)] in got.items():
        row = next(r for r in corpus['rows'] if r['track_id'] == tid)
        ref = np.round(np.clip(load_audio(row['audio_path']), -1, 1) * 32767).astype(np.int16)
        np.testing.assert_array_equal(np.round(audio[:len(ref)] * 32767).astype(np.int16), ref)


@pytest.fixture(scope='module')
def logmel_variants(corpus, logmel_dir, tmp_path_factory):
    """The same tracks three ways: raw audio-last records (the default), the same records with a
    manifest that does not promise the layout (read by parsing, as format-1 datasets are), zlib."""
    import shutil
    parsed = str(tmp_path_factory.mktemp('parsed'))
    shutil.copytree(logmel_dir, parsed, dirs_exist_ok=True)
    m = load_manifest(parsed)
    del m['features']['layout']
    with open(os.path.join(parsed, 'manifest.json'), 'w') as f:
        json.dump(m, f)
    zl = str(tmp_path_factory.mktemp('zlib'))
    write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], zl, format='log-mel', preset='musicnn',
                    shards_per_split=2, workers=1, progress=False, audio_encoding='zlib')
    return {'audio-last': logmel_dir, 'parsed': parsed, 'zlib': zl}


def test_records_end_with_the_audio_bytes(logmel_dir):
    m = load_manifest(logmel_dir)
    for split in m['splits'].values():
        for shard in split['shards']:
            for rec in tf.data.TFRecordDataset(os.path.join(logmel_dir, shard['file'])):
                rec = rec.numpy()
                ex = tf.train.Example.FromString(rec)  # one Example with every key
                assert sorted(ex.features.feature) == ['artist_id', 'audio', 'duration', 'shape', 'tags', 'track_id']
                audio = ex.features.feature['audio'].bytes_list.value[0]
                shape = list(ex.features.feature['shape'].int64_list.value)
                assert len(audio) == 2 * int(np.prod(shape)) and rec.endswith(audio)


@pytest.mark.parametrize('variant', ['audio-last', 'parsed', 'zlib'])
def test_random_and_center_windows_are_exact_slices(corpus, logmel_variants, variant):
    directory = logmel_variants[variant]
    params = get_params('musicnn')
    ref = {r['track_id']: log_mel(load_audio(r['audio_path']), params).astype(np.float16).astype(np.float32)
           for r in corpus['rows'] if corpus['split_of'].get(r['track_id']) == 'train'
           and r['track_id'] in corpus['tags_of'] and r['audio_path'].endswith('.wav')}
    m = load_manifest(directory)
    L = window_length(m, 1.0)
    labels = list(TAGS)
    seen = set()
    for a, y, t in make_dataset(directory, 'train', labels=labels, window='center', window_seconds=1.0,
                                batch_size=3, with_track_ids=True):
        for win, lab, tid in zip(a.numpy(), y.numpy(), t.numpy()):
            spec = ref[tid.decode()]
            off = (len(spec) - L) // 2
            np.testing.assert_array_equal(win, spec[off:off + L])
            np.testing.assert_array_equal(lab, np.isin(labels, corpus['tags_of'][tid.decode()]).astype(np.float32))
            seen.add(tid.decode())
    assert seen == set(ref)
    offsets = set()
    for _ in range(3):
        for a, _, t in make_dataset(directory, 'train', labels=labels, window_seconds=1.0, batch_size=4,
                                    with_track_ids=True):
            for win, tid in zip(a.numpy(), t.numpy()):
                spec = ref[tid.decode()]
                hits = [o for o in range(len(spec) - L + 1) if np.array_equal(spec[o], win[0])
                        and np.array_equal(spec[o:o + L], win)]
                assert hits, 'a random window is not a slice of its track'
                offsets.add((tid.decode(), hits[0]))
    assert len(offsets) > len(ref)  # offsets vary between passes


@pytest.mark.parametrize('pad', ['repeat', 'zero'])
@pytest.mark.parametrize('variant', ['audio-last', 'zlib'])
def test_short_tracks_padded_exactly(corpus, logmel_variants, variant, pad):
    directory = logmel_variants[variant]
    params = get_params('musicnn')
    L = window_length(load_manifest(directory), 5.0)  # longer than every fixture track
    n = 0
    for window in ('random', 'center'):
        for a, _, t in make_dataset(directory, 'train', labels=['rock'], window=window, window_seconds=5.0,
                                    batch_size=4, pad=pad, with_track_ids=True):
            for win, tid in zip(a.numpy(), t.numpy()):
                row = next(r for r in corpus['rows'] if r['track_id'] == tid.decode())
                spec = log_mel(load_audio(row['audio_path']), params).astype(np.float16).astype(np.float32)
                assert len(spec) < L
                if pad == 'repeat':
                    want = np.tile(spec, (L // len(spec) + 1, 1))[:L]
                else:
                    want = np.concatenate([spec, np.zeros((L - len(spec), spec.shape[1]), np.float32)])
                np.testing.assert_array_equal(win, want)
                n += 1
    assert n == 2 * load_manifest(directory)['splits']['train']['tracks']


def test_manifest_contents_and_skips(corpus, logmel_dir):
    m = load_manifest(logmel_dir)
    assert m['features']['format'] == 'log-mel' and m['features']['dtype'] == 'float16'
    assert m['features']['params'] == get_params('musicnn').to_dict()
    assert m['features']['frames_per_second'] == 62.5
    assert m['compression'] == '' and m['features']['audio_encoding'] == 'raw'
    assert m['features']['layout'] == 'audio-last' and m['format_version'] == 2
    assert m['skipped'] == {'no-clean-tag': 1, 'not-audio': 1}
    total = sum(s['tracks'] for s in m['splits'].values())
    assert total == 10
    for split, s in m['splits'].items():
        for shard in s['shards']:
            assert shard['file'].startswith(split + '-') and shard['file'].endswith('.tfrecord')
            data = open(os.path.join(logmel_dir, shard['file']), 'rb').read()
            assert hashlib.sha256(data).hexdigest() == shard['sha256']
            assert sum(1 for _ in tf.data.TFRecordDataset(os.path.join(logmel_dir, shard['file']),
                                                         compression_type=m['compression'])) == shard['examples']
    vocab = {v['tag']: v['counts'] for v in m['tags']['vocabulary']}
    for tag in TAGS:
        expect = {s: sum(1 for tid, tags in corpus['tags_of'].items() if tag in tags and corpus['split_of'][tid] == s
                         and not tid.endswith('11')) for s in ('train', 'validation', 'test')}
        assert vocab[tag] == expect
    skipped = pd.read_csv(os.path.join(logmel_dir, 'skipped.csv'))
    assert set(skipped.reason) == {'no-clean-tag', 'not-audio'}


def test_tag_selection_matches_numpy_reference(logmel_dir):
    m = load_manifest(logmel_dir)
    counts = {v['tag']: (v['counts']['train'], v['num']) for v in m['tags']['vocabulary']}
    ranked = sorted(counts, key=lambda t: (-counts[t][0], counts[t][1]))
    assert resolve_labels(m, TagSelection(top=3)) == ranked[:3]
    assert resolve_labels(m, TagSelection(top=None)) == ranked
    sel = TagSelection(top=4, with_=['instrumental'], without=[ranked[0]], merge=[['male', 'female']])
    labels = resolve_labels(m, sel)
    expect = [t for t in ranked[:4] + ['instrumental'] if t != ranked[0]]
    expect = [('male|female' if t in ('male', 'female') else t) for t in expect]
    expect = list(dict.fromkeys(expect))
    assert labels == expect
    table = label_lookup(m, labels)
    vocab = {v['tag']: v['num'] for v in m['tags']['vocabulary']}
    assert table[vocab['male']] == table[vocab['female']] == labels.index('male|female')
    # labels from the pipeline = NumPy multi-hot of each track's tags through the table
    got = _read_all(logmel_dir, 'train', labels, 1000)
    import sqlite3
    for tid, [(_, y)] in got.items():
        nums = [n for n in range(len(table)) if n and table[n] >= 0]
        ref = np.zeros(len(labels), np.float32)
        con = sqlite3.connect(m['tags']['source'])
        tags = [r[0] for r in con.execute('SELECT tid_tag.tag FROM tid_tag JOIN tids ON tids.rowid = tid_tag.tid '
                                          'WHERE tids.tid = ?', (tid,))]
        con.close()
        for n in tags:
            if n in nums:
                ref[table[n]] = 1
        np.testing.assert_array_equal(y, ref)
    with pytest.raises(ValueError, match='not in the dataset vocabulary'):
        resolve_labels(m, TagSelection(with_=['polka']))


@pytest.mark.parametrize('seconds_vs_track', ['shorter', 'equal', 'longer'])
@pytest.mark.parametrize('window', ['random', 'center', 'all'])
def test_window_and_pad_edge_cases(logmel_dir, window, seconds_vs_track):
    m = load_manifest(logmel_dir)
    shapes = {}
    for a, _y, t in make_dataset(logmel_dir, 'train', labels=['rock'], window='all', window_seconds=1000, batch_size=1,
                                pad='zero'):
        shapes[t.numpy()[0].decode()] = a
    # frames of the shortest stored track
    n_min = min(int(np.max(np.nonzero(np.abs(a.numpy()[0]).sum(1))[0])) + 1 for a in shapes.values())
    fps = m['features']['frames_per_second']
    seconds = {'shorter': (n_min + 40) / fps, 'equal': None, 'longer': 0.5}[seconds_vs_track]
    if seconds is None:
        seconds = 1.0
    L = window_length(m, seconds)
    ds = make_dataset(logmel_dir, 'train', labels=['rock'], window=window, window_seconds=seconds, batch_size=4,
                      seed=0, with_track_ids=True)
    n = 0
    for a, _y, _t in ds:
        assert a.shape[1:] == (L, 96)
        assert np.isfinite(a.numpy()).all()
        n += a.shape[0]
    n_tracks = m['splits']['train']['tracks']
    assert n >= n_tracks if window == 'all' else n == n_tracks


def test_manifest_overstating_min_length_is_a_clear_error(logmel_dir, tmp_path):
    # the reader trusts min_length to skip padding; a manifest that lies about it must fail clearly
    import shutil
    import tensorflow as tf
    bad = tmp_path / 'edited'
    shutil.copytree(logmel_dir, bad)
    m = json.loads((bad / 'manifest.json').read_text())
    L = window_length(m, 5.0)  # longer than every fixture track
    m['splits']['train']['min_length'] = L + 1
    (bad / 'manifest.json').write_text(json.dumps(m))
    with pytest.raises(tf.errors.InvalidArgumentError, match='fewer rows than the min_length of manifest.json'):
        for _ in make_dataset(str(bad), 'train', labels=['rock'], window_seconds=5.0, batch_size=2):
            pass


def test_all_windows_cover_track_and_align_last_window(logmel_dir):
    whole = {}
    for a, _, t in make_dataset(logmel_dir, 'train', labels=['rock'], window='all', window_seconds=1000, batch_size=1,
                                pad='zero'):
        whole[t.numpy()[0].decode()] = a.numpy()[0]
    m = load_manifest(logmel_dir)
    L = window_length(m, 1.0)
    parts = {}
    for a, _, t in make_dataset(logmel_dir, 'train', labels=['rock'], window='all', window_seconds=1.0, batch_size=8):
        for i, tid in enumerate(t.numpy()):
            parts.setdefault(tid.decode(), []).append(a.numpy()[i])
    for tid, wins in parts.items():
        spec = whole[tid]
        T = int(np.max(np.nonzero(np.abs(spec).sum(1))[0])) + 1 if np.abs(spec).sum() else len(spec)
        spec = spec[:T]
        assert len(wins) == T // L + (1 if T % L else 0)
        for k in range(T // L):
            np.testing.assert_array_equal(wins[k], spec[k * L:(k + 1) * L])
        np.testing.assert_array_equal(wins[-1], spec[T - L:])


def test_random_windows_deterministic_with_seed(logmel_dir):
    def run(seed):
        ds = make_dataset(logmel_dir, 'train', labels=['rock'], window_seconds=0.5, batch_size=2, seed=seed)
        return np.concatenate([a.numpy().ravel() for a, _ in ds])
    np.testing.assert_array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))


def test_feature_mismatch_is_a_clear_error(logmel_dir, wave_dir):
    m = load_manifest(logmel_dir)
    with pytest.raises(ValueError, match=r'params.hop_length: dataset has 256, expected 512'):
        check_features(m, {'format': 'log-mel', 'params': get_params('orpheus')})
    with pytest.raises(ValueError, match='format'):
        make_dataset(wave_dir, 'train', labels=['rock'], expect_features={'format': 'log-mel'})
    check_features(m, {'format': 'log-mel', 'params': get_params('musicnn')})
    with pytest.raises(FileNotFoundError, match='manifest'):
        load_manifest(os.path.dirname(logmel_dir))


def test_waveform_windows(wave_dir):
    ds = make_dataset(wave_dir, 'train', labels=['rock', 'pop'], window_seconds=1.5, batch_size=3, seed=1)
    a, y = next(iter(ds))
    assert a.shape[1:] == (24000,) and y.shape[1:] == (2,)
    assert float(tf.reduce_max(tf.abs(a))) <= 1.0


def _shard_bytes(directory):
    m = load_manifest(directory)
    return {s['file']: open(os.path.join(directory, s['file']), 'rb').read()
            for sp in m['splits'].values() for s in sp['shards']}


def test_multi_host_partition_covers_every_track_once(corpus, logmel_dir, tmp_path):
    out = str(tmp_path / 'hosts')
    summaries = [write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], out, format='log-mel',
                                 preset='musicnn', shards_per_split=2, num_hosts=3, host_index=h, progress=False)
                 for h in range(3)]
    assert [s['manifest'] for s in summaries] == [False, False, True]
    assert sum(s['shards_written'] for s in summaries) == summaries[0]['shards_total']
    ids = []
    for _a, _y, t in make_dataset(out, 'train', labels=['rock'], window='center', batch_size=16, with_track_ids=True):
        ids += [x.decode() for x in t.numpy()]
    for split in ('validation', 'test'):
        for _a, _y, t in make_dataset(out, split, labels=['rock'], window='center', batch_size=16, with_track_ids=True):
            ids += [x.decode() for x in t.numpy()]
    assert len(ids) == len(set(ids)) == 10
    assert _shard_bytes(out) == _shard_bytes(logmel_dir)


def test_rewrite_with_other_params_refused(corpus, logmel_dir):
    with pytest.raises(FileExistsError, match='feature settings differ'):
        write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], logmel_dir, format='log-mel',
                        preset='orpheus', shards_per_split=2, progress=False)


@pytest.mark.parametrize('tasks, balance', [('shards', 100.0), ('tracks', 0.0)])
def test_parallel_workers_same_bytes(corpus, logmel_dir, tmp_path, monkeypatch, tasks, balance):
    # both ways of sharing the work: workers writing whole shards, or streaming records to the writer
    import preprocessing.tfrecords as tfr
    monkeypatch.setattr(tfr, 'SHARD_TASK_BALANCE', balance)
    out = str(tmp_path / 'par')
    summary = write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], out, format='log-mel',
                              preset='musicnn', shards_per_split=2, workers=2, progress=False)
    assert summary['tasks'] == tasks
    assert _shard_bytes(out) == _shard_bytes(logmel_dir)
    assert load_manifest(out)['splits'] == load_manifest(logmel_dir)['splits']
    assert not [n for n in os.listdir(os.path.join(out, '_shards')) if n.startswith('.')]


def test_whole_shard_tasks_only_when_the_workers_stay_busy():
    from preprocessing.tfrecords import _shard_makespan, _task_kind

    def plan(*sizes):
        return [{'tracks': [None] * n} for n in sizes]
    assert _shard_makespan(plan(10, 10, 10, 10), 2) == 1.0
    assert _shard_makespan(plan(30, 10), 2) == 1.5                  # one worker idles half the time
    assert _shard_makespan(plan(30, 10, 10, 10), 2) == 1.0          # longest first: 30 | 10+10+10
    assert _task_kind(plan(10, 10, 10, 10), '/tmp/x', 2, '') == 'shards'
    assert _task_kind(plan(30, 10), '/tmp/x', 2, '') == 'tracks'
    assert _task_kind(plan(10), '/tmp/x', 2, '') == 'tracks'         # fewer shards than workers
    assert _task_kind(plan(10, 10), '/tmp/x', 2, 'GZIP') == 'tracks'  # TensorFlow compresses, here
    assert _task_kind(plan(10, 10), 's3://b/x', 2, '') == 'tracks'    # the workers have no gfile
    assert _task_kind(plan(10, 10), '/tmp/x', 1, '') == 'serial'


def _blas_threads(limit_first):
    from threadpoolctl import threadpool_info
    if limit_first:
        from preprocessing.encode import init_worker
        init_worker()
    return max(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas')


def test_writer_workers_run_one_blas_thread():
    # OpenBLAS starts a spinning thread per core in every worker: N workers would keep 2N threads busy
    import multiprocessing
    with multiprocessing.get_context('spawn').Pool(1) as pool:
        default, limited = pool.map(_blas_threads, [False, True])
    if default == 1:
        pytest.skip('BLAS already runs one thread here (one core or OPENBLAS_NUM_THREADS=1)')
    assert limited == 1


_CHURN = """
import resource, sys
import numpy as np
if sys.argv[1] == 'worker':
    from preprocessing.encode import init_worker
    init_worker()
def track():   # what a waveform track allocates: float32 samples, an int16 copy, the record bytes
    a = np.ones(470_000, np.float32); b = (a * 3).astype(np.int16); c = b.tobytes(); del a, b, c
track()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    track()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc malloc tuning')
def test_writer_workers_reuse_freed_memory_instead_of_page_faulting():
    # glibc hands each track's few MB back to the kernel and faults them in again (~1 ms per track)
    def faults(mode):
        r = subprocess.run([sys.executable, '-c', _CHURN, mode], capture_output=True, text=True, check=True)
        return int(r.stdout.split()[-1])
    plain, worker = faults('plain'), faults('worker')
    if plain < 20 * 100:
        pytest.skip(f'this allocator keeps freed memory anyway ({plain} faults)')
    assert worker < plain / 20, (plain, worker)


def _fail_second_record(monkeypatch):
    # the serial path (workers=1) builds each record in this process (preprocessing.encode.encode_item)
    import preprocessing.encode as enc
    real, calls = enc.example_parts, []

    def failing(*args):
        calls.append(args[0])
        if len(calls) == 2:
            raise RuntimeError('encoder failed')
        return real(*args)
    monkeypatch.setattr(enc, 'example_parts', failing)


def test_compressed_shards_hold_the_same_records_and_their_own_sha256(corpus, wave_dir, tmp_path):
    # uncompressed shards are framed by the workers; compressed ones by TensorFlow's writer from the
    # unframed records: both must hold the same records, and the manifest the compressed file's hash
    out = tmp_path / 'gz'
    write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], str(out), format='waveform',
                    shards_per_split=1, workers=1, compression='GZIP', progress=False)
    shards = sorted(p.name for p in out.glob('*.tfrecord'))
    assert shards == sorted(n for n in os.listdir(wave_dir) if n.endswith('.tfrecord'))
    for name in shards:
        plain = [r.numpy() for r in tf.data.TFRecordDataset(os.path.join(wave_dir, name))]
        packed = [r.numpy() for r in tf.data.TFRecordDataset(str(out / name), compression_type='GZIP')]
        assert packed == plain and plain
    manifest = json.loads((out / 'manifest.json').read_text())
    hashes = {s['file']: s['sha256'] for sp in manifest['splits'].values() for s in sp['shards']}
    assert hashes == {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in shards}


def test_writer_error_leaves_no_shard_and_no_partial_file(corpus, tmp_path, monkeypatch):
    # an error in the middle of a serial write: no shard is renamed into place, no temporary file is left
    _fail_second_record(monkeypatch)
    out = tmp_path / 'w'
    with pytest.raises(RuntimeError, match='encoder failed'):
        write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], str(out), format='waveform',
                        shards_per_split=1, workers=1, progress=False)
    assert not list(out.glob('*.tfrecord')) and not (out / 'manifest.json').exists()
    assert [p.name for p in (out / '_shards').iterdir()] == ['plan.json']


def test_writer_error_restores_blas_threads(corpus, tmp_path, monkeypatch):
    # the one-BLAS-thread limit of the serial path does not outlive the call, even after an error
    # (the traceback keeps its frames alive)
    from threadpoolctl import threadpool_info

    def blas_threads():
        return max(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas')
    before = blas_threads()
    if before == 1:
        pytest.skip('BLAS already runs one thread here')
    _fail_second_record(monkeypatch)
    with pytest.raises(RuntimeError, match='encoder failed') as excinfo:
        write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], str(tmp_path / 'w'),
                        format='waveform', shards_per_split=1, workers=1, progress=False)
    assert excinfo.traceback  # keep the failed call's frames alive while checking
    assert blas_threads() == before


def test_bad_tag_db_and_master(corpus, tmp_path):
    bad_db = tmp_path / 'bad.db'
    import sqlite3
    con = sqlite3.connect(bad_db)
    con.execute('CREATE TABLE tags (name TEXT)')
    con.close()
    with pytest.raises(ValueError, match='no table|lacks column'):
        write_tfrecords(corpus['master'], str(bad_db), corpus['splits'], str(tmp_path / 'o'), progress=False)
    junk = tmp_path / 'junk.db'
    junk.write_bytes(b'definitely not sqlite' * 100)
    with pytest.raises(ValueError, match='not a readable SQLite'):
        write_tfrecords(corpus['master'], str(junk), corpus['splits'], str(tmp_path / 'o'), progress=False)
    m = tmp_path / 'm.csv'
    m.write_text('a,b\n1,2\n')
    with pytest.raises(ValueError, match='track_id'):
        write_tfrecords(str(m), corpus['tags_db'], corpus['splits'], str(tmp_path / 'o'), progress=False)


S3_SCRIPT = r'''
import os, sys, json
import numpy as np
sys.path.insert(0, {root!r})
from preprocessing.tfrecords import write_tfrecords
from preprocessing.dataset import make_dataset, load_manifest
out = 's3://musetag-test/ds'
write_tfrecords({master!r}, {tags!r}, {splits!r}, out, format='log-mel', preset='musicnn', shards_per_split=1,
                progress=False)
m = load_manifest(out)
n = sum(a.shape[0] for a, y in make_dataset(out, 'train', labels=['rock'], window='center', batch_size=4))
print(json.dumps({{'tracks': m['splits']['train']['tracks'], 'read': int(n)}}), flush=True)
os._exit(0)  # tensorflow-io may abort at interpreter exit (teardown bug)
'''


@pytest.mark.slow
def test_s3_round_trip_against_local_endpoint(corpus, tmp_path):
    import socket
    pytest.importorskip('moto')
    import boto3
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    moto = os.path.join(os.path.dirname(sys.executable), 'moto_server')
    server = subprocess.Popen([moto, '-H', '127.0.0.1', '-p', str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        env = dict(os.environ, AWS_ACCESS_KEY_ID='test', AWS_SECRET_ACCESS_KEY='test', AWS_REGION='us-east-1',
                   S3_ENDPOINT=f'http://127.0.0.1:{port}', S3_USE_HTTPS='0', S3_VERIFY_SSL='0')
        for _ in range(100):
            try:
                socket.create_connection(('127.0.0.1', port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        boto3.client('s3', endpoint_url=f'http://127.0.0.1:{port}', region_name='us-east-1',
                     aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket='musetag-test')
        script = S3_SCRIPT.format(root=ROOT, master=corpus['master'], tags=corpus['tags_db'], splits=corpus['splits'])
        r = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True, timeout=300)
        line = [ln for ln in r.stdout.splitlines() if ln.startswith('{')]
        assert line, r.stderr[-3000:]
        result = json.loads(line[-1])
        assert result['tracks'] > 0 and result['read'] == result['tracks']
    finally:
        server.terminate()
        server.wait()


@pytest.mark.parametrize('window', ['random', 'center'])
def test_drop_remainder_gives_static_full_batches(logmel_dir, window):
    ds = make_dataset(logmel_dir, 'train', labels=['rock'], window=window, window_seconds=0.5, batch_size=3,
                      drop_remainder=True, seed=0)
    assert ds.element_spec[0].shape[0] == 3
    sizes = [a.shape[0] for a, _ in ds]
    n = load_manifest(logmel_dir)['splits']['train']['tracks']
    assert sizes == [3] * (n // 3)
