"""The image input source (imagemusic/data.py) and the random picture transformations (imagemusic/augment.py)."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from core.errors import MuseTagError
from imagemusic.augment import AugmentParams
from imagemusic.data import ImageOptions, ImageSource, read_pairs
from tests._imagemusic_fixtures import image_config, make_pairs

OPTIONS = ImageOptions(image_size=32, copies=2)


@pytest.fixture(scope='module')
def pairs(tmp_path_factory):
    return make_pairs(tmp_path_factory.mktemp('pairs'), per_class=5)


def _batches(ds):
    return [tuple(np.asarray(t) for t in batch) for batch in ds]


def test_training_batches_shapes_and_variants(pairs):
    src = ImageSource(image_config(pairs['dir'], batch_size=4), options=OPTIONS)
    n_train = sum(1 for p in read_pairs(pairs['dir']) if p.split == 'train')
    assert src.labels == [f'dim_{i:03d}' for i in range(8)]
    assert src.steps_hint() == n_train * 2 // 4
    batches = _batches(src.train_dataset(seed=3, repeat=False))
    assert len(batches) == src.steps_hint()
    x, y = batches[0]
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32 and y.shape == (4, 8)
    assert 0.0 <= x.min() and x.max() <= 1.0
    # every training pair appears `copies` times per epoch, each time transformed differently
    targets = np.concatenate([b[1] for b in batches])
    pictures = np.concatenate([b[0] for b in batches])
    first = np.flatnonzero(np.all(targets == targets[0], axis=1))
    assert len(first) == 2 and not np.allclose(pictures[first[0]], pictures[first[1]])
    assert src.info.features_json()['image_size'] == [32, 32]
    assert src.info.input_spec().image_size == (32, 32)


def test_same_seed_same_examples_other_seed_other_examples(pairs):
    src = ImageSource(image_config(pairs['dir'], batch_size=4), options=OPTIONS)
    a, b = _batches(src.train_dataset(7, False)), _batches(src.train_dataset(7, False))
    c = _batches(src.train_dataset(8, False))
    assert all(np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1]) for p, q in zip(a, b))
    assert not np.allclose(a[0][0], c[0][0])
    repeated = src.train_dataset(7, repeat=True).take(len(a) + 1)
    assert len(_batches(repeated)) == len(a) + 1       # repeat goes on past one epoch


def test_validation_is_untransformed_and_names_tracks(pairs):
    src = ImageSource(image_config(pairs['dir'], batch_size=4), options=OPTIONS)
    rows = _batches(src.validation_dataset())
    ids = [i.decode() for b in rows for i in b[2]]
    assert ids == [p.track_id for p in read_pairs(pairs['dir']) if p.split == 'validation']
    again = _batches(src.validation_dataset())
    assert np.array_equal(rows[0][0], again[0][0])
    x, y, vids = src.validation_arrays()
    assert vids == ids and np.allclose(x[:4], rows[0][0])
    np.testing.assert_allclose(y[0], pairs['vectors'][pairs['ids'].index(ids[0])])


def test_weights_come_with_their_examples(pairs, tmp_path):
    weights = tmp_path / 'w.csv'
    heavy = [p.track_id for p in read_pairs(pairs['dir']) if p.split == 'train'][:3]
    weights.write_text('track_id,weight,likes\n' + ''.join(f'{t},2.5,3\n' for t in heavy), encoding='utf-8')
    src = ImageSource(image_config(pairs['dir'], batch_size=4, weights=str(weights)), options=OPTIONS)
    batches = _batches(src.train_dataset(1, False))
    assert all(len(b) == 3 for b in batches)
    y = np.concatenate([b[1] for b in batches])
    w = np.concatenate([b[2] for b in batches])
    for t in heavy:
        rows = np.all(np.isclose(y, pairs['vectors'][pairs['ids'].index(t)]), axis=1)
        assert rows.sum() == 2 and np.all(w[rows] == 2.5)
    assert np.sum(w == 1.0) == len(w) - 6
    bad = tmp_path / 'bad.csv'
    bad.write_text('track_id,weight\nmetal000,-1\n', encoding='utf-8')
    with pytest.raises(MuseTagError, match='line 2'):
        ImageSource(image_config(pairs['dir'], weights=str(bad)), options=OPTIONS)


def test_bad_pictures_and_pairs_without_target_are_left_out(pairs, tmp_path):
    import shutil
    root = tmp_path / 'p'
    shutil.copytree(pairs['dir'], root)
    rows = list(csv.DictReader(open(root / 'pairs.csv', encoding='utf-8')))
    train = [r for r in rows if r['split'] == 'train']
    (root / train[0]['image']).write_bytes(b'\xff\xd8\xff\xe0 truncated jpeg')
    rows.append({**train[1], 'track_id': 'nosuchtrack'})
    with open(root / 'pairs.csv', 'w', encoding='utf-8', newline='') as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    src = ImageSource(image_config(root), options=OPTIONS)
    assert len(src.train[0]) == len(train) - 1
    assert len(src.skipped) == 2 and 'track nosuchtrack' in src.skipped


def test_a_folder_without_pairs_is_named(tmp_path):
    with pytest.raises(MuseTagError, match='no pairs.csv'):
        ImageSource(image_config(tmp_path), options=OPTIONS)


def test_options_and_augment_parameters_are_checked():
    assert ImageOptions.from_dict({'image_size': 64, 'augment': {'blur': 0}}).augment.blur == 0
    with pytest.raises(ValueError, match='copies'):
        ImageOptions(copies=0)
    with pytest.raises(ValueError, match='unknown augment parameter'):
        AugmentParams.from_dict({'blurr': 0.1})
    with pytest.raises(ValueError, match='hue'):
        AugmentParams(hue=0.7)


def test_augment_is_deterministic_and_each_part_changes_the_picture():
    import tensorflow as tf

    from imagemusic.augment import augment
    rng = np.random.default_rng(0)
    image = tf.constant(rng.random((32, 32, 3)).astype(np.float32))
    seed = tf.constant([1, 2], tf.int64)
    none = AugmentParams(crop_min=1.0, flip=False, brightness=0, contrast=0, saturation=0, hue=0, blur=0)
    np.testing.assert_array_equal(augment(image, seed, none), image)
    for part in ({'crop_min': 0.5}, {'flip': True}, {'brightness': 0.3}, {'contrast': 0.5}, {'saturation': 0.5},
                 {'hue': 0.2}, {'blur': 1.0}):
        params = AugmentParams(**{**none.to_dict(), **part})
        outs = [augment(image, tf.constant([s, 0], tf.int64), params).numpy() for s in range(4)]
        assert any(not np.allclose(o, image.numpy()) for o in outs), part
        np.testing.assert_array_equal(outs[0], augment(image, tf.constant([0, 0], tf.int64), params))
        assert all(o.shape == (32, 32, 3) and o.min() >= 0 and o.max() <= 1 for o in outs)
