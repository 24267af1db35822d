"""Audio decoding: the one place MuseTag turns a file into samples.

Every stage that reads audio calls this module, so all of them see identical samples: TFRecord
writing calls :func:`load_audio`, tagging streams a file with :func:`iter_audio`; silence analysis,
whose statistics are defined at the native rate, calls :func:`read_audio` and :func:`to_mono`.
libsndfile (through ``soundfile``) decodes MP3/OGG/FLAC/WAV/…, channels are averaged to mono, and
``soxr`` (HQ) resamples to the target rate. This is the same chain ``librosa.load(path, sr=16000)``
runs in librosa 0.11, without its overhead, and it is ≈15× faster than tensorflow-io's
decode+resample (see ``benchmarks/bench_frontend.py``).

:func:`iter_audio` decodes a file block by block (native-rate blocks, each averaged to mono and fed
to a soxr resampling *stream*), so memory does not grow with the file's length; the samples are
identical to the one-shot chain. :func:`load_audio` uses the same block decoder for files longer
than :data:`STREAM_ABOVE_SECONDS` (by their header), so a long file's native-rate, multi-channel
signal is never held whole.

File names are handed to libsndfile as bytes (:func:`os.fsencode`), so names that are not valid
UTF-8 (Python decodes their bytes to lone surrogates) open like any other.

Failures are reported as :class:`AudioLoadError` with a machine-readable ``reason`` (one of
:data:`REASONS`) and a message of our own, so batch jobs can skip a file and say why, instead of
crashing inside a codec library or repeating its misleading text (libsndfile answers "File does not
exist" for an existing file that holds random bytes). The first bytes of a file that fails to open
are compared with known signatures (:func:`sniff_format`) to tell a corrupt audio file from one that
is not audio at all, or from audio in a format the decoder cannot read (``.m4a``).
"""
from __future__ import annotations

import logging
import math
import os
import stat
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

__all__ = ['InputFile', 'Inputs', 'collect_inputs', 'AudioLoadError', 'AudioInfo', 'REASONS',
           'STREAM_ABOVE_SECONDS', 'audio_info', 'read_audio', 'to_mono', 'resample', 'load_audio',
           'load_audio_streaming', 'iter_audio', 'sniff_format', 'mpeg_frame_length']

log = logging.getLogger(__name__)

#: The values :attr:`AudioLoadError.reason` can take (see :class:`AudioLoadError`).
REASONS = ('missing', 'empty', 'not-audio', 'unreadable', 'no-samples', 'permission-denied', 'unsupported')

#: :func:`load_audio` decodes files longer than this (seconds, from the header) block by block.
STREAM_ABOVE_SECONDS = 60.0
#: Frames per block of the block-wise decoder (256 Ki frames: 2 MB of 44.1 kHz stereo float32; measured
#: on a 90 s MP3, 16-64 Ki frame blocks were slower and larger ones no faster).
_BLOCK_FRAMES = 1 << 18
#: Bytes of a file's start compared with known signatures when it fails to open.
_HEAD_BYTES = 8192


class AudioLoadError(ValueError):
    """A file could not be turned into audio samples.

    Attributes
    ----------
    path : str
        The file.
    reason : str
        One of :data:`REASONS`: ``missing`` (no such file), ``empty`` (0 bytes),
        ``permission-denied`` (the file, or a folder on its path, may not be read by this user),
        ``not-audio`` (not an audio file: an image, text, random bytes, a folder, …),
        ``unsupported`` (audio in a format the decoder cannot read, e.g. MPEG-4/AAC ``.m4a``),
        ``unreadable`` (an audio format was recognised but decoding failed: a corrupt or truncated
        stream), ``no-samples`` (it decoded to zero samples).
    detail : str
        What went wrong, for humans.
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


# ------------------------------------------------------------------------------------ file checks
def _check_file(path) -> None:
    """Raise a classified :class:`AudioLoadError` unless ``path`` is a non-empty readable regular
    file whose first bytes are not those of a known non-audio or unsupported format."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise AudioLoadError(path, 'missing', 'no such file') from None
    except PermissionError:
        raise AudioLoadError(path, 'permission-denied',
                             'a folder on its path may not be searched by this user') from None
    except OSError as e:
        raise AudioLoadError(path, 'unreadable', f'cannot access the file: {e.strerror or e}') from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioLoadError(path, 'not-audio', 'a folder, not a file')
    if not stat.S_ISREG(st.st_mode):
        raise AudioLoadError(path, 'not-audio', 'not a regular file (a pipe, socket or device)')
    if st.st_size == 0:
        raise AudioLoadError(path, 'empty', '0 bytes')
    head = _read_head(path, st)
    found = sniff_format(head)
    if found is not None and found[0] == 'other':
        raise AudioLoadError(path, 'not-audio', f'not an audio file: {found[1]}')
    if found is not None and found[0] == 'unsupported':
        raise AudioLoadError(path, 'unsupported', f'{found[1]}: a format the decoder (libsndfile) cannot '
                             'read; convert it (e.g. to FLAC, WAV or MP3) to use it')


def _read_head(path, st=None) -> bytes:
    try:
        with open(path, 'rb') as f:
            return f.read(_HEAD_BYTES)
    except PermissionError:
        mode = f' (mode {stat.filemode(st.st_mode)}, owner uid {st.st_uid})' if st is not None else ''
        raise AudioLoadError(path, 'permission-denied', f'this user may not read the file{mode}') from None
    except OSError as e:
        raise AudioLoadError(path, 'unreadable', f'cannot read the file: {e.strerror or e}') from None


# MPEG audio frame geometry (ISO 11172-3 / ISO 13818-3).
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_MPEG_KBPS = {
    (1, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (2, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}


def mpeg_frame_length(header: int) -> int | None:
    """Bytes of the MPEG audio frame whose 4-byte big-endian header is ``header``; None if it is not
    a valid header (reserved values, or free format whose length cannot be computed)."""
    if (header >> 21) & 0x7FF != 0x7FF:
        return None
    version, layer = (header >> 19) & 3, 4 - ((header >> 17) & 3)  # layer 1..3 (4 = reserved)
    bitrate_idx, rate_idx, padding = (header >> 12) & 15, (header >> 10) & 3, (header >> 9) & 1
    if version == 1 or layer == 4 or bitrate_idx in (0, 15) or rate_idx == 3:
        return None
    bps = _MPEG_KBPS[(1 if version == 3 else 2, layer)][bitrate_idx] * 1000
    sr = _MPEG_RATES[version][rate_idx]
    if layer == 1:
        return (12 * bps // sr + padding) * 4
    if layer == 3 and version != 3:
        return 72 * bps // sr + padding
    return 144 * bps // sr + padding


def _has_mpeg_frames(head: bytes, search: int = 4096) -> bool:
    """True if two consecutive MPEG audio frames start in the first ``search`` bytes (an MP3 without
    an ID3 tag). A lone sync pattern is common in random bytes and images; a header followed, exactly
    one frame later, by another valid header is not."""
    for i in range(min(len(head) - 3, search)):
        if head[i] != 0xFF or head[i + 1] & 0xE0 != 0xE0:
            continue
        length = mpeg_frame_length(int.from_bytes(head[i:i + 4], 'big'))
        nxt = i + (length or 0)
        if length and nxt + 4 <= len(head) and mpeg_frame_length(int.from_bytes(head[nxt:nxt + 4], 'big')):
            return True
    return False


_RIFF_FORMS = {b'WAVE': ('audio', 'WAV'), b'AVI ': ('other', 'an AVI video'), b'WEBP': ('other', 'a WebP image'),
               b'RMID': ('other', 'a MIDI file (notes, not sound)')}


# (prefix, offset, kind, name) checked in order; 'audio' = libsndfile decodes it.
_SIGNATURES = (
    (b'ID3', 0, 'audio', 'MP3'), (b'fLaC', 0, 'audio', 'FLAC'), (b'OggS', 0, 'audio', 'Ogg'),
    (b'.snd', 0, 'audio', 'AU'), (b'caff', 0, 'audio', 'CAF'), (b'riff', 0, 'audio', 'Wave64'),
    (b'AIFF', 8, 'audio', 'AIFF'), (b'AIFC', 8, 'audio', 'AIFF-C'),
    (b'ftyp', 4, 'unsupported', 'MPEG-4 audio or video (.m4a/.mp4/.aac: AAC or ALAC)'),
    (b'\x30\x26\xb2\x75\x8e\x66\xcf\x11', 0, 'unsupported', 'Windows Media (ASF/WMA)'),
    (b'MAC ', 0, 'unsupported', "Monkey's Audio (APE)"), (b'wvpk', 0, 'unsupported', 'WavPack'),
    (b'#!AMR', 0, 'unsupported', 'AMR speech audio'),
    (b'\x89PNG\r\n\x1a\n', 0, 'other', 'a PNG image'), (b'\xff\xd8\xff', 0, 'other', 'a JPEG image'),
    (b'GIF8', 0, 'other', 'a GIF image'), (b'%PDF', 0, 'other', 'a PDF document'),
    (b'PK\x03\x04', 0, 'other', 'a ZIP archive (or an Office document)'),
    (b'\x1f\x8b', 0, 'other', 'a gzip archive'), (b'\x7fELF', 0, 'other', 'a program (ELF)'),
    (b'MThd', 0, 'other', 'a MIDI file (notes, not sound)'),
)


def sniff_format(head: bytes):
    """What the first bytes of a file say it is, without decoding.

    Parameters
    ----------
    head : bytes
        The file's first bytes (a few KiB: MP3s without an ID3 tag are recognised by two
        consecutive MPEG frame headers in the first 4 KiB).

    Returns
    -------
    (kind, name) or None
        ``kind`` is ``'audio'`` (a format the decoder reads; ``name`` e.g. ``'MP3'``),
        ``'unsupported'`` (audio the decoder cannot read, e.g. MPEG-4/AAC) or ``'other'`` (not
        audio: ``name`` says what, e.g. ``'a PNG image'``, ``'text'``); None when nothing is
        recognised.
    """
    if head[:4] in (b'RIFF', b'RF64'):
        return _RIFF_FORMS.get(head[8:12])
    for prefix, offset, kind, name in _SIGNATURES:
        if head[offset:offset + len(prefix)] == prefix:
            if offset == 8 and head[:4] != b'FORM':
                continue
            return kind, name
    if _has_mpeg_frames(head):
        return 'audio', 'MP3'
    if head[:2] in (b'\xff\xf1', b'\xff\xf9'):
        return 'unsupported', 'AAC (ADTS stream)'
    if _is_text(head):
        return 'other', 'text'
    return None


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:
        # a multi-byte character cut at the end of the head is still text
        try:
            text = head[:-3].decode('utf-8')
        except UnicodeDecodeError:
            return False
    return all(c.isprintable() or c in '\t\n\r\f' for c in text)


def _classify(path, err):
    """The :class:`AudioLoadError` for a file that libsndfile failed to open or decode."""
    text = str(err)
    if "': " in text:                  # "Error opening 'path': reason" -> reason
        text = text.split("': ", 1)[1]
    if 'does not exist' in text:       # libsndfile's answer for MP3-like bytes it cannot parse
        text = 'no decodable audio frames'
    try:
        found = sniff_format(_read_head(path))
    except AudioLoadError as e:         # the file vanished or became unreadable meanwhile
        return e
    if found is None:
        return AudioLoadError(path, 'not-audio', 'not an audio file: no known audio format in its first bytes')
    kind, name = found
    if kind == 'other':
        return AudioLoadError(path, 'not-audio', f'not an audio file: {name}')
    if kind == 'unsupported':
        return AudioLoadError(path, 'unsupported', f'{name}: a format the decoder (libsndfile) cannot read')
    return AudioLoadError(path, 'unreadable', f'a corrupt or truncated {name} file: {text}')


# ------------------------------------------------------------------------------------ one-shot
def audio_info(path) -> AudioInfo:
    """Read the header of ``path`` without decoding samples.

    Raises
    ------
    AudioLoadError
        If the file is missing, empty, unreadable or not audio.
    """
    _check_file(path)
    try:
        info = sf.info(os.fsencode(path))
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
        On a missing, empty, unreadable, non-audio, corrupt or sample-less file.
    """
    _check_file(path)
    try:
        audio, sr = sf.read(os.fsencode(path), dtype='float32', always_2d=True)
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
    block (the decoder of :func:`iter_audio`: same samples, no native-rate copy of the whole file);
    the others (and files whose header cannot be read, so errors are classified the usual way) in
    one go.

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
    out = mono if sr is None else resample(mono, native, int(sr))
    if out.size == 0:
        raise AudioLoadError(path, 'no-samples', f'{mono.size} sample(s) at {native} Hz leave none at {sr} Hz')
    return out


# ------------------------------------------------------------------------------------ block-wise
def iter_audio(path, sr=16000, block_seconds: float | None = None) -> Iterator[np.ndarray]:
    """Decode ``path`` block by block: mono float32 blocks at ``sr`` Hz, in order.

    The concatenation of the blocks equals :func:`load_audio` ``(path, sr)`` sample for sample, while
    memory holds one block at a time (whatever the file's length). libsndfile decodes native-rate
    blocks; each is averaged to mono (:func:`to_mono`) and fed to a soxr HQ resampling *stream*,
    whose output is identical to soxr's one-shot resampling.

    Parameters
    ----------
    path : str or path-like
    sr : int or None
        Target rate in Hz; ``None`` keeps the native rate.
    block_seconds : float or None
        Length of the native-rate blocks decoded at a time, seconds (default: 2**18 frames,
        ≈ 6 s at 44.1 kHz). Yielded blocks have about ``block_seconds · sr`` samples; the resampler's
        delay makes the first shorter and the last longer. No block is empty.

    Returns
    -------
    iterator of float32 [n_i]

    Raises
    ------
    AudioLoadError
        At the call for a file that cannot be opened (``missing``, ``empty``, ``permission-denied``,
        ``not-audio``, ``unsupported``, ``unreadable``); while iterating for a decoding error or
        non-finite samples (``unreadable``) or a file without samples (``no-samples``).
    """
    info = audio_info(path)          # classified errors for files that cannot be opened
    frames = _BLOCK_FRAMES
    if block_seconds is not None:
        if not block_seconds > 0:
            raise ValueError(f'block_seconds must be > 0, got {block_seconds}')
        frames = max(1, int(round(block_seconds * info.samplerate)))
    return _iter_blocks(path, info, sr, frames)


def load_audio_streaming(path, sr=16000, block_frames=_BLOCK_FRAMES) -> np.ndarray:
    """:func:`load_audio` decoded block by block whatever the length (one array, same samples).

    The one-shot path decodes the whole file at its native rate and channel count before averaging
    and resampling: 10 minutes of 44.1 kHz stereo is a 212 MB float32 buffer plus a 106 MB mono
    copy, for a 38 MB result. Here only the result and one block are held (see :func:`iter_audio`).

    Parameters
    ----------
    path : str or path-like
    sr : int or None
        Target rate in Hz; ``None`` keeps the native rate.
    block_frames : int
        Native-rate frames decoded per block.

    Returns
    -------
    float32 [n_samples] mono at ``sr``.

    Raises
    ------
    AudioLoadError
        As :func:`iter_audio`.
    """
    info = audio_info(path)          # classified errors for missing / empty / non-audio files
    return _decode_blocks(path, info, sr, int(block_frames))


def _iter_blocks(path, info, sr, block_frames):
    """Generator of mono blocks at ``sr`` of ``path`` (whose header ``info`` was read)."""
    if block_frames < 1:
        raise ValueError(f'block_frames must be ≥ 1, got {block_frames}')
    sr_in = int(info.samplerate)
    sr = sr_in if sr is None else int(sr)
    if sr <= 0:
        raise ValueError(f'sample rates must be positive, got {sr_in} -> {sr}')
    stream = None if sr_in == sr else soxr.ResampleStream(sr_in, sr, 1, dtype='float32', quality='HQ')
    n_in = n_out = 0
    try:
        f = sf.SoundFile(os.fsencode(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise _classify(path, e) from None
    with f:
        while True:
            try:
                block = f.read(block_frames, dtype='float32', always_2d=True)
            except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
                raise AudioLoadError(path, 'unreadable', f'decoding failed after {n_in} frames: {e}') from None
            last = block.shape[0] < block_frames
            if not np.all(np.isfinite(block)):
                raise AudioLoadError(path, 'unreadable', 'decoded samples contain NaN/inf')
            n_in += block.shape[0]
            mono = to_mono(block)
            out = mono if stream is None else stream.resample_chunk(mono, last=last)
            if out.size:
                n_out += out.size
                yield out
            if last:
                break
    if n_out == 0:
        raise AudioLoadError(path, 'no-samples', 'decoded to 0 samples' if n_in == 0 else
                             f'{n_in} sample(s) at {sr_in} Hz leave none at {sr} Hz')


def _decode_blocks(path, info, sr, block_frames):
    """All blocks of :func:`_iter_blocks` in one array, grown in place (no list + concatenate copy)."""
    sr_out = info.samplerate if sr is None else sr
    cap = int(math.ceil(max(info.frames, 1) * sr_out / info.samplerate)) + 1024
    out = np.empty(cap, np.float32)
    n = 0
    for chunk in _iter_blocks(path, info, sr, block_frames):
        if n + chunk.shape[0] > out.shape[0]:      # header frame counts can be estimates (MP3)
            bigger = np.empty(max(2 * out.shape[0], n + chunk.shape[0]), np.float32)
            bigger[:n] = out[:n]
            out = bigger
        out[n:n + chunk.shape[0]] = chunk
        n += chunk.shape[0]
    return out[:n]


# --------------------------------------------------------------------------------------------------
# finding the audio files of file and folder arguments
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputFile:
    """A file to process: its ``path``, and its ``key``, the path relative to the folder argument it
    was found in (the file name for a file argument), which names its outputs (taggrams, .npy)."""
    path: str
    key: str


@dataclass
class Inputs:
    """What :func:`collect_inputs` found: ``files`` to tag, ``skipped`` ``(path, reason, detail)``
    triples (missing arguments, folders that cannot be listed) and ``hidden`` names not searched."""
    files: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    hidden: list = field(default_factory=list)


def collect_inputs(paths) -> Inputs:
    """Expand file and folder arguments into the files to process.

    Files are kept as given. Folders are searched recursively (sorted; a folder's files before its
    subfolders; links followed, each folder searched once) and **every** file found is kept,
    whatever its extension: the decoder, not the name, decides what is audio, so a file it cannot
    read is reported with its reason instead of being left out. Names starting with ``.`` (hidden
    files and folders) are not searched and are counted in ``hidden``; a folder that cannot be
    listed, and a missing argument, go to ``skipped``.
    """
    inputs = Inputs()
    seen = set()
    for p in map(os.fspath, paths):
        if os.path.isdir(p):
            _search(p, inputs, seen)
        elif os.path.lexists(p):
            inputs.files.append(InputFile(p, os.path.basename(p.rstrip(os.sep)) or p))
        else:
            inputs.skipped.append((p, 'missing', 'no such file or folder'))
    return inputs


def _search(root: str, inputs: Inputs, seen: set) -> None:
    """Depth-first, sorted search of folder ``root`` (an explicit stack: no recursion limit)."""
    stack = [(root, '')]
    while stack:
        folder, rel = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                log.info('not searched again: %r (a link to a folder already searched)', folder)
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except PermissionError:
            inputs.skipped.append((folder, 'permission-denied', 'this user may not list this folder'))
            continue
        except OSError as e:
            inputs.skipped.append((folder, 'unreadable', f'cannot list this folder: {e.strerror or e}'))
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith('.'):
                inputs.hidden.append(entry.path)
                continue
            key = os.path.join(rel, entry.name)
            if _is_dir(entry):
                subfolders.append((entry.path, key))
            else:
                inputs.files.append(InputFile(entry.path, key))
        stack.extend(reversed(subfolders))


def _is_dir(entry) -> bool:
    try:
        return entry.is_dir()           # follows links
    except OSError:
        return False
