"""Benchmark of the dataset sources and TFRecord writing at dataset scale; one JSON line per figure.

``python benchmarks/bench_datasets.py [--mtat-clips 2000] [--jamendo-tracks 200] [--workdir DIR] [--workers 2]``
(``--tiny``: a run under a minute, for the tests).

Trees: a synthetic MagnaTagATune-layout tree of ``--mtat-clips`` clips (29.1 s, 16 kHz mono MP3, with
MTAT's defects) and an MTG-Jamendo-layout tree of ``--jamendo-tracks`` tracks of
``--jamendo-minutes`` (3-6 min, stereo MP3 rendered at 44.1 kHz; LAME stores it at 32 kHz), plus a
quarter-size tree of each, made by
:func:`sources.synthetic.make_mtat` / :func:`~sources.synthetic.make_jamendo` and cached in
``--workdir`` between runs (keyed by size and seed).

Figures
-------
* ``datasets.adapter.<source>.rows_per_s`` and ``….peak_rss`` (VmHWM of its main process):
  ``musetag dataset mtat|jamendo`` in a fresh process on the quarter-size tree (at least 8 rows) and
  the full tree (``size``: rows); ``….rss_growth`` is the full tree's peak RSS over the quarter
  tree's (flat: near 1 while the tree grows 4x).
* ``datasets.write.<source>.floor``: tracks/s of decode + resample alone (``preprocessing.audio.load_audio``
  at 16 kHz) of the very tracks the writer encodes, in ``--workers`` processes. Per format
  (``--formats``: waveform, log-mel with the musicnn preset), ``write.<source>.<format>.local``: tracks/s
  of ``preprocess write`` with ``--workers`` processes, and ``….vs_floor``: local / floor (target
  >= 0.8 for waveform, whose per-track work is the floor; log-mel adds the spectrogram);
  ``….encode_floor``: tracks/s of the writer's per-track work alone and ``….vs_encode_floor``, local /
  that: what the writing itself costs; ``….local_marginal``: the writer's tracks/s once running (the
  quarter tree's write subtracted from the full tree's; ``fixed_seconds``: its start-up, table reading
  and planning) and ``….vs_floor_marginal``, that over the floor; ``….beam``: tracks/s of ``--engine beam`` (the
  in-process FnApiRunner with ``--workers`` threads) on the same input, and ``….beam_vs_local``.
  ``identical`` says whether the Beam shards equal the local ones byte for byte.
* ``datasets.encode.long_file.peak_memory``: peak memory (MiB of the allocations ``tracemalloc``
  traces: NumPy arrays, Python objects) of encoding the longest Jamendo track (decode, resample,
  log-mel, serialise) in a fresh process, against ``native_copy_mib``, what one native-rate float32
  copy of that track would take: writing must never hold one (``rss_growth_mib``: the peak RSS
  growth, a lower bound only).

Every line carries the 1-minute load average: on a shared machine, read the numbers with it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import time

from _common import ROOT, emit, machine

BENCH = 'datasets'


# --------------------------------------------------------------------------------------- trees
def _tree(workdir, kind, size, args):
    """The cached tree of ``kind`` ('mtat' | 'jamendo') with ``size`` rows; made when missing."""
    from sources.synthetic import make_jamendo, make_mtat
    if kind == 'mtat':
        path = os.path.join(workdir, f'mtat-{size}-s{args.seed}')
        if not os.path.isdir(path):
            t0 = time.perf_counter()
            make_mtat(path, size, seed=args.seed, workers=args.workers)
            print(f'made {path} in {time.perf_counter() - t0:.0f} s', file=sys.stderr)
        return path
    lo, hi = args.jamendo_minutes
    path = os.path.join(workdir, f'jamendo-{size}-{lo:g}-{hi:g}min-s{args.seed}')
    if not os.path.isdir(path):
        t0 = time.perf_counter()
        make_jamendo(path, size, seed=args.seed, workers=args.workers, minutes=(lo, hi))
        print(f'made {path} in {time.perf_counter() - t0:.0f} s', file=sys.stderr)
    return path


# --------------------------------------------------------------------------------------- adapters
#: ``python -m sources ARGS`` that writes its peak RSS (VmHWM, KiB) to the file ``$BENCH_HWM_FILE`` at exit.
#: VmHWM, not ru_maxrss: ru_maxrss survives exec() and would report this benchmark's own memory.
_MEASURED_SOURCES = """
import os, runpy, sys
sys.argv = ['sources'] + sys.argv[1:]
try:
    runpy.run_module('sources', run_name='__main__', alter_sys=True)
finally:
    with open('/proc/self/status') as f:
        hwm = [ln.split()[1] for ln in f if ln.startswith('VmHWM')][0]
    with open(os.environ['BENCH_HWM_FILE'], 'w') as f:
        f.write(hwm)
"""


def _run_measured(args, workdir):
    """Run ``python -m sources ARGS``; returns (exit code, wall seconds, peak RSS MiB of its main
    process, stderr tail)."""
    hwm_file = os.path.join(workdir, 'hwm.txt')
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, '-c', _MEASURED_SOURCES, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True,
                          env={**os.environ, 'PYTHONPATH': ROOT, 'BENCH_HWM_FILE': hwm_file})
    seconds = time.perf_counter() - t0
    with open(hwm_file) as f:
        peak = int(f.read()) / 1024
    return proc.returncode, seconds, peak, proc.stderr[-2000:]


def _adapter_args(kind, tree, out, workers):
    if kind == 'mtat':
        src = ['mtat', '--root', tree]
    else:
        src = ['jamendo', '--root', os.path.join(tree, 'data'), '--audio', os.path.join(tree, 'audio')]
    return [*src, '--out', out, '--overwrite', '--workers', str(workers)]


def _rows(kind, tree):
    if kind == 'mtat':
        with open(os.path.join(tree, 'annotations_final.csv'), encoding='utf-8') as f:
            return sum(1 for _ in f) - 1
    with open(os.path.join(tree, 'data', 'autotagging_top50tags.tsv'), encoding='utf-8') as f:
        return sum(1 for _ in f) - 1


def bench_adapter(kind, trees, workdir, workers):
    """Adapter rows/s and peak RSS on each tree (small, then full); returns each tree's output folder."""
    rss, outs = [], []
    for tree in trees:
        out = os.path.join(workdir, 'out', os.path.basename(tree))
        outs.append(out)
        rows = _rows(kind, tree)
        code, seconds, peak, err = _run_measured(_adapter_args(kind, tree, out, workers), workdir)
        if code not in (0, 1):
            raise RuntimeError(f'musetag dataset {kind} failed ({code}): {err}')
        emit(BENCH, f'adapter.{kind}.rows_per_s', rows / seconds, 'rows/s', size=rows, seconds=round(seconds, 2),
             exit_code=code, load_avg_1m=_load())
        emit(BENCH, f'adapter.{kind}.peak_rss', peak, 'MiB', size=rows, load_avg_1m=_load())
        rss.append(peak)
    if len(rss) == 2:
        emit(BENCH, f'adapter.{kind}.rss_growth', rss[1] / rss[0], 'x', sizes=[_rows(kind, t) for t in trees],
             note='full tree peak RSS / quarter tree peak RSS (flat: ~1)')
    return outs


# --------------------------------------------------------------------------------------- writing
def _load_one(path):
    from preprocessing.audio import AudioLoadError, load_audio
    try:
        return len(load_audio(path, sr=16000))
    except AudioLoadError:
        return 0


def _spec(fmt):
    from preprocessing.tfrecords import feature_spec
    return feature_spec(fmt, sr=16000, preset='musicnn' if fmt == 'log-mel' else None)


def _encode_one(path, fmt='log-mel'):
    from preprocessing.audio import AudioLoadError
    from preprocessing.encode import encode_track
    try:
        return len(encode_track(path, _spec(fmt))[0])
    except AudioLoadError:
        return 0


def _floor(paths, workers, task=_load_one):
    """Tracks/s of ``task`` (default: decode + resample alone) over ``paths`` with ``workers`` fresh
    processes (one BLAS thread each, as the writer's)."""
    from preprocessing.encode import init_worker
    ctx = multiprocessing.get_context('spawn')
    with ctx.Pool(workers, initializer=init_worker, initargs=(os.getpid(),)) as pool:
        pool.map(task, paths[:workers])              # start-up and imports, not timed
        t0 = time.perf_counter()
        pool.map(task, paths, chunksize=1)
        return len(paths) / (time.perf_counter() - t0)


def _planned_paths(adapter_out):
    from preprocessing.inputs import read_inputs
    inputs = read_inputs(os.path.join(adapter_out, 'master.csv'), os.path.join(adapter_out, 'splits.csv'),
                         os.path.join(adapter_out, 'clean_tags.db'))
    return [path for split in inputs.tracks.values() for _, _, path, _ in split]


def _shard_digest(out):
    h = hashlib.sha256()
    with open(os.path.join(out, 'manifest.json'), encoding='utf-8') as f:
        manifest = json.load(f)
    for split in manifest['splits'].values():
        for shard in split['shards']:
            h.update(shard['sha256'].encode())
    return h.hexdigest()


def _write(adapter_out, out, engine, workers, shards, fmt):
    from preprocessing.tfrecords import write_tfrecords
    t0 = time.perf_counter()
    summary = write_tfrecords(os.path.join(adapter_out, 'master.csv'), os.path.join(adapter_out, 'clean_tags.db'),
                              os.path.join(adapter_out, 'splits.csv'), out, format=fmt,
                              preset='musicnn' if fmt == 'log-mel' else None,
                              shards_per_split=shards, workers=workers, engine=engine, overwrite=True,
                              progress=False, command=f'bench_datasets {engine}')
    return summary, time.perf_counter() - t0


def bench_write(kind, adapter_outs, workdir, workers, shards, formats, repeats=1):
    """Floor, then per format the encode floor, the local writer and the Beam writer (tracks/s).

    ``adapter_outs``: the adapter outputs of the quarter and the full tree; the local writer also
    writes the quarter tree, so its fixed cost (worker start-up and imports, reading the tables,
    planning) can be told apart from its rate once running (``….local_marginal``). With ``repeats``
    > 1 the floor and the local writes alternate ``repeats`` times, and the ratios are the median
    of the paired ratios (each listed): on a shared machine only pairs measured together compare.
    """
    import functools
    import statistics
    adapter_out = adapter_outs[-1]
    paths = _planned_paths(adapter_out)
    for fmt in formats:
        name = f'write.{kind}.{fmt}'
        encode = _floor(paths, workers, functools.partial(_encode_one, fmt=fmt))
        emit(BENCH, f'{name}.encode_floor', encode, 'tracks/s', tracks=len(paths), workers=workers,
             load_avg_1m=_load(), note=f'the per-track work of the {fmt} writer alone (decode, resample'
                                       f'{", log-mel" if fmt == "log-mel" else ""}, nothing written)')
        out = os.path.join(workdir, 'tfrecords', f'{kind}-{fmt}-local')
        pairs = []                      # (floor tracks/s, local (tracks, s), quarter local (tracks, s) or None)
        for _ in range(repeats):
            floor = _floor(paths, workers)
            emit(BENCH, f'write.{kind}.floor', floor, 'tracks/s', tracks=len(paths), workers=workers,
                 load_avg_1m=_load())
            full = _timed_write(adapter_out, out, 'local', workers, shards, fmt)
            emit(BENCH, f'{name}.local', full[0] / full[1], 'tracks/s', tracks=full[0], seconds=round(full[1], 2),
                 workers=workers, shards_per_split=shards, load_avg_1m=_load())
            small = (_timed_write(adapter_outs[0], os.path.join(workdir, 'tfrecords', f'small-{fmt}-local'),
                                  'local', workers, shards, fmt) if len(adapter_outs) > 1 else None)
            pairs.append((floor, full, small))
        ratios = [full[0] / full[1] / floor for floor, full, _ in pairs]
        emit(BENCH, f'{name}.vs_floor', statistics.median(ratios), 'x', target=0.8 if fmt == 'waveform' else None,
             paired=[round(r, 3) for r in ratios],
             note='local writer tracks/s (start-up included) / decode+resample tracks/s (start-up excluded), '
                  'same files, same workers; median of the paired runs' +
                  ('' if fmt == 'waveform' else ' (log-mel adds the spectrogram: compare with vs_encode_floor)'))
        local = pairs[-1][1][0] / pairs[-1][1][1]
        emit(BENCH, f'{name}.vs_encode_floor', local / encode, 'x',
             note='local writer tracks/s / its per-track work alone: the cost of the writing itself')
        if all(small is not None for _, _, small in pairs):
            _marginal(name, pairs, fmt)
        beam = _timed_write(adapter_out, os.path.join(workdir, 'tfrecords', f'{kind}-{fmt}-beam'), 'beam', workers,
                            shards, fmt)
        emit(BENCH, f'{name}.beam', beam[0] / beam[1], 'tracks/s', tracks=beam[0], seconds=round(beam[1], 2),
             workers=workers, shards_per_split=shards, load_avg_1m=_load())
        emit(BENCH, f'{name}.beam_vs_local', beam[0] / beam[1] / local, 'x',
             identical=_shard_digest(out) == _shard_digest(os.path.join(workdir, 'tfrecords',
                                                                          f'{kind}-{fmt}-beam')))


def _timed_write(adapter_out, out, engine, workers, shards, fmt):
    """(tracks, seconds) of one write of ``adapter_out`` into a fresh ``out``."""
    import shutil
    shutil.rmtree(out, ignore_errors=True)
    summary, seconds = _write(adapter_out, out, engine, workers, shards, fmt)
    return summary['tracks_written'] + sum(summary['tracks_skipped'].values()), seconds


def _marginal(name, pairs, fmt):
    """The local writer's rate once running and its fixed cost, from the quarter tree's write subtracted
    from the full tree's in each pair: (full tracks - quarter tracks) / (full seconds - quarter seconds)."""
    import statistics
    rates, ratios, fixed = [], [], []
    for floor, full, small in pairs:
        extra_tracks, extra_seconds = full[0] - small[0], full[1] - small[1]
        if extra_tracks <= 0 or extra_seconds <= 0:
            continue
        rates.append(extra_tracks / extra_seconds)
        ratios.append(rates[-1] / floor)
        fixed.append(small[1] - small[0] / rates[-1])
    if not rates:
        return
    emit(BENCH, f'{name}.local_marginal', statistics.median(rates), 'tracks/s', tracks=[pairs[0][2][0], pairs[0][1][0]],
         fixed_seconds=round(statistics.median(fixed), 2), load_avg_1m=_load(),
         note='the writer once running: the quarter tree\'s write subtracted from the full tree\'s (what a '
              '55k-track dataset sees); fixed_seconds: start-up, tables, planning')
    emit(BENCH, f'{name}.vs_floor_marginal', statistics.median(ratios), 'x',
         target=0.8 if fmt == 'waveform' else None, paired=[round(r, 3) for r in ratios],
         note='local_marginal / floor, median of the paired runs: the per-track cost of writing against '
              'decode+resample alone')


_ENCODE_PEAK = """
import json, resource, sys, tracemalloc
from preprocessing.encode import encode_track
from preprocessing.tfrecords import feature_spec, serialize_example
feats = feature_spec('log-mel', sr=16000, preset='musicnn')
warm, long = sys.argv[1], sys.argv[2]
serialize_example('w', '', [0], *encode_track(warm, feats))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
data, shape, duration = encode_track(long, feats)
record = serialize_example('t', '', [0], data, shape, duration)
traced = tracemalloc.get_traced_memory()[1]
print(json.dumps({'growth_mib': (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024,
                  'traced_mib': traced / 2 ** 20, 'seconds': duration}))
"""


def bench_long_file(paths):
    """Peak RSS growth of encoding the longest of ``paths`` against one native-rate float32 copy."""
    from preprocessing.audio import audio_info
    infos = sorted((audio_info(p).duration, p) for p in paths)
    (_, shortest), (_, longest) = infos[0], infos[-1]
    info = audio_info(longest)
    r = subprocess.run([sys.executable, '-c', _ENCODE_PEAK, shortest, longest], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, 'PYTHONPATH': ROOT}, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    got = json.loads(r.stdout.strip().splitlines()[-1])
    native = info.frames * info.channels * 4 / 2 ** 20
    emit(BENCH, 'encode.long_file.peak_memory', got['traced_mib'], 'MiB', track_seconds=round(got['seconds'], 1),
         native_rate=info.samplerate, channels=info.channels, native_copy_mib=round(native, 1),
         bounded=got['traced_mib'] < native, rss_growth_mib=round(got['growth_mib'], 1),
         note='peak of the traced allocations (NumPy, Python) while one track is encoded; the RSS growth over '
              'the start-up high-water mark is shown too, but reads low when the kernel evicted library pages')


# --------------------------------------------------------------------------------------- main
def _load():
    return round(os.getloadavg()[0], 2)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--mtat-clips', type=int, default=2000, help='clips of the full MTAT-layout tree')
    ap.add_argument('--jamendo-tracks', type=int, default=200, help='tracks of the full MTG-Jamendo-layout tree')
    ap.add_argument('--jamendo-minutes', type=float, nargs=2, default=(3.0, 6.0), metavar=('LOW', 'HIGH'),
                    help='length range of the Jamendo tracks')
    ap.add_argument('--workdir', default=os.path.join(ROOT, '.cache', 'bench_datasets'),
                    help='where the trees are cached between runs, and the outputs written')
    ap.add_argument('--workers', type=int, default=2, help='processes (writer, floor, adapters, tree making)')
    ap.add_argument('--shards-per-split', type=int, default=4, help='shards per split of both writers')
    ap.add_argument('--seed', type=int, default=0, help='seed of the synthetic trees')
    ap.add_argument('--only', choices=['mtat', 'jamendo'], default=None, help='one source only')
    ap.add_argument('--skip-write', action='store_true', help='the adapters only (no TFRecord writing)')
    ap.add_argument('--formats', nargs='+', choices=['waveform', 'log-mel'], default=['waveform', 'log-mel'],
                    help='TFRecord formats written (waveform: the per-track work is decode + resample, the floor)')
    ap.add_argument('--repeats', type=int, default=3,
                    help='floor / local writer pairs per format (their paired ratios give the medians)')
    ap.add_argument('--tiny', action='store_true',
                    help='a run under a minute: 32 clips, 8 Jamendo tracks of 6-9 s, 1 worker')
    args = ap.parse_args(argv)
    if args.tiny:
        args.mtat_clips, args.jamendo_tracks, args.jamendo_minutes = 32, 8, (0.1, 0.15)
        args.workers, args.shards_per_split, args.repeats = 1, 1, 1
    return args


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    from core.logs import import_tensorflow
    import_tensorflow()                          # once, before any timing
    emit(BENCH, 'machine', os.cpu_count(), 'cpus', **machine(), load_avg_1m=_load())
    sizes = {'mtat': args.mtat_clips, 'jamendo': args.jamendo_tracks}
    for kind in ('mtat', 'jamendo'):
        if args.only and kind != args.only:
            continue
        small = min(sizes[kind], max(8, sizes[kind] // 4))     # a few rows at least: the sources plant defects
        trees = [_tree(args.workdir, kind, n, args) for n in sorted({small, sizes[kind]})]
        adapter_outs = bench_adapter(kind, trees, args.workdir, args.workers)
        if args.skip_write:
            continue
        bench_write(kind, adapter_outs, args.workdir, args.workers, args.shards_per_split, args.formats,
                    repeats=args.repeats)
        if kind == 'jamendo':
            bench_long_file(_planned_paths(adapter_outs[-1]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
