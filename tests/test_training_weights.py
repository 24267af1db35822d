"""Per-example weights (``dataset.weights``, a track_id,weight CSV) multiply each training example's loss."""
import numpy as np
import pytest

from tests.test_training_latent_tfrecords import make_trainer, tfrecord_config, write_records

STEPS = 4


@pytest.fixture(scope='module')
def records(tmp_path_factory):
    return write_records(tmp_path_factory.mktemp('weights-tfr'))


def write_csv(path, rows, header='track_id,weight,likes'):
    path.write_text('\n'.join([header] + [f'{t},{w},3' for t, w in rows]) + '\n', encoding='utf-8')
    return str(path)


def step_losses(run_dir, cfg, steps=STEPS):
    """The first ``steps`` training-step losses (mean weighted per-example loss of each batch) and the
    weights after them."""
    trainer = make_trainer(run_dir, cfg)
    it = trainer.train_steps()
    losses = [next(it) for _ in range(steps)]
    return losses, trainer.model.get_weights()


def with_weights(cfg, path):
    cfg['dataset']['weights'] = path
    return cfg


def test_all_ones_is_exactly_the_unweighted_run(records, tmp_path):
    records, split_of = records
    plain, w_plain = step_losses(tmp_path / 'plain', tfrecord_config(records))
    ones = write_csv(tmp_path / 'ones.csv', [(t, 1) for t in sorted(split_of)])
    weighted, w_ones = step_losses(tmp_path / 'ones', with_weights(tfrecord_config(records), ones))
    assert weighted == plain
    for a, b in zip(w_plain, w_ones):
        np.testing.assert_array_equal(a, b)
    # a full epoch (pass, validation, history) too
    a = make_trainer(tmp_path / 'fit-plain', tfrecord_config(records)).fit().history
    b = make_trainer(tmp_path / 'fit-ones', with_weights(tfrecord_config(records), ones)).fit().history
    assert [r['train_loss'] for r in a] == [r['train_loss'] for r in b]


def test_weights_scale_the_loss_of_their_tracks(records, tmp_path):
    records, split_of = records
    train = sorted(t for t, s in split_of.items() if s == 'train')
    plain, w_plain = step_losses(tmp_path / 'plain', tfrecord_config(records), steps=1)
    twice = write_csv(tmp_path / 'twice.csv', [(t, 2.0) for t in train])
    doubled, _ = step_losses(tmp_path / 'twice', with_weights(tfrecord_config(records), twice), steps=1)
    assert doubled[0] == pytest.approx(2 * plain[0], rel=1e-6)       # same first batch, same initial weights
    # half the tracks weigh 0: the first batch's loss drops (at least one of its 2 examples is zeroed
    # or not, so it is lower or equal), and never rises
    half = write_csv(tmp_path / 'half.csv', [(t, 0) for t in train[::2]])
    halved, _ = step_losses(tmp_path / 'half', with_weights(tfrecord_config(records), half), steps=STEPS)
    full, _ = step_losses(tmp_path / 'full', tfrecord_config(records), steps=STEPS)
    assert halved[0] <= full[0] and sum(halved) < sum(full)
    # every track weighs 0: nothing is learned, the weights do not move
    zero = write_csv(tmp_path / 'zero.csv', [(t, 0) for t in train])
    zeroed, w_zero = step_losses(tmp_path / 'zero', with_weights(tfrecord_config(records), zero))
    assert zeroed == [0.0] * STEPS
    initial = make_trainer(tmp_path / 'init', tfrecord_config(records)).model.get_weights()
    for a, b in zip(initial, w_zero):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(initial, w_plain))


def test_weights_apply_to_the_latent_task(records, tmp_path):
    from tests.test_training_latent_tfrecords import target_table
    records, split_of = records
    train = sorted(t for t, s in split_of.items() if s == 'train')
    target_table(tmp_path / 'targets', sorted(split_of))
    cfg = tfrecord_config(records, targets=str(tmp_path / 'targets'))
    plain, _ = step_losses(tmp_path / 'plain', cfg, steps=1)
    twice = write_csv(tmp_path / 'twice.csv', [(t, 2.0) for t in train])
    doubled, _ = step_losses(tmp_path / 'twice', with_weights(tfrecord_config(records, targets=str(
        tmp_path / 'targets')), twice), steps=1)
    assert doubled[0] == pytest.approx(2 * plain[0], rel=1e-6) and plain[0] > 0


@pytest.mark.parametrize('text, problem', [
    ('track,weight\nA,1\n', 'no track_id column'),
    ('track_id,likes\nA,1\n', 'no weight column'),
    ('track_id,weight\nA,-1\n', 'line 2: weight'),
    ('track_id,weight\nA,1\nB,nan\n', 'line 3: weight'),
    ('track_id,weight\nA,1\nB,inf\n', 'line 3: weight'),
    ('track_id,weight\nA,x\n', 'line 2: weight'),
    ('track_id,weight\nA,1\nA,2\n', 'line 3: track A is listed twice'),
    ('track_id,weight\n,1\n', 'line 2: empty track_id'),
])
def test_bad_weights_files_name_the_line(tmp_path, text, problem):
    from training.config import ConfigError
    from training.targets import read_weights
    path = tmp_path / 'w.csv'
    path.write_text(text, encoding='utf-8')
    with pytest.raises(ConfigError) as e:
        read_weights(str(path))
    assert e.value.key == 'dataset.weights' and problem in str(e.value) and str(path) in str(e.value)


def test_weights_file_reading(tmp_path):
    from training.config import ConfigError
    from training.targets import read_weights
    assert read_weights(write_csv(tmp_path / 'ok.csv', [('A', 0.5), ('B', 0)])) == {'A': 0.5, 'B': 0.0}
    (tmp_path / 'latin.csv').write_bytes('track_id,weight\n\xe9,1\n'.encode('latin-1'))
    with pytest.raises(ConfigError, match='not UTF-8'):
        read_weights(str(tmp_path / 'latin.csv'))
    with pytest.raises(ConfigError, match='cannot read'):
        read_weights(str(tmp_path / 'missing.csv'))


def test_weight_lookup_defaults_to_one():
    import tensorflow as tf

    from training.targets import WeightLookup
    lookup = WeightLookup({'A': 0.0, 'B': 2.5})
    np.testing.assert_array_equal(lookup(tf.constant(['B', 'C', 'A'])).numpy(), [2.5, 1.0, 0.0])
    np.testing.assert_array_equal(WeightLookup({})(tf.constant(['A'])).numpy(), [1.0])


def test_in_memory_source_weights(tmp_path):
    """ArraySource(weights=...) yields (x, y, w): weights of 3 triple the first step's loss."""
    from tests._training_fixtures import TAGS, base_config, input_info, make_arrays, tiny_model_fn
    from training.config import parse_config
    from training.data import ArraySource
    from training.trainer import Trainer
    a = make_arrays()
    cfg = parse_config(base_config(distribution={'strategy': 'one_device'}))
    first = []
    for name, weights in (('plain', None), ('triple', np.full(len(a['x_train']), 3.0))):
        src = ArraySource(a['x_train'], a['y_train'], TAGS, input_info(), 16, shuffle=False, weights=weights)
        assert len(next(iter(src.train_dataset(0, False)))) == (2 if weights is None else 3)
        with Trainer(cfg, run_dir=str(tmp_path / name), export=False, data=src, model_fn=tiny_model_fn()) as t:
            first.append(next(t.train_steps()))
    assert first[1] == pytest.approx(3 * first[0], rel=1e-6)
