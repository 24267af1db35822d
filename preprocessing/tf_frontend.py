"""The log-mel front end as a Keras layer (TF ops), for models fed with waveforms.

:class:`LogMel` computes, in the graph, the same spectrogram as
:func:`preprocessing.features.log_mel` (same :class:`~preprocessing.features.FeatureParams`, the
same Slaney filterbank taken from librosa, periodic Hann window, centre padding), so a model can
be trained on waveform TFRecords and exported with its front end inside. Parity with the NumPy
path is tested (``tests/test_frontend.py``).

One difference is inherent to windowing: with ``log='power_to_db'`` and ``top_db`` set, the clip
floor is ``max - top_db`` of *the signal the layer sees* (one window in training), whereas
preprocessing applies it per whole track. Both agree when the layer sees the whole track.
"""
from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from preprocessing.features import FeatureParams, mel_basis

__all__ = ['LogMel', 'TorchMelSpectrogram', 'HarmonicSpectrogram', 'htk_mel_filterbank',
           'harmonic_center_frequencies']


@keras.saving.register_keras_serializable(package='musetag')
class LogMel(keras.layers.Layer):
    """Waveform batch -> log-mel batch.

    Parameters
    ----------
    params : FeatureParams or dict
        Front-end parameters (``dict`` as produced by ``FeatureParams.to_dict``).

    Call
    ----
    inputs : float32 [B, n_samples] at ``params.sr`` Hz.

    Returns
    -------
    float32 [B, 1 + n_samples // hop_length, n_mels] (with ``center=True``).
    """

    def __init__(self, params, **kwargs):
        super().__init__(**kwargs)
        if isinstance(params, dict):
            params = FeatureParams.from_dict(params)
        self.params = params
        # constant, not a weight: the filterbank is part of the feature definition
        self._mel_t = np.ascontiguousarray(mel_basis(params).T)  # [n_fft//2+1, n_mels]

    def get_config(self):
        config = super().get_config()
        config['params'] = self.params.to_dict()
        return config

    def compute_output_shape(self, input_shape):
        n = input_shape[-1]
        p = self.params
        if n is None:
            t = None
        elif p.center:
            t = 1 + n // p.hop_length
        else:
            t = max(0, 1 + (n - p.n_fft) // p.hop_length)
        return (input_shape[0], t, p.n_mels)

    def call(self, inputs):
        p = self.params
        x = tf.cast(inputs, tf.float32)
        if p.center:
            pad = p.n_fft // 2
            x = tf.pad(x, [[0, 0], [pad, pad]], mode='REFLECT' if p.pad_mode == 'reflect' else 'CONSTANT')
        spec = tf.signal.stft(x, frame_length=p.n_fft, frame_step=p.hop_length, fft_length=p.n_fft,
                              window_fn=lambda n, dtype: tf.signal.hann_window(n, periodic=True, dtype=dtype),
                              pad_end=False)
        power = tf.math.square(tf.math.real(spec)) + tf.math.square(tf.math.imag(spec))
        if p.power != 2.0:
            power = tf.pow(power, p.power / 2.0)
        mel = tf.tensordot(power, tf.constant(self._mel_t), axes=1)
        if p.log == 'power_to_db':
            db = (10.0 / math.log(10.0)) * tf.math.log(tf.maximum(mel, p.amin))
            if p.top_db is not None:
                db = tf.maximum(db, tf.reduce_max(db, axis=[1, 2], keepdims=True) - p.top_db)
            return db
        if p.float16:
            # musicnn's quirk: the mel power rounded to float16 (see preprocessing.features)
            mel = tf.cast(tf.cast(mel, tf.float16), tf.float32)
        return tf.math.log(p.log_scale * mel + 1.0) / math.log(10.0)


# --- Front ends of the PyTorch reference taggers (minzwon/sota-music-tagging-models) -----------------

def _power_spectrogram(x, n_fft: int, hop_length: int):
    """|STFT|² of a waveform batch as ``torch.stft`` computes it in torchaudio's ``Spectrogram``.

    ``x`` float32 [B, n]; periodic Hann window of ``n_fft``, ``center=True`` with reflect padding of
    ``n_fft // 2`` samples at both ends. Returns float32 [B, 1 + n // hop_length, 1 + n_fft // 2].
    """
    pad = n_fft // 2
    x = tf.pad(tf.cast(x, tf.float32), [[0, 0], [pad, pad]], mode='REFLECT')
    spec = tf.signal.stft(x, frame_length=n_fft, frame_step=hop_length, fft_length=n_fft,
                          window_fn=lambda n, dtype: tf.signal.hann_window(n, periodic=True, dtype=dtype),
                          pad_end=False)
    return tf.math.square(tf.math.real(spec)) + tf.math.square(tf.math.imag(spec))


def _power_to_db(power, amin: float):
    """``torchaudio.transforms.AmplitudeToDB()`` of a power spectrogram: ``10·log10(max(x, amin))``."""
    return (10.0 / math.log(10.0)) * tf.math.log(tf.maximum(power, amin))


def _frames(n, hop_length):
    return None if n is None else 1 + n // hop_length


def htk_mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular mel filterbank on the HTK mel scale without area normalisation.

    What ``torchaudio.functional.melscale_fbanks(n_freqs, f_min, f_max, n_mels, sr)`` returns (its
    defaults ``norm=None``, ``mel_scale='htk'``, used by ``torchaudio.transforms.MelSpectrogram``):
    mel(f) = 2595·log10(1 + f/700); ``n_mels + 2`` points equally spaced in mel between ``fmin`` and
    ``fmax``; filter m rises from point m to m+1 and falls to m+2, peak 1.

    Returns float32 [1 + n_fft // 2, n_mels] (frequency-major, ready for ``power @ fb``).
    """
    freqs = np.linspace(0.0, sr // 2, 1 + n_fft // 2)
    mel_lo, mel_hi = (2595.0 * np.log10(1.0 + f / 700.0) for f in (fmin, fmax))
    f_pts = 700.0 * (10.0 ** (np.linspace(mel_lo, mel_hi, n_mels + 2) / 2595.0) - 1.0)
    f_diff = np.diff(f_pts)                                         # [n_mels + 1]
    slopes = f_pts[None, :] - freqs[:, None]                        # [n_freqs, n_mels + 2]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).astype(np.float32)


@keras.saving.register_keras_serializable(package='musetag')
class TorchMelSpectrogram(keras.layers.Layer):
    """Waveform batch -> dB mel spectrogram, as the PyTorch reference taggers compute it.

    ``torchaudio.transforms.MelSpectrogram(sample_rate, n_fft, f_min, f_max, n_mels)`` (hop
    ``n_fft // 2``, periodic Hann, centred with reflect padding, power 2, HTK mel scale, unnormalised
    triangles) followed by ``AmplitudeToDB()`` (``10·log10(max(x, 1e-10))``, no ``top_db`` clip),
    the front end of FCN, CRNN, the short-chunk CNNs and CNNSA in minzwon/sota-music-tagging-models.
    It differs from :class:`LogMel` (librosa's Slaney mel) on purpose: the reference models were
    trained on this one.

    Call: ``inputs`` float32 [B, n_samples] at ``sr`` Hz. Returns float32
    [B, 1 + n_samples // hop_length, n_mels] in dB (time-major).
    """

    def __init__(self, sr: int = 16000, n_fft: int = 512, n_mels: int = 128, fmin: float = 0.0,
                 fmax: float = 8000.0, hop_length: int | None = None, amin: float = 1e-10, **kwargs):
        super().__init__(**kwargs)
        self.sr, self.n_fft, self.n_mels = int(sr), int(n_fft), int(n_mels)
        self.fmin, self.fmax, self.amin = float(fmin), float(fmax), float(amin)
        self.hop_length = int(hop_length) if hop_length is not None else self.n_fft // 2
        self._fb = htk_mel_filterbank(self.sr, self.n_fft, self.n_mels, self.fmin, self.fmax)

    def get_config(self):
        return {**super().get_config(), 'sr': self.sr, 'n_fft': self.n_fft, 'n_mels': self.n_mels,
                'fmin': self.fmin, 'fmax': self.fmax, 'hop_length': self.hop_length, 'amin': self.amin}

    def compute_output_shape(self, input_shape):
        return (input_shape[0], _frames(input_shape[-1], self.hop_length), self.n_mels)

    def call(self, inputs):
        power = _power_spectrogram(inputs, self.n_fft, self.hop_length)
        return _power_to_db(tf.tensordot(power, tf.constant(self._fb), axes=1), self.amin)


def harmonic_center_frequencies(sr: int, n_harmonic: int, semitone_scale: int) -> tuple[np.ndarray, int]:
    """Centre frequencies (Hz) of the harmonic filterbank of Won et al. 2020.

    ``level = (high − low) · semitone_scale`` fundamentals equally spaced in MIDI from C1 (MIDI 24)
    up to (excluding) the note nearest ``sr / (2 · n_harmonic)``, each repeated at harmonics
    1 … n_harmonic: harmonic-major order, float64 [n_harmonic · level], and ``level``.
    """
    low = 24                                                       # librosa.note_to_midi('C1')
    high = int(np.round(12.0 * np.log2(sr / (2.0 * n_harmonic) / 440.0) + 69.0))
    level = (high - low) * semitone_scale
    midi = np.linspace(low, high, level + 1)[:-1]
    f0 = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
    return np.concatenate([f0 * (h + 1) for h in range(n_harmonic)]), level


@keras.saving.register_keras_serializable(package='musetag')
class HarmonicSpectrogram(keras.layers.Layer):
    """Waveform batch -> harmonic spectrogram with a learnable bandwidth (Won et al. 2020, ICASSP,
    "Data-driven harmonic filters for audio representation learning").

    Power STFT (``n_fft``, hop ``n_fft // 2``, periodic Hann, centred, reflect padding), then
    triangular band-pass filters centred on the :func:`harmonic_center_frequencies` with bandwidth
    ``(0.1079·f + 24.7) / Q`` Hz (the ERB), then ``10·log10(max(x, 1e-10))``. ``Q`` is one trainable
    scalar (``learn_bw=True``, the reference's ``'only_Q'``) or a constant.

    Call: ``inputs`` float32 [B, n_samples] at ``sr`` Hz. Returns float32
    [B, 1 + n_samples // hop, level, n_harmonic] in dB: time-major, the harmonics as channels
    (the reference's ``[B, n_harmonic, level, time]`` in channels-last order).
    """

    def __init__(self, sr: int = 16000, n_fft: int = 512, n_harmonic: int = 6, semitone_scale: int = 2,
                 bw_q: float = 1.0, learn_bw: bool = True, amin: float = 1e-10, **kwargs):
        super().__init__(**kwargs)
        self.sr, self.n_fft = int(sr), int(n_fft)
        self.n_harmonic, self.semitone_scale = int(n_harmonic), int(semitone_scale)
        self.bw_q, self.learn_bw, self.amin = float(bw_q), bool(learn_bw), float(amin)
        self.hop_length = self.n_fft // 2
        f0, self.level = harmonic_center_frequencies(self.sr, self.n_harmonic, self.semitone_scale)
        self._f0 = f0.astype(np.float32)
        self._fft_hz = np.linspace(0.0, self.sr // 2, 1 + self.n_fft // 2).astype(np.float32)

    def build(self, input_shape):
        self.q = self.add_weight(name='bw_q', shape=(1,), trainable=self.learn_bw,
                                 initializer=keras.initializers.Constant(self.bw_q))

    def get_config(self):
        return {**super().get_config(), 'sr': self.sr, 'n_fft': self.n_fft, 'n_harmonic': self.n_harmonic,
                'semitone_scale': self.semitone_scale, 'bw_q': self.bw_q, 'learn_bw': self.learn_bw,
                'amin': self.amin}

    def compute_output_shape(self, input_shape):
        return (input_shape[0], _frames(input_shape[-1], self.hop_length), self.level, self.n_harmonic)

    def filterbank(self):
        """Triangular filters float32 [1 + n_fft // 2, n_harmonic · level] (peak 1 at each centre)."""
        f0 = tf.constant(self._f0)[None, :]
        bw = (0.1079 * f0 + 24.7) / tf.cast(self.q, tf.float32)
        hz = tf.constant(self._fft_hz)[:, None]
        up = hz * (2.0 / bw) + 1.0 - 2.0 * f0 / bw
        down = hz * (-2.0 / bw) + 1.0 + 2.0 * f0 / bw
        return tf.maximum(0.0, tf.minimum(down, up))

    def call(self, inputs):
        power = _power_spectrogram(inputs, self.n_fft, self.hop_length)       # [B, T, n_fft/2+1]
        bands = tf.tensordot(power, self.filterbank(), axes=1)                # [B, T, H·level]
        t = tf.shape(bands)[1]
        bands = tf.reshape(bands, [-1, t, self.n_harmonic, self.level])
        return _power_to_db(tf.transpose(bands, [0, 1, 3, 2]), self.amin)
