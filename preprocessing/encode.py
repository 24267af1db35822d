"""Per-track work of ``preprocessing write``: decode one file and encode its stored audio bytes; and
the shard task of the parallel writer, which writes a whole uncompressed shard in a worker process.

Kept apart from :mod:`preprocessing.tfrecords` so that the writer's worker processes (started
with ``spawn``) import only NumPy, SciPy's FFT, soundfile, soxr and crcmod: about 0.35 s of start-up per
worker instead of about 0.8 s with pandas and the rest of the writer (measured with
``python -X importtime``), which a short write job would otherwise pay on every run.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import time
import zlib
from collections import Counter

import numpy as np

from core.procs import exit_with_parent
from preprocessing.audio import AudioLoadError, load_audio
from preprocessing.features import FeatureParams, log_mel
from preprocessing.records import example_parts, frame_record

__all__ = ['encode_track', 'encode_item', 'init_worker', 'retain_freed_memory', 'shard_items', 'fill_shard',
           'ShardFile', 'write_shard_task', 'PAUSE_ENV']

#: Test hook: ``DIR`` makes every task create ``DIR/worker-<pid>`` and wait until ``DIR/resume``
#: exists, as a worker busy with a long file would (tests kill the job at that known point).
PAUSE_ENV = 'MUSETAG_TEST_PAUSE_ENCODE'


def encode_track(path, features: dict):
    """Decode one file and encode its audio as stored in the TFRecords.

    Returns
    -------
    (audio_bytes, shape, duration_seconds)

    Raises
    ------
    preprocessing.audio.AudioLoadError
        For unreadable files (the caller records the reason).
    """
    audio = load_audio(path, sr=features['sr'])
    duration = len(audio) / features['sr']
    if features['format'] == 'waveform':
        # scaled and rounded in the decoder's own array (a fresh one per call): the int16 copy is
        # the only new buffer (each new ~2 MB array costs its page faults, ~0.3 ms per 30 s clip)
        arr = audio if audio.flags.writeable else audio.copy()
        np.clip(arr, -1.0, 1.0, out=arr)
        arr *= 32767.0
        arr = np.rint(arr, out=arr).astype('<i2')
    else:
        arr = log_mel(audio, FeatureParams.from_dict(features['params']))
        if not np.isfinite(arr).all():
            raise ValueError('log-mel has non-finite values')
        arr = arr.astype('<f2')
    data = arr.tobytes()
    if features.get('audio_encoding') == 'zlib':
        # level 1: nearly all of zlib's gain on float16/int16 audio at a fraction of the CPU, paid
        # in the parallel workers
        data = zlib.compress(data, 1)
    return data, [int(s) for s in arr.shape], duration


def _pause_point() -> None:
    folder = os.environ.get(PAUSE_ENV)
    if not folder:
        return
    with open(os.path.join(folder, f'worker-{os.getpid()}'), 'w'):
        pass
    deadline = time.monotonic() + 600
    while not os.path.exists(os.path.join(folder, 'resume')) and time.monotonic() < deadline:
        time.sleep(0.02)


def encode_item(item):
    """Pool task: one track's record, built completely in the worker.

    ``item``: (track_id, artist_id, path, tags, features, framed). Returns ``('ok', record, shape,
    duration)``, where ``record`` is the serialized Example (:func:`preprocessing.records.serialize_example`),
    framed as a TFRecord record when ``framed`` (:func:`preprocessing.records.frame_record`: the
    writer appends it to the shard file as it is), or ``('skip', reason, detail)`` for a file that
    cannot be read or encoded.
    """
    _pause_point()
    tid, artist, path, tags, features, framed = item
    try:
        audio, shape, duration = encode_track(path, features)
    except AudioLoadError as e:
        return ('skip', e.reason, e.detail)
    except Exception as e:  # noqa: BLE001 - a bad file must never stop a long job
        return ('skip', 'error', f'{type(e).__name__}: {e}')
    parts = example_parts(tid, artist, tags, audio, shape, duration)   # an error here is a bug: it raises
    return ('ok', frame_record(parts) if framed else b''.join(parts), shape, duration)


#: glibc ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def retain_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 128 << 20) -> bool:
    """Let this process's allocator keep freed memory for reuse (glibc only; elsewhere a no-op).

    Every track allocates a few fresh megabytes (the decoded float32 samples, the int16 or float16
    copy, the record's bytes). glibc gives such blocks back to the kernel on ``free`` (``mmap``'d
    blocks, or a trimmed heap top), so the next track page-faults them in again: about 900 faults,
    1 ms of a 6.4 ms waveform track. With blocks up to ``mmap_threshold`` served from the heap and
    up to ``trim_threshold`` of free heap kept, a worker reuses its pages (5.5 ms per track; a worker
    then holds up to that much freed memory). Returns whether the settings were applied.
    """
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) and mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))


#: the writer's shared track counter (a ``multiprocessing.Value``), set in each worker by init_worker
_TRACKS_DONE = None


def init_worker(owner: int | None = None, tracks_done=None):
    """Pool initializer: the worker ends with the job (``owner``: the job's pid), one BLAS thread;
    ``tracks_done``: the writer's shared counter, which :func:`write_shard_task` increments per track
    (the progress bar of a job whose workers write whole shards).

    Without :func:`core.procs.exit_with_parent`, a worker waiting for tasks never notices that
    ``kill -9`` ended the job: it holds its own end of the task pipe and would wait forever.

    The mel projection (``power @ mel_basis.T``) is the only BLAS call. OpenBLAS would start one
    thread per core in every worker and keep them spinning after each call: with N workers on N
    cores that is 2N busy threads, and each worker ran ~25% slower than alone (measured: a lone
    encode loop used 139 ms of CPU per track for 70 ms of wall time; with one BLAS thread, 66 ms
    for 66 ms). The workers are the parallelism; BLAS threads on top only oversubscribe the cores.
    """
    from threadpoolctl import threadpool_limits
    global _TRACKS_DONE
    exit_with_parent(owner)
    threadpool_limits(limits=1, user_api='blas')
    retain_freed_memory()
    _TRACKS_DONE = tracks_done


# ------------------------------------------------------------------------------------ whole shards

def shard_items(shard, features, compression=''):
    """:func:`encode_item` tasks for the tracks of ``shard`` (a plan entry), in plan order: framed
    records unless the file is compressed (then TensorFlow's writer frames and compresses them)."""
    framed = not compression
    return [(tid, artist, path, tags, features, framed) for tid, artist, path, tags in shard['tracks']]


def fill_shard(writer, shard, results, progress):
    """Write the shard's tracks from ``results`` (:func:`encode_item` results in plan order) with
    ``writer.write(record)``; ``progress.update()`` after each track. Returns (counts, skipped rows)."""
    tag_counts, skipped, n_ok, seconds, min_length = Counter(), [], 0, 0.0, None
    for tid, _, path, tags in shard['tracks']:
        res = next(results)
        if res[0] == 'ok':
            _, record, shape, duration = res
            writer.write(record)
            tag_counts.update(tags)
            n_ok += 1
            seconds += duration
            min_length = shape[0] if min_length is None else min(min_length, shape[0])
        else:
            skipped.append({'track_id': tid, 'split': shard['split'], 'file': path, 'reason': res[1],
                            'detail': res[2]})
        progress.update()
    return {'examples': n_ok, 'seconds': round(seconds, 3), 'min_length': min_length,
            'tag_counts': {str(k): v for k, v in sorted(tag_counts.items())}}, skipped


class ShardFile:
    """An uncompressed shard written with plain buffered file I/O: the records come framed
    (:func:`preprocessing.records.frame_record`), so writing is appending bytes, and the SHA-256 is
    updated on the way (the file is never read back). ``opener``: ``open`` or a ``tf.io.gfile.GFile``."""

    def __init__(self, path, opener=open):
        self.file = opener(path, 'wb')
        self.sha = hashlib.sha256()

    def write(self, record):
        self.file.write(record)
        self.sha.update(record)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


class _SharedCount:
    """Progress of a worker's shard: the writer's shared counter, one per track."""

    def update(self):
        if _TRACKS_DONE is not None:
            with _TRACKS_DONE.get_lock():
                _TRACKS_DONE.value += 1


def write_shard_task(task):
    """Pool task of the parallel writer: write one whole uncompressed shard to a local temporary file.

    ``task``: (number, shard, tmp path, features). The records are built and appended in plan
    order, exactly as the writing process would (the bytes are the same). Returns (number, counts,
    skipped rows, sha256 hex); the writing process renames ``tmp`` into place. On any error (a full
    disk included) the temporary file is removed and the error re-raised to the writer.
    """
    number, shard, tmp, features = task
    try:
        with ShardFile(tmp) as writer:
            counts, skipped = fill_shard(writer, shard, map(encode_item, shard_items(shard, features)),
                                         _SharedCount())
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return number, counts, skipped, writer.sha.hexdigest()
