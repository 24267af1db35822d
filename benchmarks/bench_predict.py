"""Benchmark tagging new audio and whole-track evaluation. Prints one JSON line per figure.

Files: ``--clips`` 30 s MP3 previews (the four 7digital formats of MSD previews, synthesised by
:mod:`msd.synthetic`) and one long MP3 per ``--long-minutes`` (44.1 kHz stereo, 128 kbps: the first
preview format, repeated). Figures, each measured in a fresh process, one after the other (the
machine may be shared):

* ``musetag_tagging_speed``: audio seconds tagged per wall second by ``evaluation.Tagger`` with the
  published ``MSD_musicnn`` model (imported into the work folder's cache), over the clips;
* ``musicnn_extractor_tagging_speed``, ``speedup_vs_musicnn_extractor`` (target ≥ 5) and
  ``window_agreement_with_musicnn``: the musicnn package's own extractor on the same clips
  (``--skip-musicnn`` leaves them out);
* ``peak_rss_<N>min_vs_30s``: peak RSS (VmHWM) of a process tagging the N-minute file over that of a
  process tagging a 30 s clip (target ≤ 1.2: tagging streams the file, so memory must not grow
  with its length);
* ``evaluate_speed``: whole-track evaluation (``evaluation.evaluate.evaluate_run``) in tracks/s on a
  test split written from the clips (or ``--tfrecords DIR``).

    python benchmarks/bench_predict.py [--workdir DIR] [--run RUN] [--clips 10] [--long-minutes 10 60]
                                       [--tfrecords DIR] [--skip-musicnn] [--tiny]

``--tiny`` (CI): 2 clips, one 1-minute file, no musicnn reference.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import PREVIEW_FORMATS, ROOT, emit, preview_mp3s  # (sets paths/env first)

BENCH = 'predict'


# ------------------------------------------------------------------------------------------ fixtures
def make_files(workdir: Path, clips: int, long_minutes) -> tuple[list, dict]:
    """The clips (cycling through the preview formats) and one long file per length (minutes)."""
    from core import files
    d = workdir / 'audio'
    previews = None
    clip_paths, long_paths = [], {}
    for i in range(clips):
        p = d / f'clip{i:02d}.mp3'
        if not p.exists():
            previews = previews or preview_mp3s(30.0)
            files.atomic_write_bytes(p, previews[i % len(previews)])
        clip_paths.append(str(p))
    for minutes in long_minutes:
        p = d / f'long{minutes:g}min.mp3'
        if not p.exists():
            previews = previews or preview_mp3s(30.0)
            # MPEG frames concatenate into one stream: a long file without a long signal in memory
            stereo_44k = previews[PREVIEW_FORMATS.index((44100, 2, 128))]
            with files.atomic_path(p, overwrite=True) as tmp, open(tmp, 'wb') as f:
                for _ in range(int(round(minutes * 2))):
                    f.write(stereo_44k)
        long_paths[minutes] = str(p)
    return clip_paths, long_paths


def _worker(*args, timeout=7200):
    out = subprocess.run([sys.executable, __file__, '--_worker', *map(str, args)], capture_output=True,
                         text=True, cwd=ROOT, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f'worker {args[0]} failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def _status(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) * 1024
    return None


# ------------------------------------------------------------------------------------------ workers
def worker_musetag(run_dir, out_json, *paths):
    """Tag every file with evaluation.Tagger; write taggrams to out_json; print timing."""
    t0 = time.perf_counter()
    from evaluation.tagger import Tagger
    tagger = Tagger.from_run(run_dir)
    load = time.perf_counter() - t0
    from preprocessing.audio import audio_info
    res, audio_s = {}, 0.0
    t1 = time.perf_counter()
    for f in paths:
        r = tagger.predict_file(f)
        audio_s += audio_info(f).duration      # header duration, the same measure as the reference
        res[f] = {'taggram': r.taggram.tolist(), 'duration_s': r.duration_s, 'labels': r.labels}
    tag_s = time.perf_counter() - t1
    Path(out_json).write_text(json.dumps(res))
    print(json.dumps({'load_s': load, 'tag_s': tag_s, 'audio_s': audio_s}))


def worker_musicnn(out_json, *paths):
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
    for f in paths:
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
    from evaluation.evaluate import evaluate_run
    m, _ = evaluate_run(run_dir, split='test', tfrecords=records, out_dir=out_dir, overwrite=True, progress=False)
    print(json.dumps({'n_tracks': m['n_tracks'], 'n_windows': m['n_windows'], 'seconds': m['seconds'],
                      'tracks_per_second': m['tracks_per_second']}))


WORKERS = {'musetag': worker_musetag, 'musicnn': worker_musicnn, 'rss': worker_rss, 'eval': worker_eval}


# ------------------------------------------------------------------------------------------ set-up
def ensure_run(workdir: Path, run):
    """The run dir to tag with: ``run``, else MSD_musicnn imported into the work folder's cache."""
    if run:
        return str(run)
    from core.logs import import_tensorflow
    import_tensorflow()                 # (without its C++ start-up lines)
    from modeling.pretrained import cached_run
    return str(cached_run('MSD_musicnn', cache_dir=workdir / 'cache'))


def ensure_records(workdir: Path, clips):
    """A test split of the clips as musicnn-preset log-mel TFRecords (tiny clean tag DB)."""
    out = workdir / 'records'
    if (out / 'manifest.json').exists():
        return str(out)
    import sqlite3

    import pandas as pd

    from msd.lastfm import write_tables
    from preprocessing.tfrecords import write_tfrecords
    tags = ['rock', 'pop', 'jazz', 'female vocalists', 'ambient']
    ids = [f'TRBENCH{i:05d}' for i in range(len(clips))]
    pd.DataFrame({'track_id': ids, 'artist_id': [f'AR{i}' for i in range(len(clips))],
                  'audio_path': clips}).to_csv(workdir / 'master.csv', index=False)
    pd.DataFrame({'track_id': ids, 'split': 'test'}).to_csv(workdir / 'splits.csv', index=False)
    db = workdir / 'clean_tags.db'
    if db.exists():
        db.unlink()
    con = sqlite3.connect(db)
    write_tables(con, enumerate(tags, 1), enumerate(ids, 1),
                 [(i + 1, 1 + (i + j) % len(tags), 100.0) for i in range(len(clips)) for j in range(2)])
    con.commit()
    con.close()
    write_tfrecords(str(workdir / 'master.csv'), str(db), str(workdir / 'splits.csv'), str(out), format='log-mel',
                    preset='musicnn', shards_per_split=2, audio_root=str(Path(clips[0]).parent), progress=False)
    return str(out)


# ------------------------------------------------------------------------------------------ figures
def speed_figures(workdir, run, clips, skip_musicnn):
    import numpy as np
    ours = _worker('musetag', run, workdir / 'musetag.json', *clips)
    ours_rate = ours['audio_s'] / ours['tag_s']
    emit(BENCH, 'musetag_tagging_speed', ours_rate, 'audio s / wall s', files=len(clips),
         audio_seconds=round(ours['audio_s'], 1), tag_seconds=round(ours['tag_s'], 2),
         model_load_seconds=round(ours['load_s'], 2),
         including_load=round(ours['audio_s'] / (ours['tag_s'] + ours['load_s']), 2))
    if skip_musicnn:
        return
    ref = _worker('musicnn', workdir / 'musicnn.json', *clips)
    ref_rate = ref['audio_s'] / ref['tag_s']
    emit(BENCH, 'musicnn_extractor_tagging_speed', ref_rate, 'audio s / wall s', files=len(clips),
         audio_seconds=round(ref['audio_s'], 1), tag_seconds=round(ref['tag_s'], 2))
    emit(BENCH, 'speedup_vs_musicnn_extractor', ours_rate / ref_rate, 'x', target='>= 5',
         met=bool(ours_rate / ref_rate >= 5))
    a = json.loads((workdir / 'musetag.json').read_text())
    b = json.loads((workdir / 'musicnn.json').read_text())
    diffs, extra = [], 0
    for f in clips:
        ta, tb = np.asarray(a[f]['taggram']), np.asarray(b[f]['taggram'])
        n = tb.shape[0]        # musicnn drops the trailing partial window; we add one aligned to the end
        diffs.append(np.abs(ta[:n] - tb).max())
        extra += ta.shape[0] - n
        if a[f]['labels'] != b[f]['labels']:
            raise RuntimeError('label order differs from musicnn')
    emit(BENCH, 'window_agreement_with_musicnn', float(max(diffs)), 'max abs difference',
         windows_compared=int(sum(np.asarray(b[f]['taggram']).shape[0] for f in clips)), extra_end_windows=int(extra))


def rss_figures(run, clip, long_paths):
    short = _worker('rss', run, clip)
    for minutes, path in long_paths.items():
        long = _worker('rss', run, path)
        ratio = long['peak'] / short['peak']
        emit(BENCH, f'peak_rss_{minutes:g}min_vs_30s', ratio, 'x', target='<= 1.2', met=bool(ratio <= 1.2),
             peak_rss_30s_mb=round(short['peak'] / 1e6, 1), peak_rss_long_mb=round(long['peak'] / 1e6, 1),
             rss_after_model_load_mb=round(short['after_load'] / 1e6, 1),
             long_audio_seconds=round(long['audio_s'], 1), long_windows=long['windows'],
             long_tag_seconds=round(long['seconds'], 1))


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == '--_worker':
        WORKERS[argv[1]](*argv[2:])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--workdir', default='/tmp/musetag-bench-predict', help='files, run dir and records (reused)')
    p.add_argument('--run', default=None, help='run dir (default: MSD_musicnn imported into WORKDIR/cache)')
    p.add_argument('--clips', type=int, default=10, help='30 s clips for the speed and evaluation figures')
    p.add_argument('--long-minutes', type=float, nargs='+', default=[10.0, 60.0],
                   help='lengths of the long files whose peak RSS is compared with a 30 s clip')
    p.add_argument('--tfrecords', default=None, help='TFRecord dir with a test split (default: built from the clips)')
    p.add_argument('--skip-musicnn', action='store_true', help='skip the musicnn extractor reference')
    p.add_argument('--tiny', action='store_true', help='CI size: 2 clips, a 1-minute file, no musicnn reference')
    args = p.parse_args(argv)
    if args.tiny:
        args.clips, args.long_minutes, args.skip_musicnn = 2, [1.0], True
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    clips, long_paths = make_files(workdir, max(args.clips, 1), args.long_minutes)
    run = ensure_run(workdir, args.run)
    speed_figures(workdir, run, clips, args.skip_musicnn)
    rss_figures(run, clips[0], long_paths)
    records = args.tfrecords or ensure_records(workdir, clips)
    ev = _worker('eval', run, records, workdir / 'eval')
    emit(BENCH, 'evaluate_speed', ev['tracks_per_second'], 'tracks/s', tracks=ev['n_tracks'],
         windows=ev['n_windows'], seconds=ev['seconds'], records=records)
    return 0


if __name__ == '__main__':
    sys.exit(main())
