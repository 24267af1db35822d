"""Write compact, sharded, resumable TFRecord datasets of waveforms or log-mel spectrograms.

The dataset format (record keys, the audio-last layout, ``manifest.json``, ``skipped.csv``,
``_shards/``, multi-host writing, the lock, exit codes) is documented in ``docs/tfrecords.md``.
In short, an output directory ``DIR`` (local path or any ``tf.io.gfile`` URL, e.g. ``s3://``)
holds::

    DIR/train-00000-of-00008.tfrecord …  validation-… test-…   the shards
    DIR/manifest.json    feature parameters, tag vocabulary with per-split counts, split sizes,
                         per-shard example counts and SHA-256, the command line
    DIR/skipped.csv      track_id, split, file, reason, detail of every track (or input line) not written
    DIR/_shards/         plan.json + one JSON per finished shard (resume bookkeeping)

Each record is one whole track as a ``tf.train.Example`` whose last bytes are the audio
(:func:`serialize_example`), so the reader cuts a window straight out of the serialized record.

Writing is deterministic (tracks go to shards by a hash of their id: the same inputs give the same
shards, byte for byte) and resumable (each shard is written under a temporary name unique to the
process, renamed when complete and recorded in ``_shards/``; re-running skips complete shards).
One job at a time writes a local output (:class:`core.locks.OutputLock`; with ``num_hosts > 1``
each host locks its own part). A full disk removes the partial shard and raises
:class:`core.errors.NoSpaceError` (exit code 4); the same command resumes once space is freed.
"""
from __future__ import annotations

import collections
import contextlib
import csv
import hashlib
import io
import itertools
import json
import logging
import multiprocessing
import os
import sys
import time
from collections import Counter

import numpy as np

from core import files
from core.errors import NoSpaceError, OutputExistsError, is_no_space
from core.locks import OutputLock
from preprocessing.encode import (ShardFile, encode_item, encode_track, fill_shard, init_worker,  # noqa: F401
                                  shard_items, write_shard_task)   # (encode_track: public API)
from preprocessing.features import FeatureParams, frames_per_second, get_params
from preprocessing.inputs import INPUT_PROBLEMS, read_inputs
from preprocessing.records import serialize_example  # noqa: F401  (public API)
from preprocessing.splits import SPLITS, hash_unit

__all__ = ['FORMATS', 'FORMAT_VERSION', 'LAYOUT', 'plan_shards', 'shard_name', 'feature_spec', 'write_tfrecords',
           'encode_track', 'serialize_example', 'PAUSE_ENV', 'ENGINES']

log = logging.getLogger(__name__)

FORMATS = ('waveform', 'log-mel')
#: 2: records end with the audio bytes (features.layout 'audio-last'); version-1 datasets still read.
FORMAT_VERSION = 2
_STATE = '_shards'


def shard_name(split, index, count) -> str:
    """``split-NNNNN-of-MMMMM.tfrecord``."""
    return f'{split}-{index:05d}-of-{count:05d}.tfrecord'


# ------------------------------------------------------------------------------------ encoding

#: Record layout written by :func:`serialize_example`: the audio bytes end every record.
LAYOUT = 'audio-last'


def feature_spec(fmt, sr=16000, preset=None, params=None, audio_encoding='raw') -> dict:
    """The ``features`` block of a manifest for a format/preset (validated)."""
    if fmt not in FORMATS:
        raise ValueError(f'unknown format {fmt!r}; choose from {FORMATS}')
    if audio_encoding not in ('zlib', 'raw'):
        raise ValueError(f"audio encoding must be 'zlib' or 'raw', got {audio_encoding!r}")
    if fmt == 'waveform':
        return {'format': 'waveform', 'sr': int(sr), 'dtype': 'int16', 'scale': 1 / 32767,
                'audio_encoding': audio_encoding, 'layout': LAYOUT, 'params': None, 'frames_per_second': None}
    if params is None:
        params = get_params(preset or 'orpheus', sr=int(sr))
    elif isinstance(params, dict):
        params = FeatureParams.from_dict(params)
    return {'format': 'log-mel', 'sr': params.sr, 'dtype': 'float16', 'scale': 1.0,
            'audio_encoding': audio_encoding, 'layout': LAYOUT, 'params': params.to_dict(),
            'frames_per_second': frames_per_second(params)}


# ------------------------------------------------------------------------------------ planning

def plan_shards(tracks, shards_per_split):
    """Assign tracks to shards deterministically.

    Parameters
    ----------
    tracks : dict split -> list of (track_id, artist_id, path, tags) (:attr:`Inputs.tracks`).
    shards_per_split : int, or dict split -> int.

    Returns
    -------
    list of dict(name, split, index, count, tracks=[(track_id, artist_id, path, tags)]), in
    split order; a split without tracks has no shard.
    """
    if isinstance(shards_per_split, int):
        shards_per_split = {s: shards_per_split for s in SPLITS}
    shards = []
    for split in SPLITS:
        items = tracks.get(split) or []
        if not items:
            continue
        # hash order mixes artists/years across shards, and does not depend on master order
        order = np.argsort(hash_unit([t[0] for t in items], seed='shard'), kind='stable')
        items = [items[i] for i in order]
        n = max(1, min(int(shards_per_split[split]), len(items)))
        for k, part in enumerate(np.array_split(np.arange(len(items)), n)):
            shards.append({'name': shard_name(split, k, n), 'split': split, 'index': k, 'count': n,
                           'tracks': [items[i] for i in part]})
    return shards


def _plan_digest(shards, features):
    h = hashlib.sha256(json.dumps(features, sort_keys=True).encode())
    for s in shards:
        h.update(s['name'].encode())
        for tid, artist, path, tags in s['tracks']:
            h.update(f'{tid}\t{artist}\t{path}\t{tags}\n'.encode())
    return h.hexdigest()


def _prepare_output(out, plan, features, overwrite):
    """Create ``out/_shards``, refuse (or with ``overwrite`` clear) a different dataset, write plan.json."""
    files.makedirs(files.join(out, _STATE))
    plan_path = files.join(out, _STATE, 'plan.json')
    if files.exists(plan_path):
        old = files.read_json(plan_path)
        if old.get('digest') != plan['digest']:
            if not overwrite:
                keys = ('format', 'sr', 'params', 'audio_encoding', 'layout')
                diff = [k for k in keys if old['features'].get(k) != features.get(k)]
                what = f'feature settings differ ({", ".join(diff)})' if diff else 'inputs or sharding differ'
                raise OutputExistsError(f'{out} holds a different dataset: {what}; pass --overwrite to replace it or '
                                        'choose another --out')
            for name in files.listdir(out):
                if name.endswith('.tfrecord') or name in ('manifest.json', 'skipped.csv'):
                    files.remove(files.join(out, name))
            for name in files.listdir(files.join(out, _STATE)):
                files.remove(files.join(out, _STATE, name))
    files.write_json(plan_path, plan)


def _remove_stale_temps(out, shards):
    """Delete the temporary files a killed run left for ``shards`` (this host's: nobody else writes them)."""
    state = files.join(out, _STATE)
    prefixes = tuple(f'.{s["name"]}.' for s in shards)
    legacy = {s['name'] + '.partial' for s in shards}   # the fixed temp name of earlier versions
    for name in files.listdir(state):
        if name.startswith(prefixes) or name in legacy:
            log.info('removing %s, left by an interrupted run', files.join(state, name))
            files.remove(files.join(state, name))


# ------------------------------------------------------------------------------------ writing

#: Test hook: ``N:DIR`` makes the writer stop after its N-th track, create ``DIR/paused`` and wait
#: until ``DIR/resume`` exists (so tests interrupt it at a known point, never after a sleep).
PAUSE_ENV = 'MUSETAG_TEST_PAUSE_WRITE'


def _pause_point(done: int) -> None:
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    after, _, folder = spec.partition(':')
    if done != int(after):
        return
    files.atomic_write_text(os.path.join(folder, 'paused'), f'{os.getpid()}\n')
    deadline = time.monotonic() + 600
    while not os.path.exists(os.path.join(folder, 'resume')) and time.monotonic() < deadline:
        time.sleep(0.02)


def _sha256_of(path):
    h = hashlib.sha256()
    opener = files.gfile().GFile if files.is_url(path) else open
    with opener(path, 'rb') as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _shard_done(out, name):
    return files.exists(files.join(out, name)) and files.exists(files.join(out, _STATE, name + '.json'))


def _results(todo, features, pool, compression):
    """:func:`encode_item` results for every track of the shards ``todo``, in order.

    With a pool, the next shard's tracks are queued as soon as a shard starts being written, so
    the workers go straight on to them instead of idling at each shard's end, while at most two
    shards' tasks are ever queued (memory stays flat however many shards a run writes).
    """
    if pool is None:
        # as in the workers (preprocessing.encode.init_worker): one BLAS thread, the same speed here
        # without a second core kept spinning
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=1, user_api='blas'):
            for shard in todo:
                yield from map(encode_item, shard_items(shard, features, compression))
        return
    queued = collections.deque()
    rest = iter(todo)
    for shard in itertools.islice(rest, 1):
        queued.append(pool.imap(encode_item, shard_items(shard, features, compression), chunksize=1))
    while queued:
        for shard in itertools.islice(rest, 1):
            queued.append(pool.imap(encode_item, shard_items(shard, features, compression), chunksize=1))
        yield from queued.popleft()


class _Progress:
    """Tracks written in this run: the progress bar and the test pause point."""

    def __init__(self, total, desc, show):
        self.done = 0
        self.bar = None
        if show:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit='track', desc=desc, dynamic_ncols=True)

    def update(self):
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        _pause_point(self.done)

    def advance_to(self, done: int):
        """Tracks counted elsewhere (the workers of whole-shard tasks): catch up to ``done``."""
        while self.done < done:
            self.update()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _fill_file(tmp, shard, results, progress, compression):
    """Write the shard's records to ``tmp``; returns (counts, skipped rows, sha256 hex of the file)."""
    if not compression:
        with ShardFile(tmp, files.gfile().GFile if files.is_url(tmp) else open) as writer:
            counts, skipped = fill_shard(writer, shard, results, progress)
        return counts, skipped, writer.sha.hexdigest()
    from core.logs import import_tensorflow
    tf = import_tensorflow()           # without its C++ start-up noise
    options = tf.io.TFRecordOptions(compression_type=compression, compression_level=1)
    with tf.io.TFRecordWriter(tmp, options=options) as writer:
        counts, skipped = fill_shard(writer, shard, results, progress)
    return counts, skipped, _sha256_of(tmp)


def _write_shard(shard, out, results, progress, compression):
    """Write one shard from ``results`` (:func:`encode_item` results in track order, made with
    ``shard_items(shard, features, compression)``).

    The records go to a temporary file unique to this process, renamed into place when complete;
    on any error (a full disk included) the temporary file is removed.
    """
    tmp = files.temp_name(files.join(out, _STATE, shard['name']), 'partial')
    try:
        counts, skipped, sha256 = _fill_file(tmp, shard, results, progress, compression)
        info = {'name': shard['name'], 'split': shard['split'], **counts, 'sha256': sha256, 'skipped': skipped}
        files.rename(tmp, files.join(out, shard['name']))
    except BaseException:
        with contextlib.suppress(Exception):
            if files.exists(tmp):
                files.remove(tmp)
        raise
    files.write_json(files.join(out, _STATE, shard['name'] + '.json'), info)
    return info


def _no_space(e, out, finished):
    """The :class:`~core.errors.NoSpaceError` for a full disk met while writing ``out``."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return NoSpaceError(f'no space left on the device while writing {out} ({first}); the partial shard was '
                        f'removed and the {finished} shard(s) finished in this run are kept: free space and '
                        'run the same command again to resume')


#: the parallel writer gives whole shards to its workers when the longest-first assignment of the
#: shards (by track count) keeps every worker busy until at most this much past the even share
SHARD_TASK_BALANCE = 1.1


def _shard_makespan(todo, workers) -> float:
    """Longest-first (LPT) assignment of the shards to ``workers``: the busiest worker's tracks over
    the even share (1.0 = perfectly balanced)."""
    loads = [0] * workers
    for n in sorted((len(s['tracks']) for s in todo), reverse=True):
        loads[loads.index(min(loads))] += n
    total = sum(loads)
    return max(loads) * workers / total if total else 1.0


def _task_kind(todo, out, workers, compression) -> str:
    """How the local writer shares the work: ``'serial'`` (one worker: this process), ``'shards'``
    (each worker writes whole shards, :func:`_write_shards_parallel`) or ``'tracks'`` (the workers
    encode tracks and stream their records to this process, which writes them, :func:`_results`).

    Whole shards move no audio between processes: a waveform record is ~1 MB per 30 s clip, and
    pickling it through the pool's pipe, unpickling it and writing it here cost this process about
    as much CPU as a worker's decoding (2 workers on 2 cores reached 0.4x the decode floor; whole
    shards about 0.7x, ``benchmarks/bench_datasets.py``). They need a local, uncompressed output
    (the workers have no TensorFlow) and enough shards to keep every worker busy to the end.
    """
    if workers <= 1:
        return 'serial'
    if compression or files.is_url(out) or len(todo) < workers or _shard_makespan(todo, workers) > SHARD_TASK_BALANCE:
        return 'tracks'
    return 'shards'


def _write_shards(todo, out, features, pool, progress, compression, tasks='serial', tracks_done=None):
    """Write every shard of ``todo`` (``pool``: the workers, or None; ``tasks``: :func:`_task_kind`);
    a full disk becomes :class:`~core.errors.NoSpaceError`."""
    if tasks == 'shards':
        return _write_shards_parallel(todo, out, features, pool, progress, tracks_done)
    infos = []
    results = _results(todo, features, pool, compression)
    try:
        for shard in todo:
            infos.append(_write_shard(shard, out, results, progress, compression))
    except Exception as e:
        if not is_no_space(e):
            raise
        raise _no_space(e, out, len(infos)) from e
    finally:
        results.close()  # ends the serial path's BLAS thread limit now, even after an error
    return infos


def _write_shards_parallel(todo, out, features, pool, progress, tracks_done):
    """Each worker writes whole shards (:func:`preprocessing.encode.write_shard_task`), the longest
    first; this process renames each finished file into place, records it and keeps the progress.

    The bytes are those of the streaming path (the same records in the same order per shard). On
    any error or interruption the pool is stopped and every unfinished temporary file removed.
    """
    temps = {i: files.temp_name(files.join(out, _STATE, shard['name']), 'partial') for i, shard in enumerate(todo)}
    tasks = [(i, todo[i], temps[i], features) for i in sorted(temps, key=lambda i: -len(todo[i]['tracks']))]
    infos = {}
    results = pool.imap_unordered(write_shard_task, tasks, chunksize=1)
    try:
        while len(infos) < len(tasks):
            try:
                i, counts, skipped, sha256 = results.next(timeout=0.25)
            except multiprocessing.TimeoutError:
                if tracks_done is not None:
                    progress.advance_to(tracks_done.value)
                continue
            shard = todo[i]
            files.rename(temps[i], files.join(out, shard['name']))
            info = {'name': shard['name'], 'split': shard['split'], **counts, 'sha256': sha256, 'skipped': skipped}
            files.write_json(files.join(out, _STATE, shard['name'] + '.json'), info)
            infos[i] = info
            if tracks_done is not None:
                progress.advance_to(tracks_done.value)
    except BaseException as e:
        pool.terminate()              # no worker goes on writing a temporary file after this
        pool.join()
        for i, tmp in temps.items():
            if i not in infos and os.path.exists(tmp):
                with contextlib.suppress(OSError):
                    os.remove(tmp)
        if isinstance(e, Exception) and is_no_space(e):
            raise _no_space(e, out, len(infos)) from e
        raise
    return [infos[i] for i in sorted(infos)]


def _write_shards_beam(todo, out, features, engine, progress, compression):
    """Write every shard of ``todo`` with Apache Beam (:mod:`preprocessing.beam_write`); returns their infos.

    Each finished shard's info is read back from ``_shards/`` (the workers may be other machines).
    """
    from preprocessing.beam_write import run_beam
    try:
        run_beam(todo, out, features, compression, runner=engine['runner'], options=engine['options'],
                 workers=engine['workers'], progress=progress)
    except Exception as e:
        if not is_no_space(e):
            raise
        raise _no_space(e, out, sum(_shard_done(out, s['name']) for s in todo)) from e
    return [files.read_json(files.join(out, _STATE, s['name'] + '.json')) for s in todo]


# ------------------------------------------------------------------------------------ manifest

def _skipped_csv(rows) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=['track_id', 'split', 'file', 'reason', 'detail'], lineterminator='\n')
    w.writeheader()
    w.writerows(sorted(rows, key=lambda s: (s['split'], s['track_id'])))
    return buf.getvalue()


def _split_summaries(infos):
    splits = {s: {'tracks': 0, 'seconds': 0.0, 'shards': []} for s in SPLITS}
    counts = {s: Counter() for s in SPLITS}
    for info in infos:
        sp = splits[info['split']]
        sp['tracks'] += info['examples']
        sp['seconds'] = round(sp['seconds'] + info['seconds'], 3)
        sp['shards'].append({'file': info['name'], 'examples': info['examples'], 'sha256': info['sha256']})
        if info.get('min_length') is not None:  # shortest track (samples or frames): lets the reader
            # skip its padding branch when every track is at least one window long
            sp['min_length'] = min(sp.get('min_length', info['min_length']), info['min_length'])
        counts[info['split']].update({int(k): v for k, v in info['tag_counts'].items()})
    return splits, counts


def _assemble_manifest(out, plan, tagdb_vocab, excluded, engine='local'):
    """Write manifest.json + skipped.csv if every planned shard is complete; return the manifest or None."""
    infos = []
    for name in plan['shards']:
        path = files.join(out, _STATE, name + '.json')
        if not files.exists(path) or not files.exists(files.join(out, name)):
            return None
        infos.append(files.read_json(path))
    splits, counts = _split_summaries(infos)
    skipped = list(excluded) + [s for info in infos for s in info['skipped']]
    vocabulary = [{'num': num, 'tag': tag, 'counts': {s: counts[s].get(num, 0) for s in SPLITS}}
                  for num, tag in sorted(tagdb_vocab.items())]
    manifest = {
        'format_version': FORMAT_VERSION,
        'features': plan['features'],
        'compression': plan['compression'],
        'example_keys': {'track_id': 'bytes', 'artist_id': 'bytes', 'tags': 'int64[]', 'audio': 'bytes',
                         'shape': 'int64[]', 'duration': 'float'},
        'splits': splits,
        'tags': {'source': plan['inputs']['tags'], 'vocabulary': vocabulary},
        'skipped': dict(sorted(Counter(s['reason'] for s in skipped).items())),
        'inputs': plan['inputs'],
        'command': plan['command'],
        'engine': engine,
        'plan_digest': plan['digest'],
    }
    files.atomic_write_text(files.join(out, 'skipped.csv'), _skipped_csv(skipped))
    files.write_json(files.join(out, 'manifest.json'), manifest)
    return manifest


# ------------------------------------------------------------------------------------ the job

def _check_options(num_hosts, host_index, workers, compression):
    if num_hosts < 1 or not 0 <= host_index < num_hosts:
        raise ValueError(f'--host-index must be in [0, {num_hosts}), got {host_index}')
    if workers < 1:
        raise ValueError(f'--workers must be >= 1, got {workers}')
    compression = (compression or '').upper()
    if compression not in ('', 'ZLIB', 'GZIP'):
        raise ValueError(f"--compression must be ZLIB, GZIP or none, got {compression!r}")
    return compression


ENGINES = ('local', 'beam')


def _engine_spec(engine, runner, beam_options, workers):
    """Check the engine options; returns the engine's settings and its manifest entry."""
    if engine not in ENGINES:
        raise ValueError(f'engine must be one of {ENGINES}, got {engine!r}')
    if engine == 'local':
        if runner or beam_options:
            raise ValueError('--runner and --beam-option need --engine beam')
        return {'manifest': {'name': 'local'}}
    from preprocessing.beam_write import DEFAULT_RUNNER
    runner = runner or DEFAULT_RUNNER
    return {'runner': runner, 'options': dict(beam_options or {}), 'workers': workers,
            'manifest': {'name': 'beam', 'runner': runner}}


def _output_lock(out, num_hosts, host_index, command):
    """The lock of a local output (:class:`core.locks.OutputLock`); URLs cannot be locked (logged)."""
    if files.is_url(out):
        log.warning('%s is a URL and cannot be locked: make sure no other job writes it at the same time', out)
        return contextlib.nullcontext()
    return OutputLock(out, suffix=f'-host{host_index}' if num_hosts > 1 else '', command=command)


def _start_pool(workers, owner):
    """``(pool, tracks_done)``: the worker pool (None for one worker) and its shared track counter.

    spawn: workers import NumPy/soundfile only (preprocessing.encode), never a forked TensorFlow
    runtime; each ends when this process dies (core.procs.exit_with_parent in init_worker).
    """
    if workers <= 1:
        return None, None
    ctx = multiprocessing.get_context('spawn')
    tracks_done = ctx.Value('q', 0)
    return ctx.Pool(workers, initializer=init_worker, initargs=(owner, tracks_done)), tracks_done


def write_tfrecords(master_csv, tags_db, splits_csv, out, *, format='log-mel', preset='orpheus', sr=16000,
                    params=None, shards_per_split=8, workers=1, num_hosts=1, host_index=0, audio_root=None,
                    audio_encoding='raw', compression='', overwrite=False, progress=True, command=None,
                    engine='local', runner=None, beam_options=None):
    """Write the TFRecord dataset (``docs/tfrecords.md``). Returns a summary dict.

    Parameters
    ----------
    master_csv, tags_db, splits_csv : local paths written by ``msd build``, ``msd clean-tags`` and
        ``preprocessing split``.
    out : output directory (local or ``tf.io.gfile`` URL).
    format : ``'waveform'`` or ``'log-mel'``; ``preset``/``params`` choose the log-mel parameters.
    shards_per_split : int, or dict split -> int.
    workers : processes decoding audio in parallel (1 = in this process).
    num_hosts, host_index : write only shards ``g`` with ``g % num_hosts == host_index``.
    audio_root : folder every audio file must lie in (default: the ``# audio_root=`` of the master
        table); see :mod:`preprocessing.inputs`.
    audio_encoding : ``'raw'`` (default: the int16/float16 bytes as they are; a training window is
        cut straight out of the record, about half the read cost of Orpheus-style records) or
        ``'zlib'`` (each example's audio zlib-compressed, level 1, by the worker processes: ~25%
        smaller log-mel, ~12% smaller PCM, but the reader must inflate the whole track for every
        window, ~3× slower reading; for storage-bound datasets).
    compression : whole-file TFRecord compression, ``''`` (default), ``'ZLIB'`` or ``'GZIP'``: a
        little smaller still, but inflated by one thread per file when read (≈3× slower input).
    command : the command line recorded in the manifest and shown by the lock.
    engine : ``'local'`` (default: this machine's worker processes) or ``'beam'`` (an Apache Beam
        pipeline, :mod:`preprocessing.beam_write`: the same plan, byte-identical shards).
    runner : Beam runner name (``engine='beam'``; default ``FnApiRunner``, in-process, ``workers``
        threads).
    beam_options : dict of Beam pipeline options (``engine='beam'``), e.g. ``{'flink_master': 'host:8081'}``.

    Returns
    -------
    dict with ``shards_total``, ``shards_written``, ``shards_already_done``, ``tracks_written``,
    ``tracks_skipped`` (audio that could not be read in this run, by reason), ``excluded`` (tracks
    not planned, by reason), ``input_problems`` (the part of ``excluded`` that are problems of the
    inputs), ``seconds``, ``manifest`` (whether this call completed the dataset), ``tasks`` (how the
    work was shared: ``serial``, ``shards`` — each worker writes whole shards —, ``tracks`` — the
    workers stream records to this process —, or ``beam``), ….

    Raises
    ------
    core.locks.LockedError
        Another job is writing ``out`` (exit code 3).
    core.errors.NoSpaceError
        The disk filled up (partial shard removed; exit code 4; the same call resumes).
    core.errors.MuseTagError, ValueError, FileNotFoundError
        Bad options or inputs (nothing written).
    """
    compression = _check_options(num_hosts, host_index, workers, compression)
    engine_spec = _engine_spec(engine, runner, beam_options, workers)
    features = feature_spec(format, sr=sr, preset=preset, params=params, audio_encoding=audio_encoding)
    command = command or ' '.join(sys.argv)
    t0 = time.perf_counter()
    with _output_lock(out, num_hosts, host_index, command):
        # the worker processes start first, so their start-up (imports) overlaps with the planning
        pool, tracks_done = _start_pool(workers, os.getpid()) if engine == 'local' else (None, None)
        try:
            inputs = read_inputs(master_csv, splits_csv, tags_db, audio_root)
            shards = plan_shards(inputs.tracks, shards_per_split)
            if not shards:
                raise ValueError('nothing to write: no track of the master CSV has a split, a clean tag and '
                                 'its file inside the audio root')
            plan = {'features': features, 'compression': compression,
                    'digest': _plan_digest(shards, {**features, 'compression': compression}),
                    'shards': [s['name'] for s in shards],
                    'inputs': {'master': os.path.abspath(master_csv), 'tags': os.path.abspath(tags_db),
                               'splits': os.path.abspath(splits_csv), 'audio_root': inputs.audio_root},
                    'command': command}
            _prepare_output(out, plan, features, overwrite)
            mine = [s for g, s in enumerate(shards) if g % num_hosts == host_index]
            _remove_stale_temps(out, mine)
            todo = [s for s in mine if not _shard_done(out, s['name'])]
            n_tracks = sum(len(s['tracks']) for s in todo)
            bar = _Progress(n_tracks, f'write {format}', progress)
            tasks = _task_kind(todo, out, workers if pool is not None else 1, compression)
            if engine == 'local' and tasks != 'serial':
                log.info('%d workers: %s', workers, 'each writes whole shards' if tasks == 'shards' else
                         'they encode tracks, this process writes the shards')
            try:
                if engine == 'local':
                    infos = _write_shards(todo, out, features, pool, bar, compression, tasks, tracks_done)
                else:
                    infos = _write_shards_beam(todo, out, features, engine_spec, bar, compression)
            finally:
                bar.close()
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
        elapsed = time.perf_counter() - t0
        manifest = _assemble_manifest(out, plan, inputs.tagdb.vocabulary, inputs.excluded,
                                      engine=engine_spec['manifest'])
    return {'out': str(out), 'shards_total': len(shards), 'shards_this_host': len(mine),
            'shards_written': len(infos), 'shards_already_done': len(mine) - len(todo),
            'tracks_written': sum(i['examples'] for i in infos),
            'tracks_skipped': dict(Counter(s['reason'] for i in infos for s in i['skipped'])),
            'excluded': dict(Counter(e['reason'] for e in inputs.excluded)),
            'input_problems': {k: v for k, v in Counter(e['reason'] for e in inputs.excluded).items()
                               if k in INPUT_PROBLEMS},
            'audio_root': inputs.audio_root, 'seconds': round(elapsed, 2),
            'tracks_per_s': round(n_tracks / elapsed, 2) if elapsed > 0 and n_tracks else None,
            'tasks': tasks if engine == 'local' else 'beam',
            'manifest': manifest is not None}
