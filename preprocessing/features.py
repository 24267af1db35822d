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
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
import scipy.fft

from core.records import dataclass_from_dict

__all__ = ['FeatureParams', 'PRESETS', 'get_params', 'log_mel', 'mel_power', 'apply_log',
           'mel_basis', 'n_frames', 'frames_per_second']

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
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop]
    # scipy.fft keeps float32/complex64 (numpy.fft would upcast to complex128: 2x slower)
    spec = scipy.fft.rfft(frames * _window(n_fft), n=n_fft, axis=1)
    power = spec.real * spec.real + spec.imag * spec.imag
    if params.power != 2.0:
        power = power ** np.float32(params.power / 2.0)
    return power @ mel_basis(params).T


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
