"""TFRecord size, input-pipeline and writer throughput (issue: preprocessing).

In one run, on the same generated 30 s tracks:
(a) bytes per track of our shards vs Orpheus-style float32 ``FloatList`` records (target <= 0.5x);
(b) windows/s through ``make_dataset`` vs a reader of the float32 FloatList records doing the same
    work (parse, random 15 s window, batch) (target >= 2x); every reader runs once per round
    (``--rounds``, order rotating) and the speedup is the median of the within-round ratios, with
    each reader's best rate and CPU ms per window alongside;
(a) and (b) are given for the default raw encoding and for ``audio_encoding='zlib'``;
(c) tracks/s of ``write`` with 1 and 2 workers over ``--write-tracks`` 30 s MP3 previews (target >= 1.7x):
    the median of ``--write-rounds`` paired rounds (1 and 2 workers back to back, order alternating);
(d) windows/s of ``make_dataset`` alone for 3 s and 15 s windows, both formats.

The data is built with public APIs only: clips rendered by the synthetic corpus generator
(``msd.synthetic``), ``master.csv`` by ``msd.tables.write_master``, the clean tag DB by
``msd.lastfm.write_tables``, the split by ``preprocessing.splits``.

Usage: python benchmarks/bench_pipeline.py [--tracks 48] [--write-tracks 240] [--epochs 40] [--rounds 4]
       [--write-rounds 5]
"""
import argparse
import functools
import os
import shutil
import statistics
import tempfile
import time

import numpy as np

from _common import emit, preview_mp3s

BENCH = 'pipeline'
TAGS = ['rock', 'pop', 'jazz', 'female', 'male', 'instrumental', '80s']
GENRES = ('rock', 'jazz', 'hip-hop', 'ambient')


def rendered_clips(directory, n=8, seconds=(29.5, 30.5)):
    """``n`` mono 22.05 kHz WAV clips of 29.5-30.5 s rendered by the synthetic corpus generator
    (resampled to 16 kHz when the TFRecords are written)."""
    import soundfile as sf

    from msd.synthetic import SYNTH_SR, render_audio
    sr = SYNTH_SR
    os.makedirs(directory, exist_ok=True)
    paths = []
    for k in range(n):
        spec = dict(genre=GENRES[k % len(GENRES)], vocal=('female', 'male', None)[k % 3], decade=None, ballad=False,
                    tempo=90.0 + 7 * k, key=k % 12, mode=k % 2, prog=0)
        length = seconds[0] + (seconds[1] - seconds[0]) * k / max(n - 1, 1)
        paths.append(os.path.join(directory, f'{k}.wav'))
        sf.write(paths[-1], render_audio(spec, sr, 1, length, seed=k), sr, subtype='PCM_16')
    return paths


def write_corpus(root, n_tracks, audio_files):
    """master.csv + clean_tags.db + splits.csv (all train) for ``n_tracks`` tracks using the
    ``audio_files`` in turn (all under ``root``); returns paths, rows and each track's tags."""
    import sqlite3

    import pandas as pd

    from msd.lastfm import write_tables
    from msd.tables import write_master
    from preprocessing.splits import make_split, write_splits
    rows, tags_of = [], {}
    for i in range(n_tracks):
        tid = f'TRBENCH{i:011d}'
        path = audio_files[i % len(audio_files)]
        rows.append({'track_id': tid, 'artist_id': f'AR{i // 2:016d}', 'audio_path': path,
                     'file_path': os.path.relpath(path, root)})
        tags_of[tid] = [TAGS[i % 3], TAGS[3 + i % 3]] + (['80s'] if i % 4 == 0 else [])
    corpus = {'master': os.path.join(root, 'master.csv'), 'tags_db': os.path.join(root, 'clean_tags.db'),
              'splits': os.path.join(root, 'splits.csv'), 'rows': rows, 'tags_of': tags_of}
    master = pd.DataFrame(rows)
    write_master(master, corpus['master'], command='bench_pipeline', meta={'audio_root': root}, overwrite=True)
    con = sqlite3.connect(corpus['tags_db'])
    write_tables(con, enumerate(TAGS, 1), ((j + 1, r['track_id']) for j, r in enumerate(rows)),
                 [(j + 1, TAGS.index(t) + 1, 100.0) for j, r in enumerate(rows) for t in tags_of[r['track_id']]])
    con.commit()
    con.close()
    write_splits(make_split(master, by='track', ratios=(1, 0, 0))[0], corpus['splits'], command='bench_pipeline')
    return corpus


def mp3_previews(directory):
    """The four 30 s preview MP3s as files in ``directory``."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for k, data in enumerate(preview_mp3s(30.0)):
        paths.append(os.path.join(directory, f'{k}.mp3'))
        with open(paths[-1], 'wb') as f:
            f.write(data)
    return paths


def orpheus_records(directory, corpus, fmt, n_shards=4):
    """Write the same tracks the way Orpheus did: float32 FloatList audio (mel-major), 155 int64 tags."""
    import tensorflow as tf
    from preprocessing.audio import load_audio
    from preprocessing.features import get_params, log_mel
    os.makedirs(directory, exist_ok=True)
    params = get_params('orpheus')
    rows = [r for r in corpus['rows'] if r['track_id'] in corpus['tags_of']]
    writers = [tf.io.TFRecordWriter(os.path.join(directory, f'{fmt}_{k + 1}.tfrecord')) for k in range(n_shards)]
    for i, row in enumerate(rows):
        audio = load_audio(row['audio_path'])
        arr = audio if fmt == 'waveform' else log_mel(audio, params).T  # Orpheus: (n_mels, T)
        tags = np.zeros(155, np.int64)
        tags[:3] = 1
        ex = tf.train.Example(features=tf.train.Features(feature={
            'audio': tf.train.Feature(float_list=tf.train.FloatList(value=arr.ravel())),
            'tid': tf.train.Feature(bytes_list=tf.train.BytesList(value=[row['track_id'].encode()])),
            'tags': tf.train.Feature(int64_list=tf.train.Int64List(value=tags)),
        }))
        writers[i % n_shards].write(ex.SerializeToString())
    for w in writers:
        w.close()
    return [os.path.join(directory, f) for f in sorted(os.listdir(directory))], len(rows)


def orpheus_dataset(files, fmt, window_seconds, batch_size):
    """Orpheus' reader (float32 FloatList records, parsed whole) doing the same work as ours: parse,
    random window, batch."""
    import tensorflow as tf
    length = int(window_seconds * 16000) if fmt == 'waveform' else int(window_seconds * 16000 // 512)
    spec = {'audio': tf.io.VarLenFeature(tf.float32), 'tid': tf.io.FixedLenFeature([], tf.string),
            'tags': tf.io.FixedLenFeature([155], tf.int64)}

    def parse(rec):
        ex = tf.io.parse_single_example(rec, spec)
        audio = tf.sparse.to_dense(ex['audio'])
        if fmt == 'log-mel':
            audio = tf.reshape(audio, [96, -1])
            off = tf.random.uniform([], 0, tf.shape(audio)[1] - length, dtype=tf.int32)
            audio = audio[:, off:off + length]
        else:
            off = tf.random.uniform([], 0, tf.shape(audio)[0] - length, dtype=tf.int32)
            audio = audio[off:off + length]
        return audio, tf.cast(ex['tags'][:50], tf.float32)
    ds = tf.data.Dataset.from_tensor_slices(files).interleave(tf.data.TFRecordDataset, cycle_length=len(files),
                                                              num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def intra_op_1():
    import tensorflow as tf
    options = tf.data.Options()
    options.threading.max_intra_op_parallelism = 1
    return options


def windows_per_s(make, epochs):
    """(windows/s, CPU ms per window) over ``epochs`` passes through one iterator (after a warm-up pass).

    CPU time is the whole process's (every tf.data thread): on a shared machine it moves less than
    wall time when another tenant takes a core.
    """
    for _ in make():  # warm-up: graph tracing, page cache
        pass
    ds = make().repeat(epochs)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    for batch in ds:
        n += int(batch[0].shape[0])
    return n / (time.perf_counter() - t0), 1e3 * (time.process_time() - c0) / n


def compare_readers(readers, epochs, rounds):
    """Run every reader once per round, in turn (a burst of load hits all of them); best of the rounds.

    The order rotates every round: a reader that runs right after another pays part of its
    teardown (measured: 10–40% fewer windows/s for the reader run right after Orpheus').
    """
    runs = {name: [] for name in readers}
    names = list(readers)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            runs[name].append(windows_per_s(readers[name], epochs))
    return {name: (max(r[0] for r in rs), min(r[1] for r in rs), [r[0] for r in rs])
            for name, rs in runs.items()}


def paired_speedup(rounds, base_rounds):
    """Median over rounds of the within-round ratio (both run back to back in every round)."""
    return statistics.median(a / b for a, b in zip(rounds, base_rounds))


def bench_writer(tmp, n_tracks, rounds):
    """(c) writer throughput, 1 vs 2 workers, log-mel, on MP3 previews like MSD's (44.1/22.05 kHz,
    stereo and mono: decode + resample + log-mel per track); enough tracks that starting the
    worker processes (~1 s) does not dominate.

    1 and 2 workers run back to back in each round (order alternating); the machine's speed drifts
    by up to +-30% under other tenants, so the speedup is the median of the per-round ratios.
    """
    from preprocessing.tfrecords import write_tfrecords
    wroot = os.path.join(tmp, 'wcorpus')
    wcorpus = write_corpus(wroot, n_tracks, mp3_previews(os.path.join(wroot, 'mp3')))
    rates = {1: [], 2: []}
    for rnd in range(rounds):
        for workers in ((1, 2) if rnd % 2 == 0 else (2, 1)):
            out = os.path.join(tmp, f'write-{workers}-{rnd}')
            t0 = time.perf_counter()
            write_tfrecords(wcorpus['master'], wcorpus['tags_db'], wcorpus['splits'], out, format='log-mel',
                            preset='orpheus', shards_per_split=4, workers=workers, progress=False)
            rates[workers].append(n_tracks / (time.perf_counter() - t0))
            shutil.rmtree(out)
    for workers in (1, 2):
        emit(BENCH, f'write_tracks_per_s_{workers}_workers', max(rates[workers]), 'tracks/s', tracks=n_tracks,
             format='log-mel', source='30 s MP3 previews', statistic=f'best of {rounds}',
             rounds=[round(r, 1) for r in rates[workers]])
    paired = [b / a for a, b in zip(rates[1], rates[2])]
    speedup = statistics.median(paired)
    emit(BENCH, 'write_speedup_2_vs_1_workers', speedup, 'x', target='>= 1.7', ok=bool(speedup >= 1.7),
         statistic=f'median of {rounds} paired rounds', paired=[round(x, 2) for x in paired],
         best_vs_best=round(max(rates[2]) / max(rates[1]), 3))


def _dataset_bytes_per_track(directory, n):
    return sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)
               if f.endswith('.tfrecord')) / n


def _orpheus_intra1(files, fmt):
    """Orpheus' reader given make_dataset's threading option, to show what the option alone buys."""
    return orpheus_dataset(files, fmt, 15, 16).with_options(intra_op_1())


def _emit_reader_speedups(fmt, res, rounds):
    base, base_cpu, base_rounds = res['orpheus']
    for name, (rate, cpu, all_rates) in res.items():
        emit(BENCH, f'windows_per_s_{name}_{fmt}_15s', rate, 'windows/s', cpu_ms_per_window=round(cpu, 3),
             statistic=f'best of {rounds}', rounds=[round(r) for r in all_rates])
    for name in ('raw', 'zlib', 'orpheus_intra1'):
        rate, cpu, all_rates = res[name]
        speedup = paired_speedup(all_rates, base_rounds)
        extra = dict(baseline='Orpheus FloatList reader', statistic=f'median of {rounds} paired rounds',
                     paired=[round(a / b, 2) for a, b in zip(all_rates, base_rounds)],
                     best_vs_best=round(rate / base, 3), cpu_per_window_ratio=round(base_cpu / cpu, 3))
        if name == 'orpheus_intra1':
            emit(BENCH, f'orpheus_reader_intra_op_1_speedup_{fmt}', speedup, 'x', **extra)
            continue
        emit(BENCH, f'reader_speedup_{fmt}' + ('' if name == 'raw' else '_zlib'), speedup, 'x',
             target='>= 2', ok=bool(speedup >= 2), audio_encoding=name + (' (default)' if name == 'raw' else ''),
             **extra)


def bench_format(tmp, corpus, ours, fmt, epochs, rounds):
    """(a) bytes per track and (b) reader speed against Orpheus-style records, for one format."""
    from preprocessing.dataset import TagSelection, make_dataset
    from preprocessing.tfrecords import write_tfrecords
    n = len(corpus['tags_of'])
    files, _ = orpheus_records(os.path.join(tmp, f'orpheus-{fmt}'), corpus, fmt)
    theirs = _dataset_bytes_per_track(os.path.dirname(files[0]), n)
    # the alternative encoding: per-example zlib (smaller, slower to read)
    zlib_dir = os.path.join(tmp, f'zlib-{fmt}')
    write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], zlib_dir, format=fmt, preset='orpheus',
                    shards_per_split=4, workers=2, progress=False, audio_encoding='zlib')
    mine, zl = _dataset_bytes_per_track(ours[fmt], n), _dataset_bytes_per_track(zlib_dir, n)
    emit(BENCH, f'bytes_per_track_{fmt}', mine, 'bytes', format=fmt, audio_encoding='raw (default)')
    emit(BENCH, f'bytes_per_track_orpheus_{fmt}', theirs, 'bytes', format=fmt)
    emit(BENCH, f'size_ratio_{fmt}', mine / theirs, 'x', baseline='Orpheus float32 FloatList', target='<= 0.5',
         ok=bool(mine / theirs <= 0.5), audio_encoding='raw (default)')
    emit(BENCH, f'size_ratio_{fmt}_zlib', zl / theirs, 'x', baseline='Orpheus float32 FloatList', target='<= 0.5',
         ok=bool(zl / theirs <= 0.5), audio_encoding='zlib')
    # (b) same work: 15 s random windows, batch 16; readers alternate over the rounds
    ours_15s = dict(tags=TagSelection(top=3), window_seconds=15, batch_size=16, shuffle=False)
    res = compare_readers({
        'orpheus': functools.partial(orpheus_dataset, files, fmt, 15, 16),
        'orpheus_intra1': functools.partial(_orpheus_intra1, files, fmt),
        'raw': functools.partial(make_dataset, ours[fmt], 'train', **ours_15s),
        'zlib': functools.partial(make_dataset, zlib_dir, 'train', **ours_15s),
    }, epochs, rounds)
    _emit_reader_speedups(fmt, res, rounds)


def bench_make_dataset(ours, epochs):
    """(d) make_dataset alone, both formats, 3 s and 15 s (shuffled, as in training)."""
    from preprocessing.dataset import TagSelection, make_dataset
    for fmt in ('log-mel', 'waveform'):
        for sec in (3, 15):
            make = functools.partial(make_dataset, ours[fmt], 'train', tags=TagSelection(top=3), window_seconds=sec,
                                     batch_size=16, seed=0)
            r, cpu = windows_per_s(make, epochs)
            emit(BENCH, f'make_dataset_windows_per_s_{fmt}_{sec}s', r, 'windows/s', format=fmt, window_seconds=sec,
                 cpu_ms_per_window=round(cpu, 3))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--tracks', type=int, default=48, help='30 s tracks for the size and reader figures')
    ap.add_argument('--epochs', type=int, default=40,
                    help='passes over the tracks per timed reader run (short runs measure tf.data autotuning)')
    ap.add_argument('--write-tracks', type=int, default=240, help='tracks for the writer figure (c)')
    ap.add_argument('--rounds', type=int, default=5, help='rounds of the reader comparison (each reader once a round)')
    ap.add_argument('--write-rounds', type=int, default=5, help='paired 1-/2-worker rounds of the writer figure (c)')
    args = ap.parse_args()
    from preprocessing.tfrecords import write_tfrecords

    tmp = tempfile.mkdtemp(prefix='bench_pipeline_')
    try:
        corpus = write_corpus(tmp, args.tracks, rendered_clips(os.path.join(tmp, 'clips')))
        bench_writer(tmp, args.write_tracks, args.write_rounds)
        ours = {'log-mel': os.path.join(tmp, 'w1'), 'waveform': os.path.join(tmp, 'wave')}
        for fmt, out in ours.items():
            write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], out, format=fmt, preset='orpheus',
                            shards_per_split=4, workers=2, progress=False)
        for fmt in ('log-mel', 'waveform'):
            bench_format(tmp, corpus, ours, fmt, args.epochs, args.rounds)
        bench_make_dataset(ours, args.epochs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
