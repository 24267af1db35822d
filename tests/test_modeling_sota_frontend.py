"""The reference taggers' spectrogram layers (preprocessing/tf_frontend.py) against NumPy/librosa
restatements of torchaudio's MelSpectrogram + AmplitudeToDB and of the HarmonicSTFT of
minzwon/sota-music-tagging-models (training/modules.py)."""
from __future__ import annotations

import librosa
import numpy as np
import pytest

import tensorflow as tf

from preprocessing.tf_frontend import HarmonicSpectrogram, TorchMelSpectrogram, htk_mel_filterbank


def _signal(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 97 * t) + 0.05 * rng.standard_normal(n)
    return x.astype(np.float32)


def _power_stft(x, n_fft=512):
    """torch.stft(center=True, pad_mode='reflect', periodic Hann), power 2: [T, n_fft // 2 + 1] float64."""
    s = librosa.stft(x.astype(np.float64), n_fft=n_fft, hop_length=n_fft // 2, window='hann', center=True,
                     pad_mode='reflect')
    return (np.abs(s) ** 2).T


def test_htk_filterbank_is_librosas_htk_unnormalised():
    for n_mels in (96, 128):
        ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=n_mels, fmin=0.0, fmax=8000.0, htk=True, norm=None)
        np.testing.assert_allclose(htk_mel_filterbank(16000, 512, n_mels, 0.0, 8000.0), ref.T, atol=1e-6)


@pytest.mark.parametrize('n_mels, n', [(96, 16000), (128, 59049)])
def test_mel_db_equals_the_torchaudio_recipe(n_mels, n):
    x = np.stack([_signal(n, 0), 0.01 * _signal(n, 1)])
    got = TorchMelSpectrogram(n_mels=n_mels)(x).numpy()
    assert got.shape == (2, 1 + n // 256, n_mels)
    fb = librosa.filters.mel(sr=16000, n_fft=512, n_mels=n_mels, fmin=0.0, fmax=8000.0, htk=True, norm=None)
    for i in range(2):
        want = 10 * np.log10(np.maximum(_power_stft(x[i]) @ fb.T, 1e-10))
        np.testing.assert_allclose(got[i], want, atol=2e-3 * np.abs(want).max())


def _reference_harmonic_db(x, q=1.0, n_harmonic=6, semitone_scale=2):
    """HarmonicSTFT.forward restated: [n_harmonic, level, T]."""
    low = librosa.note_to_midi('C1')
    high = librosa.note_to_midi(librosa.hz_to_note(16000 / (2 * n_harmonic)))
    level = (high - low) * semitone_scale
    hz = librosa.midi_to_hz(np.linspace(low, high, level + 1)[:-1])
    f0 = np.concatenate([hz * (i + 1) for i in range(n_harmonic)])[None, :]
    bw = (0.1079 * f0 + 24.7) / q
    bins = np.linspace(0, 8000, 257)[:, None]
    up = bins @ (2 / bw) + 1 - 2 * f0 / bw
    down = bins @ (-2 / bw) + 1 + 2 * f0 / bw
    fb = np.maximum(0, np.minimum(down, up))
    spec = (_power_stft(x) @ fb).T                                   # [H·level, T]
    return 10 * np.log10(np.maximum(spec.reshape(n_harmonic, level, -1), 1e-10))


def test_harmonic_spectrogram_equals_the_reference():
    x = np.stack([_signal(80000, 2), _signal(80000, 3)])
    layer = HarmonicSpectrogram()
    got = layer(x).numpy()
    assert got.shape == (2, 313, 128, 6)
    for i in range(2):
        want = _reference_harmonic_db(x[i])                          # [6, 128, 313]
        np.testing.assert_allclose(got[i], want.transpose(2, 1, 0), atol=2e-3 * np.abs(want).max())
    layer.q.assign([2.0])
    np.testing.assert_allclose(layer(x[:1]).numpy()[0], _reference_harmonic_db(x[0], q=2.0).transpose(2, 1, 0),
                               atol=2e-3 * 100)


def test_the_bandwidth_is_one_trainable_scalar_with_a_gradient():
    layer = HarmonicSpectrogram()
    x = tf.constant(_signal(8000)[None])
    with tf.GradientTape() as tape:
        y = tf.reduce_mean(layer(x))
    (g,) = tape.gradient(y, layer.trainable_variables)
    assert [tuple(v.shape) for v in layer.trainable_variables] == [(1,)] and float(tf.abs(g)[0]) > 0
    fixed = HarmonicSpectrogram(learn_bw=False)
    fixed.build((None, 8000))
    assert fixed.trainable_variables == [] and len(fixed.non_trainable_variables) == 1


def test_layers_round_trip_their_config():
    for layer in (TorchMelSpectrogram(n_mels=96, fmax=7000.0), HarmonicSpectrogram(n_harmonic=4, bw_q=0.5)):
        clone = type(layer).from_config(layer.get_config())
        x = _signal(20000)[None]
        np.testing.assert_allclose(clone(x).numpy(), layer(x).numpy(), rtol=1e-6)
