"""Silence analysis: decode each readable file once and record where its sound is.

The statistics and filters are those of the Orpheus project's ``mp3_to_numpy.py`` and
``wrangler_silence.py`` (<https://github.com/pukkapies/urop2019>).

``python -m msd silence --scan scan.csv --out silence.csv [--root DIR] [--workers N]``

For every ``status == ok`` row of ``scan.csv`` the file is decoded once
(:func:`preprocessing.audio.read_audio`, libsndfile), channels are averaged, and the non-silent
intervals are found with ``librosa.effects.split(y, top_db=60, frame_length=2048, hop_length=512)``
exactly as the original ``mp3_to_numpy.py`` did. Nothing is stored but the statistics (no ``.npz``).

**Native rate, deliberately.** The original split the audio at its *native* rate (``librosa.load(sr=None)``),
so its frame (2048 samples) and hop (512) are 46/11.6 ms at 44.1 kHz and 93/23 ms at 22.05 kHz.
Decoding at 16 kHz first would stretch them to 128/32 ms and move every boundary; the silence
filters' thresholds (1 s max gap, 3 s total) were chosen on native-rate statistics, so we analyse at
the native rate (no resampling, which is also cheaper). Times are reported in seconds, so the
statistics of files with different rates are comparable; their resolution is ``hop / sr``.

**Absolute floor.** ``librosa.effects.split`` thresholds *relative* to the loudest frame, so a clip of
pure digital silence comes out as one long non-silent interval. A clip whose loudest frame RMS is
below ``floor_db`` dBFS (default -70) is therefore reported as ``status = silent`` with no
non-silent interval (effective length 0). Pass ``--floor-db=-inf`` to turn this off.

Columns (times in seconds; the Orpheus column names):

=====================  ==========================================================================
file_path              as in scan.csv (relative to the audio root)
status, reason         ``ok`` | ``silent`` | ``truncated`` (an MP3 whose last frame is cut off: the
                       statistics are of the part that is there) | a decode failure (``missing``,
                       ``empty``, ``not-audio``, ``unreadable``, ``no-samples``) with the message
sample_rate, channels  native rate (Hz) and channel count of the decoded stream
clip_length            decoded length
audio_start            start of the first non-silent interval
audio_end              end of the last non-silent interval
effective_clip_length  audio_end - audio_start
mid_silence_length     total length of the gaps between non-silent intervals
non_silence_length     effective_clip_length - mid_silence_length
max_silence_length     longest gap (0 if none)
silence_percentage     100 * mid_silence_length / effective_clip_length (percentage *silent*)
n_gaps                 number of gaps
silence_detail         JSON list of the gaps as ``[start, end]`` pairs
=====================  ==========================================================================

Runs in parallel and resumes like :mod:`msd.scan` (rows in scan order, ``silence.csv.partial``).
"""
from __future__ import annotations

import collections
import csv
import functools
import json
import logging
import math
import os
import struct

import numpy as np

from .common import MsdError, command_line, read_comments
from .parallel import run_resumable

log = logging.getLogger(__name__)

COLUMNS = ('file_path', 'status', 'reason', 'sample_rate', 'channels', 'clip_length', 'audio_start',
           'audio_end', 'effective_clip_length', 'mid_silence_length', 'non_silence_length',
           'max_silence_length', 'silence_percentage', 'n_gaps', 'silence_detail')
STAT_COLUMNS = COLUMNS[5:]

TOP_DB = 60.0
FRAME_LENGTH = 2048
HOP_LENGTH = 512
FLOOR_DB = -70.0


def split_intervals(y, sr=None, *, top_db=TOP_DB, frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH,
                    floor_db=FLOOR_DB):
    """Non-silent intervals of mono audio.

    Parameters
    ----------
    y : np.ndarray, float32 [n_samples]
        Mono audio in [-1, 1].
    sr : int, optional
        Unused (the intervals are in samples); accepted for symmetry with :func:`silence_stats`.
    top_db, frame_length, hop_length
        As ``librosa.effects.split`` (threshold in dB below the loudest frame's RMS).
    floor_db : float
        If the loudest frame's RMS is below this many dBFS the clip is all silence.

    Returns
    -------
    intervals : np.ndarray, int64 [m, 2]
        ``[start, end)`` sample indices (librosa's convention).
    peak_db : float
        Loudest frame RMS in dBFS (``-inf`` for digital silence).
    """
    import librosa
    peak = {}

    def ref(magnitude):
        # amplitude_to_db calls this once with the frame RMS values: keep their max for the floor
        peak['rms'] = float(np.max(magnitude)) if magnitude.size else 0.0
        return peak['rms']

    y = np.asarray(y, dtype=np.float32)
    intervals = librosa.effects.split(y, top_db=top_db, ref=ref, frame_length=frame_length,
                                      hop_length=hop_length)
    rms = peak.get('rms', 0.0)
    peak_db = 20.0 * math.log10(rms) if rms > 0 else -math.inf
    if peak_db < floor_db:
        intervals = np.zeros((0, 2), dtype=np.int64)
    return np.asarray(intervals, dtype=np.int64).reshape(-1, 2), peak_db


def stats_from_intervals(intervals, sr, n_samples) -> dict:
    """Silence statistics (seconds) from ``[start, end)`` sample intervals (see the module docstring).

    Parameters
    ----------
    intervals : array-like, int [m, 2]
        Non-silent intervals in samples, sorted.
    sr : int
        Sample rate in Hz.
    n_samples : int
        Clip length in samples.

    Returns
    -------
    dict
        Keys of :data:`STAT_COLUMNS`; for ``m == 0`` the effective length is 0, start/end are None
        and the clip is 100 % silent.
    """
    iv = np.asarray(intervals, dtype=np.int64).reshape(-1, 2)
    clip = n_samples / sr
    if len(iv) == 0:
        return dict(clip_length=clip, audio_start=None, audio_end=None, effective_clip_length=0.0,
                    mid_silence_length=0.0, non_silence_length=0.0, max_silence_length=0.0,
                    silence_percentage=100.0, n_gaps=0, silence_detail=[])
    start, end = iv[0, 0] / sr, iv[-1, 1] / sr
    gaps = np.stack([iv[:-1, 1], iv[1:, 0]], axis=1) / sr  # [m-1, 2] seconds
    lengths = gaps[:, 1] - gaps[:, 0]
    effective = end - start
    mid = float(lengths.sum())
    return dict(clip_length=clip, audio_start=start, audio_end=end, effective_clip_length=effective,
                mid_silence_length=mid, non_silence_length=effective - mid,
                max_silence_length=float(lengths.max()) if len(lengths) else 0.0,
                silence_percentage=100.0 * mid / effective if effective > 0 else 100.0,
                n_gaps=int(len(lengths)), silence_detail=gaps.tolist())


def silence_stats(y, sr, **split_kwargs) -> dict:
    """:func:`split_intervals` + :func:`stats_from_intervals` for mono float32 ``y`` at ``sr`` Hz.

    Returns the stats dict plus ``intervals`` (int [m, 2] samples) and ``peak_db``.
    """
    intervals, peak_db = split_intervals(y, sr, **split_kwargs)
    out = stats_from_intervals(intervals, sr, len(y))
    out.update(intervals=intervals, peak_db=peak_db)
    return out


_U32 = struct.Struct('>I')


def mp3_truncation(path):
    """Why the MP3 at ``path`` looks cut off, or None.

    Walks the MPEG frame headers from the first frame (after an ID3v2 tag); the file is truncated if
    the last frame header announces more bytes than the file has left. Trailing tags (ID3v1, APE,
    Lyrics3) and other trailing bytes that are not a frame header are not flagged. Reads the whole
    file (< 1 ms for a 30 s preview; the decode that follows costs ~40 ms). Frame lengths come from
    :func:`preprocessing.audio.mpeg_frame_length` (ISO 11172-3 / ISO 13818-3 frame geometry).
    """
    from preprocessing.audio import mpeg_frame_length
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError:
        return None
    n, pos = len(data), 0
    if data[:3] == b'ID3' and n >= 10:
        size = (data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F)
        pos = 10 + size + (10 if data[5] & 0x10 else 0)
    # find the first frame whose successor is also a frame (skips junk that happens to look like sync)
    while pos + 4 <= n:
        length = mpeg_frame_length(int.from_bytes(data[pos:pos + 4], 'big')) if data[pos] == 0xFF else None
        if length and (pos + length + 4 > n or
                       mpeg_frame_length(int.from_bytes(data[pos + length:pos + length + 4], 'big'))):
            break
        pos += 1
    else:
        return None
    frames = 0
    unpack = _U32.unpack_from
    cache = {}  # a stream repeats a handful of distinct headers: memoise their lengths
    while pos + 4 <= n:
        h = unpack(data, pos)[0]
        length = cache.get(h, -1)
        if length == -1:
            length = cache[h] = mpeg_frame_length(h)
        if length is None:
            return None  # a tag or other trailing data: not a cut-off frame
        if pos + length > n:
            return (f'truncated: file ends {n - pos} bytes into frame {frames + 1} '
                    f'of {length} bytes (at byte {pos})')
        pos += length
        frames += 1
    if 0 < n - pos < 4 and data[pos] == 0xFF:
        return f'truncated: file ends inside the header of frame {frames + 1}'
    return None


def _r(x, nd=6):
    return None if x is None else round(float(x), nd)


def analyse_file(root, params, rel):
    """One silence row (tuple in :data:`COLUMNS` order) for ``root/rel``; never raises for bad files."""
    from preprocessing.audio import AudioLoadError, read_audio, to_mono
    path = os.path.join(root, rel)
    try:
        audio, sr = read_audio(path)
    except AudioLoadError as e:
        return (rel, e.reason, e.detail or str(e)) + (None,) * (len(COLUMNS) - 3)
    channels = audio.shape[1]
    y = to_mono(audio)
    st = silence_stats(y, sr, **params)
    status, reason = 'ok', ''
    cut = mp3_truncation(path) if rel.lower().endswith('.mp3') else None
    if cut:
        status, reason = 'truncated', cut  # decodable, but part of the clip is missing
    elif len(st['intervals']) == 0:
        status = 'silent'
        reason = ('digital silence' if st['peak_db'] == -math.inf
                  else f'loudest frame {st["peak_db"]:.1f} dBFS < floor {params["floor_db"]:g} dBFS')
    detail = json.dumps([[round(a, 3), round(b, 3)] for a, b in st['silence_detail']])
    return (rel, status, reason, sr, channels, _r(st['clip_length']), _r(st['audio_start']),
            _r(st['audio_end']), _r(st['effective_clip_length']), _r(st['mid_silence_length']),
            _r(st['non_silence_length']), _r(st['max_silence_length']), _r(st['silence_percentage'], 4),
            st['n_gaps'], detail)


def _error_row(item, message):
    return (item, 'unreadable', message) + (None,) * (len(COLUMNS) - 3)


def warm_up():
    # import (and JIT-compile) librosa once per worker, not inside the first task's timing
    import librosa  # noqa: F401
    import preprocessing.audio  # noqa: F401
    split_intervals(np.zeros(4096, dtype=np.float32))


def iter_scan_ok(scan_csv):
    """Yield ``file_path`` of every ``status == ok`` row of a scan CSV, streaming."""
    with open(scan_csv, encoding='utf-8', newline='') as f:
        rows = csv.reader(line for line in f if not line.startswith('#'))
        header = next(rows, None)
        if header is None or 'file_path' not in header or 'status' not in header:
            raise MsdError(f'{scan_csv}: not a scan CSV (header {header})')
        i_path, i_status = header.index('file_path'), header.index('status')
        for row in rows:
            if len(row) == len(header) and row[i_status] == 'ok':
                yield row[i_path]


def silence(scan_csv, out, *, root=None, workers=1, top_db=TOP_DB, frame_length=FRAME_LENGTH,
            hop_length=HOP_LENGTH, floor_db=FLOOR_DB, overwrite=False, restart=False, progress=True,
            command=None, chunk_size=4):
    """Analyse every readable file of ``scan_csv`` into ``out``; returns a RunResult with ``summary``.

    ``root`` defaults to the ``# root=`` line the scan wrote.
    """
    scan_csv = os.fspath(scan_csv)
    if not os.path.isfile(scan_csv):
        raise MsdError(f'--scan {scan_csv}: no such file')
    if root is None:
        root = read_comments(scan_csv)[1].get('root')
        if root is None:
            raise MsdError(f'{scan_csv} records no audio root (# root=… line); pass --root')
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise MsdError(f'audio root {root} (from {scan_csv} or --root) is not a directory')
    if workers < 1:
        raise MsdError(f'--workers must be >= 1, got {workers}')
    if top_db <= 0 or frame_length <= 0 or hop_length <= 0:
        raise MsdError('--top-db, --frame-length and --hop-length must be positive')
    params = dict(top_db=top_db, frame_length=frame_length, hop_length=hop_length, floor_db=floor_db)
    # the generator checks the header lazily: force it now so a bad file fails before any work
    next(iter_scan_ok(scan_csv), None)
    result = run_resumable(
        out, COLUMNS, iter_scan_ok(scan_csv), functools.partial(analyse_file, root, params),
        key=lambda rel: rel, error_row=_error_row, command=command or command_line(),
        meta={'root': root, 'params': json.dumps(params, sort_keys=True)}, workers=workers,
        chunk_size=chunk_size, overwrite=overwrite, restart=restart, progress=progress,
        desc='silence', initializer=warm_up)
    counts = collections.Counter(result.statuses)
    parts = ', '.join(f'{k} {v}' for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    rate = result.n_new / result.seconds if result.seconds > 0 else 0.0
    result.summary = (f'silence: {result.n_rows} files ({parts or "none"})'
                      + (f'; resumed {result.n_resumed} rows' if result.n_resumed else '')
                      + f'; {result.n_new} analysed in {result.seconds:.1f} s ({rate:.1f} files/s) -> {out}')
    log.debug('silence params %s', params)
    return result
