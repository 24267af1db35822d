"""Audio decoding: the one place MuseTag turns a file into samples.

Every stage that reads audio calls this module, so all of them see identical samples: TFRecord
writing and prediction call :func:`load_audio`; silence analysis, whose statistics are defined at
the native rate, calls :func:`read_audio` and :func:`to_mono`. libsndfile (through ``soundfile``)
decodes MP3/OGG/FLAC/WAV/…, channels are averaged to mono, and ``soxr`` (HQ) resamples to the
target rate. This is the same chain ``librosa.load(path, sr=16000)`` runs in librosa 0.11, without
its overhead, and it is ≈15× faster than tensorflow-io's decode+resample (see
``benchmarks/bench_frontend.py``).

Files longer than :data:`STREAM_ABOVE_SECONDS` (by their header) are decoded block by block
(:func:`load_audio_streaming`), so a long file's native-rate, multi-channel signal is never held
whole; the samples are identical to the one-shot chain.

Failures are reported as :class:`AudioLoadError` with a machine-readable ``reason`` so batch jobs
can skip a file and count why, instead of crashing inside a codec library.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

__all__ = ['AudioLoadError', 'AudioInfo', 'REASONS', 'STREAM_ABOVE_SECONDS', 'audio_info', 'read_audio',
           'to_mono', 'resample', 'load_audio', 'load_audio_streaming']

#: The values :attr:`AudioLoadError.reason` can take.
REASONS = ('missing', 'empty', 'not-audio', 'unreadable', 'no-samples')

#: :func:`load_audio` decodes files longer than this (seconds, from the header) block by block.
STREAM_ABOVE_SECONDS = 60.0
#: Frames per block of the block-wise decoder (256 Ki frames: 2 MB of 44.1 kHz stereo float32; measured
#: on a 90 s MP3, 16-64 Ki frame blocks were slower and larger ones no faster).
_BLOCK_FRAMES = 1 << 18


class AudioLoadError(ValueError):
    """A file could not be turned into audio samples.

    Attributes
    ----------
    path : str
        The file.
    reason : str
        One of :data:`REASONS`: ``missing`` (no such file), ``empty`` (0 bytes), ``not-audio``
        (libsndfile recognises no audio format in it), ``unreadable`` (a format was recognised but
        decoding failed, e.g. a corrupt stream), ``no-samples`` (it decoded to zero samples).
    detail : str
        The underlying library's message, for humans.
    """

    def __init__(self, path, reason, detail=''):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        msg = f'{self.path}: {reason}'
        super().__init__(msg + (f' ({detail})' if detail else ''))


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file (no decoding).

    ``duration`` is in seconds, ``samplerate`` in Hz, ``frames`` in samples per channel.
    """
    samplerate: int
    channels: int
    frames: int
    duration: float
    format: str


def _check_file(path):
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise AudioLoadError(path, 'missing', 'no such file') from None
    except OSError as e:
        raise AudioLoadError(path, 'unreadable', str(e)) from None
    if size == 0:
        raise AudioLoadError(path, 'empty', '0 bytes')


_MAGICS = (b'ID3', b'RIFF', b'fLaC', b'OggS', b'FORM', b'RF64', b'.snd', b'caff', b'wvpk', b'MAC ')


def _looks_like_audio(path):
    """True if the first bytes carry a known container/stream signature (MP3 frame sync included)."""
    try:
        with open(path, 'rb') as f:
            head = f.read(4096)
    except OSError:
        return False
    if head.startswith(_MAGICS):
        return True
    # an MPEG audio frame header (11 sync bits) near the start: MP3 without an ID3 tag
    for i in range(min(len(head) - 1, 2048)):
        if head[i] == 0xFF and head[i + 1] & 0xE0 == 0xE0 and head[i + 1] & 0x06:
            return True
    return False


def _classify(path, err):
    # libsndfile's messages are unreliable for MP3 ("File does not exist …" for garbage bytes),
    # so sniff the signature ourselves: no audio signature means the bytes are not audio at all
    text = str(err)
    reason = 'unreadable' if _looks_like_audio(path) else 'not-audio'
    return AudioLoadError(path, reason, text)


def audio_info(path) -> AudioInfo:
    """Read the header of ``path`` without decoding samples.

    Raises
    ------
    AudioLoadError
        If the file is missing, empty or not readable as audio.
    """
    _check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise _classify(path, e) from None
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames),
                     float(info.duration), str(info.format))


def read_audio(path):
    """Decode ``path`` at its native rate, keeping channels.

    Returns
    -------
    audio : np.ndarray, float32 [n_samples, n_channels]
        Samples in [-1, 1].
    sr : int
        Native sample rate in Hz.

    Raises
    ------
    AudioLoadError
        On a missing, empty, non-audio, corrupt or sample-less file.
    """
    _check_file(path)
    try:
        audio, sr = sf.read(str(path), dtype='float32', always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise _classify(path, e) from None
    if audio.shape[0] == 0:
        raise AudioLoadError(path, 'no-samples', 'decoded to 0 samples')
    if not np.all(np.isfinite(audio)):
        raise AudioLoadError(path, 'unreadable', 'decoded samples contain NaN/inf')
    return audio, int(sr)


def to_mono(audio):
    """Average channels: float32 [n, channels] -> float32 [n] (1-D input is returned as is)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        return audio
    if audio.shape[1] == 1:
        return np.ascontiguousarray(audio[:, 0])
    return audio.mean(axis=1, dtype=np.float32)


def resample(audio, sr_in, sr_out):
    """Resample mono float32 [n] from ``sr_in`` to ``sr_out`` Hz with soxr HQ (librosa's default)."""
    if sr_in == sr_out:
        return np.asarray(audio, dtype=np.float32)
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f'sample rates must be positive, got {sr_in} -> {sr_out}')
    return soxr.resample(audio, sr_in, sr_out, quality='HQ').astype(np.float32, copy=False)


def load_audio(path, sr=16000):
    """Decode an audio file to mono float32 at ``sr`` Hz.

    Files whose header says they last longer than :data:`STREAM_ABOVE_SECONDS` are decoded block by
    block (:func:`load_audio_streaming`, same samples, no native-rate copy of the whole file); the
    others (and files whose header cannot be read, so errors are classified the usual way) in one go.

    Parameters
    ----------
    path : str or path-like
        Any file libsndfile reads (MP3, OGG/Vorbis, FLAC, WAV, AIFF, …).
    sr : int or None
        Target rate in Hz; ``None`` keeps the native rate.

    Returns
    -------
    np.ndarray, float32 [n_samples]
        Channel mean, resampled with soxr HQ.

    Raises
    ------
    AudioLoadError
        With ``reason`` in :data:`REASONS`.
    """
    try:
        info = audio_info(path)
    except AudioLoadError:
        info = None                  # let read_audio raise its classified error
    if info is not None and info.duration > STREAM_ABOVE_SECONDS:
        return _decode_blocks(path, info, sr, _BLOCK_FRAMES)
    audio, native = read_audio(path)
    mono = to_mono(audio)
    return mono if sr is None else resample(mono, native, int(sr))


def load_audio_streaming(path, sr=16000, block_frames=_BLOCK_FRAMES) -> np.ndarray:
    """:func:`load_audio` without holding the native-rate signal in memory (whatever the length).

    The one-shot path decodes the whole file at its native rate and channel count before averaging
    and resampling: 10 minutes of 44.1 kHz stereo is a 212 MB float32 buffer plus a 106 MB mono
    copy, for a 38 MB result. Here libsndfile decodes blocks of ``block_frames`` frames, each block
    is averaged to mono the same way (:func:`to_mono`) and fed to a soxr HQ resampling *stream*,
    whose output is identical to soxr's one-shot resampling (tested bit for bit against the
    one-shot path). :func:`load_audio` calls this for files longer than :data:`STREAM_ABOVE_SECONDS`.

    Parameters
    ----------
    path : str or path-like
    sr : int or None
        Target rate in Hz; ``None`` keeps the native rate.
    block_frames : int
        Frames decoded per block.

    Returns
    -------
    float32 [n_samples] mono at ``sr``.

    Raises
    ------
    AudioLoadError
        ``missing``/``empty``/``not-audio``/``unreadable`` from the header check, ``unreadable``
        for a decoding error or non-finite samples, ``no-samples`` for an empty stream.
    """
    info = audio_info(path)          # classified errors for missing / empty / non-audio files
    return _decode_blocks(path, info, sr, int(block_frames))


def _decode_blocks(path, info, sr, block_frames):
    """Block-wise decode of ``path`` (whose header ``info`` was read): see :func:`load_audio_streaming`."""
    if block_frames < 1:
        raise ValueError(f'block_frames must be ≥ 1, got {block_frames}')
    sr_in = int(info.samplerate)
    sr = sr_in if sr is None else int(sr)
    if sr <= 0:
        raise ValueError(f'sample rates must be positive, got {sr_in} -> {sr}')
    cap = int(math.ceil(max(info.frames, 1) * sr / sr_in)) + 1024
    out = np.empty(cap, np.float32)
    n = 0

    def put(chunk):
        nonlocal out, n
        if n + chunk.shape[0] > out.shape[0]:      # header frame counts can be estimates (MP3)
            bigger = np.empty(max(2 * out.shape[0], n + chunk.shape[0]), np.float32)
            bigger[:n] = out[:n]
            out = bigger
        out[n:n + chunk.shape[0]] = chunk
        n += chunk.shape[0]

    try:
        with sf.SoundFile(str(path)) as f:
            stream = None if sr_in == sr else soxr.ResampleStream(sr_in, sr, 1, dtype='float32', quality='HQ')
            while True:
                block = f.read(block_frames, dtype='float32', always_2d=True)
                last = block.shape[0] < block_frames
                if not np.all(np.isfinite(block)):
                    raise AudioLoadError(path, 'unreadable', 'decoded samples contain NaN/inf')
                mono = to_mono(block)
                put(mono if stream is None else stream.resample_chunk(mono, last=last))
                if last:
                    break
    except AudioLoadError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:  # as read_audio classifies them
        raise AudioLoadError(path, 'unreadable', str(e)) from None
    if n == 0:
        raise AudioLoadError(path, 'no-samples', 'decoded to 0 samples')
    return out[:n]
