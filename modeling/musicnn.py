"""musicnn (Pons & Serra 2019) and its VGG baseline, Keras 3 re-implementation.

Written to reproduce the TF1 graph of the published models exactly, so their checkpoints import
(:mod:`modeling.pretrained`) and give the same tag probabilities:

* input ``[B, T, 96]`` time-major; the input BatchNormalization acts on a 1-channel
  ``[B, T, 96, 1]`` tensor (one γ/β/mean/variance, as in the checkpoint);
* TF1 layer defaults: Glorot-uniform kernels, zero biases, BN momentum 0.99 / ε 1e-3, ReLU
  *before* BN; timbral convs 'valid' on a time-padded (±3) input, temporal convs 'same'; max over
  all remaining frequency bins;
* the midend convolutions ``Conv2D(7 × C)`` on ``[B, T+6, C, 1]`` are written as the equivalent
  ``Conv1D(7)`` on ``[B, T+6, C]`` (checkpoint kernels ``[7, C, 1, 64]`` squeeze to ``[7, C, 64]``);
  their BN is per filter;
* pooled vector = flatten of ``concat([max_t, mean_t], axis=2)`` on ``[B, 753, 1]`` maps, i.e.
  interleaved ``[max_0, mean_0, max_1, mean_1, …]`` — the order the checkpoint's ``[1506]`` BN
  and ``[1506, 200]`` dense weights expect;
* the published outputs are logits + an external sigmoid; here the sigmoid is the ``tags`` layer;
* convolutions on the 1-channel normalised input are :class:`modeling.layers.MonoConv2D` (a
  ``Conv2D`` with the same forward op and weights, and a 5–15× faster input gradient on CPU,
  which training needs because the input BN before them is trainable).

musicnn accepts variable-length input (any T ≥ 1); VGG needs a fixed length (187 frames = 3 s).
"""
from __future__ import annotations

from keras import layers

from .layers import AxisReduce, MonoConv2D, Stack
from .registry import FRONTEND_OUTPUT, register, register_backend, register_frontend

__all__ = ['musicnn_frontend', 'musicnn_midend_backend', 'vgg']


@register_frontend('musicnn', input_kind='log-mel', default_window_seconds=3.0)
def musicnn_frontend(x, spec, *, n_timbral_filters: int = 204, n_temporal_filters: int = 51):
    """musicnn '7774timbraltemporal' frontend: input BN, 2 timbral + 3 temporal convolutions.

    Parameters
    ----------
    x : KerasTensor float32 [B, T, F]
        Time-major log-mel (F = 96 for the published models).
    spec : InputSpec
    n_timbral_filters : int
        Filters of each timbral conv (7 × ⌊0.4F⌋ and 7 × ⌊0.7F⌋): ⌊1.6·128⌋ = 204.
    n_temporal_filters : int
        Filters of each temporal conv (128, 64, 32 × 1, on every frequency bin): ⌊1.6·32⌋ = 51.

    Returns
    -------
    KerasTensor float32 [B, T, 2·204 + 3·51] = [B, T, 561].
    """
    n_mels = int(x.shape[-1])
    x4 = layers.Reshape((-1, n_mels, 1), name='expand_input')(x)
    norm = layers.BatchNormalization(name='input_bn')(x4)                         # γ, β: [1]
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)), name='timbral_pad')(norm)
    branches = []
    for k_freq in (int(0.4 * n_mels), int(0.7 * n_mels)):
        tag = f'timbral_7x{k_freq}'
        h = MonoConv2D(n_timbral_filters, (7, k_freq), padding='valid', activation='relu',
                       name=f'{tag}_conv')(padded)                                    # [B, T, F-k+1, c]
        h = layers.BatchNormalization(name=f'{tag}_bn')(h)
        branches.append(AxisReduce('max', axis=2, name=f'{tag}_pool')(h))          # [B, T, c]
    for k_time in (128, 64, 32):
        tag = f'temporal_{k_time}x1'
        h = MonoConv2D(n_temporal_filters, (k_time, 1), padding='same', activation='relu',
                       name=f'{tag}_conv')(norm)                                      # [B, T, F, c]
        h = layers.BatchNormalization(name=f'{tag}_bn')(h)
        branches.append(AxisReduce('max', axis=2, name=f'{tag}_pool')(h))
    return layers.Concatenate(axis=-1, name='frontend_concat')(branches)


@register_backend('musicnn_midend_backend')
def musicnn_midend_backend(features, n_outputs, *, n_midend_filters: int = 64,
                           n_dense_units: int = 200, dropout: float = 0.5):
    """musicnn midend (3 residual temporal convs, dense connections) + global max/mean backend.

    Parameters
    ----------
    features : KerasTensor float32 [B, T, C]
        Frontend output (C = 561 for the musicnn frontend).
    n_outputs : int
    n_midend_filters : int
        Filters of the three midend convolutions (64; 512 for MSD_musicnn_big).
    n_dense_units : int
        Penultimate dense units (200; 500 for MSD_musicnn_big).
    dropout : float
        Rate of both dropout layers (0.5).

    Returns
    -------
    KerasTensor float32 [B, n_outputs] logits.
    """
    levels = [features]
    h = features
    for i in (1, 2, 3):
        p = layers.ZeroPadding1D(3, name=f'midend_pad{i}')(h)
        c = layers.Conv1D(n_midend_filters, 7, padding='valid', activation='relu',
                          name=f'midend_conv{i}')(p)
        c = layers.BatchNormalization(name=f'midend_bn{i}')(c)
        h = c if i == 1 else layers.Add(name=f'midend_res{i}')([c, h])
        levels.append(h)
    dense = layers.Concatenate(axis=-1, name='midend_concat')(levels)             # [B, T, C + 3·64]
    mx = AxisReduce('max', axis=1, name='pool_max')(dense)
    mean = AxisReduce('mean', axis=1, name='pool_mean')(dense)
    h = layers.Flatten(name='pool_flatten')(Stack(name='pool_stack')([mx, mean]))  # [B, 2(C+192)]
    h = layers.BatchNormalization(name='pool_bn')(h)
    h = layers.Dropout(dropout, name='pool_dropout')(h)
    h = layers.Dense(n_dense_units, activation='relu', name='penultimate')(h)
    h = layers.BatchNormalization(name='penultimate_bn')(h)
    h = layers.Dropout(dropout, name='penultimate_dropout')(h)
    return layers.Dense(n_outputs, name='logits')(h)


register('musicnn', frontend='musicnn', backend='musicnn_midend_backend')

# (pool size, strides) of the five VGG blocks, time × frequency
_VGG_POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))


@register('vgg', input_kind='log-mel', default_window_seconds=3.0, fixed_frames=187)
def vgg(x, spec, n_outputs, *, n_filters: int = 128, dropout: float = 0.5, block_dropout: float = 0.25):
    """musicnn's VGG baseline: input BN, five 3×3 conv/BN/max-pool blocks, dense output.

    Parameters
    ----------
    x : KerasTensor float32 [B, T, F]
        Fixed length: T = 187, F = 96 for the published models (flatten → 2·1·128 = 256).
    spec : InputSpec
    n_outputs : int
    n_filters : int
        Filters of every conv (128).
    dropout : float
        Dropout on the flattened vector (0.5).
    block_dropout : float
        Dropout on the pooled output feeding blocks 2–5 (0.25).

    Returns
    -------
    KerasTensor float32 [B, n_outputs] logits.
    """
    frames, n_mels = x.shape[1], int(x.shape[2])
    if frames is None:
        raise ValueError("model 'vgg' needs a fixed input length (InputSpec.frames)")
    h = layers.Reshape((frames, n_mels, 1), name='expand_input')(x)
    h = layers.BatchNormalization(name='input_bn')(h)
    for i, (pool, strides) in enumerate(_VGG_POOLS, start=1):
        if i > 1:
            h = layers.Dropout(block_dropout, name=f'pool{i - 1}_dropout')(h)
        conv = MonoConv2D if i == 1 else layers.Conv2D     # block 1 sees the 1-channel input
        h = conv(n_filters, (3, 3), padding='same', activation='relu', name=f'cnn{i}')(h)
        h = layers.BatchNormalization(name=f'cnn{i}_bn')(h)
        h = layers.MaxPooling2D(pool, strides=strides, padding='valid', name=f'pool{i}')(h)
    if any(d == 0 for d in h.shape[1:]):
        raise ValueError(f"model 'vgg': input of {frames} frames × {n_mels} bins is too small")
    h = layers.Identity(name=FRONTEND_OUTPUT)(h)
    h = layers.Flatten(name='flatten')(h)
    h = layers.Dropout(dropout, name='flatten_dropout')(h)
    return layers.Dense(n_outputs, name='logits')(h)
