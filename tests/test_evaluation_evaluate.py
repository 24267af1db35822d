"""evaluation.evaluate: whole-track evaluation outputs (values, files, permissions), on TFRecords, and
the `musetag evaluate` command (also reached as `python -m evaluation.test_model` without PATHs)."""
import csv
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import files
from evaluation import evaluate as ev
from evaluation import test_model as tm
from evaluation.cli import evaluate_main
from evaluation.metrics import aggregate_windows, tagging_metrics
from evaluation.tagger import Tagger

from _audio_fixtures import music_like, write_wav
from _evaluation_fixtures import LABELS, make_run_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp('ev') / 'run', checkpoints=True)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _memory_dataset(seed=0, n_tracks=24, batch=5):
    """Windows [N, 187, 96] of tracks with 1-6 windows each, interleaved, in batches; labels [N, K]."""
    rng = np.random.default_rng(seed)
    k = len(LABELS)
    track_labels = (rng.random((n_tracks, k)) < 0.35).astype(np.float32)
    track_labels[:, 5] = 0                      # 'punk': no positive in this split
    counts = rng.integers(1, 7, n_tracks)
    ids = np.repeat(np.array([f'TR{i:03d}'.encode() for i in range(n_tracks)], dtype=object), counts)
    y = np.repeat(track_labels, counts, axis=0)
    x = rng.standard_normal((len(ids), 187, 96)).astype(np.float32)
    x += 2.0 * y[:, :1, None]                   # 'rock' tracks are louder: a learnable-ish signal
    perm = rng.permutation(len(ids))
    x, y, ids = x[perm], y[perm], ids[perm]
    batches = [(x[i:i + batch], y[i:i + batch], ids[i:i + batch]) for i in range(0, len(ids), batch)]
    return batches, x, y, ids


def test_evaluate_run_outputs_match_reference(run_dir, tmp_path):
    batches, x, y, ids = _memory_dataset()
    out = tmp_path / 'eval'
    metrics, out_dir = ev.evaluate_run(run_dir, dataset=batches, out_dir=out, progress=False)
    model = Tagger.from_run(run_dir).model
    scores = np.asarray(model(x, training=False))
    r_ids, r_scores, r_y = aggregate_windows(ids, scores, y)
    ref = tagging_metrics(r_y, r_scores, LABELS)
    assert metrics['n_tracks'] == 24 and metrics['n_windows'] == len(ids)
    for key in ('roc_auc_macro', 'pr_auc_macro', 'roc_auc_micro', 'pr_auc_micro'):
        assert metrics[key] == pytest.approx(ref[key], abs=1e-6)
    assert metrics['single_class_tags'] == ['punk']
    doc = json.loads((out / 'metrics.json').read_text())          # strict JSON (NaN -> null)
    assert doc['per_tag'][5]['roc_auc'] is None and doc['checkpoint'] == 'model.keras'
    assert doc['roc_auc_macro'] == pytest.approx(ref['roc_auc_macro'], abs=1e-6)
    rows = list(csv.DictReader((out / 'per_tag.csv').open()))
    assert [r['tag'] for r in rows] == LABELS
    assert int(rows[0]['n_pos']) == int(r_y[:, 0].sum()) and rows[5]['roc_auc'] == ''
    assert float(rows[1]['pr_auc']) == pytest.approx(ref['per_tag'][1]['pr_auc'], abs=1e-6)
    preds = list(csv.DictReader((out / 'predictions.csv').open()))
    assert len(preds) == 24 and preds[0]['track_id'] == r_ids[0]
    for png in ('roc_auc_per_tag.png', 'pr_auc_per_tag.png', 'roc_curves.png', 'pr_curves.png'):
        assert (out / png).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    # TensorBoard PR curves: one per tag with both classes + the micro curve
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(out / 'tensorboard'), size_guidance={'tensors': 0})
    acc.Reload()
    curves = acc.PluginTagToContent('pr_curves')
    assert 'pr_curve/all_pairs_micro/pr_curves' in curves      # pb() appends '/pr_curves'
    assert 'pr_curve/female_vocalists/pr_curves' in curves and 'pr_curve/punk/pr_curves' not in curves
    assert len(curves) == 1 + 5
    # existing outputs are not overwritten without overwrite=True
    with pytest.raises(FileExistsError):
        ev.evaluate_run(run_dir, dataset=batches, out_dir=out, progress=False)
    m2, _ = ev.evaluate_run(run_dir, dataset=batches, out_dir=out, progress=False, overwrite=True,
                            checkpoint='best')
    assert m2['roc_auc_micro'] != metrics['roc_auc_micro']
    assert json.loads((out / 'metrics.json').read_text())['checkpoint'] == 'best'
    assert not [p for p in out.parent.iterdir() if p.name.startswith('.')]     # no temporary left
    table = ev.format_table(metrics)
    assert 'macro' in table and 'micro' in table and 'punk' in table


def test_evaluation_outputs_get_the_umask_permissions(run_dir, tmp_path, umask_022):
    batches, _, _, _ = _memory_dataset(seed=2)
    out = tmp_path / 'shared' / 'eval'
    ev.evaluate_run(run_dir, dataset=batches, out_dir=out, progress=False)
    modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob('*')]}
    assert modes['.'] == 0o755
    for name in ('metrics.json', 'per_tag.csv', 'predictions.csv', 'roc_auc_per_tag.png', 'pr_curves.png'):
        assert modes[name] == 0o644, (name, oct(modes[name]))
    assert all(m in (0o644, 0o755) for m in modes.values()), {k: oct(v) for k, v in modes.items()}
    assert files.file_mode() == 0o644


def test_column_index_maps_dataset_labels_to_run_labels(run_dir, tmp_path):
    batches, x, y, ids = _memory_dataset(seed=1)
    # dataset with reversed columns and one tag the dataset does not know (-1 -> all negative)
    rev = [(bx, by[:, ::-1], bi) for bx, by, bi in batches]
    cols = [len(LABELS) - 1 - i for i in range(len(LABELS))]
    cols[2] = -1
    metrics, _ = ev.evaluate_run(run_dir, dataset=rev, column_index=cols, out_dir=tmp_path / 'e', progress=False)
    assert metrics['per_tag'][0]['n_pos'] == int(aggregate_windows(ids, y, y)[2][:, 0].sum())
    assert metrics['per_tag'][2]['n_pos'] == 0 and 'jazz' in metrics['single_class_tags']


def test_metrics_log_single_class_tags_at_debug_only(caplog):
    import logging
    y = np.zeros((5, 2), np.int8)
    with caplog.at_level(logging.INFO, logger='evaluation.metrics'):
        tagging_metrics(y, np.random.default_rng(0).random((5, 2)), ['a', 'b'])
    assert not [r for r in caplog.records if r.name == 'evaluation.metrics']
    with caplog.at_level(logging.DEBUG, logger='evaluation.metrics'):
        tagging_metrics(y, np.random.default_rng(0).random((5, 2)), ['a', 'b'])
    assert [r.levelno for r in caplog.records if r.name == 'evaluation.metrics'] == [logging.DEBUG]


def test_evaluate_command_argument_errors(run_dir, tmp_path, capsys):
    assert evaluate_main(['--run', str(tmp_path / 'no_such_run')], prog='musetag evaluate') == 2
    assert 'musetag evaluate: error: run directory' in capsys.readouterr().err
    # a run whose config names no dataset, and no --tfrecords
    assert evaluate_main(['--run', str(run_dir), '--out', str(tmp_path / 'ev')]) == 2
    assert '--tfrecords' in capsys.readouterr().err
    assert evaluate_main(['--run', str(run_dir), '--tfrecords', str(tmp_path / 'nope')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    (tmp_path / 'taken').mkdir()
    assert evaluate_main(['--run', str(run_dir), '--out', str(tmp_path / 'taken'), '--tfrecords', str(tmp_path)]) == 2
    assert '--overwrite' in capsys.readouterr().err
    assert not (tmp_path / 'ev').exists()
    with pytest.raises(SystemExit):
        evaluate_main(['--run', str(run_dir), '--batch-size', '0'])


# --------------------------------------------------------------------------------------------------
# end to end on real TFRecords written by the lead's writer
# --------------------------------------------------------------------------------------------------
RUN_TAGS = ['rock', 'pop', 'jazz', 'Female Vocalists', 'ambient', 'not-in-dataset']
VOCAB = ['rock', 'pop', 'jazz', 'female vocalists', 'ambient', 'punk']


@pytest.fixture(scope='module')
def tfrecord_dir(tmp_path_factory):
    import sqlite3
    import pandas as pd
    from msd.lastfm import write_tables
    from preprocessing.tfrecords import write_tfrecords
    d = tmp_path_factory.mktemp('tfr')
    rng = np.random.default_rng(5)
    durations = [3.5, 4.0, 6.1, 7.3, 9.0, 2.0, 5.5, 3.0, 8.2, 6.6, 4.4, 3.2]
    rows, tag_rows = [], []
    for i, dur in enumerate(durations):
        tid = f'TRTEST{i:04d}'
        path = write_wav(d / f'{tid}.wav', music_like(dur, 16000, seed=100 + i), 16000)
        rows.append({'track_id': tid, 'artist_id': f'AR{i}', 'audio_path': str(path)})
        tags = [k for k in range(len(VOCAB)) if rng.random() < 0.4] or [0]
        tag_rows += [(i + 1, k + 1, 100.0) for k in tags]
    pd.DataFrame(rows).to_csv(d / 'master.csv', index=False)
    splits = ['test'] * 8 + ['validation'] * 2 + ['train'] * 2
    pd.DataFrame({'track_id': [r['track_id'] for r in rows], 'split': splits}).to_csv(d / 'splits.csv', index=False)
    con = sqlite3.connect(d / 'clean_tags.db')
    write_tables(con, enumerate(VOCAB, 1), ((i + 1, r['track_id']) for i, r in enumerate(rows)), tag_rows)
    con.commit()
    con.close()
    write_tfrecords(str(d / 'master.csv'), str(d / 'clean_tags.db'), str(d / 'splits.csv'), str(d / 'records'),
                    format='log-mel', preset='musicnn', shards_per_split=2, audio_root=str(d), progress=False)
    truth = {r['track_id']: {VOCAB[k - 1] for (t, k, _) in tag_rows if t == i + 1} for i, r in enumerate(rows)}
    return d / 'records', truth, {r['track_id']: (r['audio_path'], dur) for r, dur in zip(rows, durations)}


def test_evaluation_on_tfrecords_matches_file_prediction(tfrecord_dir, tmp_path, capsys):
    records, truth, audio = tfrecord_dir
    run = make_run_dir(tmp_path / 'run', labels=RUN_TAGS)
    code = evaluate_main(['--run', str(run), '--tfrecords', str(records), '--split', 'test', '--batch-size', '7'])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert 'macro' in out.out and 'not-in-dataset' in out.out and 'tracks/s' in out.err
    doc = json.loads((run / 'eval' / 'test' / 'metrics.json').read_text())
    assert doc['n_tracks'] == 8 and doc['split'] == 'test' and doc['tfrecords'] == str(records)
    assert 'not-in-dataset' in doc['single_class_tags']
    # 'Female Vocalists' was matched case-insensitively to the dataset's 'female vocalists'
    fv = doc['per_tag'][3]
    assert fv['tag'] == 'Female Vocalists'
    assert fv['n_pos'] == sum('female vocalists' in truth[t] for t in truth if t in _test_ids(audio))
    preds = {r['track_id']: r for r in csv.DictReader((run / 'eval' / 'test' / 'predictions.csv').open())}
    assert set(preds) == _test_ids(audio)
    tagger = Tagger.from_run(run)
    for tid, row in preds.items():
        assert [int(row[f'label:{t}']) for t in RUN_TAGS[:3]] == [int(t in truth[tid]) for t in RUN_TAGS[:3]]
        path, dur = audio[tid]
        if dur >= 3.0:   # (shorter tracks are padded by tiling frames vs tiling audio)
            ref = tagger.predict_file(path).mean
            got = np.array([float(row[f'score:{t}']) for t in RUN_TAGS])
            # same windows; the TFRecords store float16 log-mel, hence the tolerance
            np.testing.assert_allclose(got, ref, atol=5e-3)
    # re-running without --overwrite refuses to replace the evaluation; the old command too
    assert tm.main(['--run', str(run), '--tfrecords', str(records)]) == 2
    assert '--overwrite' in capsys.readouterr().err
    assert tm.main(['--run', str(run), '--tfrecords', str(records), '--overwrite', '-q']) == 0


def test_relative_dataset_dir_is_found_from_the_run_directory(tfrecord_dir, tmp_path, monkeypatch, capsys):
    """A run written by an older version stores dataset.dir relative to where training ran."""
    records, _, _ = tfrecord_dir
    run = make_run_dir(tmp_path / 'runs' / 'old', labels=RUN_TAGS)
    rel = os.path.relpath(records, run)
    files.write_json(run / 'config.json', {'dataset': {'dir': rel}})
    monkeypatch.chdir(tmp_path)                 # neither the run dir nor where training ran
    assert not os.path.isdir(rel)
    assert evaluate_main(['--run', str(run), '-q']) == 0, capsys.readouterr().err
    doc = json.loads((run / 'eval' / 'test' / 'metrics.json').read_text())
    assert os.path.samefile(doc['tfrecords'], records) and doc['n_tracks'] == 8


def _test_ids(audio):
    return {t for i, t in enumerate(sorted(audio)) if i < 8}


def test_evaluation_refuses_mismatched_features(tfrecord_dir, tmp_path, capsys):
    records, _, _ = tfrecord_dir
    run = make_run_dir(tmp_path / 'orph', labels=RUN_TAGS, preset='orpheus')
    assert evaluate_main(['--run', str(run), '--tfrecords', str(records)]) == 2
    err = capsys.readouterr().err
    assert 'params.n_fft' in err


@pytest.mark.slow
def test_run_written_by_the_trainer(tfrecord_dir, tmp_path, capsys):
    """A real `python -m training` run dir: config.json's dataset.dir, --checkpoint best, tagging."""
    records, truth, audio = tfrecord_dir
    run = tmp_path / 'trained'
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, '-m', 'training', '--config', str(REPO / 'configs' / 'demo.json'),
                        '--set', f'dataset.dir={records}', '--set', 'dataset.tags.top=4',
                        '--set', 'optimization.epochs=1', '--set', 'input.batch_size=2', '--run-dir', str(run), '-q'],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert tm.main(['--run', str(run), '--checkpoint', 'best']) == 0      # dataset dir from config.json
    doc = json.loads((run / 'eval' / 'test' / 'metrics.json').read_text())
    labels = json.loads((run / 'labels.json').read_text())
    assert doc['n_tracks'] == 8 and doc['checkpoint'] == 'best' and doc['tfrecords'] == str(records)
    assert [t['tag'] for t in doc['per_tag']] == labels
    for row in doc['per_tag']:
        assert row['n_pos'] == sum(row['tag'] in truth[t] for t in _test_ids(audio))
    s = tm.predict_paths(Tagger.from_run(run, checkpoint='last'), [audio[sorted(audio)[0]][0]], top=2,
                         progress=False)      # the old import path of evaluation.tagging.tag_paths
    assert s['tagged'] == 1 and s['results'][0]['tags'][0][0] in labels


# --------------------------------------------------------------------------------------------------
# evaluation protocols: which windows of each track are averaged
# --------------------------------------------------------------------------------------------------
#: samples of each test track at 1000 Hz: exactly one window, a short one (padded), and long ones
RAMP_LENGTHS = (1000, 600, 1999, 5003, 12345, 30001)
RAMP_SR, RAMP_WINDOW = 1000, 1000          # 1 s windows


@pytest.fixture(scope='module')
def ramp_dataset(tmp_path_factory):
    """A waveform TFRecord dataset (1000 Hz) whose sample ``t`` of every track stores the value ``t``,
    so a window's first sample is its start; and a run whose model outputs a window's first sample.

    Returns (run dir, TFRecord dir, {track_id: n_samples}).
    """
    import keras
    import pandas as pd

    from modeling.rundir import write_run_files
    from preprocessing.splits import write_splits
    from preprocessing.tfrecords import write_tfrecords
    from tests._pipeline_fixtures import make_tiny_corpus
    root = tmp_path_factory.mktemp('ramp')
    c = make_tiny_corpus(str(root / 'corpus'), n_tracks=len(RAMP_LENGTHS), bad=False)
    lengths = {}
    for row, n in zip(c['rows'], RAMP_LENGTHS):
        # stored as round(x * 32767): FLOAT samples t / 32767 come back as exactly t
        write_wav(row['audio_path'], np.arange(n) / 32767.0, RAMP_SR, subtype='FLOAT')
        lengths[row['track_id']] = n
    splits = os.path.join(c['root'], 'splits.csv')
    write_splits(pd.DataFrame({'track_id': list(lengths), 'split': 'test'}), splits, command='test fixture')
    data = str(root / 'tfrecords')
    write_tfrecords(c['master'], c['tags_db'], splits, data, format='waveform', sr=RAMP_SR, shards_per_split=2,
                    workers=1, progress=False)
    run = root / 'run'
    run.mkdir()
    labels = ['rock', 'pop']
    inp = keras.Input((RAMP_WINDOW,), name='waveform')
    first = keras.layers.Dense(len(labels), use_bias=False, name='tags')
    model = keras.Model(inp, first(inp))
    kernel = np.zeros((RAMP_WINDOW, len(labels)), np.float32)
    kernel[0] = 1.0                            # every output = the window's first sample = start / 32767
    first.set_weights([kernel])
    model.save(run / 'model.keras')
    write_run_files(run, config={'model': {'name': 'first-sample'}, 'test_fixture': True}, labels=labels,
                    features={'input': 'waveform', 'sr': RAMP_SR, 'params': None, 'window_seconds': 1.0,
                              'input_frames': None, 'input_samples': RAMP_WINDOW})
    return run, data, lengths


def _won16_starts(n):
    """numpy.linspace(0, n - window, 16) rounded down, for a track padded to at least one window."""
    return np.floor(np.linspace(0, max(n, RAMP_WINDOW) - RAMP_WINDOW, 16) + 1e-9).astype(int)


def _tiled_starts(n):
    n = max(n, RAMP_WINDOW)
    starts = list(range(0, n - RAMP_WINDOW + 1, RAMP_WINDOW))
    return starts + ([n - RAMP_WINDOW] if n % RAMP_WINDOW else [])


def test_spaced_windows_are_16_equally_spaced_starts(ramp_dataset):
    from preprocessing.dataset import make_dataset
    _, data, lengths = ramp_dataset
    ds = make_dataset(data, 'test', labels=['rock'], window_seconds=1.0, window='spaced', batch_size=7)
    starts = {}
    for x, _, ids in ds.as_numpy_iterator():
        for window, tid in zip(x, ids):
            starts.setdefault(tid.decode(), []).append(int(round(window[0] * 32767)))
            n = lengths[tid.decode()]
            if n >= RAMP_WINDOW:               # a whole window of the ramp, not a padded one
                assert np.allclose(window * 32767, window[0] * 32767 + np.arange(RAMP_WINDOW), atol=1e-3)
    assert sorted(starts) == sorted(lengths)
    for tid, n in lengths.items():
        assert starts[tid] == list(_won16_starts(n)), (tid, n)
    assert starts[next(t for t, n in lengths.items() if n == 30001)][-1] == 30001 - RAMP_WINDOW   # the last at the end


def _predicted_starts(out_dir):
    with open(os.path.join(out_dir, 'predictions.csv')) as f:
        return {r['track_id']: float(r['score:rock']) * 32767 for r in csv.DictReader(f)}


@pytest.mark.parametrize('protocol', ['won16', 'mean'])
def test_evaluate_protocol_picks_its_windows_and_is_recorded(ramp_dataset, tmp_path, protocol):
    run, data, lengths = ramp_dataset
    metrics, out = ev.evaluate_run(run, tfrecords=data, out_dir=tmp_path / protocol, protocol=protocol,
                                   progress=False)
    expected = {tid: (_won16_starts(n) if protocol == 'won16' else _tiled_starts(n)) for tid, n in lengths.items()}
    doc = json.loads((out / 'metrics.json').read_text())
    assert doc['protocol'] == protocol
    assert doc['windows_per_track'] == (16 if protocol == 'won16' else None)
    assert doc['n_windows'] == metrics['n_windows'] == sum(len(s) for s in expected.values())
    got = _predicted_starts(out)
    for tid, starts in expected.items():        # the mean of the windows' starts, to predictions.csv's 6 digits
        assert got[tid] == pytest.approx(np.mean(starts), abs=0.05), tid


def test_evaluate_command_protocol_flag(ramp_dataset, tmp_path, capsys):
    run, data, _ = ramp_dataset
    out = tmp_path / 'won16'
    assert evaluate_main(['--run', str(run), '--tfrecords', data, '--out', str(out), '--protocol', 'won16',
                          '--no-progress']) == 0
    assert json.loads((out / 'metrics.json').read_text())['protocol'] == 'won16'
    captured = capsys.readouterr()
    assert 'protocol won16' in captured.out and 'protocol won16' in captured.err
    with pytest.raises(SystemExit) as e:
        evaluate_main(['--run', str(run), '--tfrecords', data, '--protocol', 'won8'])
    assert e.value.code == 2
    assert "invalid choice: 'won8'" in capsys.readouterr().err
