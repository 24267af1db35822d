"""Random picture transformations for training image encoders on little data (``docs/images.md``).

A few hundred (picture, track) pairs are too few to train an image encoder from scratch; random
crops, flips, colour jitter and blur turn each picture into many plausible variants (PRESSED/PLAY
multiplied about 200 pairs into about 14k this way). Every transformation is a stateless TensorFlow
op driven by an explicit seed, so an epoch's examples are the same for the same seed on any machine,
and differ between epochs (the input source derives the seed from the epoch and the example).

:func:`augment` works on one picture float32 ``[S, S, 3]`` RGB in [0, 1] and returns the same shape
and range.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from core.records import dataclass_from_dict

__all__ = ['AugmentParams', 'augment']


@dataclass(frozen=True)
class AugmentParams:
    """What :func:`augment` may do to a picture (all on by default; 0 switches a part off).

    Attributes
    ----------
    crop_min : float
        Smallest side of the random crop as a share of the picture's side (1 = no crop); the crop's
        side is uniform in ``[crop_min, 1]``, its place uniform, and it is resized back to the
        picture's size.
    flip : bool
        Mirror left-right with probability 1/2.
    brightness : float
        Add a uniform value in ``[-brightness, brightness]``.
    contrast : float
        Scale the contrast by a factor uniform in ``[1 - contrast, 1 + contrast]``.
    saturation : float
        Scale the saturation by a factor uniform in ``[1 - saturation, 1 + saturation]``.
    hue : float
        Rotate the hue by a uniform share of the colour wheel in ``[-hue, hue]`` (at most 0.5).
    blur : float
        Probability of a Gaussian blur, whose standard deviation is uniform in ``[0.3, blur_sigma]``
        pixels.
    blur_sigma : float
        Widest blur in pixels.
    """
    crop_min: float = 0.7
    flip: bool = True
    brightness: float = 0.1
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.03
    blur: float = 0.3
    blur_sigma: float = 1.5

    def __post_init__(self):
        checks = {'crop_min': 0 < self.crop_min <= 1, 'brightness': 0 <= self.brightness <= 1,
                  'contrast': 0 <= self.contrast < 1, 'saturation': 0 <= self.saturation < 1,
                  'hue': 0 <= self.hue <= 0.5, 'blur': 0 <= self.blur <= 1, 'blur_sigma': self.blur_sigma >= 0.3}
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f'augment {key} out of range: {getattr(self, key)!r} '
                                 '(crop_min in (0, 1], brightness in [0, 1], contrast and saturation in [0, 1), '
                                 'hue in [0, 0.5], blur in [0, 1], blur_sigma >= 0.3)')

    @classmethod
    def from_dict(cls, d: dict) -> 'AugmentParams':
        return dataclass_from_dict(cls, d, 'augment parameter')

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _seeds(seed, n: int):
    """``n`` independent stateless seeds [2] from one seed [2]."""
    import tensorflow as tf
    return tf.unstack(tf.random.experimental.stateless_split(seed, n))


def _crop(image, seed, crop_min: float):
    import tensorflow as tf
    s1, s2 = _seeds(seed, 2)
    side = tf.random.stateless_uniform([], s1, crop_min, 1.0)
    offset = tf.random.stateless_uniform([2], s2, 0.0, 1.0) * (1.0 - side)
    box = tf.stack([offset[0], offset[1], offset[0] + side, offset[1] + side])[None]
    size = tf.shape(image)[:2]
    return tf.image.crop_and_resize(image[None], box, [0], size)[0]


def _blur(image, seed, probability: float, widest: float):
    """Gaussian blur (5x5 separable kernel, reflecting edges) with probability ``probability``."""
    import tensorflow as tf
    s1, s2 = _seeds(seed, 2)
    sigma = tf.random.stateless_uniform([], s1, 0.3, widest)
    taps = tf.exp(-0.5 * tf.square(tf.range(-2.0, 3.0) / sigma))
    taps = taps / tf.reduce_sum(taps)
    padded = tf.pad(image[None], [[0, 0], [2, 2], [2, 2], [0, 0]], mode='REFLECT')
    kernel_h = tf.tile(tf.reshape(taps, [1, 5, 1, 1]), [1, 1, 3, 1])
    kernel_v = tf.tile(tf.reshape(taps, [5, 1, 1, 1]), [1, 1, 3, 1])
    out = tf.nn.depthwise_conv2d(padded, kernel_h, [1, 1, 1, 1], 'VALID')
    out = tf.nn.depthwise_conv2d(out, kernel_v, [1, 1, 1, 1], 'VALID')[0]
    return tf.cond(tf.random.stateless_uniform([], s2) < probability, lambda: out, lambda: image)


def augment(image, seed, params: AugmentParams = AugmentParams()):
    """One random variant of ``image``.

    Parameters
    ----------
    image : tf.Tensor
        float32 [S, S, 3] RGB in [0, 1].
    seed : tf.Tensor
        int32/int64 [2], the stateless seed (same seed, same variant).
    params : AugmentParams

    Returns
    -------
    tf.Tensor
        float32 [S, S, 3] in [0, 1]: crop, flip, brightness, contrast, saturation, hue, blur, in that order.
    """
    import tensorflow as tf
    seeds = _seeds(tf.cast(seed, tf.int64), 7)
    p = params
    if p.crop_min < 1:
        image = _crop(image, seeds[0], p.crop_min)
    if p.flip:
        image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    if p.brightness:
        image = tf.image.stateless_random_brightness(image, p.brightness, seeds[2])
    if p.contrast:
        image = tf.image.stateless_random_contrast(image, 1 - p.contrast, 1 + p.contrast, seeds[3])
    if p.saturation:
        image = tf.image.stateless_random_saturation(tf.clip_by_value(image, 0.0, 1.0), 1 - p.saturation,
                                                     1 + p.saturation, seeds[4])
    if p.hue:
        image = tf.image.stateless_random_hue(tf.clip_by_value(image, 0.0, 1.0), p.hue, seeds[5])
    if p.blur:
        image = _blur(image, seeds[6], p.blur, p.blur_sigma)
    return tf.clip_by_value(image, 0.0, 1.0)
