"""Small Keras layers shared by the MuseTag models.

Every layer here is registered as Keras-serialisable (package ``musetag``) so that a saved
``model.keras`` loads in any process that has imported :mod:`modeling` (use
:func:`modeling.load_model`, which does that for you).

Shapes follow the MuseTag convention: log-mel inputs are time-major ``[B, T, F]``; waveforms are
``[B, n_samples]``.
"""
from __future__ import annotations

import keras
from keras import ops

__all__ = ['ClipStandardization', 'AxisReduce', 'Stack', 'MonoConv2D', 'PrependToken']

_PACKAGE = 'musetag'


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClipStandardization(keras.layers.Layer):
    """Standardise every example on its own: ``(x - mean) / sqrt(var + epsilon)``.

    Mean and variance are taken over all non-batch axes (time × frequency for a log-mel window
    ``[B, T, F]``, samples for a waveform ``[B, n]``), so the layer has no weights and no state.

    Why per clip: the original Orpheus code normalised waveforms per sample index across the
    batch in training and not at all at inference, and log-mel windows per window in training but
    per whole track at inference. Doing it per clip inside the model gives the same input
    statistics in training, evaluation, prediction and export, independent of batch composition,
    dataset statistics and the recording gain.

    Parameters
    ----------
    epsilon : float
        Added to the variance; keeps silent (constant) clips finite (they map to zeros).
    """

    def __init__(self, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        axes = tuple(range(1, len(inputs.shape)))
        mean = ops.mean(inputs, axis=axes, keepdims=True)
        var = ops.mean(ops.square(inputs - mean), axis=axes, keepdims=True)
        return (inputs - mean) / ops.sqrt(var + self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), 'epsilon': self.epsilon}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AxisReduce(keras.layers.Layer):
    """Max or mean over one axis (e.g. over the remaining frequency bins, or over time).

    Parameters
    ----------
    op : {'max', 'mean'}
        Reduction.
    axis : int
        Axis to reduce (not the batch axis).
    keepdims : bool
        Keep the reduced axis with size 1.
    """

    def __init__(self, op: str = 'max', axis: int = 1, keepdims: bool = False, **kwargs):
        super().__init__(**kwargs)
        if op not in ('max', 'mean'):
            raise ValueError(f"AxisReduce op must be 'max' or 'mean', got {op!r}")
        if axis == 0:
            raise ValueError('AxisReduce cannot reduce the batch axis')
        self.op, self.axis, self.keepdims = op, int(axis), bool(keepdims)

    def call(self, inputs):
        fn = ops.max if self.op == 'max' else ops.mean
        return fn(inputs, axis=self.axis, keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        axis = self.axis % len(shape)
        if self.keepdims:
            shape[axis] = 1
        else:
            del shape[axis]
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), 'op': self.op, 'axis': self.axis, 'keepdims': self.keepdims}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Stack(keras.layers.Layer):
    """Stack same-shaped tensors on a new last axis: ``n × [B, C] -> [B, C, n]``.

    Followed by ``Flatten`` this interleaves the inputs (``[a_0, b_0, a_1, b_1, …]``), which is the
    order of the TF1 ``concat([max, mean], axis=2)`` + flatten of Pons 2018 and musicnn, so the
    weights after the pooled vector line up with the published checkpoints.
    """

    def call(self, inputs):
        return ops.stack(list(inputs), axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0]) + (len(input_shape),)


def _same_pads(k: int) -> tuple[int, int]:
    """TF 'SAME' padding (stride 1) of a kernel of size k: (before, after)."""
    return (k - 1) // 2, (k - 1) - (k - 1) // 2


def _mono_conv2d_input_grad(dy, kernel, padding):
    """Gradient w.r.t. the 1-channel input of ``conv2d(x [B,T,F,1], kernel [kt,kf,1,C])``.

    TF's ``Conv2DBackpropInput`` (oneDNN) is 10–20× slower than the forward pass for a single
    input channel and a large kernel (measured: 8–16 s vs 0.6 s for musicnn's 7×38 / 7×67 convs at
    batch 16). The same gradient, written as an unfolded convolution:

    * ``kf > 1``: ``y = conv_(kt×1)(U)`` with ``U[t, f, j] = x[t, f + j]`` (``kf`` channels), so
      ``dU`` is an efficient multi-channel backprop and ``dx`` its overlap-add over frequency;
    * ``kf == 1``: ``y[t, f] = Σ_i x[t + i, f] k_i``, so ``dV = dy · kᵀ`` (a matmul) and ``dx`` its
      overlap-add over time.
    """
    import tensorflow as tf
    kt, kf, _, c = kernel.shape
    b, t_out, f_out = tf.shape(dy)[0], tf.shape(dy)[1], tf.shape(dy)[2]
    if kf > 1:
        du = tf.compat.v1.nn.conv2d_backprop_input(
            tf.stack([b, t_out + kt - 1, f_out, kf]), tf.reshape(kernel, (kt, 1, kf, c)), dy,
            strides=[1, 1, 1, 1], padding='VALID')                        # [B, Tp, Fo, kf]
        dx = tf.signal.overlap_and_add(du, 1)                             # [B, Tp, Fp]
    else:
        dv = tf.einsum('btfo,io->bfti', dy, tf.reshape(kernel, (kt, c)))  # [B, Fp, To, kt]
        dx = tf.transpose(tf.signal.overlap_and_add(dv, 1), [0, 2, 1])    # [B, Tp, Fp]
    if padding == 'SAME':
        (t0, _), (f0, _) = _same_pads(kt), _same_pads(kf)
        dx = dx[:, t0:t0 + t_out, f0:f0 + f_out]
    return dx[..., None]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MonoConv2D(keras.layers.Conv2D):
    """``Conv2D`` for a 1-channel input, with a fast input gradient on the TensorFlow backend.

    Same weights, configuration and forward computation as ``keras.layers.Conv2D`` (the forward
    op is the same ``tf.nn.conv2d``); only the gradient w.r.t. the input is computed differently
    (see :func:`_mono_conv2d_input_grad`). It matters when a trainable layer precedes the
    convolution (musicnn's and VGG's input BatchNormalization), so training needs that gradient.
    Falls back to ``Conv2D`` for strides/dilations ≠ 1, channels_first or other backends.
    """

    def convolution_op(self, inputs, kernel):
        if (keras.backend.backend() != 'tensorflow' or tuple(self.strides) != (1, 1)
                or tuple(self.dilation_rate) != (1, 1) or self.data_format != 'channels_last'
                or kernel.shape[2] != 1 or self.groups != 1):
            return super().convolution_op(inputs, kernel)
        import tensorflow as tf
        padding = self.padding.upper()

        @tf.custom_gradient
        def conv(x, k):
            y = tf.nn.conv2d(x, k, strides=1, padding=padding)

            def grad(dy):
                dk = tf.compat.v1.nn.conv2d_backprop_filter(x, tf.shape(k), dy, [1, 1, 1, 1], padding)
                return _mono_conv2d_input_grad(dy, k, padding), dk
            return y, grad

        return conv(tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PrependToken(keras.layers.Layer):
    """Prepend one fixed (not trained) vector to every sequence: ``[B, T, C] -> [B, 1 + T, C]``.

    The [CLS] token of CNNSA (Won et al. 2019, "Toward interpretable music tagging with
    self-attention"): ``numpy.random.RandomState(seed).random_sample((1, C))``, uniform in [0, 1),
    the vector the reference draws with ``np.random.seed(0); np.random.random((1, C))``.

    Parameters
    ----------
    seed : int
        Seed of the legacy NumPy generator that draws the token.
    """

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.seed = int(seed)

    def build(self, input_shape):
        import numpy as np
        self._token = np.random.RandomState(self.seed).random_sample((1, 1, int(input_shape[-1]))).astype('float32')

    def call(self, inputs):
        token = ops.cast(ops.convert_to_tensor(self._token), inputs.dtype)
        token = ops.broadcast_to(token, (ops.shape(inputs)[0], 1, ops.shape(inputs)[2]))
        return ops.concatenate([token, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        t = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], t, input_shape[2])

    def get_config(self):
        return {**super().get_config(), 'seed': self.seed}
