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

__all__ = ['LogMel']


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
