"""Benchmark tagging new audio and whole-track evaluation (issue 6). Prints one JSON line per figure.

On the same files (``--clips`` 30 s clips + one ``--long-minutes`` file, 44.1 kHz stereo MP3 like
7digital previews), in one run:

* audio seconds tagged per wall second by ``evaluation.Tagger`` with the imported ``MSD_musicnn`` run
  dir vs the musicnn package's own ``extractor`` (reference, run in its own process; target ≥ 5×),
  and the agreement of their window predictions on the windows both compute;
* peak RSS of a process tagging the long file vs one tagging a 30 s clip (target ≤ 1.3×);
* ``evaluation.test_model`` whole-track evaluation speed (tracks/s) on a small test split
  (TFRecords written from the clips with the musicnn preset, or ``--tfrecords DIR``).

Every measurement runs in a fresh subprocess, one after the other (the machine may be shared).

    python benchmarks/bench_predict.py [--workdir DIR] [--run RUN_DIR] [--clips 10] [--long-minutes 10]
                                       [--tfrecords DIR] [--skip-musicnn]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SR_FILES = 44100
if str(REPO) not in sys.path:        # run as a script from anywhere
    sys.path.insert(0, str(REPO))


# ------------------------------------------------------------------------------------------ fixtures
def _music(seconds, sr, seed):
    """A signal whose spectrum moves (sweeps, gated tone, noise), float32 [n]."""
    import numpy as np
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n, dtype=np.float64) / sr
    f = 150 + 2500 * (0.5 + 0.5 * np.sin(2 * np.pi * t / (5.0 + seed)))
    gate = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * t * (1.3 + 0.2 * seed)))
    y = (0.3 * np.sin(2 * np.pi * np.cumsum(f) / sr) + 0.2 * gate * np.sin(2 * np.pi * (220 + 40 * seed) * t)
         + 0.05 * rng.standard_normal(n))
    return y.astype(np.float32)


def _write_mp3(path, audio, sr):
    import lameenc
    import numpy as np
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    enc = lameenc.Encoder()
    enc.set_bit_rate(128)
    enc.set_in_sample_rate(sr)
    enc.set_channels(2)
    enc.set_quality(7)
    data = enc.encode(np.stack([pcm, pcm], axis=1).ravel().tobytes()) + enc.flush()
    tmp = str(path) + '.tmp'
    Path(tmp).write_bytes(bytes(data))
    os.replace(tmp, path)


def make_files(workdir: Path, clips: int, long_minutes: float):
    d = workdir / 'audio'
    d.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(clips):
        p = d / f'clip{i:02d}.mp3'
        if not p.exists():
            _write_mp3(p, _music(30.0, SR_FILES, i), SR_FILES)
        files.append(p)
    p = d / f'long{long_minutes:g}min.mp3'
    if not p.exists():
        _write_mp3(p, _music(60.0 * long_minutes, SR_FILES, 99), SR_FILES)
    files.append(p)
    return [str(f) for f in files]


def _env():
    env = dict(os.environ)
    env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    env.setdefault('NUMBA_CACHE_DIR', str(REPO / '.cache' / 'numba'))
    env['PYTHONPATH'] = str(REPO) + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    return env


def _worker(*args, timeout=3600):
    out = subprocess.run([sys.executable, __file__, '--_worker', *map(str, args)], capture_output=True,
                         text=True, env=_env(), cwd=REPO, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f'worker {args[0]} failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def _status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key + ':'):
            return int(line.split()[1]) * 1024
    return None


# ------------------------------------------------------------------------------------------ workers
def worker_musetag(run_dir, out_json, *files):
    """Tag every file with evaluation.Tagger; write taggrams to out_json; print timing."""
    t0 = time.perf_counter()
    from evaluation.tagger import Tagger
    tagger = Tagger.from_run(run_dir)
    load = time.perf_counter() - t0
    from preprocessing.audio import audio_info
    res, audio_s = {}, 0.0
    t1 = time.perf_counter()
    for f in files:
        r = tagger.predict_file(f)
        audio_s += audio_info(f).duration      # header duration, the same measure as the reference
        res[f] = {'taggram': r.taggram.tolist(), 'duration_s': r.duration_s, 'labels': r.labels}
    tag_s = time.perf_counter() - t1
    Path(out_json).write_text(json.dumps(res))
    print(json.dumps({'load_s': load, 'tag_s': tag_s, 'audio_s': audio_s}))


def worker_musicnn(out_json, *files):
    """The musicnn package's own extractor (reference), TF 2.16 + tf-keras legacy layers."""
    import numpy as np
    import tensorflow as tf
    import tf_keras.api._v1.keras.__internal__.legacy.layers as legacy_layers
    tf.compat.v1.layers = legacy_layers          # musicnn 0.1.0 uses tf.layers (removed in TF 2)
    t0 = time.perf_counter()
    from musicnn.extractor import extractor
    import_s = time.perf_counter() - t0
    from preprocessing.audio import audio_info
    res, audio_s = {}, 0.0
    t1 = time.perf_counter()
    for f in files:
        taggram, tags = extractor(f, model='MSD_musicnn', extract_features=False)
        audio_s += audio_info(f).duration
        res[f] = {'taggram': np.asarray(taggram).tolist(), 'labels': list(tags)}
    tag_s = time.perf_counter() - t1
    Path(out_json).write_text(json.dumps(res))
    print(json.dumps({'import_s': import_s, 'tag_s': tag_s, 'audio_s': audio_s}))


def worker_rss(run_dir, path):
    """Peak RSS of a whole tagging process (VmHWM: exec resets it, unlike ru_maxrss)."""
    from evaluation.tagger import Tagger
    tagger = Tagger.from_run(run_dir)
    after_load = _status('VmRSS')
    t0 = time.perf_counter()
    r = tagger.predict_file(path)
    print(json.dumps({'peak': _status('VmHWM'), 'after_load': after_load, 'seconds': time.perf_counter() - t0,
                      'audio_s': r.duration_s, 'windows': int(r.taggram.shape[0])}))


def worker_eval(run_dir, records, out_dir):
    from evaluation.test_model import evaluate_run
    m, _ = evaluate_run(run_dir, split='test', tfrecords=records, out_dir=out_dir, overwrite=True, progress=False)
    print(json.dumps({'n_tracks': m['n_tracks'], 'n_windows': m['n_windows'], 'seconds': m['seconds'],
                      'tracks_per_second': m['tracks_per_second']}))


WORKERS = {'musetag': worker_musetag, 'musicnn': worker_musicnn, 'rss': worker_rss, 'eval': worker_eval}


# ------------------------------------------------------------------------------------------ set-up
def ensure_run(workdir: Path, run):
    if run:
        return str(run)
    out = workdir / 'msd_musicnn'
    if not (out / 'model.keras').exists():
        r = subprocess.run([sys.executable, '-m', 'modeling.pretrained', 'import', '--model', 'MSD_musicnn',
                            '--out', str(out), '--no-saved-model'], capture_output=True, text=True, env=_env(),
                           cwd=REPO, timeout=1800)
        if r.returncode != 0:
            raise RuntimeError('pretrained import failed:\n' + r.stderr[-3000:])
    return str(out)


def ensure_records(workdir: Path, clips):
    """A test split of the clips as musicnn-preset log-mel TFRecords (tiny clean tag DB)."""
    out = workdir / 'records'
    if (out / 'manifest.json').exists():
        return str(out)
    import sqlite3
    import pandas as pd
    from preprocessing.tfrecords import write_tfrecords
    tags = ['rock', 'pop', 'jazz', 'female vocalists', 'ambient']
    master = pd.DataFrame({'track_id': [f'TRBENCH{i:05d}' for i in range(len(clips))],
                           'artist_id': [f'AR{i}' for i in range(len(clips))], 'audio_path': clips})
    master.to_csv(workdir / 'master.csv', index=False)
    pd.DataFrame({'track_id': master['track_id'], 'split': 'test'}).to_csv(workdir / 'splits.csv', index=False)
    db = workdir / 'clean_tags.db'
    if db.exists():
        db.unlink()
    con = sqlite3.connect(db)
    con.executescript('CREATE TABLE tags(tag TEXT); CREATE TABLE tids(tid TEXT);'
                      'CREATE TABLE tid_tag(tid INTEGER, tag INTEGER, val FLOAT);')
    con.executemany('INSERT INTO tags(rowid, tag) VALUES (?, ?)', [(k + 1, t) for k, t in enumerate(tags)])
    con.executemany('INSERT INTO tids(rowid, tid) VALUES (?, ?)', [(i + 1, t) for i, t in enumerate(master['track_id'])])
    con.executemany('INSERT INTO tid_tag VALUES (?, ?, 100)', [(i + 1, 1 + (i + j) % len(tags))
                                                               for i in range(len(clips)) for j in range(2)])
    con.commit()
    con.close()
    write_tfrecords(str(workdir / 'master.csv'), str(db), str(workdir / 'splits.csv'), str(out), format='log-mel',
                    preset='musicnn', shards_per_split=2, progress=False)
    return str(out)


def _line(**kw):
    print(json.dumps({'benchmark': 'bench_predict', **kw}), flush=True)


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == '--_worker':
        WORKERS[argv[1]](*argv[2:])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--workdir', default='/tmp/musetag-bench-predict', help='files, run dir and records (reused)')
    p.add_argument('--run', default=None, help='run dir (default: import MSD_musicnn into the workdir)')
    p.add_argument('--clips', type=int, default=10)
    p.add_argument('--long-minutes', type=float, default=10.0)
    p.add_argument('--tfrecords', default=None, help='TFRecord dir with a test split (default: built from the clips)')
    p.add_argument('--skip-musicnn', action='store_true', help='skip the musicnn extractor reference')
    args = p.parse_args(argv)
    import numpy as np
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    files = make_files(workdir, args.clips, args.long_minutes)
    run = ensure_run(workdir, args.run)
    n_files = len(files)

    ours = _worker('musetag', run, workdir / 'musetag.json', *files)
    ours_rate = ours['audio_s'] / ours['tag_s']
    _line(figure='musetag_tagging_speed', audio_seconds_per_wall_second=round(ours_rate, 2), files=n_files,
          audio_seconds=round(ours['audio_s'], 1), tag_seconds=round(ours['tag_s'], 2),
          model_load_seconds=round(ours['load_s'], 2), including_load=round(ours['audio_s'] / (ours['tag_s'] + ours['load_s']), 2))
    if not args.skip_musicnn:
        ref = _worker('musicnn', workdir / 'musicnn.json', *files)
        ref_rate = ref['audio_s'] / ref['tag_s']
        _line(figure='musicnn_extractor_tagging_speed', audio_seconds_per_wall_second=round(ref_rate, 2),
              files=n_files, audio_seconds=round(ref['audio_s'], 1), tag_seconds=round(ref['tag_s'], 2))
        _line(figure='speedup_vs_musicnn_extractor', value=round(ours_rate / ref_rate, 2), target='>= 5',
              met=bool(ours_rate / ref_rate >= 5))
        a = json.loads((workdir / 'musetag.json').read_text())
        b = json.loads((workdir / 'musicnn.json').read_text())
        diffs, extra = [], 0
        for f in files:
            ta, tb = np.asarray(a[f]['taggram']), np.asarray(b[f]['taggram'])
            n = tb.shape[0]        # musicnn drops the trailing partial window; we add one aligned to the end
            diffs.append(np.abs(ta[:n] - tb).max())
            extra += ta.shape[0] - n
            assert a[f]['labels'] == b[f]['labels'], 'label order differs from musicnn'
        _line(figure='window_agreement_with_musicnn', max_abs_diff=float(max(diffs)), windows_compared=int(
            sum(np.asarray(b[f]['taggram']).shape[0] for f in files)), extra_end_windows=int(extra))

    short = _worker('rss', run, files[0])
    long = _worker('rss', run, files[-1])
    ratio = long['peak'] / short['peak']
    _line(figure='peak_rss_long_vs_30s', ratio=round(ratio, 3), target='<= 1.3', met=bool(ratio <= 1.3),
          peak_rss_30s_mb=round(short['peak'] / 1e6, 1), peak_rss_long_mb=round(long['peak'] / 1e6, 1),
          rss_after_model_load_mb=round(short['after_load'] / 1e6, 1), long_audio_seconds=round(long['audio_s'], 1),
          long_windows=long['windows'])

    records = args.tfrecords or ensure_records(workdir, files[:-1])
    ev = _worker('eval', run, records, workdir / 'eval')
    _line(figure='test_model_speed', tracks_per_second=ev['tracks_per_second'], tracks=ev['n_tracks'],
          windows=ev['n_windows'], seconds=ev['seconds'], records=records)
    return 0


if __name__ == '__main__':
    sys.exit(main())
