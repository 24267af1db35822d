"""Tests of modeling/: registry, parameter counts of the published architectures, shapes, training step, combinations,
in-model normalisation, waveform input through the LogMel front end, save/load."""
from __future__ import annotations

import numpy as np
import pytest

import keras
import tensorflow as tf

import modeling
from modeling import HParamError, InputSpec, build_model, list_models
from modeling.orpheus import waveform_frames

LOGMEL = InputSpec(kind='log-mel', n_mels=96)
WAVE = InputSpec(kind='waveform')
# the default backend_bn='per_filter': per-filter BN of conv2_back and conv3_back instead of one scalar γ/β each
PER_FILTER_EXTRA = 2 * (2 * 512 - 2)
# narrowed blocks for the tests that run the network (same architecture, far fewer FLOPs)
SMALL_BACK = {'n_backend_filters': 64, 'n_dense_units': 32}
SMALL_MUSICNN = {'n_timbral_filters': 16, 'n_temporal_filters': 8, 'n_midend_filters': 16, 'n_dense_units': 32}


def n_trainable(model_or_layers) -> int:
    weights = (model_or_layers.trainable_weights if isinstance(model_or_layers, keras.Model)
               else [w for layer in model_or_layers for w in layer.trainable_weights])
    return int(sum(np.prod(w.shape) for w in weights))


def n_all(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.weights))


# ------------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------------
def test_registry_names():
    whole = list_models(combinations=False)
    assert {'orpheus_logmel', 'orpheus_waveform', 'musicnn', 'vgg'} <= set(whole)
    assert {'orpheus_logmel', 'orpheus_waveform', 'musicnn'} <= set(modeling.list_frontends())
    assert {'orpheus_dense_residual', 'musicnn_midend_backend'} <= set(modeling.list_backends())
    everything = list_models()
    assert 'musicnn+orpheus_dense_residual' in everything
    assert 'orpheus_logmel+musicnn_midend_backend' in everything
    assert modeling.model_hparams('orpheus_logmel') == {
        'n_filters': 16, 'input_norm': 'per_clip', 'n_backend_filters': 512, 'n_dense_units': 500,
        'backend_bn': 'per_filter', 'dropout': 0.5}
    info = modeling.model_info('musicnn')
    assert info['input_kind'] == 'log-mel' and info['default_window_seconds'] == 3.0
    assert modeling.model_info('vgg')['fixed_frames'] == 187
    assert modeling.model_info('orpheus_waveform')['input_kind'] == 'waveform'


def test_bad_names_and_hparams_are_named():
    with pytest.raises(ValueError, match='nosuch'):
        build_model('nosuch', 50, LOGMEL)
    with pytest.raises(ValueError, match='nofront'):
        build_model('nofront+orpheus_dense_residual', 50, LOGMEL)
    with pytest.raises(HParamError, match='n_filtres'):
        build_model('orpheus_logmel', 50, LOGMEL, n_filtres=8)
    with pytest.raises(TypeError, match='n_dense_units'):       # HParamError is a TypeError
        build_model('musicnn', 50, LOGMEL, n_dense_units='200')
    with pytest.raises(ValueError, match='backend_bn'):          # … and a ValueError
        build_model('orpheus_logmel', 50, LOGMEL, backend_bn='global')
    with pytest.raises(ValueError, match='takes waveforms'):
        build_model('orpheus_waveform', 50, LOGMEL)
    with pytest.raises(ValueError, match='feature_params'):
        build_model('musicnn', 50, WAVE)
    with pytest.raises(ValueError, match='InputSpec.kind'):
        InputSpec(kind='mfcc')


def test_register_new_model_without_touching_anything():
    @modeling.register_backend('test_linear_backend')
    def linear(features, n_outputs, *, units: int = 4):
        h = modeling.layers.AxisReduce('mean', axis=1, name='tl_mean')(features)
        return keras.layers.Dense(n_outputs, name='tl_logits')(keras.layers.Dense(units, name='tl_hidden')(h))

    assert 'musicnn+test_linear_backend' in list_models()
    model = build_model('musicnn+test_linear_backend', 3, LOGMEL, units=5, n_timbral_filters=8,
                        n_temporal_filters=4)
    assert model.get_layer('tl_hidden').kernel.shape == (2 * 8 + 3 * 4, 5)
    assert model(np.zeros((1, 20, 96), np.float32)).shape == (1, 3)


# ------------------------------------------------------------------------------------------------
# parameter counts (the published models' counts for 50 outputs)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('name,spec,scalar_count', [
    ('orpheus_logmel', LOGMEL, 5_924_154),
    ('orpheus_waveform', WAVE, 5_377_082),
])
def test_orpheus_parameter_counts(name, spec, scalar_count):
    scalar = build_model(name, 50, spec, backend_bn='scalar')
    assert n_trainable(scalar) == scalar_count
    assert scalar.get_layer('bn2_back').gamma.shape == (1,)
    per_filter = build_model(name, 50, spec)                     # the default backend_bn
    assert per_filter.get_layer('bn2_back').gamma.shape == (512,)
    assert n_trainable(per_filter) == scalar_count + PER_FILTER_EXTRA
    if name == 'orpheus_logmel':
        # all values incl. BN moving statistics = the lite checkpoint's 5,927,110 model values
        assert n_all(scalar) == 5_927_110
        frontend = [layer for layer in scalar.layers if layer.name.endswith('_spec')]
        assert n_trainable(frontend) == 50_048
        assert scalar.get_layer('concat_spec').output.shape[-1] == 464
        assert scalar.get_layer('conv1_spec').kernel.shape == (7, 86, 1, 16)   # time x freq
        assert n_trainable(modeling.frontend_layers(scalar)) == 50_048
    else:
        frontend = [layer for layer in scalar.layers if layer.name.endswith('_wave')]
        assert n_trainable(frontend) == 248_448
        assert n_trainable(modeling.frontend_layers(scalar)) == 248_448


def test_musicnn_and_vgg_parameter_counts():
    m = build_model('musicnn', 50, LOGMEL)
    assert n_trainable(m) == 787_159
    assert n_all(m) == 792_079                   # = the published checkpoint's model values
    assert m.get_layer('frontend_concat').output.shape[-1] == 561
    assert m.get_layer('midend_concat').output.shape[-1] == 753
    assert m.get_layer('pool_bn').gamma.shape == (1506,)
    assert m.get_layer('input_bn').gamma.shape == (1,)
    v = build_model('vgg', 50, LOGMEL)
    assert n_trainable(v) == 605_748
    assert n_all(v) == 607_030
    assert v.get_layer('logits').kernel.shape == (256, 50)
    assert v.input_shape == (None, 187, 96)


# ------------------------------------------------------------------------------------------------
# shapes, variable length
# ------------------------------------------------------------------------------------------------
def test_waveform_frontend_lengths():
    assert waveform_frames(240_000) == 108
    m = build_model('orpheus_waveform', 50, InputSpec(kind='waveform', samples=240_000))
    assert m.get_layer('pool6_wave').output.shape == (None, 108, 256)
    assert m.get_layer('pool1_back').output.shape == (None, 51, 512)
    lm = build_model('orpheus_logmel', 50, InputSpec(frames=474))
    assert lm.get_layer('pool1_back').output.shape == (None, 234, 512)


@pytest.mark.parametrize('name,spec,lengths,shape', [
    ('orpheus_logmel', LOGMEL, (40, 57), lambda t: (2, t, 96)),
    ('orpheus_waveform', WAVE, (20_000, 26_000), lambda t: (2, t)),
    ('musicnn', LOGMEL, (1, 64), lambda t: (2, t, 96)),
])
def test_variable_length_outputs(name, spec, lengths, shape):
    model = build_model(name, 7, spec, n_dense_units=16)
    assert model.input_shape[1] is None
    assert model.output_shape == (None, 7)
    assert model.layers[-1].name == 'tags'
    rng = np.random.default_rng(0)
    for t in lengths:
        y = model(rng.normal(size=shape(t)).astype(np.float32), training=False).numpy()
        assert y.shape == (2, 7)
        assert np.all((y > 0) & (y < 1))


def test_vgg_needs_fixed_length():
    model = build_model('vgg', 5, LOGMEL, n_filters=8)
    assert model(np.zeros((1, 187, 96), np.float32)).shape == (1, 5)
    with pytest.raises(ValueError):
        model(np.zeros((1, 150, 96), np.float32))


def test_logits_model_shares_weights():
    model = build_model('musicnn', 4, LOGMEL, n_timbral_filters=8, n_temporal_filters=4,
                        n_midend_filters=8, n_dense_units=8)
    x = np.random.default_rng(1).normal(size=(3, 30, 96)).astype(np.float32)
    logits = modeling.logits_model(model)(x).numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), model(x).numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# in-model normalisation
# ------------------------------------------------------------------------------------------------
def test_clip_standardization_layer():
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(3, 50, 96)) * np.array([1, 10, 100])[:, None, None] + 5).astype(np.float32)
    y = modeling.layers.ClipStandardization()(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(1, 2)), 1, atol=1e-4)
    assert np.all(modeling.layers.ClipStandardization()(np.zeros((1, 100), np.float32)).numpy() == 0)


@pytest.mark.parametrize('name,spec,x_shape', [('orpheus_logmel', LOGMEL, (2, 40, 96)),
                                               ('orpheus_waveform', WAVE, (2, 20_000))])
def test_orpheus_input_is_normalised_per_clip(name, spec, x_shape):
    model = build_model(name, 6, spec, **SMALL_BACK)
    x = np.random.default_rng(3).normal(size=x_shape).astype(np.float32)
    y = model(x, training=False).numpy()
    # gain and offset of the clip do not matter; without input_norm they do
    np.testing.assert_allclose(model(10 * x + 3, training=False).numpy(), y, atol=2e-5)
    raw = build_model(name, 6, spec, input_norm='none', **SMALL_BACK)
    assert np.max(np.abs(raw(10 * x + 3, training=False).numpy() - raw(x, training=False).numpy())) > 1e-3


# ------------------------------------------------------------------------------------------------
# one gradient step on a fixed batch lowers the loss (every model + combinations)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('name,spec,x_shape,hparams', [
    # the backend is narrowed to keep the test fast; the architecture (and counts above) is the same
    ('orpheus_logmel', LOGMEL, (4, 40, 96), {'dropout': 0.0, **SMALL_BACK}),
    ('orpheus_logmel', LOGMEL, (4, 40, 96), {'dropout': 0.0, 'backend_bn': 'scalar', **SMALL_BACK}),
    ('orpheus_waveform', WAVE, (4, 20_000), {'dropout': 0.0, **SMALL_BACK}),
    ('musicnn', LOGMEL, (4, 40, 96), {'dropout': 0.0, **SMALL_MUSICNN}),
    ('vgg', LOGMEL, (4, 187, 96), {'dropout': 0.0, 'block_dropout': 0.0, 'n_filters': 32}),
    ('musicnn+orpheus_dense_residual', LOGMEL, (4, 40, 96), {'dropout': 0.0, **SMALL_BACK,
                                                             'n_timbral_filters': 16, 'n_temporal_filters': 8}),
    ('orpheus_logmel+musicnn_midend_backend', LOGMEL, (4, 40, 96), {'dropout': 0.0, 'n_filters': 8,
                                                                    'n_midend_filters': 16}),
    ('orpheus_waveform+musicnn_midend_backend', WAVE, (4, 8_000), {'dropout': 0.0}),
])
def test_gradient_step_decreases_loss(name, spec, x_shape, hparams):
    keras.utils.set_random_seed(0)
    model = build_model(name, 10, spec, **hparams)
    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(size=x_shape).astype(np.float32))
    y = tf.constant((rng.random((x_shape[0], 10)) < 0.3).astype(np.float32))
    loss_fn = keras.losses.BinaryCrossentropy()
    opt = keras.optimizers.Adam(1e-4)

    with tf.GradientTape() as tape:
        value = loss_fn(y, model(x, training=True))
    before = float(value)
    grads = tape.gradient(value, model.trainable_variables)
    assert all(g is not None for g in grads)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    after = float(loss_fn(y, model(x, training=True)))
    assert after < before, (name, before, after)


def test_combination_routes_hparams_to_blocks():
    model = build_model('orpheus_logmel+musicnn_midend_backend', 12, LOGMEL, n_filters=8,
                        n_midend_filters=16, n_dense_units=32)
    assert model.get_layer('concat_spec').output.shape[-1] == 29 * 8
    assert model.get_layer('midend_conv1').kernel.shape == (7, 29 * 8, 16)
    assert model.get_layer('penultimate').kernel.shape == (2 * (29 * 8 + 3 * 16), 32)
    assert model.output_shape == (None, 12)
    names = {layer.name for layer in modeling.frontend_layers(model)}
    assert 'conv1_spec' in names and 'midend_conv1' not in names


# ------------------------------------------------------------------------------------------------
# waveform input to a log-mel model through preprocessing.tf_frontend.LogMel
# ------------------------------------------------------------------------------------------------
def test_waveform_input_via_logmel(tmp_path):
    from preprocessing.features import get_params, log_mel
    params = get_params('musicnn', float16=False)
    spec = InputSpec(kind='waveform', sr=16000, feature_params=params.to_dict())
    model = build_model('musicnn', 5, spec, n_timbral_filters=8, n_temporal_filters=4,
                        n_midend_filters=8, n_dense_units=8)
    assert model.input_shape == (None, None)
    assert model.get_layer('log_mel').output.shape[-1] == 96
    rng = np.random.default_rng(5)
    audio = (0.1 * rng.normal(size=(2, 16000))).astype(np.float32)
    y_wave = model(audio, training=False).numpy()
    # same as the log-mel model fed the NumPy front end's spectrogram (same weights)
    spec_model = keras.Model(model.get_layer('expand_input').input, model.output)
    mels = np.stack([log_mel(a, params) for a in audio])
    np.testing.assert_allclose(spec_model(mels, training=False).numpy(), y_wave, atol=1e-4)
    # and it saves/loads with the LogMel layer inside
    model.save(tmp_path / 'm.keras')
    again = modeling.load_model(tmp_path / 'm.keras')
    np.testing.assert_allclose(again(audio, training=False).numpy(), y_wave, atol=1e-6)
    # VGG (fixed length) on waveforms needs samples giving exactly 187 frames
    with pytest.raises(ValueError, match='187'):
        build_model('vgg', 5, spec)
    vgg = build_model('vgg', 5, InputSpec(kind='waveform', samples=186 * 256, feature_params=params.to_dict()),
                      n_filters=4)
    assert vgg.get_layer('log_mel').output.shape[1] == 187


@pytest.mark.parametrize('kernel,padding,shape', [((7, 38), 'valid', (2, 30, 96, 1)),
                                                  ((32, 1), 'same', (2, 45, 20, 1)),
                                                  ((3, 3), 'same', (2, 17, 11, 1))])
def test_mono_conv2d_equals_conv2d_with_gradients(kernel, padding, shape):
    rng = np.random.default_rng(7)
    ref = keras.layers.Conv2D(5, kernel, padding=padding, activation='relu')
    mono = modeling.layers.MonoConv2D(5, kernel, padding=padding, activation='relu')
    x = tf.constant(rng.normal(size=shape).astype(np.float32))
    ref(x), mono(x)
    mono.set_weights(ref.get_weights())
    w = tf.constant(rng.normal(size=ref(x).shape).astype(np.float32))
    grads = []
    for layer in (ref, mono):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = tf.reduce_sum(layer(x) * w)
        grads.append(tape.gradient(out, [x, layer.kernel, layer.bias]))
    np.testing.assert_array_equal(mono(x).numpy(), ref(x).numpy())
    for g_ref, g_mono in zip(*grads):
        np.testing.assert_allclose(g_mono.numpy(), g_ref.numpy(), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# save / load
# ------------------------------------------------------------------------------------------------
def test_keras_save_load_round_trip(tmp_path):
    model = build_model('orpheus_logmel', 9, LOGMEL, backend_bn='scalar', n_filters=4, n_backend_filters=32,
                        n_dense_units=16)
    x = np.random.default_rng(6).normal(size=(2, 33, 96)).astype(np.float32)
    model.save(tmp_path / 'm.keras')
    again = modeling.load_model(tmp_path / 'm.keras')
    np.testing.assert_array_equal(again(x, training=False).numpy(), model(x, training=False).numpy())
    assert again.get_layer('tags').output.shape == (None, 9)
