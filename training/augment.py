"""Training-time augmentation: SpecAugment masks, mixup, random gain (``augment`` config section).

Applied only inside the training step (:mod:`training.trainer`), never to stored data, never at
validation or test. Every random draw is stateless, seeded by ``(config seed, augmentation, global
training step, replica)``, so a resumed run draws exactly what an uninterrupted run draws.

- :func:`random_gain`: waveforms ``[B, n_samples]`` times ``10 ** (g / 20)``, ``g`` uniform in
  ``[min_db, max_db]`` dB per example.
- :func:`mixup` (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization"): each example and
  its labels are mixed with another example of the (replica's) batch, ``lambda ~ Beta(alpha, alpha)``
  per example.
- :func:`spec_augment` (Park et al. 2019, "SpecAugment"): ``time_masks`` time masks of width uniform
  in ``0..time_mask_frames`` frames and ``freq_masks`` frequency masks of width ``0..freq_mask_bands``
  mel bands per example, set to the example's mean log-mel value. On stored log-mel input it runs on
  the model input; on waveform input it runs inside the model right after its mel spectrogram layer
  (:data:`MEL_LAYERS`; :class:`SpecAugment`, active only with ``training=True``).
"""
from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ['GAIN', 'MIXUP', 'SPEC_AUGMENT', 'MEL_LAYERS', 'step_seed', 'random_gain', 'mixup', 'spec_augment',
           'SpecAugment', 'with_spec_augment']

#: Salts that give each augmentation its own random stream.
GAIN, MIXUP, SPEC_AUGMENT = 1, 2, 3
#: Names of the layers whose output is the mel spectrogram ``[B, T, n_mels]`` in waveform-fed models:
#: ``modeling.registry``'s log-mel front end and the dB mel of the Won et al. models (``modeling.sota``).
MEL_LAYERS = ('log_mel', 'mel_spectrogram')


def step_seed(seed: int, salt: int, counter) -> tf.Tensor:
    """A stateless-op seed (int64 ``[2]``) from the config seed, an augmentation salt and a counter.

    ``counter`` is a scalar integer tensor unique per training step and replica.
    """
    return tf.stack([tf.constant(int(seed) * 8 + int(salt), tf.int64), tf.cast(counter, tf.int64)])


def _split(seed: tf.Tensor, n: int) -> list:
    return list(tf.unstack(tf.random.experimental.stateless_split(seed, num=n)))


def random_gain(x: tf.Tensor, seed: tf.Tensor, min_db: float, max_db: float) -> tf.Tensor:
    """Waveforms ``[B, n_samples]`` (any rank >= 1) scaled by a random gain in dB per example."""
    shape = tf.concat([tf.shape(x)[:1], tf.ones([tf.rank(x) - 1], tf.int32)], axis=0)
    db = tf.random.stateless_uniform(shape, seed, minval=float(min_db), maxval=float(max_db))
    return x * tf.cast(tf.pow(10.0, db / 20.0), x.dtype)


def mixup(x: tf.Tensor, y: tf.Tensor, seed: tf.Tensor, alpha: float) -> tuple:
    """Mix every example ``x[i]`` (any shape ``[B, ...]``) and its labels ``y[i]`` (``[B, K]``)
    with ``x[j]``, ``y[j]`` of a random permutation: ``lambda x[i] + (1 - lambda) x[j]``."""
    s_a, s_b, s_perm = _split(seed, 3)
    batch = tf.shape(x)[:1]
    g_a = tf.random.stateless_gamma(batch, s_a, alpha=float(alpha))
    g_b = tf.random.stateless_gamma(batch, s_b, alpha=float(alpha))
    lam = g_a / tf.maximum(g_a + g_b, 1e-12)
    perm = tf.argsort(tf.random.stateless_uniform(batch, s_perm))
    lam_x = tf.reshape(tf.cast(lam, x.dtype), tf.concat([batch, tf.ones([tf.rank(x) - 1], tf.int32)], axis=0))
    lam_y = tf.cast(lam, y.dtype)[:, None]
    x_mixed = lam_x * x + (1 - lam_x) * tf.gather(x, perm)
    y_mixed = lam_y * y + (1 - lam_y) * tf.gather(y, perm)
    return x_mixed, y_mixed


def _band_mask(seed: tf.Tensor, batch, n_masks: int, max_width: int, length) -> tf.Tensor:
    """``[B, length]`` booleans: the union of ``n_masks`` bands of width ``0..max_width`` per example."""
    s_width, s_start = _split(seed, 2)
    width = tf.random.stateless_uniform([batch, n_masks], s_width, minval=0, maxval=int(max_width) + 1,
                                        dtype=tf.int32)
    width = tf.minimum(width, length)
    u = tf.random.stateless_uniform([batch, n_masks], s_start)
    start = tf.cast(tf.floor(u * tf.cast(length - width + 1, tf.float32)), tf.int32)
    pos = tf.range(length)[None, None, :]
    inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])
    return tf.reduce_any(inside, axis=1)


def spec_augment(x: tf.Tensor, seed: tf.Tensor, time_masks: int, time_mask_frames: int,
                 freq_masks: int, freq_mask_bands: int) -> tf.Tensor:
    """Log-mel ``[B, T, n_mels]`` with time and frequency masks set to each example's mean value."""
    s_time, s_freq = _split(seed, 2)
    shape = tf.shape(x)
    batch, frames, bands = shape[0], shape[1], shape[2]
    masked = tf.zeros([batch, frames, bands], tf.bool)
    if time_masks:
        masked |= _band_mask(s_time, batch, time_masks, time_mask_frames, frames)[:, :, None]
    if freq_masks:
        masked |= _band_mask(s_freq, batch, freq_masks, freq_mask_bands, bands)[:, None, :]
    mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    return tf.where(masked, mean, x)


@keras.saving.register_keras_serializable(package='musetag_training')
class SpecAugment(keras.layers.Layer):
    """SpecAugment masks on log-mel ``[B, T, n_mels]``, only when called with ``training=True``.

    The trainer sets the step's seed with :meth:`set_seed` before each training call of the model
    (stateless draws: the same step and replica always get the same masks). Identity otherwise.
    """

    def __init__(self, time_masks=0, time_mask_frames=0, freq_masks=0, freq_mask_bands=0, **kwargs):
        super().__init__(**kwargs)
        self.params = dict(time_masks=int(time_masks), time_mask_frames=int(time_mask_frames),
                           freq_masks=int(freq_masks), freq_mask_bands=int(freq_mask_bands))
        self._seed = None

    def set_seed(self, seed: tf.Tensor) -> None:
        self._seed = seed

    def call(self, x, training=None):
        if not training or self._seed is None:
            return x
        return spec_augment(x, self._seed, **self.params)

    def get_config(self):
        return {**super().get_config(), **self.params}


def with_spec_augment(model: keras.Model, layer_name: str, masks: SpecAugment) -> keras.Model:
    """A model sharing ``model``'s layers (and weights) with ``masks`` applied to ``layer_name``'s output.

    Used for waveform-fed models that compute the log-mel in the graph (the ``log_mel`` layer).
    Raises ValueError when ``model`` has no such layer.
    """
    model.get_layer(layer_name)   # ValueError naming the layer when missing

    def call(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        return masks(out) if layer.name == layer_name else out

    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
