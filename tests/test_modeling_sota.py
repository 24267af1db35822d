"""The Won et al. 2020 taggers (modeling/sota.py): parameter counts and shapes equal to the PyTorch
reference (minzwon/sota-music-tagging-models), sigmoid outputs, a learning step, window checks,
save/load and building under MirroredStrategy."""
from __future__ import annotations

import numpy as np
import pytest

import keras
import tensorflow as tf

import modeling
from modeling import InputSpec, build_model
from modeling.sota import REFERENCE_SAMPLES

MODELS = sorted(REFERENCE_SAMPLES)

# Trainable parameters for 50 tags as stated in docs/models.md (PyTorch conv/linear biases, BN γ/β, GRU's
# two bias vectors, hcnn's learnable Q); ``reference_params`` recomputes them from the reference modules.
DOCUMENTED = {'fcn': 447_732, 'crnn': 394_100, 'sample': 1_869_874, 'se': 6_951_858, 'short': 3_687_348,
              'short_res': 12_104_244, 'hcnn': 3_631_551, 'attention': 10_521_652}


def spec_for(name, samples=None):
    return InputSpec(kind='waveform', sr=16000, samples=samples or REFERENCE_SAMPLES[name])


def n_trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


# ------------------------------------------------------------------------------------------------
# the reference, restated: parameter counts of the PyTorch modules (training/modules.py, model.py)
# ------------------------------------------------------------------------------------------------
def _conv(i, o, k):          # nn.Conv1d/2d(i, o, k) with bias; k = kernel size product
    return i * o * k + o


def _bn(c):                  # nn.BatchNorm*(c): weight + bias (running stats are buffers)
    return 2 * c


def _linear(i, o):
    return i * o + o


def _gru(i, h, n_layers):    # nn.GRU: 3 gates × (W_ih, W_hh, b_ih, b_hh) per layer
    total = 0
    for _ in range(n_layers):
        total += 3 * (h * i + h * h + 2 * h)
        i = h
    return total


def _conv_2d(i, o):          # Conv_2d: conv 3×3 + BN
    return _conv(i, o, 9) + _bn(o)


def _res_2d(i, o, stride):   # Res_2d: 2 × (conv 3×3 + BN) + projection when the shape changes
    return 2 * _bn(o) + _conv(i, o, 9) + _conv(o, o, 9) + (_conv(i, o, 9) + _bn(o) if stride != 1 or i != o else 0)


def _res_2d_mp(c):           # Res_2d_mp: 2 × (conv 3×3 + BN), identity shortcut
    return 2 * (_conv(c, c, 9) + _bn(c))


_SAMPLE_BLOCKS = [(1, 128, 3, 3), (128, 128, 3, 1), (128, 128, 3, 1), (128, 256, 3, 1)] + [(256, 256, 3, 1)] * 5 \
    + [(256, 512, 3, 1), (512, 512, 1, 1)]


def _res_se_1d(i, o, k, stride):
    return (_conv(i, o, k) + _bn(o) + _conv(o, o, k) + _bn(o) + 2 * _linear(o, o)
            + (_conv(i, o, k) + _bn(o) if stride != 1 or i != o else 0))


def reference_params(name, n_class=50):
    head512 = _linear(512, 512) + _bn(512) + _linear(512, n_class)
    if name == 'fcn':
        return (_bn(1) + _conv_2d(1, 64) + _conv_2d(64, 128) + 2 * _conv_2d(128, 128) + _conv_2d(128, 64)
                + _linear(64, n_class))
    if name == 'crnn':
        return (_bn(1) + _conv_2d(1, 64) + _conv_2d(64, 128) + 2 * _conv_2d(128, 128) + _gru(128, 32, 2)
                + _linear(32, n_class))
    if name == 'sample':
        return sum(_conv(i, o, k) + _bn(o) for i, o, k, _ in _SAMPLE_BLOCKS) + _linear(512, n_class)
    if name == 'se':
        return sum(_res_se_1d(*b) for b in _SAMPLE_BLOCKS) + head512
    if name == 'short':
        return (_bn(1) + _conv_2d(1, 128) + _conv_2d(128, 128) + _conv_2d(128, 256) + 3 * _conv_2d(256, 256)
                + _conv_2d(256, 512) + head512)
    if name == 'short_res':
        return (_bn(1) + _res_2d(1, 128, 2) + _res_2d(128, 128, 2) + _res_2d(128, 256, 2) + 3 * _res_2d(256, 256, 2)
                + _res_2d(256, 512, 2) + head512)
    if name == 'attention':    # CNNSA: Res_2d stack + 2 BERT layers (q, k, v, out, 2 LayerNorms, MLP) + pooler
        encoder = 4 * _linear(256, 256) + 2 * _bn(256) + _linear(256, 1024) + _linear(1024, 256)
        return (_bn(1) + _res_2d(1, 128, 2) + _res_2d(128, 128, 2) + _res_2d(128, 256, 2)
                + 4 * _res_2d(256, 256, (2, 1)) + 2 * encoder + _linear(256, 256) + _linear(256, n_class))
    if name == 'hcnn':
        return (1 + _bn(6) + _conv_2d(6, 128) + 3 * _res_2d_mp(128) + _conv_2d(128, 256) + 2 * _res_2d_mp(256)
                + _linear(256, 256) + _bn(256) + _linear(256, n_class))
    raise KeyError(name)


# ------------------------------------------------------------------------------------------------
# the reference's block output shapes (C, F, T), by PyTorch's arithmetic
# ------------------------------------------------------------------------------------------------
def _conv_len(n, k, stride):          # padding = k // 2
    return (n + 2 * (k // 2) - k) // stride + 1


def reference_shapes(name, samples):
    """[(keras layer ending the block, (C, F, T) of the reference block output)] (T absent for 1-D)."""
    frames = 1 + samples // 256          # torchaudio: centred STFT, hop 256
    out = []
    if name in ('fcn', 'crnn', 'short'):
        f, t = (96 if name != 'short' else 128), frames
        plan = {'fcn': [(64, (2, 4)), (128, (2, 4)), (128, (2, 4)), (128, (3, 5)), (64, (4, 4))],
                'crnn': [(64, (2, 2)), (128, (3, 3)), (128, (4, 4)), (128, (4, 4))],
                'short': [(c, (2, 2)) for c in (128, 128, 256, 256, 256, 256, 512)]}[name]
        for i, (c, (pf, pt)) in enumerate(plan, start=1):
            f, t = f // pf, t // pt                     # MaxPool2d floors
            out.append((f'{name}_layer{i}_pool', (c, f, t)))
    elif name == 'short_res':
        f, t = 128, frames
        for i, c in enumerate((128, 128, 256, 256, 256, 256, 512), start=1):
            f, t = _conv_len(f, 3, 2), _conv_len(t, 3, 2)
            out.append((f'short_res_layer{i}_relu', (c, f, t)))
    elif name == 'attention':
        f, t = 128, frames
        for i, (c, stride) in enumerate([(128, 2), (128, 2), (256, 2)] + [(256, (2, 1))] * 4, start=1):
            sf, st = (stride, stride) if isinstance(stride, int) else stride
            f, t = _conv_len(f, 3, sf), _conv_len(t, 3, st)
            out.append((f'attention_layer{i}_relu', (c, f, t)))
    elif name == 'hcnn':
        f, t = 128, frames
        plan = [(128, (2, 2), 'pool')] * 4 + [(256, (2, 2), 'pool'), (256, (2, 3), 'pool'), (256, (2, 3), 'pool')]
        for i, (c, (pf, pt), last) in enumerate(plan, start=1):
            f, t = f // pf, t // pt
            out.append((f'hcnn_layer{i}_{last}', (c, f, t)))
    else:                                   # sample, se: 1-D
        t = samples
        for i, (_, c, k, stride) in enumerate(_SAMPLE_BLOCKS, start=1):
            pool = 1 if i in (1, 11) else 3
            t = _conv_len(t, k, stride) // pool
            out.append((f'{name}_layer{i}_{"pool" if pool > 1 else "relu"}', (c, t)))
    return out


@pytest.fixture(scope='module')
def reference_models():
    keras.utils.set_random_seed(0)
    return {name: build_model(name, 50, spec_for(name)) for name in MODELS}


# ------------------------------------------------------------------------------------------------
# counts, shapes, outputs
# ------------------------------------------------------------------------------------------------
def test_registered_as_frontend_backend_pairs():
    assert set(MODELS) <= set(modeling.list_models(combinations=False))
    assert set(MODELS) <= set(modeling.list_frontends())
    assert {'dense', 'dense_bn', 'gru'} <= set(modeling.list_backends())
    for name in MODELS:
        info = modeling.model_info(name)
        assert info['input_kind'] == 'waveform' and info['frontend'] == name
        assert int(round(info['default_window_seconds'] * 16000)) == REFERENCE_SAMPLES[name]


@pytest.mark.parametrize('name', MODELS)
def test_trainable_parameters_equal_the_reference(reference_models, name):
    model = reference_models[name]
    assert n_trainable(model) == reference_params(name) == DOCUMENTED[name]
    # BatchNorm moving mean/variance are the only other weights (hcnn's Q is trainable)
    n_bn = sum(layer.moving_mean.shape[0] for layer in model.layers
               if isinstance(layer, keras.layers.BatchNormalization))
    assert sum(np.prod(w.shape) for w in model.non_trainable_weights) == 2 * n_bn


@pytest.mark.parametrize('name', MODELS)
def test_block_shapes_equal_the_reference(reference_models, name):
    model = reference_models[name]
    for layer_name, ref in reference_shapes(name, REFERENCE_SAMPLES[name]):
        got = model.get_layer(layer_name).output.shape[1:]
        assert tuple(reversed(got)) == ref, (layer_name, got, ref)   # [T, F, C] = reversed [C, F, T]
    c = reference_shapes(name, REFERENCE_SAMPLES[name])[-1][1]
    assert model.get_layer('frontend_output').output.shape[1:] == (c[-1], c[0])  # [T', C]
    assert model.output_shape == (None, 50)


def test_tag_probabilities_for_every_model(reference_models):
    rng = np.random.default_rng(0)
    for name in MODELS:
        x = (0.1 * rng.standard_normal((2, REFERENCE_SAMPLES[name]))).astype(np.float32)
        p = reference_models[name](x, training=False).numpy()
        assert p.shape == (2, 50) and np.all((p > 0) & (p < 1)), name
        logits = modeling.logits_model(reference_models[name])(x, training=False).numpy()
        np.testing.assert_allclose(p, 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)


def test_attention_prepends_the_references_fixed_cls_vector():
    model = build_model('attention', 3, spec_for('attention'), n_channels=4)           # C = 8
    tokens = keras.Model(model.input, model.get_layer('cls_token').output)
    x = np.zeros((2, REFERENCE_SAMPLES['attention']), np.float32)
    out = tokens(x).numpy()
    np.random.seed(0)                                   # the reference: np.random.seed(0); np.random.random((1, C))
    np.testing.assert_allclose(out[:, 0], np.repeat(np.random.random((1, 8)), 2, axis=0), rtol=1e-6)
    assert out.shape == (2, 1 + 118, 8) and not any(w.trainable for w in model.get_layer('cls_token').weights)


def test_pytorch_default_initialisation(reference_models):
    """Kernels and biases uniform in ±1/√fan_in, as nn.Conv/nn.Linear initialise them."""
    model = reference_models['short']
    conv = model.get_layer('short_layer3_conv')
    bound = 1 / np.sqrt(128 * 9)
    k, b = conv.kernel.numpy(), conv.bias.numpy()
    assert k.shape == (3, 3, 128, 256) and np.abs(k).max() <= bound and np.abs(k).max() > 0.9 * bound
    assert np.abs(b).max() <= bound and np.std(b) > 0.3 * bound
    dense = model.get_layer('logits')
    assert np.abs(dense.kernel.numpy()).max() <= 1 / np.sqrt(512)
    bn = model.get_layer('spec_bn')
    assert bn.epsilon == 1e-5 and bn.momentum == 0.9


# ------------------------------------------------------------------------------------------------
# learning, windows, save/load, distribution
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', MODELS)
def test_a_gradient_step_lowers_the_loss_on_a_fixed_batch(name):
    keras.utils.set_random_seed(1)
    no_dropout = {'dropout': 0.0, **({'hidden_dropout': 0.0, 'attention_dropout': 0.0} if name == 'attention' else {})}
    model = build_model(name, 50, spec_for(name), **no_dropout)
    logits_model = modeling.logits_model(model)
    rng = np.random.default_rng(1)
    x = tf.constant((0.1 * rng.standard_normal((2, REFERENCE_SAMPLES[name]))).astype(np.float32))
    y = tf.constant((rng.random((2, 50)) < 0.2).astype(np.float32))

    def loss():
        logits = logits_model(x, training=True)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))

    before = float(loss())
    opt = keras.optimizers.SGD(0.05)
    with tf.GradientTape() as tape:
        value = loss()
    grads = tape.gradient(value, model.trainable_variables)
    assert all(g is not None for g in grads)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    assert float(loss()) < before


@pytest.mark.parametrize('name', ['fcn', 'crnn', 'sample', 'se', 'short', 'hcnn'])
def test_windows_too_short_for_the_poolings_name_the_reference_window(name):
    with pytest.raises(ValueError, match=f'the reference uses {REFERENCE_SAMPLES[name]} samples'):
        build_model(name, 50, spec_for(name, samples=16000))


@pytest.mark.parametrize('name, samples', [('fcn', 2560 * 256), ('sample', 2 * 59049 + 3)])
def test_models_that_flatten_one_step_refuse_longer_windows(name, samples):
    with pytest.raises(ValueError, match='pools to exactly 1 step'):
        build_model(name, 50, spec_for(name, samples=samples), n_channels=4)


def test_global_pooling_models_take_longer_windows():
    model = build_model('short_res', 10, spec_for('short_res', samples=2 * 59049), n_channels=8)
    assert model.get_layer('frontend_output').output.shape[1] == 4     # 463 frames stride to 4
    assert model(np.zeros((1, 2 * 59049), np.float32)).shape == (1, 10)
    crnn = build_model('crnn', 10, InputSpec(kind='waveform', sr=16000), n_channels=8)   # any length
    assert crnn(np.zeros((1, 40000), np.float32)).shape == (1, 10)


def test_wrong_sample_rate_or_log_mel_input_is_refused():
    with pytest.raises(ValueError, match='16000 Hz'):
        build_model('short', 50, InputSpec(kind='waveform', sr=22050, samples=59049))
    with pytest.raises(ValueError, match='takes waveforms'):
        build_model('hcnn', 50, InputSpec(kind='log-mel', n_mels=128))
    with pytest.raises(ValueError, match='n_channels'):
        build_model('short', 50, spec_for('short'), n_channels=1)


def test_save_and_load_give_the_same_tags(tmp_path):
    rng = np.random.default_rng(2)
    for name in ('hcnn', 'crnn', 'se', 'attention'):
        keras.utils.set_random_seed(2)
        narrow = {'n_channels': 8, **({'intermediate': 16} if name == 'attention' else {})}
        model = build_model(name, 7, spec_for(name), **narrow)
        path = tmp_path / f'{name}.keras'
        model.save(path)
        loaded = modeling.load_model(str(path))
        x = (0.1 * rng.standard_normal((2, REFERENCE_SAMPLES[name]))).astype(np.float32)
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
        assert n_trainable(loaded) == n_trainable(model)


def _mirrored():
    strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
    assert strategy.num_replicas_in_sync == 2
    return strategy


def test_every_model_builds_under_mirrored_strategy():
    strategy = _mirrored()
    for name in MODELS:
        with strategy.scope():
            model = build_model(name, 5, spec_for(name), n_channels=4)
        variables = model.trainable_variables + model.non_trainable_variables
        assert all(isinstance(v.value, tf.distribute.DistributedValues) for v in variables), name


#: Runs in a fresh process: Keras ``fit`` under a MirroredStrategy leaves collective-op state behind
#: that makes the next in-process MirroredStrategy training fail ("Shape mismatch in the collective
#: instance"), which poisoned every later multi-replica test of the suite.
_DISTRIBUTED_STEP = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from modeling import InputSpec, build_model
from modeling.sota import REFERENCE_SAMPLES
strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
assert strategy.num_replicas_in_sync == 2
rng = np.random.default_rng(3)
with strategy.scope():
    model = build_model('short', 5, InputSpec(kind='waveform', sr=16000, samples=REFERENCE_SAMPLES['short']),
                        n_channels=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss='binary_crossentropy')
x = (0.1 * rng.standard_normal((4, REFERENCE_SAMPLES['short']))).astype(np.float32)
y = (rng.random((4, 5)) < 0.3).astype(np.float32)
before = [v.numpy().copy() for v in model.trainable_variables]
history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
assert np.isfinite(history.history['loss'][0])
assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
print('DISTRIBUTED-STEP-OK')
"""


@pytest.mark.slow
def test_a_distributed_training_step():
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, '-c', _DISTRIBUTED_STEP], cwd=str(root), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and 'DISTRIBUTED-STEP-OK' in proc.stdout, proc.stderr[-3000:]


# ------------------------------------------------------------------------------------------------
# PyTorch's padding conventions, numerically; mixed precision
# ------------------------------------------------------------------------------------------------
def _delta_conv(rank, stride, size):
    """A 1-filter strided conv of the reference kind (kernel 3, padding 1) whose kernel is a centred delta."""
    from modeling.sota import _conv1d, _conv2d
    shape = (size, 1) if rank == 1 else (size, size, 1)
    inp = keras.Input(shape)
    out = _conv1d(inp, 1, 3, stride, 'c') if rank == 1 else _conv2d(inp, 1, stride, 'c')
    model = keras.Model(inp, out)
    conv = model.get_layer('c')
    kernel = np.zeros(conv.kernel.shape, np.float32)
    kernel[(1,) * rank] = 1.0
    conv.kernel.assign(kernel)
    conv.bias.assign(np.zeros(conv.bias.shape, np.float32))
    return model


def test_strided_convolutions_pad_both_sides_as_pytorch():
    """PyTorch pads k//2 on both sides: out[i] = x[stride·i] for a centred delta (TF 'same' would give
    x[stride·i + 1] on an even length: its padding goes after)."""
    x2 = np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1)
    np.testing.assert_array_equal(_delta_conv(2, 2, 8)(x2).numpy(), x2[:, ::2, ::2])
    x2 = np.arange(4 * 6, dtype=np.float32).reshape(1, 4, 6, 1)          # stride (freq 2, time 1): [B, T, F, C]
    from modeling.sota import _conv2d
    inp = keras.Input((4, 6, 1))
    model = keras.Model(inp, _conv2d(inp, 1, (2, 1), 'c'))
    kernel = np.zeros((3, 3, 1, 1), np.float32)
    kernel[1, 1] = 1.0
    model.get_layer('c').kernel.assign(kernel)
    model.get_layer('c').bias.assign(np.zeros(1, np.float32))
    np.testing.assert_array_equal(model(x2).numpy(), x2[:, :, ::2])
    x1 = np.arange(27, dtype=np.float32).reshape(1, 27, 1)               # the sample-level CNN's first layer
    np.testing.assert_array_equal(_delta_conv(1, 3, 27)(x1).numpy(), x1[:, ::3])


def test_mixed_precision_keeps_the_spectrograms_and_the_tags_in_float32():
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy('mixed_float16')
    try:
        for name in ('short', 'hcnn', 'attention'):
            model = build_model(name, 5, spec_for(name), n_channels=4)
            front = model.get_layer('harmonic_spectrogram' if name == 'hcnn' else 'mel_spectrogram')
            assert front.compute_dtype == 'float32'
            assert model.get_layer('logits').compute_dtype == 'float16'
            p = model(np.zeros((1, REFERENCE_SAMPLES[name]), np.float32))
            assert p.dtype == 'float32' and np.all(np.isfinite(p.numpy())), name
    finally:
        keras.mixed_precision.set_global_policy(policy)
