"""Per-track work of ``preprocessing write``: decode one file and encode its stored audio bytes.

Kept apart from :mod:`preprocessing.tfrecords` so that the writer's worker processes (started
with ``spawn``) import only NumPy, SciPy's FFT, soundfile, soxr and crcmod: about 0.35 s of start-up per
worker instead of about 0.8 s with pandas and the rest of the writer (measured with
``python -X importtime``), which a short write job would otherwise pay on every run.
"""
from __future__ import annotations

import os
import time
import zlib

import numpy as np

from core.procs import exit_with_parent
from preprocessing.audio import AudioLoadError, load_audio
from preprocessing.features import FeatureParams, log_mel
from preprocessing.records import example_parts, frame_record

__all__ = ['encode_track', 'encode_item', 'init_worker', 'PAUSE_ENV']

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


def init_worker(owner: int | None = None):
    """Pool initializer: the worker ends with the job (``owner``: the job's pid), one BLAS thread.

    Without :func:`core.procs.exit_with_parent`, a worker waiting for tasks never notices that
    ``kill -9`` ended the job: it holds its own end of the task pipe and would wait forever.

    The mel projection (``power @ mel_basis.T``) is the only BLAS call. OpenBLAS would start one
    thread per core in every worker and keep them spinning after each call: with N workers on N
    cores that is 2N busy threads, and each worker ran ~25% slower than alone (measured: a lone
    encode loop used 139 ms of CPU per track for 70 ms of wall time; with one BLAS thread, 66 ms
    for 66 ms). The workers are the parallelism; BLAS threads on top only oversubscribe the cores.
    """
    from threadpoolctl import threadpool_limits
    exit_with_parent(owner)
    threadpool_limits(limits=1, user_api='blas')
