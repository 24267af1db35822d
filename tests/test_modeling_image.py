"""Image encoders of the registry (modeling/image.py) and the registry's image input and output activations."""
from __future__ import annotations

import numpy as np
import pytest

import modeling
from modeling import InputSpec, build_model, list_models

IMAGE = InputSpec(kind='image', image_size=(48, 48))


def _pictures(n=3, size=48, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3)).astype(np.float32)


def test_image_encoders_are_registered_apart_from_the_audio_models():
    assert list_models(False, kinds=('image',)) == ['image_cnn', 'image_stats']
    assert not {'image_cnn', 'image_stats'} & set(list_models(False))
    assert {'image_cnn', 'image_stats', 'musicnn'} <= set(list_models(False, kinds=None))
    assert modeling.model_info('image_cnn')['input_kind'] == 'image'
    assert modeling.model_hparams('image_stats') == {'bins': 8, 'hidden': 128, 'layers': 2, 'dropout': 0.1}


@pytest.mark.parametrize('name', ['image_cnn', 'image_stats'])
def test_image_encoder_shapes_and_output_activations(name):
    x = _pictures()
    linear = build_model(name, 7, IMAGE, output_activation='linear')
    assert linear.input.shape[1:] == (48, 48, 3) and linear.output_shape == (None, 7)
    out = np.asarray(linear(x, training=False))
    assert out.min() < 0 or out.max() > 1             # not squashed into (0, 1)
    unit = build_model(name, 7, IMAGE, output_activation='l2')
    np.testing.assert_allclose(np.linalg.norm(unit(x, training=False), axis=1), 1.0, atol=1e-5)
    probs = np.asarray(build_model(name, 7, IMAGE)(x, training=False))
    assert probs.min() > 0 and probs.max() < 1
    any_size = build_model(name, 7, InputSpec(kind='image'), output_activation='linear')
    assert any_size(_pictures(size=40), training=False).shape == (3, 7)


def test_image_kind_and_audio_models_do_not_mix():
    with pytest.raises(ValueError, match='takes image input'):
        build_model('image_cnn', 5, InputSpec(kind='log-mel'))
    with pytest.raises(ValueError, match='takes log-mel input'):
        build_model('musicnn', 5, IMAGE)
    with pytest.raises(ValueError, match='image_size'):
        InputSpec(kind='image', image_size=(48, 0))
    with pytest.raises(ValueError, match='output_activation'):
        build_model('image_cnn', 5, IMAGE, output_activation='softmax')
    assert InputSpec.from_dict(IMAGE.to_dict()) == IMAGE


def test_image_stats_model_saves_and_loads_with_its_statistics_layer(tmp_path):
    model = build_model('image_stats', 4, IMAGE, output_activation='linear')
    x = _pictures()
    path = str(tmp_path / 'm.keras')
    model.save(path)
    again = modeling.load_model(path)
    np.testing.assert_allclose(again(x, training=False), model(x, training=False), atol=1e-6)


def test_colour_statistics_tell_colours_brightness_and_texture_apart():
    from modeling.image import ColourStats
    layer = ColourStats(bins=8)
    red = np.zeros((1, 32, 32, 3), np.float32)
    red[..., 0] = 1.0
    blue = np.zeros((1, 32, 32, 3), np.float32)
    blue[..., 2] = 1.0
    stripes = np.zeros((1, 32, 32, 3), np.float32)
    stripes[:, :, ::2, :] = 1.0
    grey = np.full((1, 32, 32, 3), 0.5, np.float32)
    f = {k: np.asarray(layer(v))[0] for k, v in dict(red=red, blue=blue, stripes=stripes, grey=grey).items()}
    assert f['red'].shape == (3 * 8 + 28,)
    hue = slice(0, 8)
    np.testing.assert_allclose(f['red'][hue].sum(), 1.0, atol=1e-5)      # histograms are shares
    assert np.argmax(f['red'][hue]) in (0, 7) and np.argmax(f['blue'][hue]) in (5, 6)
    energy = slice(3 * 8 + 21, 3 * 8 + 27)
    assert f['stripes'][energy][0] > 5 * max(f['grey'][energy][0], 1e-3)   # horizontal texture
    assert f['grey'][energy].max() < 1e-4
