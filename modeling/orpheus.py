"""Orpheus = Pons et al. 2018 frontends and the dense-residual backend, time-major.

Pons, Nieto, Prockup, Schmidt, Ehmann and Serra, "End-to-end learning for music audio tagging at
scale", ISMIR 2018 (arXiv:1711.02520), as ported to TF2 by Orpheus (urop2019).

The original takes log-mel input as ``(B, F, T)`` with kernels ``freq × time``; MuseTag
spectrograms are time-major ``[B, T, F]``, so every 2-D kernel here is ``time × freq`` — the same
weights transposed, hence the same parameter counts. The backend's ``Conv2D`` with a kernel
spanning the whole feature axis (``7 × M`` on ``(B, T, M, 1)``) is written as the equivalent
``Conv1D`` (kernel 7, M input channels): identical function and parameter count, and a faster
kernel on CPU. Layer names follow the original (``conv1_spec`` … ``dense1_back``).

Deliberate differences from the original:

* ``input_norm='per_clip'`` (default) standardises each input clip inside the model
  (:class:`modeling.layers.ClipStandardization`); the original normalised in the input pipeline,
  differently in training and inference.
* ``backend_bn='per_filter'`` (default) batch-normalises the backend convolutions per filter (as
  musicnn does). ``backend_bn='scalar'`` reproduces the original transpose-then-BN, which
  normalises a size-1 axis: one γ/β/mean/variance shared by all filters of ``conv2_back`` and
  ``conv3_back``. Only ``'scalar'`` has exactly the original's parameter counts (log-mel 5,924,154;
  waveform 5,377,082 trainable for 50 outputs); ``'per_filter'`` adds
  ``2 × 2 × (n_backend_filters − 1)`` = 2,044 trainable parameters.
"""
from __future__ import annotations

import keras
from keras import layers

from .layers import AxisReduce, ClipStandardization, Stack
from .registry import HParamError, register, register_backend, register_frontend

__all__ = ['orpheus_logmel_frontend', 'orpheus_waveform_frontend', 'orpheus_dense_residual_backend']

_INPUT_NORMS = ('per_clip', 'none')
_BACKEND_BNS = ('per_filter', 'scalar')


def _init():
    # Keras VarianceScaling() defaults (scale 1, fan_in, truncated normal), as in the original
    return keras.initializers.VarianceScaling()


def _check_choice(name, value, choices):
    if value not in choices:
        raise HParamError(f'hyper-parameter {name!r} must be one of {choices}, got {value!r}')


def _input_norm(x, input_norm):
    _check_choice('input_norm', input_norm, _INPUT_NORMS)
    return ClipStandardization(epsilon=1e-6, name='clip_norm')(x) if input_norm == 'per_clip' else x


@register_frontend('orpheus_logmel', input_kind='log-mel', default_window_seconds=15.0)
def orpheus_logmel_frontend(x, spec, *, n_filters: int = 16, input_norm: str = 'per_clip'):
    """Pons 2018 musically motivated log-mel frontend: 6 timbral + 4 temporal convolutions.

    Parameters
    ----------
    x : KerasTensor float32 [B, T, F]
        Time-major log-mel.
    spec : InputSpec
    n_filters : int
        ``n`` of the paper's front end: timbral branches have n, 2n, 4n filters, temporal n, 2n, 4n, 8n.
    input_norm : {'per_clip', 'none'}
        Per-clip standardisation of the input (see module docstring).

    Returns
    -------
    KerasTensor float32 [B, T, 14 n + 15 n] = [B, T, 464] for n = 16.
    """
    if n_filters <= 0:
        raise HParamError(f'hyper-parameter n_filters must be positive, got {n_filters}')
    n_mels = int(x.shape[-1])
    x = _input_norm(x, input_norm)
    x4 = layers.Reshape((-1, n_mels, 1), name='expdim_spec')(x)                  # [B, T, F, 1]
    # zero-pad time so the 7- and 3-wide kernels keep T frames ('same' on time only; frequency is
    # max-pooled away right after, so it stays 'valid')
    pads = {7: layers.ZeroPadding2D(((3, 3), (0, 0)), name='pad7_spec')(x4),
            3: layers.ZeroPadding2D(((1, 1), (0, 0)), name='pad3_spec')(x4),
            1: x4}
    branches = []
    timbral = [(int(0.9 * n_mels), 7, n_filters), (int(0.9 * n_mels), 3, 2 * n_filters),
               (int(0.9 * n_mels), 1, 4 * n_filters), (int(0.4 * n_mels), 7, n_filters),
               (int(0.4 * n_mels), 3, 2 * n_filters), (int(0.4 * n_mels), 1, 4 * n_filters)]
    for i, (k_freq, k_time, filters) in enumerate(timbral, start=1):
        h = layers.Conv2D(filters, (k_time, k_freq), padding='valid', activation='relu',
                          kernel_initializer=_init(), name=f'conv{i}_spec')(pads[k_time])
        h = layers.BatchNormalization(name=f'bn{i}_spec')(h)
        branches.append(AxisReduce('max', axis=2, name=f'pool{i}_spec')(h))     # [B, T, filters]
    # temporal branch on the frequency-averaged energy envelope
    env = AxisReduce('mean', axis=2, keepdims=True, name='avgpool_spec')(x)       # [B, T, 1]
    temporal = [(165, n_filters), (128, 2 * n_filters), (64, 4 * n_filters), (32, 8 * n_filters)]
    for i, (k_time, filters) in enumerate(temporal, start=7):
        h = layers.Conv1D(filters, k_time, padding='same', activation='relu',
                          kernel_initializer=_init(), name=f'conv{i}_spec')(env)
        branches.append(layers.BatchNormalization(name=f'bn{i}_spec')(h))
    return layers.Concatenate(axis=-1, name='concat_spec')(branches)


@register_frontend('orpheus_waveform', input_kind='waveform', default_window_seconds=15.0)
def orpheus_waveform_frontend(x, spec, *, input_norm: str = 'per_clip'):
    """Sample-level waveform frontend (Lee et al.): strided conv + six conv/BN/max-pool blocks.

    Parameters
    ----------
    x : KerasTensor float32 [B, n_samples]
    spec : InputSpec
    input_norm : {'per_clip', 'none'}

    Returns
    -------
    KerasTensor float32 [B, T', 256]; T' = 108 for 240,000 samples (15 s at 16 kHz).
    """
    x = _input_norm(x, input_norm)
    h = layers.Reshape((-1, 1), name='expdim1_wave')(x)
    h = layers.Conv1D(64, 3, strides=3, padding='valid', activation='relu',
                      kernel_initializer=_init(), name='conv0_wave')(h)
    h = layers.BatchNormalization(name='bn0_wave')(h)
    for i, filters in enumerate((64, 64, 128, 128, 128, 256), start=1):
        h = layers.Conv1D(filters, 3, padding='valid', activation='relu',
                          kernel_initializer=_init(), name=f'conv{i}_wave')(h)
        h = layers.BatchNormalization(name=f'bn{i}_wave')(h)
        h = layers.MaxPooling1D(3, strides=3, name=f'pool{i}_wave')(h)
    return h


def waveform_frames(n_samples: int) -> int:
    """Frames T' out of :func:`orpheus_waveform_frontend` for ``n_samples`` input samples."""
    length = n_samples // 3
    for _ in range(6):
        length = max(length - 2, 0) // 3
    return length


def _backend_bn(h, name, mode, n_filters):
    if mode == 'per_filter':
        return layers.BatchNormalization(name=name)(h)
    # the original: transpose to (B, T, filters, 1), then BN on the last (size-1) axis
    h = layers.Reshape((-1, n_filters, 1), name=f'{name}_perm')(h)
    h = layers.BatchNormalization(name=name)(h)
    return layers.Reshape((-1, n_filters), name=f'{name}_unperm')(h)


@register_backend('orpheus_dense_residual')
def orpheus_dense_residual_backend(features, n_outputs, *, n_backend_filters: int = 512,
                                   n_dense_units: int = 500, backend_bn: str = 'per_filter',
                                   dropout: float = 0.5):
    """Pons 2018 backend: 3 residual temporal convolutions, max+mean pooling, dense layers.

    Parameters
    ----------
    features : KerasTensor float32 [B, T, M]
        Frontend output; needs T ≥ 8 (two valid frames after the 7-wide conv for the 2× pool).
    n_outputs : int
    n_backend_filters : int
        Filters of the three backend convolutions (512).
    n_dense_units : int
        Units of the penultimate dense layer (500).
    backend_bn : {'per_filter', 'scalar'}
        BN of conv2/conv3: per filter (default) or the original single scalar (see the module docstring).
    dropout : float
        Rate of the two dropout layers (0.5).

    Returns
    -------
    KerasTensor float32 [B, n_outputs] logits.
    """
    _check_choice('backend_bn', backend_bn, _BACKEND_BNS)
    nb = int(n_backend_filters)
    h1 = layers.Conv1D(nb, 7, padding='valid', activation='relu', kernel_initializer=_init(),
                       name='conv1_back')(features)                                # [B, T-6, nb]
    h1 = layers.BatchNormalization(name='bn1_back')(h1)                            # per filter, as the original
    h = layers.ZeroPadding1D(3, name='pad3_1_back')(h1)
    h = layers.Conv1D(nb, 7, padding='valid', activation='relu', kernel_initializer=_init(),
                      name='conv2_back')(h)
    h = _backend_bn(h, 'bn2_back', backend_bn, nb)
    res2 = layers.Add(name='add1_back')([h, h1])
    pooled = layers.MaxPooling1D(2, strides=2, name='pool1_back')(res2)           # [B, (T-6)//2, nb]
    h = layers.ZeroPadding1D(3, name='pad3_2_back')(pooled)
    h = layers.Conv1D(nb, 7, padding='valid', activation='relu', kernel_initializer=_init(),
                      name='conv3_back')(h)
    h = _backend_bn(h, 'bn3_back', backend_bn, nb)
    res3 = layers.Add(name='add2_back')([h, pooled])
    mx = AxisReduce('max', axis=1, name='glo_max_back')(res3)
    mean = AxisReduce('mean', axis=1, name='moment_back')(res3)                   # variance discarded
    h = layers.Flatten(name='flatten_back')(Stack(name='concat_back')([mx, mean]))  # [max_k, mean_k, …]
    h = layers.Dropout(dropout, name='drop1_back')(h)
    h = layers.Dense(n_dense_units, activation='relu', kernel_initializer=_init(), name='dense1_back')(h)
    h = layers.BatchNormalization(name='bn_dense_back')(h)
    h = layers.Dropout(dropout, name='drop2_back')(h)
    return layers.Dense(n_outputs, kernel_initializer=_init(), name='dense2_back')(h)


register('orpheus_logmel', frontend='orpheus_logmel', backend='orpheus_dense_residual')
register('orpheus_waveform', frontend='orpheus_waveform', backend='orpheus_dense_residual')
