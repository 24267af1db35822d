"""The one log-mel front end, NumPy path (TF path: :mod:`preprocessing.tf_frontend`).

Both paths take the same :class:`FeatureParams`, so preprocessing, training (when TFRecords hold
waveforms) and prediction compute identical features. Named presets:

``orpheus``
    Orpheus / Pons et al. 2018 as ported by urop2019 (librosa defaults): n_fft 2048, hop 512,
    96 Slaney mels, power 2, ``power_to_db`` (ref 1, amin 1e-10, top_db 80 below the maximum of
    the analysed signal).
``musicnn``
    The published musicnn models: n_fft 512, hop 256, 96 mels, ``log10(1 + 10000·x)``. With
    ``float16=True`` (the preset's default) the mel power is first rounded to float16, exactly as
    musicnn's extractor (``melspectrogram(...).astype(np.float16)``) fed its models. Note: under
    NumPy < 2 (what musicnn ran on, and what we pin) ``10000 * float16_array`` is computed in
    float32, so the log itself is float32 and nothing overflows below float16's max (65504);
    the "log computed in float16, inf above 6.55" reading of that code holds only under NumPy 2's
    promotion rules (NEP 50). We reproduce what the models actually saw; ``tests/test_frontend.py``
    checks it against the recipe, and the musicnn fidelity test against musicnn itself.

Conventions: spectrograms are **time-major** ``float32 [n_frames, n_mels]`` everywhere in
MuseTag; ``center=True`` pads ``n_fft // 2`` zeros on both sides (librosa ≥ 0.10's default
``pad_mode='constant'``), so a signal of ``n`` samples has ``1 + n // hop_length`` frames.

Long signals can be analysed as a stream of blocks (:func:`iter_log_mel`, :class:`MelFrames`):
the frames equal those of :func:`log_mel` of the whole signal, while memory holds one block.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import scipy.fft

from core.records import dataclass_from_dict

__all__ = ['FeatureParams', 'PRESETS', 'get_params', 'log_mel', 'mel_power', 'apply_log',
           'mel_basis', 'n_frames', 'frames_per_second', 'MelFrames', 'iter_mel_power', 'iter_log_mel',
           'max_mel_power', 'top_db_floor']

_LOGS = ('power_to_db', 'log10_1p')


@dataclass(frozen=True)
class FeatureParams:
    """Every parameter of the log-mel front end.

    Attributes
    ----------
    sr : int
        Sample rate of the input audio, Hz.
    n_fft : int
        FFT size = window length, samples.
    hop_length : int
        Hop between frames, samples.
    n_mels : int
        Number of mel bands.
    fmin, fmax : float
        Mel filterbank range in Hz; ``fmax=None`` means ``sr / 2``.
    power : float
        Exponent of the magnitude spectrogram (2 = power).
    center : bool
        Pad ``n_fft // 2`` samples at both ends so frame t is centred on sample ``t * hop``.
    pad_mode : str
        ``'constant'`` (zeros, librosa ≥ 0.10 default) or ``'reflect'`` (librosa < 0.10).
    log : str
        ``'power_to_db'`` (10·log10 with ``amin`` floor and ``top_db`` clip) or ``'log10_1p'``
        (``log10(1 + log_scale·x)``).
    top_db : float or None
        ``power_to_db`` only: clip at ``max - top_db`` dB (max of the analysed signal).
    amin : float
        ``power_to_db`` only: floor of the power before the log.
    log_scale : float
        ``log10_1p`` only: the scale inside the log.
    float16 : bool
        ``log10_1p`` only: round the mel power to float16 before the log (musicnn's models).
    """
    sr: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    fmin: float = 0.0
    fmax: float | None = None
    power: float = 2.0
    center: bool = True
    pad_mode: str = 'constant'
    log: str = 'log10_1p'
    top_db: float | None = None
    amin: float = 1e-10
    log_scale: float = 10000.0
    float16: bool = False

    def __post_init__(self):
        for name in ('sr', 'n_fft', 'hop_length', 'n_mels'):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f'FeatureParams.{name} must be a positive integer, got {value!r}')
        if self.log not in _LOGS:
            raise ValueError(f'FeatureParams.log must be one of {_LOGS}, got {self.log!r}')
        if self.pad_mode not in ('constant', 'reflect'):
            raise ValueError(f"FeatureParams.pad_mode must be 'constant' or 'reflect', got {self.pad_mode!r}")
        if self.float16 and self.log != 'log10_1p':
            raise ValueError('FeatureParams.float16 applies to log="log10_1p" only')
        fmax = self.sr / 2 if self.fmax is None else self.fmax
        if not 0 <= self.fmin < fmax <= self.sr / 2:
            raise ValueError(f'FeatureParams needs 0 <= fmin < fmax <= sr/2, got fmin={self.fmin}, fmax={fmax}')

    @property
    def f_max(self) -> float:
        """The effective upper filterbank frequency in Hz."""
        return float(self.sr / 2 if self.fmax is None else self.fmax)

    def to_dict(self) -> dict:
        """JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> 'FeatureParams':
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        return dataclass_from_dict(cls, d, 'feature parameter')


PRESETS = {
    'orpheus': FeatureParams(sr=16000, n_fft=2048, hop_length=512, n_mels=96, log='power_to_db',
                             top_db=80.0),
    'musicnn': FeatureParams(sr=16000, n_fft=512, hop_length=256, n_mels=96, log='log10_1p',
                             log_scale=10000.0, float16=True),
}


def get_params(preset: str = 'musicnn', **overrides) -> FeatureParams:
    """A named preset with any field overridden, e.g. ``get_params('musicnn', float16=False)``."""
    if preset not in PRESETS:
        raise ValueError(f'unknown feature preset {preset!r}; choose from {sorted(PRESETS)}')
    known = {f.name for f in dataclasses.fields(FeatureParams)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f'unknown feature parameter(s): {", ".join(unknown)}')
    return dataclasses.replace(PRESETS[preset], **overrides)


def n_frames(n_samples: int, params: FeatureParams) -> int:
    """Number of frames for ``n_samples`` input samples."""
    if params.center:
        return 1 + int(n_samples) // params.hop_length
    return 0 if n_samples < params.n_fft else 1 + (int(n_samples) - params.n_fft) // params.hop_length


def frames_per_second(params: FeatureParams) -> float:
    """Frame rate in frames/s (``sr / hop_length``)."""
    return params.sr / params.hop_length


def _hz_to_mel(f):
    """Slaney mel scale (librosa's default, ``htk=False``): linear below 1 kHz, log above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = np.log(6.4) / 27.0
    mels = f / f_sp
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=16)
def _mel_basis(sr, n_fft, n_mels, fmin, fmax):
    # Same arithmetic (and float32 rounding points) as librosa.filters.mel(htk=False, norm='slaney'),
    # without importing librosa (seconds of start-up in every worker process). Parity is tested.
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    weights.setflags(write=False)
    return weights


def mel_basis(params: FeatureParams) -> np.ndarray:
    """Slaney mel filterbank, float32 [n_mels, 1 + n_fft // 2] (read-only, cached)."""
    return _mel_basis(params.sr, params.n_fft, params.n_mels, float(params.fmin), params.f_max)


@functools.lru_cache(maxsize=16)
def _window(n_fft):
    # periodic Hann = scipy.signal.get_window('hann', n_fft, fftbins=True), as librosa uses
    w = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    w.setflags(write=False)
    return w


def mel_power(audio, params: FeatureParams) -> np.ndarray:
    """Mel power spectrogram, float32 [n_frames, n_mels], before the log.

    Parameters
    ----------
    audio : float32 [n_samples] mono at ``params.sr``.
    """
    y = np.asarray(audio, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f'log-mel expects mono audio [n_samples], got shape {y.shape}')
    if y.size == 0:
        raise ValueError('log-mel of an empty signal')
    n_fft, hop = params.n_fft, params.hop_length
    if params.center:
        pad = n_fft // 2
        if params.pad_mode == 'reflect' and y.size > pad:
            y = np.pad(y, pad, mode='reflect')
        else:
            y = np.pad(y, pad, mode='constant')
    if y.size < n_fft:
        y = np.pad(y, (0, n_fft - y.size))
    return _frames_mel(np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop], params)


#: Frames analysed together: the STFT is computed group by group ([1024, n_fft] at a time, 8 MB at
#: n_fft 2048), so memory does not grow with the signal, and the streaming analysis (:class:`MelFrames`)
#: runs the very same arithmetic on the very same groups, giving bit-identical frames (BLAS and the FFT
#: may round differently for a different number of rows).
CHUNK_FRAMES = 1024


def _frames_mel(frames, params: FeatureParams) -> np.ndarray:
    """Mel power of signal frames float32 [T, n_fft] (a strided view) -> float32 [T, n_mels], computed
    in groups of :data:`CHUNK_FRAMES` frames counted from the first."""
    n_fft = params.n_fft
    out = np.empty((frames.shape[0], params.n_mels), np.float32)
    basis_t = mel_basis(params).T
    for f0 in range(0, frames.shape[0], CHUNK_FRAMES):
        group = frames[f0:f0 + CHUNK_FRAMES]
        # scipy.fft keeps float32/complex64 (numpy.fft would upcast to complex128: 2x slower)
        spec = scipy.fft.rfft(group * _window(n_fft), n=n_fft, axis=1)
        power = spec.real * spec.real + spec.imag * spec.imag
        if params.power != 2.0:
            power = power ** np.float32(params.power / 2.0)
        np.matmul(power, basis_t, out=out[f0:f0 + group.shape[0]])
    return out


def apply_log(mel, params: FeatureParams) -> np.ndarray:
    """The preset's log compression of a mel power spectrogram [T, n_mels] -> float32 [T, n_mels]."""
    mel = np.asarray(mel, dtype=np.float32)
    if params.log == 'power_to_db':
        db = np.float32(10.0) * np.log10(np.maximum(mel, np.float32(params.amin)))
        if params.top_db is not None and db.size:
            db = np.maximum(db, db.max() - np.float32(params.top_db))
        return db.astype(np.float32, copy=False)
    if params.float16:
        # musicnn quantised the mel power to float16; the arithmetic after it is float32 (NumPy < 2)
        with np.errstate(over='ignore'):
            mel = mel.astype(np.float16).astype(np.float32)
    return np.log10(np.float32(1.0) + np.float32(params.log_scale) * mel).astype(np.float32, copy=False)


def log_mel(audio, params: FeatureParams) -> np.ndarray:
    """Log-mel spectrogram of mono audio.

    Parameters
    ----------
    audio : float32 [n_samples]
        Mono audio at ``params.sr`` Hz.
    params : FeatureParams
        E.g. ``get_params('orpheus')``.

    Returns
    -------
    np.ndarray, float32 [n_frames(n_samples), n_mels]
        Time-major log-mel spectrogram.
    """
    return apply_log(mel_power(audio, params), params)


# --------------------------------------------------------------------------------------------------
# The same front end on a signal that arrives in blocks
# --------------------------------------------------------------------------------------------------
class MelFrames:
    """Mel power frames of a signal fed block by block; equal to :func:`mel_power` of the whole.

    :func:`mel_power` pads the signal (``center``: ``n_fft // 2`` samples at both ends, zeros or
    a reflection, the reflection only when the signal is longer than the pad) and analyses frame
    ``t`` from padded samples ``[t·hop, t·hop + n_fft)``. Here the same padded signal is built
    as the blocks arrive: the left pad once more than ``n_fft // 2`` samples have arrived (so the
    reflection rule is known), the right pad by :meth:`finish`. Frames are computed in the groups of
    :data:`CHUNK_FRAMES` that :func:`mel_power` uses, as soon as a group's samples are in, so the
    result is bit-identical; between calls at most one group's samples (``CHUNK_FRAMES · hop +
    n_fft``) are kept.

    Parameters
    ----------
    params : FeatureParams

    Examples
    --------
    >>> frames = MelFrames(params)
    >>> chunks = [frames.push(block) for block in blocks] + [frames.finish()]
    >>> np.concatenate(chunks)         # == mel_power(np.concatenate(blocks), params)
    """

    def __init__(self, params: FeatureParams):
        self.params = params
        self._pad = params.n_fft // 2 if params.center else 0
        self._pending = []        # blocks held until the left pad is decided
        self._n_pending = 0
        self._buf = None          # padded samples [_buf0, _buf0 + len(_buf)) not yet released
        self._buf0 = 0
        self._next = 0            # index of the next frame to compute
        self._done = False

    @property
    def frames_done(self) -> int:
        """Frames returned so far."""
        return self._next

    def push(self, block) -> np.ndarray:
        """Add float32 [n] samples at ``params.sr``; return the frames they complete, float32 [t, n_mels]
        (``t`` may be 0)."""
        if self._done:
            raise ValueError('MelFrames.push after finish')
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 1:
            raise ValueError(f'log-mel expects mono audio [n_samples], got shape {block.shape}')
        if self._buf is None:
            self._pending.append(block)
            self._n_pending += block.size
            if self._n_pending <= self._pad or self._n_pending == 0:
                return self._empty()
            signal = np.concatenate(self._pending)
            self._pending = []
            left = self._left_pad(signal)
            self._buf = np.concatenate([left, signal]) if left.size else signal
        else:
            self._buf = np.concatenate([self._buf, block])
        return self._emit()

    def finish(self) -> np.ndarray:
        """Pad the end as :func:`mel_power` does and return the remaining frames, float32 [t, n_mels].

        Raises
        ------
        ValueError
            If no sample was pushed (as :func:`mel_power` of an empty signal).
        """
        if self._done:
            raise ValueError('MelFrames.finish called twice')
        self._done = True
        if self._buf is None:
            # never longer than the pad: the whole signal is at hand, the padding rule is mel_power's
            signal = np.concatenate(self._pending) if self._pending else np.zeros(0, np.float32)
            out = mel_power(signal, self.params)
            self._next = out.shape[0]
            return out
        pad = self._pad
        if pad:
            if self.params.pad_mode == 'reflect':      # the signal is longer than the pad here
                right = self._buf[-(pad + 1):-1][::-1]
            else:
                right = np.zeros(pad, np.float32)
            self._buf = np.concatenate([self._buf, right])
        end = self._buf0 + self._buf.size
        if end < self.params.n_fft:                   # mel_power's rule for signals under one frame
            self._buf = np.concatenate([self._buf, np.zeros(self.params.n_fft - end, np.float32)])
        return self._emit(final=True)

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.params.n_mels), np.float32)

    def _left_pad(self, signal) -> np.ndarray:
        pad = self._pad
        if pad and self.params.pad_mode == 'reflect':
            return signal[1:pad + 1][::-1]
        return np.zeros(pad, np.float32)

    def _emit(self, final: bool = False) -> np.ndarray:
        """Frames of every complete group of :data:`CHUNK_FRAMES` (all frames when ``final``)."""
        n_fft, hop = self.params.n_fft, self.params.hop_length
        end = self._buf0 + self._buf.size
        stop = (end - n_fft) // hop + 1 if end >= n_fft else 0          # frames whose samples are in
        if not final:
            stop -= stop % CHUNK_FRAMES                                 # whole groups only
        out = self._empty()
        if stop > self._next:
            seg = self._buf[self._next * hop - self._buf0:(stop - 1) * hop + n_fft - self._buf0]
            out = _frames_mel(np.lib.stride_tricks.sliding_window_view(seg, n_fft)[::hop], self.params)
            self._next = stop
        # keep what the next group needs, and the last n_fft//2 + 1 samples (the end's reflection)
        keep = max(self._buf0, min(self._next * hop, end - (self._pad + 1)))
        self._buf = self._buf[keep - self._buf0:]
        self._buf0 = keep
        return out


def iter_mel_power(blocks: Iterable, params: FeatureParams) -> Iterator[np.ndarray]:
    """Mel power frames of a signal given as blocks: float32 [t_i, n_mels] chunks (none empty) whose
    concatenation equals ``mel_power(np.concatenate(blocks), params)``.

    Parameters
    ----------
    blocks : iterable of float32 [n_i]
        Consecutive mono samples at ``params.sr`` Hz (e.g. :func:`preprocessing.audio.iter_audio`).
    """
    frames = MelFrames(params)
    for block in blocks:
        out = frames.push(block)
        if out.shape[0]:
            yield out
    out = frames.finish()
    if out.shape[0]:
        yield out


def max_mel_power(blocks: Iterable, params: FeatureParams) -> float:
    """Largest mel power of a signal given as blocks (the first pass for :func:`iter_log_mel`'s
    ``top_db`` clip), in the units of :func:`mel_power`."""
    return max(float(chunk.max()) for chunk in iter_mel_power(blocks, params))


def top_db_floor(max_power: float, params: FeatureParams):
    """The ``power_to_db`` clip level, dB, of a signal whose largest mel power is ``max_power``:
    ``10·log10(max(max_power, amin)) - top_db`` in :func:`apply_log`'s float32 arithmetic, so
    clipping chunks at it equals clipping the whole spectrogram at its maximum. None when the
    preset has no clip (``log10_1p``, or ``top_db=None``)."""
    if params.log != 'power_to_db' or params.top_db is None:
        return None
    db_max = np.float32(10.0) * np.log10(np.maximum(np.float32(max_power), np.float32(params.amin)))
    return np.float32(db_max - np.float32(params.top_db))


def iter_log_mel(blocks: Iterable, params: FeatureParams, *, max_power: float | None = None) -> Iterator[np.ndarray]:
    """Log-mel frames of a signal given as blocks: float32 [t_i, n_mels] chunks whose concatenation
    equals ``log_mel(np.concatenate(blocks), params)``, holding one block (plus ``n_fft`` samples)
    in memory at a time.

    Parameters
    ----------
    blocks : iterable of float32 [n_i]
        Consecutive mono samples at ``params.sr`` Hz.
    params : FeatureParams
    max_power : float or None
        Needed when ``params`` clips at ``top_db`` below the maximum (``power_to_db``, the orpheus
        preset): the signal's largest mel power, from a first pass over the same blocks with
        :func:`max_mel_power`.

    Raises
    ------
    ValueError
        If the clip needs ``max_power`` and it is missing.
    """
    needs_max = params.log == 'power_to_db' and params.top_db is not None
    if needs_max and max_power is None:
        raise ValueError('power_to_db with top_db clips relative to the maximum of the whole signal: '
                         'pass max_power (max_mel_power of the same blocks)')
    floor = top_db_floor(max_power, params) if needs_max else None
    raw = dataclasses.replace(params, top_db=None)
    for mel in iter_mel_power(blocks, params):
        out = apply_log(mel, raw)
        if floor is not None:
            np.maximum(out, floor, out=out)
        yield out
