"""The from-scratch taggers of Won et al. 2020 in Keras 3, layer for layer as published in PyTorch.

Reference: M. Won, A. Ferraro, D. Bogdanov, X. Serra, "Evaluation of CNN-based automatic music
tagging models", SMC 2020, code https://github.com/minzwon/sota-music-tagging-models
(``training/model.py``, ``training/modules.py``). Registered models (frontend + backend):

==============  ==============================================  ===============  ====================
model           architecture                                    input (16 kHz)   backend
==============  ==============================================  ===============  ====================
``fcn``         Choi et al. 2016, fully convolutional           464,000 (29 s)   ``dense``
``crnn``        Choi et al. 2017, CNN + 2-layer GRU             464,000 (29 s)   ``gru``
``sample``      Lee et al. 2017, sample-level CNN               59,049           ``dense``
``se``          Kim et al. 2018, sample-level + residual + SE   59,049           ``dense_bn``
``short``       short-chunk CNN (VGG-ish, 3×3 convs, 2×2 pool)  59,049           ``dense_bn``
``short_res``   short-chunk ResNet                              59,049           ``dense_bn``
``hcnn``        Won et al. 2020, harmonic CNN                   80,000 (5 s)     ``dense_bn``
``attention``   Won et al. 2019, CNN + self-attention (CNNSA)   240,000 (15 s)   ``self_attention``
==============  ==============================================  ===============  ====================

Every model takes the raw waveform ``[B, n_samples]`` at 16 kHz (``InputSpec(kind='waveform',
sr=16000, samples=…)``) and computes its own spectrogram in the graph, as the reference does:
:class:`preprocessing.tf_frontend.TorchMelSpectrogram` (n_fft 512, hop 256, HTK mel 0–8 kHz,
96 bands for fcn/crnn and 128 for the short-chunk models and CNNSA, ``10·log10``) or
:class:`preprocessing.tf_frontend.HarmonicSpectrogram` (hcnn). Conventions carried over from PyTorch
so that shapes and parameter counts equal the reference's (``docs/models.md`` lists both):

* layout: the reference's ``[B, C, F, T]`` is ``[B, T, F, C]`` here (time-major, channels last);
  the frontend output is the time sequence ``[B, T', C]`` once the frequency axis is pooled to 1;
* ``padding=k//2``: 'same' for stride 1, an explicit zero padding + 'valid' for strides > 1 (TF's
  'same' would pad asymmetrically); ``MaxPool`` floors (Keras 'valid' pooling);
* BatchNorm ε = 1e-5, moving-average momentum 0.9 (PyTorch's momentum 0.1); γ and β trainable;
* PyTorch's default initialisation: kernels and biases uniform in ±1/√fan_in (convolutions,
  linear layers), GRU weights uniform in ±1/√units;
* the GRU is PyTorch's (reset gate applied after the recurrent matmul, two bias vectors): Keras
  ``GRU(reset_after=True)`` with the same parameter count.

Window checks: ``fcn``, ``sample`` and ``se`` end in a layer that needs the time axis pooled to
exactly one step (as the reference's ``view``/``squeeze`` + ``Linear`` do), so a window outside
their range raises ValueError naming the reference length; ``crnn``, ``short``, ``short_res`` and
``hcnn`` take any window long enough to survive their poolings (global max / last GRU step).
"""
from __future__ import annotations

import math

import keras
from keras import layers

from .layers import AxisReduce, PrependToken
from .registry import register, register_backend, register_frontend

__all__ = ['fcn_frontend', 'crnn_frontend', 'sample_frontend', 'se_frontend', 'short_frontend',
           'short_res_frontend', 'hcnn_frontend', 'attention_frontend', 'dense_backend', 'dense_bn_backend',
           'gru_backend', 'self_attention_backend',
           'REFERENCE_SAMPLES', 'MIN_SAMPLES']

SR = 16000

#: Input length (samples at 16 kHz) each reference model is trained on (``training/main.py``).
REFERENCE_SAMPLES = {'fcn': 29 * SR, 'crnn': 29 * SR, 'sample': 59049, 'se': 59049, 'short': 59049,
                     'short_res': 59049, 'hcnn': 80000, 'attention': 15 * SR}

#: Shortest input (samples) each frontend's poolings survive: mel frames ≥ the product of the time pools
#: (frames = 1 + samples // 256), for the sample-level CNNs 3¹⁰ − 2 samples (stride 3, then 9 pools of 3).
MIN_SAMPLES = {'fcn': (4 * 4 * 4 * 5 * 4 - 1) * 256, 'crnn': (2 * 3 * 4 * 4 - 1) * 256, 'short': (2 ** 7 - 1) * 256,
               'short_res': 257, 'hcnn': (2 ** 5 * 3 * 3 - 1) * 256, 'sample': 3 * (3 ** 9 - 1) + 1,
               'se': 3 * (3 ** 9 - 1) + 1, 'attention': 257}

_BN = {'epsilon': 1e-5, 'momentum': 0.9}


def _uniform(bound: float):
    return keras.initializers.RandomUniform(-bound, bound)


def _torch_init(fan_in: int) -> dict:
    """Kernel and bias initialisers of a PyTorch Conv/Linear with ``fan_in`` inputs (±1/√fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)
    return {'kernel_initializer': _uniform(bound), 'bias_initializer': _uniform(bound)}


def _channels(x) -> int:
    return int(x.shape[-1])


def _linear(x, units: int, name: str):
    """``nn.Linear(in, units)``."""
    return layers.Dense(units, name=name, **_torch_init(_channels(x)))(x)


def _bn(x, name: str):
    return layers.BatchNormalization(name=name, **_BN)(x)


def _conv2d(x, filters: int, stride, name: str, kernel: int = 3):
    """``nn.Conv2d(in, filters, kernel, stride, padding=kernel//2)`` on ``[B, T, F, C]``.

    ``stride``: an int, or the reference's ``(freq, time)`` pair.
    """
    init = _torch_init(_channels(x) * kernel * kernel)
    if stride == 1:
        return layers.Conv2D(filters, kernel, padding='same', name=name, **init)(x)
    f, t = (stride, stride) if isinstance(stride, int) else stride
    x = layers.ZeroPadding2D(kernel // 2, name=f'{name}_pad')(x)
    return layers.Conv2D(filters, kernel, strides=(t, f), padding='valid', name=name, **init)(x)


def _conv1d(x, filters: int, kernel: int, stride: int, name: str):
    """``nn.Conv1d(in, filters, kernel, stride, padding=kernel//2)`` on ``[B, T, C]``."""
    init = _torch_init(_channels(x) * kernel)
    if stride == 1 and kernel % 2 == 1:
        return layers.Conv1D(filters, kernel, padding='same', name=name, **init)(x)
    if kernel // 2:
        x = layers.ZeroPadding1D(kernel // 2, name=f'{name}_pad')(x)
    return layers.Conv1D(filters, kernel, strides=stride, padding='valid', name=name, **init)(x)


def _pool2d(x, pool, name: str):
    """``nn.MaxPool2d(pool)`` with the reference's ``(freq, time)`` pool on ``[B, T, F, C]``."""
    f, t = (pool, pool) if isinstance(pool, int) else pool
    return layers.MaxPooling2D((t, f), name=name)(x)


def conv_2d(x, filters: int, pool, name: str):
    """Reference ``Conv_2d``: 3×3 conv, BN, ReLU, max pool ``pool`` (freq, time)."""
    h = _conv2d(x, filters, 1, f'{name}_conv')
    h = layers.ReLU(name=f'{name}_relu')(_bn(h, f'{name}_bn'))
    return _pool2d(h, pool, f'{name}_pool')


def res_2d(x, filters: int, stride, name: str):
    """Reference ``Res_2d``: conv-BN-ReLU-conv-BN, + (3×3 strided conv-BN projection when the shape
    changes), ReLU. Output ``ceil(T / stride) × ceil(F / stride)``."""
    h = _conv2d(x, filters, stride, f'{name}_conv1')
    h = layers.ReLU(name=f'{name}_relu1')(_bn(h, f'{name}_bn1'))
    h = _bn(_conv2d(h, filters, 1, f'{name}_conv2'), f'{name}_bn2')
    if stride != 1 or _channels(x) != filters:
        x = _bn(_conv2d(x, filters, stride, f'{name}_conv3'), f'{name}_bn3')
    return layers.ReLU(name=f'{name}_relu')(layers.Add(name=f'{name}_add')([x, h]))


def res_2d_mp(x, pool, name: str):
    """Reference ``Res_2d_mp``: conv-BN-ReLU-conv-BN + identity, ReLU, max pool (same channels)."""
    filters = _channels(x)
    h = _conv2d(x, filters, 1, f'{name}_conv1')
    h = layers.ReLU(name=f'{name}_relu1')(_bn(h, f'{name}_bn1'))
    h = _bn(_conv2d(h, filters, 1, f'{name}_conv2'), f'{name}_bn2')
    h = layers.ReLU(name=f'{name}_relu')(layers.Add(name=f'{name}_add')([x, h]))
    return _pool2d(h, pool, f'{name}_pool')


def conv_1d(x, filters: int, kernel: int, stride: int, pool: int, name: str):
    """Reference ``Conv_1d``: conv (padding k//2), BN, ReLU, max pool."""
    h = _conv1d(x, filters, kernel, stride, f'{name}_conv')
    h = layers.ReLU(name=f'{name}_relu')(_bn(h, f'{name}_bn'))
    return layers.MaxPooling1D(pool, name=f'{name}_pool')(h) if pool > 1 else h


def res_se_1d(x, filters: int, kernel: int, stride: int, pool: int, name: str):
    """Reference ``ResSE_1d``: conv-BN-ReLU-conv-BN, squeeze-and-excitation (time mean, Linear+ReLU,
    Linear+sigmoid, channel scaling), + (projection when the shape changes), ReLU, max pool."""
    h = _conv1d(x, filters, kernel, stride, f'{name}_conv1')
    h = layers.ReLU(name=f'{name}_relu1')(_bn(h, f'{name}_bn1'))
    h = _bn(_conv1d(h, filters, kernel, 1, f'{name}_conv2'), f'{name}_bn2')
    s = AxisReduce('mean', axis=1, keepdims=True, name=f'{name}_squeeze')(h)          # [B, 1, C]
    s = layers.ReLU(name=f'{name}_se_relu')(_linear(s, filters, f'{name}_se_dense1'))
    s = layers.Activation('sigmoid', name=f'{name}_se_sigmoid')(_linear(s, filters, f'{name}_se_dense2'))
    h = layers.Multiply(name=f'{name}_excite')([h, s])
    if stride != 1 or _channels(x) != filters:
        x = _bn(_conv1d(x, filters, kernel, stride, f'{name}_conv3'), f'{name}_bn3')
    h = layers.ReLU(name=f'{name}_relu')(layers.Add(name=f'{name}_add')([x, h]))
    return layers.MaxPooling1D(pool, name=f'{name}_pool')(h) if pool > 1 else h


def _check_waveform(model: str, spec):
    """16 kHz input, and a window (when fixed) at least :data:`MIN_SAMPLES` long."""
    if spec.sr != SR:
        raise ValueError(f'model {model!r} is defined on {SR} Hz audio (its spectrogram and pooling '
                         f'sizes), got sr={spec.sr}')
    if spec.samples is not None and spec.samples < MIN_SAMPLES[model]:
        ref = REFERENCE_SAMPLES[model]
        raise ValueError(f'model {model!r} needs windows of at least {MIN_SAMPLES[model]} samples to survive '
                         f'its poolings (the reference uses {ref} samples = {ref / SR:g} s at {SR} Hz); '
                         f'got {spec.samples}: set input.window_seconds accordingly')


def _mel_input(x, spec, model: str, n_mels: int):
    """Reference spectrogram + ``spec_bn``: waveform [B, n] -> normalised dB mel [B, T, n_mels, 1]."""
    from preprocessing.tf_frontend import TorchMelSpectrogram
    _check_waveform(model, spec)
    mel = TorchMelSpectrogram(sr=SR, n_fft=512, n_mels=n_mels, fmin=0.0, fmax=SR / 2, dtype='float32',
                              name='mel_spectrogram')(x)
    mel = layers.Reshape((-1, n_mels, 1), name='expand_mel')(mel)
    return _bn(mel, 'spec_bn')


def _to_sequence(h, model: str, spec):
    """``[B, T', 1, C]`` (frequency pooled away) -> ``[B, T', C]``."""
    if h.shape[2] != 1:
        raise ValueError(f'model {model!r}: the frequency axis pools to {h.shape[2]} bins, not 1')
    return layers.Reshape((-1, _channels(h)), name='squeeze_frequency')(h)


def _require_one_step(h, model: str, spec):
    """The reference flattens the last feature map into a ``Linear``: the time axis must pool to 1."""
    steps = h.shape[1]
    if steps != 1:
        ref = REFERENCE_SAMPLES[model]
        raise ValueError(f'model {model!r} needs a window whose time axis pools to exactly 1 step '
                         f'(the reference uses {ref} samples = {ref / SR:g} s at {SR} Hz); '
                         f'{spec.samples} samples give {steps}: set input.window_seconds accordingly')


def _check_channels(value: int, key: str = 'n_channels'):
    if not isinstance(value, int) or value < 2:
        raise ValueError(f'{key} must be an integer >= 2, got {value!r}')


@register_frontend('fcn', input_kind='waveform', default_window_seconds=29.0)
def fcn_frontend(x, spec, *, n_channels: int = 128):
    """FCN (Choi et al. 2016): 96-band dB mel, BN, 5 × (3×3 conv, BN, ReLU, max pool).

    Parameters
    ----------
    x : KerasTensor float32 [B, n_samples], 16 kHz (reference: 464,000 = 29 s).
    n_channels : int
        Width: the five convolutions have n/2, n, n, n, n/2 filters (reference 64, 128, 128, 128, 64).

    Returns
    -------
    KerasTensor float32 [B, 1, n/2]: pools (freq × time) 2×4, 2×4, 2×4, 3×5, 4×4 take
    96 × 1813 to 1 × 1.
    """
    _check_channels(n_channels)
    h = _mel_input(x, spec, 'fcn', 96)
    widths = (n_channels // 2, n_channels, n_channels, n_channels, n_channels // 2)
    for i, (w, pool) in enumerate(zip(widths, ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))), start=1):
        h = conv_2d(h, w, pool, f'fcn_layer{i}')
    h = _to_sequence(h, 'fcn', spec)
    _require_one_step(h, 'fcn', spec)
    return h


@register_frontend('crnn', input_kind='waveform', default_window_seconds=29.0)
def crnn_frontend(x, spec, *, n_channels: int = 128):
    """CRNN's CNN (Choi et al. 2017): 96-band dB mel, BN, 4 × (3×3 conv, BN, ReLU, max pool).

    Parameters
    ----------
    x : KerasTensor float32 [B, n_samples], 16 kHz (reference: 464,000 = 29 s).
    n_channels : int
        Width: n/2, n, n, n filters (reference 64, 128, 128, 128).

    Returns
    -------
    KerasTensor float32 [B, T', n]: pools 2×2, 3×3, 4×4, 4×4 take 96 × 1813 to 1 × 18.
    """
    _check_channels(n_channels)
    h = _mel_input(x, spec, 'crnn', 96)
    widths = (n_channels // 2, n_channels, n_channels, n_channels)
    for i, (w, pool) in enumerate(zip(widths, (2, 3, 4, 4)), start=1):
        h = conv_2d(h, w, pool, f'crnn_layer{i}')
    return _to_sequence(h, 'crnn', spec)


def _sample_level(x, spec, model: str, block, n_channels: int):
    """The 11 blocks of the sample-level CNNs: 3/3 strided conv, 9 × (conv 3, pool 3), conv 1."""
    _check_waveform(model, spec)
    _check_channels(n_channels)
    n = n_channels
    h = layers.Reshape((-1, 1), name='expand_waveform')(x)
    h = block(h, n, 3, 3, 1, f'{model}_layer1')
    widths = (n, n, 2 * n, 2 * n, 2 * n, 2 * n, 2 * n, 2 * n, 4 * n)
    for i, w in enumerate(widths, start=2):
        h = block(h, w, 3, 1, 3, f'{model}_layer{i}')
    h = block(h, 4 * n, 1, 1, 1, f'{model}_layer11')
    _require_one_step(h, model, spec)
    return h


@register_frontend('sample', input_kind='waveform', default_window_seconds=59049 / SR)
def sample_frontend(x, spec, *, n_channels: int = 128):
    """Sample-level CNN (Lee et al. 2017): 11 × (conv, BN, ReLU, max pool) on the raw waveform.

    ``x``: float32 [B, n_samples] at 16 kHz (reference 59,049 = 3¹⁰); ``n_channels``: width n, the
    blocks have n, n, n, 2n × 6, 4n, 4n filters (reference 128 … 512). Returns float32 [B, 1, 4n].
    """
    return _sample_level(x, spec, 'sample', conv_1d, n_channels)


@register_frontend('se', input_kind='waveform', default_window_seconds=59049 / SR)
def se_frontend(x, spec, *, n_channels: int = 128):
    """Sample-level CNN with residual squeeze-and-excitation blocks (Kim et al. 2018).

    Input, width and output as ``sample``; each block is a ``res_se_1d``.
    """
    return _sample_level(x, spec, 'se', res_se_1d, n_channels)


def _short_chunk(x, spec, model: str, block, n_channels: int):
    """The short-chunk stack: 128-band dB mel, BN, 7 blocks of widths n, n, 2n, 2n, 2n, 2n, 4n."""
    _check_channels(n_channels)
    n = n_channels
    h = _mel_input(x, spec, model, 128)
    for i, w in enumerate((n, n, 2 * n, 2 * n, 2 * n, 2 * n, 4 * n), start=1):
        h = block(h, w, f'{model}_layer{i}')
    return _to_sequence(h, model, spec)


@register_frontend('short', input_kind='waveform', default_window_seconds=59049 / SR)
def short_frontend(x, spec, *, n_channels: int = 128):
    """Short-chunk CNN: 128-band dB mel, BN, 7 × (3×3 conv, BN, ReLU, 2×2 max pool).

    ``x``: float32 [B, n_samples] at 16 kHz (reference 59,049 ≈ 3.69 s); ``n_channels``: width n
    (reference 128). Returns float32 [B, T', 4n]; 128 × 231 pools to 1 × 1.
    """
    return _short_chunk(x, spec, 'short', lambda h, w, name: conv_2d(h, w, 2, name), n_channels)


@register_frontend('short_res', input_kind='waveform', default_window_seconds=59049 / SR)
def short_res_frontend(x, spec, *, n_channels: int = 128):
    """Short-chunk ResNet: 128-band dB mel, BN, 7 residual blocks of stride 2.

    ``x``: float32 [B, n_samples] at 16 kHz (reference 59,049 ≈ 3.69 s); ``n_channels``: width n
    (reference 128). Returns float32 [B, T', 4n]; 128 × 231 strides to 1 × 2 (ceil at each stride).
    """
    return _short_chunk(x, spec, 'short_res', lambda h, w, name: res_2d(h, w, 2, name), n_channels)


@register_frontend('hcnn', input_kind='waveform', default_window_seconds=5.0)
def hcnn_frontend(x, spec, *, n_channels: int = 128, n_harmonic: int = 6, semitone_scale: int = 2,
                  learn_bw: bool = True):
    """Harmonic CNN (Won et al. 2020): learnable harmonic filterbank, BN, 7 conv/residual blocks.

    Parameters
    ----------
    x : KerasTensor float32 [B, n_samples], 16 kHz (reference: 80,000 = 5 s).
    n_channels : int
        Width: n for blocks 1–4, 2n for blocks 5–7 (reference n = 128).
    n_harmonic : int
        Harmonics stacked as input channels (reference 6).
    semitone_scale : int
        Fundamentals per semitone (reference 2: 128 bands from C1).
    learn_bw : bool
        Learn the bandwidth factor Q (reference ``'only_Q'``: one trainable scalar).

    Returns
    -------
    KerasTensor float32 [B, T', 2n]: 128 × 313 pools to 1 × 1 (pools 2×2 × 5, then 2×3 twice,
    freq × time).
    """
    from preprocessing.tf_frontend import HarmonicSpectrogram
    _check_waveform('hcnn', spec)
    _check_channels(n_channels)
    h = HarmonicSpectrogram(sr=SR, n_fft=512, n_harmonic=n_harmonic, semitone_scale=semitone_scale,
                            learn_bw=learn_bw, dtype='float32', name='harmonic_spectrogram')(x)
    h = _bn(h, 'hstft_bn')
    n = n_channels
    h = conv_2d(h, n, 2, 'hcnn_layer1')
    for i in (2, 3, 4):
        h = res_2d_mp(h, 2, f'hcnn_layer{i}')
    h = conv_2d(h, 2 * n, 2, 'hcnn_layer5')
    for i in (6, 7):
        h = res_2d_mp(h, (2, 3), f'hcnn_layer{i}')
    return _to_sequence(h, 'hcnn', spec)


@register_frontend('attention', input_kind='waveform', default_window_seconds=15.0)
def attention_frontend(x, spec, *, n_channels: int = 128):
    """CNNSA's CNN (Won et al. 2019): 128-band dB mel, BN, 3 residual blocks of stride 2, then 4 of
    stride 2 in frequency only.

    ``x``: float32 [B, n_samples] at 16 kHz (reference 240,000 = 15 s); ``n_channels``: width n, the
    blocks have n, n, 2n, 2n × 4 filters (reference 128). Returns float32 [B, T', 2n]: 128 × 938
    strides to 1 × 118.
    """
    _check_channels(n_channels)
    n = n_channels
    h = _mel_input(x, spec, 'attention', 128)
    plan = [(n, 2), (n, 2), (2 * n, 2)] + [(2 * n, (2, 1))] * 4
    for i, (w, stride) in enumerate(plan, start=1):
        h = res_2d(h, w, stride, f'attention_layer{i}')
    return _to_sequence(h, 'attention', spec)


def _encoder_layer(h, n_heads: int, intermediate: int, hidden_dropout: float, attention_dropout: float, name: str):
    """One BERT encoder layer (post-norm): self-attention, dropout, LayerNorm(residual); GELU MLP,
    dropout, LayerNorm(residual). LayerNorm ε 1e-12, exact (erf) GELU, as the reference."""
    c = _channels(h)
    init = _torch_init(c)
    a = layers.MultiHeadAttention(n_heads, c // n_heads, dropout=attention_dropout, name=f'{name}_attention',
                                  **init)(h, h)
    a = layers.Dropout(hidden_dropout, name=f'{name}_attention_dropout')(a)
    a = layers.LayerNormalization(epsilon=1e-12, name=f'{name}_attention_norm')(layers.Add(name=f'{name}_add1')([a, h]))
    m = layers.Dense(intermediate, name=f'{name}_intermediate', **init)(a)
    m = layers.Activation('gelu', name=f'{name}_gelu')(m)                  # Keras: exact (erf) by default
    m = layers.Dense(c, name=f'{name}_output', **_torch_init(intermediate))(m)
    m = layers.Dropout(hidden_dropout, name=f'{name}_output_dropout')(m)
    return layers.LayerNormalization(epsilon=1e-12, name=f'{name}_output_norm')(layers.Add(name=f'{name}_add2')([m, a]))


@register_backend('dense')
def dense_backend(features, n_outputs, *, dropout: float = 0.5):
    """Dropout + one linear layer on a single-step feature sequence (FCN, sample-level CNN).

    Parameters
    ----------
    features : KerasTensor float32 [B, 1, C]
    dropout : float
        Dropout rate before the output layer (reference 0.5).

    Returns
    -------
    KerasTensor float32 [B, n_outputs] logits.
    """
    if features.shape[1] != 1:
        raise ValueError(f"backend 'dense' needs a single-step feature sequence, got {features.shape[1]} steps")
    h = layers.Reshape((_channels(features),), name='flatten_features')(features)
    h = layers.Dropout(dropout, name='dropout')(h)
    return _linear(h, n_outputs, 'logits')


@register_backend('dense_bn')
def dense_bn_backend(features, n_outputs, *, dropout: float = 0.5):
    """Global max over time, Linear(C, C), BN, ReLU, dropout, Linear(C, n_outputs).

    The head of the short-chunk CNN/ResNet, harmonic CNN and sample-level SE CNN (a max over one
    step is the identity, the reference's squeeze).

    Parameters
    ----------
    features : KerasTensor float32 [B, T', C]
    dropout : float
        Dropout rate before the output layer (reference 0.5).

    Returns
    -------
    KerasTensor float32 [B, n_outputs] logits.
    """
    c = _channels(features)
    h = AxisReduce('max', axis=1, name='global_max')(features)
    h = layers.ReLU(name='dense1_relu')(_bn(_linear(h, c, 'dense1'), 'dense1_bn'))
    h = layers.Dropout(dropout, name='dropout')(h)
    return _linear(h, n_outputs, 'logits')


@register_backend('gru')
def gru_backend(features, n_outputs, *, n_units: int = 32, n_layers: int = 2, dropout: float = 0.5):
    """Stacked GRU over time, its last step, dropout, linear (CRNN, Choi et al. 2017).

    PyTorch's ``nn.GRU(C, n_units, n_layers, batch_first=True)`` (reset gate after the recurrent
    matmul, input and recurrent biases) = Keras ``GRU(reset_after=True)``; weights uniform in
    ±1/√n_units as PyTorch initialises them.

    Parameters
    ----------
    features : KerasTensor float32 [B, T', C]
    n_units, n_layers : int
        GRU width and depth (reference 32, 2).
    dropout : float
        Dropout rate before the output layer (reference 0.5).

    Returns
    -------
    KerasTensor float32 [B, n_outputs] logits.
    """
    if not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f'n_layers must be a positive integer, got {n_layers!r}')
    bound = 1.0 / math.sqrt(n_units)
    h = features
    for i in range(1, n_layers + 1):
        h = layers.GRU(n_units, return_sequences=i < n_layers, reset_after=True, name=f'gru{i}',
                       kernel_initializer=_uniform(bound), recurrent_initializer=_uniform(bound),
                       bias_initializer=_uniform(bound))(h)
    h = layers.Dropout(dropout, name='dropout')(h)
    return _linear(h, n_outputs, 'logits')


@register_backend('self_attention')
def self_attention_backend(features, n_outputs, *, n_layers: int = 2, n_heads: int = 8, intermediate: int = 1024,
                           hidden_dropout: float = 0.4, attention_dropout: float = 0.5, dropout: float = 0.5):
    """CNNSA's head: a fixed [CLS] vector prepended, a BERT encoder, the pooled [CLS] step, linear.

    As the reference: no position embedding; the [CLS] vector is drawn once from NumPy's legacy
    generator with seed 0 (:class:`modeling.layers.PrependToken`, not trained); the pooler is
    ``tanh(Linear(C, C))`` of the [CLS] step.

    Parameters
    ----------
    features : KerasTensor float32 [B, T', C] (C divisible by ``n_heads``; reference C = 256).
    n_layers, n_heads, intermediate : int
        Encoder depth, attention heads, MLP width (reference 2, 8, 1024).
    hidden_dropout, attention_dropout : float
        Dropout after attention and MLP, and on the attention weights (reference 0.4, 0.5).
    dropout : float
        Dropout before the output layer (reference 0.5).

    Returns
    -------
    KerasTensor float32 [B, n_outputs] logits.
    """
    c = _channels(features)
    if not isinstance(n_heads, int) or n_heads < 1 or c % n_heads:
        raise ValueError(f'n_heads must divide the feature width {c}, got {n_heads!r}')
    h = PrependToken(seed=0, name='cls_token')(features)                       # [B, 1 + T', C]
    for i in range(1, n_layers + 1):
        h = _encoder_layer(h, n_heads, intermediate, hidden_dropout, attention_dropout, f'encoder{i}')
    cls = h[:, 0, :]                                                            # the [CLS] step [B, C]
    pooled = layers.Dense(c, activation='tanh', name='pooler', **_torch_init(c))(cls)
    pooled = layers.Dropout(dropout, name='dropout')(pooled)
    return _linear(pooled, n_outputs, 'logits')


register('fcn', frontend='fcn', backend='dense')
register('crnn', frontend='crnn', backend='gru')
register('sample', frontend='sample', backend='dense')
register('se', frontend='se', backend='dense_bn')
register('short', frontend='short', backend='dense_bn')
register('short_res', frontend='short_res', backend='dense_bn')
register('hcnn', frontend='hcnn', backend='dense_bn')
register('attention', frontend='attention', backend='self_attention')
