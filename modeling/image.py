"""Image encoders trained from scratch: pictures into a music space (``docs/images.md``).

Two registry models take ``InputSpec(kind='image')``: float32 ``[B, H, W, 3]`` RGB in [0, 1]
(any size unless the spec fixes one; both end in a global reduction):

``image_cnn``
    A small CNN: ``blocks`` x (3x3 conv - batch norm - ReLU - 2x2 max pool), the filters doubling
    per block from ``filters`` (at most 8x), then global average and max pooling concatenated, a
    dense hidden layer and the ``n_outputs`` logits.
``image_stats``
    Hand-made colour and texture statistics computed in the graph (:class:`ColourStats`: HSV
    histograms, colour moments, gradient energy at three scales) followed by an MLP. It has no
    convolution to learn, so it trains in seconds and is hard to overfit on a few hundred pictures.

No pretrained weights are used (none can be downloaded here). Batch normalisation is synchronised
across replicas (``synchronized=True``): the statistics of a multi-replica step are those of the
global batch, so 1 and N replicas train the same (without dropout; dropout masks differ per replica).
The output layer is added by :func:`modeling.registry.build_model`: ``output_activation='linear'``
(or ``'l2'``) for a regression towards a target space with a cosine loss.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from .registry import register

__all__ = ['image_cnn', 'image_stats', 'ColourStats']

_PACKAGE = 'musetag'


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ColourStats(keras.layers.Layer):
    """Colour and texture statistics of RGB images: ``[B, H, W, 3]`` in [0, 1] -> ``[B, F]``.

    Per image, concatenated:

    * histograms of hue, saturation and value (``bins`` equal bins each, shares of the pixels;
      soft: each pixel is shared linearly between its two nearest bin centres; hue wraps round);
    * mean, standard deviation and skewness of R, G, B, H (as cos and sin of the angle), S and V;
    * gradient energy (mean absolute horizontal and vertical difference of the grey level) of the
      picture and of its 2x and 4x average-pooled versions (fine to coarse texture), and the mean
      grey level's contrast (its standard deviation).

    ``F = 3 * bins + 3 * 7 + 6 + 1``. No weights.
    """

    def __init__(self, bins: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.bins = int(bins)

    def get_config(self):
        return {**super().get_config(), 'bins': self.bins}

    def _histogram(self, channel, circular: bool):
        """Share of the pixels per bin, [B, bins]; ``channel`` [B, N] in [0, 1]."""
        pos = channel * self.bins - 0.5             # bin centres at (i + 0.5) / bins
        lower = tf.floor(pos)
        frac = pos - lower
        lower = tf.cast(lower, tf.int32)
        upper = lower + 1
        if circular:
            lower, upper = tf.math.floormod(lower, self.bins), tf.math.floormod(upper, self.bins)
        else:
            lower, upper = tf.clip_by_value(lower, 0, self.bins - 1), tf.clip_by_value(upper, 0, self.bins - 1)
        hist = (tf.one_hot(lower, self.bins) * (1.0 - frac)[..., None]
                + tf.one_hot(upper, self.bins) * frac[..., None])
        return tf.reduce_mean(hist, axis=1)

    @staticmethod
    def _moments(values):
        """Mean, std and skewness over axis 1: [B, N, C] -> [B, 3 * C]."""
        mean = tf.reduce_mean(values, axis=1)
        centred = values - mean[:, None, :]
        var = tf.reduce_mean(tf.square(centred), axis=1)
        std = tf.sqrt(var + 1e-6)
        skew = tf.reduce_mean(centred ** 3, axis=1) / (std ** 3)
        return tf.concat([mean, std, tf.clip_by_value(skew, -10.0, 10.0)], axis=-1)

    @staticmethod
    def _gradient_energy(grey):
        """Mean |dx| and |dy| of ``grey`` [B, H, W, 1] -> [B, 2]."""
        dx = tf.abs(grey[:, :, 1:, :] - grey[:, :, :-1, :])
        dy = tf.abs(grey[:, 1:, :, :] - grey[:, :-1, :, :])
        return tf.stack([tf.reduce_mean(dx, axis=[1, 2, 3]), tf.reduce_mean(dy, axis=[1, 2, 3])], axis=-1)

    def call(self, images):
        images = tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 1.0)
        hsv = tf.image.rgb_to_hsv(images)
        batch = tf.shape(images)[0]
        flat_rgb = tf.reshape(images, [batch, -1, 3])
        flat_hsv = tf.reshape(hsv, [batch, -1, 3])
        hue, sat, val = flat_hsv[..., 0], flat_hsv[..., 1], flat_hsv[..., 2]
        hists = [self._histogram(hue, True), self._histogram(sat, False), self._histogram(val, False)]
        angle = 2.0 * 3.141592653589793 * hue
        channels = tf.concat([flat_rgb, tf.stack([tf.cos(angle) * sat, tf.sin(angle) * sat, sat, val], -1)], -1)
        moments = self._moments(channels)
        grey = tf.image.rgb_to_grayscale(images)
        energy = [self._gradient_energy(grey)]
        for size in (2, 4):
            energy.append(self._gradient_energy(tf.nn.avg_pool2d(grey, size, size, 'VALID')))
        contrast = tf.math.reduce_std(tf.reshape(grey, [batch, -1]), axis=1, keepdims=True)
        # gradients of flat pictures are small numbers: scale them to the range of the other features
        return tf.concat(hists + [moments, 10.0 * tf.concat(energy, -1), contrast], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 3 * self.bins + 3 * 7 + 6 + 1)


@register('image_cnn', input_kind='image')
def image_cnn(x, spec, n_outputs, *, filters: int = 32, blocks: int = 4, dense: int = 128,
              dropout: float = 0.2):
    """Small image CNN from scratch: conv-BN-ReLU-pool blocks, global pooling, dense to n_outputs.

    ``x`` float32 [B, H, W, 3] in [0, 1] -> logits [B, n_outputs]. Filters ``filters * 2**i``
    (at most ``8 * filters``) in block ``i``; each block halves the picture (96 px -> 6 px after 4).
    """
    if blocks < 1 or filters < 1 or dense < 1:
        raise ValueError('image_cnn: blocks, filters and dense must be positive')
    h = keras.layers.Rescaling(2.0, offset=-1.0, name='image_scale')(x)
    for i in range(blocks):
        width = filters * 2 ** min(i, 3)
        h = keras.layers.Conv2D(width, 3, padding='same', use_bias=False, name=f'conv{i + 1}')(h)
        h = keras.layers.BatchNormalization(synchronized=True, name=f'bn{i + 1}')(h)
        h = keras.layers.ReLU(name=f'relu{i + 1}')(h)
        h = keras.layers.MaxPooling2D(2, padding='same', name=f'pool{i + 1}')(h)
    pooled = keras.layers.Concatenate(name='global_pool')([
        keras.layers.GlobalAveragePooling2D(name='global_avg')(h),
        keras.layers.GlobalMaxPooling2D(name='global_max')(h)])
    h = keras.layers.Dense(dense, activation='relu', name='hidden')(pooled)
    h = keras.layers.Dropout(dropout, name='dropout')(h)
    return keras.layers.Dense(n_outputs, name='logits')(h)


@register('image_stats', input_kind='image')
def image_stats(x, spec, n_outputs, *, bins: int = 8, hidden: int = 128, layers: int = 2,
                dropout: float = 0.1):
    """Colour/texture statistics (HSV histograms, moments, gradient energy) + an MLP.

    ``x`` float32 [B, H, W, 3] in [0, 1] -> logits [B, n_outputs]; the statistics
    (:class:`ColourStats`, ``3 * bins + 28`` values) are standardised by a batch norm layer, then
    ``layers`` dense ReLU layers of ``hidden`` units.
    """
    if bins < 2 or hidden < 1 or layers < 0:
        raise ValueError('image_stats: bins must be at least 2, hidden positive, layers not negative')
    h = ColourStats(bins, name='colour_stats')(x)
    h = keras.layers.BatchNormalization(synchronized=True, name='stats_norm')(h)
    for i in range(layers):
        h = keras.layers.Dense(hidden, activation='relu', name=f'dense{i + 1}')(h)
        h = keras.layers.Dropout(dropout, name=f'dropout{i + 1}')(h)
    return keras.layers.Dense(n_outputs, name='logits')(h)
