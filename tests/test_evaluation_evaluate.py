"""evaluation.test_model: whole-track evaluation outputs and the tagging CLI."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation import test_model as tm
from evaluation.metrics import aggregate_windows, tagging_metrics
from evaluation.tagger import Tagger

from _evaluation_fixtures import LABELS, make_run_dir, music_like, write_mp3, write_wav

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp('tm') / 'run', checkpoints=True)


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
    metrics, out_dir = tm.evaluate_run(run_dir, dataset=batches, out_dir=out, progress=False)
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
        tm.evaluate_run(run_dir, dataset=batches, out_dir=out, progress=False)
    m2, _ = tm.evaluate_run(run_dir, dataset=batches, out_dir=out, progress=False, overwrite=True,
                            checkpoint='best')
    assert m2['roc_auc_micro'] != metrics['roc_auc_micro']
    assert json.loads((out / 'metrics.json').read_text())['checkpoint'] == 'best'
    table = tm.format_table(metrics)
    assert 'macro' in table and 'micro' in table and 'punk' in table


def test_column_index_maps_dataset_labels_to_run_labels(run_dir, tmp_path):
    batches, x, y, ids = _memory_dataset(seed=1)
    # dataset with reversed columns and one tag the dataset does not know (-1 -> all negative)
    rev = [(bx, by[:, ::-1], bi) for bx, by, bi in batches]
    cols = [len(LABELS) - 1 - i for i in range(len(LABELS))]
    cols[2] = -1
    metrics, _ = tm.evaluate_run(run_dir, dataset=rev, column_index=cols, out_dir=tmp_path / 'e', progress=False)
    assert metrics['per_tag'][0]['n_pos'] == int(aggregate_windows(ids, y, y)[2][:, 0].sum())
    assert metrics['per_tag'][2]['n_pos'] == 0 and 'jazz' in metrics['single_class_tags']


@pytest.fixture(scope='module')
def audio_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp('audio')
    (d / 'sub' / 'deeper').mkdir(parents=True)
    write_mp3(d / 'a.mp3', music_like(8.0, sr=44100, seed=1), sr=44100, channels=2)
    write_wav(d / 'sub' / 'b.wav', music_like(5.0, seed=2))
    write_mp3(d / 'sub' / 'deeper' / 'short.mp3', music_like(0.7, seed=3))
    (d / 'sub' / 'empty.mp3').write_bytes(b'')
    (d / 'sub' / 'text.wav').write_bytes(b'RIFF but not really a wave file' * 20)
    (d / 'sub' / 'junk.flac').write_text('plain text with an audio extension\n' * 30)
    (d / 'notes.txt').write_text('not audio, ignored in folder walks')
    return d


def test_predict_paths_skips_bad_files_with_reason(run_dir, audio_folder, tmp_path, capsys):
    tagger = Tagger.from_run(run_dir)
    jsonl = tmp_path / 'out.jsonl'
    summary = tm.predict_paths(tagger, [audio_folder, tmp_path / 'nope.mp3'], top=3, json_out=str(jsonl),
                               json_taggram=True, taggram=str(tmp_path / 'grams'), progress=False)
    err = capsys.readouterr().err
    assert summary['tagged'] == 3 and summary['skipped'] == 4
    assert summary['reasons'] == {'empty': 1, 'not-audio': 1, 'unreadable': 1, 'missing': 1}
    assert 'empty.mp3: empty' in err and 'junk.flac: not-audio' in err and 'nope.mp3: missing' in err
    assert 'text.wav: unreadable' in err and 'notes.txt' not in err
    assert 'tagged 3 file(s)' in err and 'skipped 4 (empty 1, missing 1, not-audio 1, unreadable 1)' in err
    lines = [json.loads(l) for l in jsonl.read_text().splitlines()]
    assert [Path(l['file']).name for l in lines] == ['a.mp3', 'b.wav', 'short.mp3']
    assert all(len(l['tags']) == 3 and l['tags'][0][0] in LABELS for l in lines)
    assert lines[0]['duration_s'] == pytest.approx(8.0, abs=0.2) and lines[0]['n_windows'] == 3
    assert np.array(lines[0]['taggram']['probabilities']).shape == (3, len(LABELS))
    assert lines[2]['n_windows'] == 1                     # 0.7 s: repeat-padded to one window
    pngs = sorted(p.name for p in (tmp_path / 'grams').iterdir())
    assert pngs == ['a.taggram.png', 'b.taggram.png', 'short.taggram.png']
    # X.png with several files -> X-<name>.png
    tm.predict_paths(tagger, [audio_folder / 'a.mp3', audio_folder / 'sub' / 'b.wav'],
                     taggram=str(tmp_path / 'g.png'), progress=False)
    assert (tmp_path / 'g-a.png').exists() and (tmp_path / 'g-b.png').exists()
    # existing JSON is not overwritten
    with pytest.raises(FileExistsError):
        tm.predict_paths(tagger, [audio_folder], json_out=str(jsonl), progress=False)


def test_threshold_mode_lists_tags_above(run_dir, audio_folder):
    tagger = Tagger.from_run(run_dir)
    s = tm.predict_paths(tagger, [audio_folder / 'a.mp3'], threshold=0.0, progress=False)
    assert len(s['results'][0]['tags']) == len(LABELS)
    s = tm.predict_paths(tagger, [audio_folder / 'a.mp3'], threshold=1.01, progress=False)
    assert s['results'][0]['tags'] == []


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, '-m', 'evaluation.test_model', *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def test_cli_tagging_mode(run_dir, audio_folder, tmp_path):
    png = tmp_path / 'one.png'
    r = _cli('--run', run_dir, audio_folder / 'a.mp3', '--top', '2', '--hop-seconds', '1.5', '--taggram', png,
             '--json', tmp_path / 'o.jsonl')
    assert r.returncode == 0, r.stderr[-2000:]
    line = [l for l in r.stdout.splitlines() if 'a.mp3' in l][0]
    assert len(line.split('\t')[1].split('  ')) == 2
    assert png.read_bytes()[:4] == b'\x89PNG'
    doc = json.loads((tmp_path / 'o.jsonl').read_text())
    assert doc['n_windows'] == 5                          # 8 s, 3 s windows every 1.5 s (+ end-aligned)


def test_main_exit_codes_and_errors(run_dir, audio_folder, tmp_path, capsys):
    assert tm.main(['--run', str(run_dir), str(audio_folder / 'sub' / 'empty.mp3')]) == 1
    assert 'empty' in capsys.readouterr().err
    assert tm.main(['--run', str(run_dir), str(audio_folder / 'a.mp3'), '--window-seconds', '5']) == 2
    assert 'fixed windows' in capsys.readouterr().err
    assert tm.main(['--run', str(tmp_path / 'no_such_run'), str(audio_folder / 'a.mp3')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    assert tm.main(['--run', str(run_dir), '--top', '3']) == 2          # --top without PATHs
    assert 'tagging mode' in capsys.readouterr().err
    # evaluation mode of a run whose config names no dataset and no --tfrecords
    assert tm.main(['--run', str(run_dir), '--out', str(tmp_path / 'ev')]) == 2
    assert '--tfrecords' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tm.main(['--run', str(run_dir), 'x.mp3', '--top', '3', '--threshold', '0.2'])


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
        path = write_wav(d / f'{tid}.wav', music_like(dur, seed=100 + i))
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
                    format='log-mel', preset='musicnn', shards_per_split=2, progress=False)
    truth = {r['track_id']: {VOCAB[k - 1] for (t, k, _) in tag_rows if t == i + 1} for i, r in enumerate(rows)}
    return d / 'records', truth, {r['track_id']: (r['audio_path'], dur) for r, dur in zip(rows, durations)}


def test_evaluation_on_tfrecords_matches_file_prediction(tfrecord_dir, tmp_path, capsys):
    records, truth, audio = tfrecord_dir
    run = make_run_dir(tmp_path / 'run', labels=RUN_TAGS)
    code = tm.main(['--run', str(run), '--tfrecords', str(records), '--split', 'test', '--batch-size', '7'])
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
    # re-running without --overwrite refuses to replace the evaluation
    assert tm.main(['--run', str(run), '--tfrecords', str(records)]) == 2
    assert '--overwrite' in capsys.readouterr().err


def _test_ids(audio):
    return {t for i, t in enumerate(sorted(audio)) if i < 8}


def test_evaluation_refuses_mismatched_features(tfrecord_dir, tmp_path, capsys):
    records, _, _ = tfrecord_dir
    run = make_run_dir(tmp_path / 'orph', labels=RUN_TAGS, preset='orpheus')
    assert tm.main(['--run', str(run), '--tfrecords', str(records)]) == 2
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
    out = capsys.readouterr()
    doc = json.loads((run / 'eval' / 'test' / 'metrics.json').read_text())
    labels = json.loads((run / 'labels.json').read_text())
    assert doc['n_tracks'] == 8 and doc['checkpoint'] == 'best' and doc['tfrecords'] == str(records)
    assert [t['tag'] for t in doc['per_tag']] == labels
    for row in doc['per_tag']:
        assert row['n_pos'] == sum(row['tag'] in truth[t] for t in _test_ids(audio))
    s = tm.predict_paths(Tagger.from_run(run, checkpoint='last'), [audio[sorted(audio)[0]][0]], top=2,
                         progress=False)
    assert s['tagged'] == 1 and s['results'][0]['tags'][0][0] in labels
