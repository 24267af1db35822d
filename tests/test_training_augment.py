"""Training-time augmentation: SpecAugment masks, mixup, random gain (identity at evaluation, seeded,
exact on resume)."""
import numpy as np
import pytest
import tensorflow as tf

from tests._training_fixtures import TAGS, base_config, make_arrays, make_source, tiny_model_fn
from tests.test_training_loop import assert_weights_equal
from training import augment
from training.config import ConfigError, parse_config
from training.data import ArraySource, InputInfo
from training.trainer import Trainer

SAMPLES = 48          # tiny waveform windows: reshaped to 8 frames x 6 bands by the model's "log_mel" layer
SPEC = {'time_masks': 2, 'time_mask_frames': 3, 'freq_masks': 1, 'freq_mask_bands': 2}


def waveform_source(batch_size=16):
    a = make_arrays()
    info = InputInfo(kind='waveform', sr=16000, window_seconds=SAMPLES / 16000, samples=SAMPLES)
    flat = {k: a[k].reshape(len(a[k]), -1) for k in ('x_train', 'x_val')}
    return ArraySource(flat['x_train'], a['y_train'], TAGS, info, batch_size, x_val=flat['x_val'], y_val=a['y_val'],
                       val_track_ids=a['val_ids'])


def waveform_model_fn(mel_layer='log_mel'):
    """A tiny waveform model whose layer ``mel_layer`` turns samples into a [8 x 6] "spectrogram"."""

    def build(n_outputs, info):
        import keras
        init = lambda s: keras.initializers.GlorotUniform(seed=s)  # noqa: E731  fixed weights
        inp = keras.Input((info.samples,), name='audio')
        h = keras.layers.Reshape((8, 6), name=mel_layer)(inp)
        h = keras.layers.Flatten()(h)
        h = keras.layers.Dense(16, activation='relu', kernel_initializer=init(1), name='hidden')(h)
        out = keras.layers.Dense(n_outputs, activation='sigmoid', kernel_initializer=init(2), name='tags')(h)
        return keras.Model(inp, out, name='tiny_waveform')

    return build


def make_trainer(run_dir, augment_cfg=None, *, waveform=False, resume=False, epochs=1, model_fn=None):
    cfg = parse_config(base_config(distribution={'strategy': 'one_device'}, optimization={'epochs': epochs},
                                   augment=augment_cfg or {}))
    data = waveform_source() if waveform else make_source(cfg.input.batch_size)
    model_fn = model_fn or (waveform_model_fn() if waveform else tiny_model_fn())
    return Trainer(cfg, run_dir=str(run_dir), resume=resume, export=False, data=data, model_fn=model_fn)


def first_batch(trainer):
    return next(iter(trainer.data.train_dataset(1, repeat=False)))


# ------------------------------------------------------------------------------------------ the functions
def test_mixup_mixes_each_example_and_its_labels_with_one_weight():
    n = 8
    x = tf.constant(np.repeat(np.arange(n, dtype=np.float32)[:, None], 5, axis=1))   # example i is all i
    y = tf.constant(np.eye(n, dtype=np.float32))                                      # and tagged i only
    xm, ym = augment.mixup(x, y, augment.step_seed(0, augment.MIXUP, 3), alpha=0.4)
    xm, ym = xm.numpy(), ym.numpy()
    np.testing.assert_allclose(ym.sum(axis=1), 1.0, rtol=1e-6)
    assert ((ym > 0).sum(axis=1) <= 2).all()
    # the example is mixed with the same weights as its labels
    np.testing.assert_allclose(xm, (ym @ np.arange(n, dtype=np.float32))[:, None].repeat(5, axis=1), rtol=1e-5)
    assert (ym.max(axis=1) < 0.999).any()                                             # something was mixed
    again = augment.mixup(x, y, augment.step_seed(0, augment.MIXUP, 3), alpha=0.4)[1].numpy()
    other = augment.mixup(x, y, augment.step_seed(0, augment.MIXUP, 4), alpha=0.4)[1].numpy()
    np.testing.assert_array_equal(again, ym)
    assert not np.array_equal(other, ym)


def test_spec_augment_masks_whole_bands_with_the_mean_and_only_in_training():
    x = tf.random.stateless_normal([16, 40, 12], seed=[1, 2])
    out = augment.spec_augment(x, augment.step_seed(0, augment.SPEC_AUGMENT, 1), time_masks=2,
                               time_mask_frames=5, freq_masks=1, freq_mask_bands=3).numpy()
    changed = out != x.numpy()
    mean = x.numpy().mean(axis=(1, 2))
    np.testing.assert_allclose(out[changed], np.broadcast_to(mean[:, None, None], out.shape)[changed], rtol=1e-6)
    for i in range(16):
        frames = changed[i].all(axis=1).sum()       # masked time frames span every band
        bands = changed[i].all(axis=0).sum()
        assert frames <= 2 * 5 and bands <= 3
    assert changed.any()
    layer = augment.SpecAugment(**SPEC)
    layer.set_seed(augment.step_seed(0, augment.SPEC_AUGMENT, 1))
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    assert not np.array_equal(layer(x, training=True).numpy(), x.numpy())


def test_random_gain_scales_each_waveform_by_one_factor_in_the_db_range():
    x = tf.ones([32, 100])
    out = augment.random_gain(x, augment.step_seed(0, augment.GAIN, 1), -6.0, 3.0).numpy()
    factor = out[:, 0]
    np.testing.assert_allclose(out, np.repeat(factor[:, None], 100, axis=1))
    db = 20 * np.log10(factor)
    assert db.min() >= -6.0 - 1e-4 and db.max() <= 3.0 + 1e-4 and db.std() > 1.0


# ------------------------------------------------------------------------------------------ in the trainer
def test_log_mel_augmentations_change_training_inputs_and_leave_validation_alone(tmp_path):
    plain = make_trainer(tmp_path / 'plain')
    aug = make_trainer(tmp_path / 'aug', {'spec_augment': SPEC, 'mixup': {'alpha': 0.4}})
    x, y = first_batch(aug)
    xa, ya = aug._augment(x, y, tf.constant(5, tf.int64))
    assert not np.array_equal(xa.numpy(), x.numpy()) and not np.array_equal(ya.numpy(), y.numpy())
    np.testing.assert_array_equal(aug._augment(x, y, tf.constant(5, tf.int64))[0].numpy(), xa.numpy())
    assert plain._augment(x, y, tf.constant(5, tf.int64))[0] is x          # nothing configured: untouched
    # validation sees the plain inputs: same weights, same scores
    v_plain, v_aug = plain.validate(), aug.validate()
    assert v_aug['val_loss'] == v_plain['val_loss']
    assert v_aug['val_roc_auc_macro'] == v_plain['val_roc_auc_macro']
    # and training sees the augmented ones
    r_plain, r_aug = plain.fit(), aug.fit()
    assert r_aug.history[0]['train_loss'] != r_plain.history[0]['train_loss']


def test_waveform_augmentations_gain_and_masks_after_the_models_mel_layer(tmp_path):
    plain = make_trainer(tmp_path / 'plain', waveform=True)
    aug = make_trainer(tmp_path / 'aug', {'spec_augment': SPEC, 'gain': {'min_db': -6, 'max_db': 6}}, waveform=True)
    assert aug._spec_layer is not None and aug._train_model is not aug.model
    assert aug._train_model.get_layer('hidden') is aug.model.get_layer('hidden')   # the weights are shared
    x, y = first_batch(aug)
    xa, _ = aug._augment(x, y, tf.constant(1, tf.int64))                            # gain on the waveform
    ratio = xa.numpy() / x.numpy()
    np.testing.assert_allclose(ratio, np.repeat(ratio[:, :1], SAMPLES, axis=1), rtol=1e-4)
    # the masks apply inside the model in training only
    np.testing.assert_array_equal(aug._train_model(x, training=False).numpy(), aug.model(x, training=False).numpy())
    assert not np.array_equal(aug._train_model(x, training=True).numpy(), aug.model(x, training=True).numpy())
    assert aug.validate()['val_loss'] == plain.validate()['val_loss']
    result = aug.fit()
    assert np.isfinite(result.history[0]['train_loss'])
    assert result.history[0]['train_loss'] != plain.fit().history[0]['train_loss']


def test_augmentation_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError) as exc:
        make_trainer(tmp_path / 'a', {'gain': {'min_db': -3, 'max_db': 3}})          # log-mel input
    assert exc.value.key == 'augment.gain'
    with pytest.raises(ConfigError) as exc:
        make_trainer(tmp_path / 'b', {'spec_augment': SPEC}, waveform=True, model_fn=waveform_model_fn('frames'))
    assert exc.value.key == 'augment.spec_augment'
    with pytest.raises(ConfigError) as exc:
        parse_config({'augment': {'spec_augment': {'time_masks': 2}}})
    assert exc.value.key == 'augment.spec_augment.time_mask_frames'
    with pytest.raises(ConfigError) as exc:
        parse_config({'augment': {'gain': {'min_db': 3, 'max_db': -3}}})
    assert exc.value.key == 'augment.gain.min_db'


def test_augmented_run_resumes_exactly(tmp_path):
    cfg = {'spec_augment': SPEC, 'mixup': {'alpha': 0.4}}
    ref = make_trainer(tmp_path / 'ref', cfg, epochs=2)
    ref.fit()
    make_trainer(tmp_path / 'run', cfg, epochs=1).fit()
    resumed = make_trainer(tmp_path / 'run', cfg, epochs=2, resume=True)
    resumed.fit()
    assert_weights_equal(resumed.model.get_weights(), ref.model.get_weights(), rtol=1e-5, atol=1e-7)
