"""The latent task on real TFRecords: target vectors looked up by track id (the records are not rewritten),
tracks without a target left out and counted, a table of the wrong dimension or one that lacks the
training tracks refused before training."""
import json
import logging

import numpy as np
import pytest

from tests._pipeline_fixtures import make_split_corpus
from tests._training_fixtures import tiny_model_fn

DIM = 5


def write_records(root):
    """A tiny corpus written as log-mel TFRecords → (records dir, {track_id: split} of the written tracks)."""
    from preprocessing.dataset import load_manifest, split_files
    from preprocessing.tfrecords import write_tfrecords
    from training.targets import split_track_ids
    corpus = make_split_corpus(root / 'corpus', n_tracks=20)
    records = root / 'records'
    write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], str(records), format='log-mel',
                    preset='musicnn', shards_per_split=2, progress=False)
    manifest = load_manifest(str(records))
    written = {t: s for s in ('train', 'validation', 'test')
               for t in split_track_ids(split_files(str(records), manifest, s))}
    assert written and all(corpus['split_of'][t] == s for t, s in written.items())
    assert len(written) == sum(manifest['splits'][s]['tracks'] for s in ('train', 'validation', 'test'))
    return records, written


@pytest.fixture(scope='module')
def records(tmp_path_factory):
    return write_records(tmp_path_factory.mktemp('latent-tfr'))


def target_table(path, track_ids, dim=DIM, seed=0):
    from latent.targets import write_targets
    vectors = np.random.default_rng(seed).normal(size=(len(track_ids), dim)).astype(np.float32)
    write_targets(str(path), list(track_ids), vectors, {'kind': 'test', 'key': 'track_id', 'params': {}})
    return dict(zip(track_ids, vectors))


def tfrecord_config(records, **task):
    from tests._training_fixtures import base_config
    cfg = base_config(dataset={'dir': str(records), 'tags': {'top': None}},
                      input={'batch_size': 2, 'window_seconds': 1.0, 'shuffle_buffer': 16},
                      distribution={'strategy': 'one_device'}, optimization={'epochs': 2})
    if task:
        cfg['task'] = dict(task, kind='latent')
    return cfg


def make_trainer(run_dir, cfg_dict):
    from training.config import parse_config
    from training.trainer import Trainer
    return Trainer(parse_config(cfg_dict), run_dir=str(run_dir), export=False, model_fn=tiny_model_fn())


def test_targets_come_by_track_id_and_tracks_without_one_are_left_out(records, tmp_path, caplog):
    records, split_of = records
    train = sorted(t for t, s in split_of.items() if s == 'train')
    val = sorted(t for t, s in split_of.items() if s == 'validation')
    left_out = train[0]
    table = target_table(tmp_path / 'targets', [t for t in sorted(split_of) if t != left_out])
    with caplog.at_level(logging.INFO, logger='training'):
        trainer = make_trainer(tmp_path / 'run', tfrecord_config(records, targets=str(tmp_path / 'targets')))
    assert f'1 of {len(train)} tracks have no target' in caplog.text and left_out in caplog.text
    assert trainer.labels == [f'dim_{i:03d}' for i in range(DIM)]
    assert trainer.data.steps_hint() == (len(train) - 1) // 2
    seen = set()
    for _x, y, tid in trainer.data.validation_dataset():
        for vector, t in zip(y.numpy(), tid.numpy()):
            np.testing.assert_allclose(vector, table[t.decode()], rtol=1e-6)
            seen.add(t.decode())
    assert seen == set(val)
    batches = list(trainer.data.train_dataset(seed=1, repeat=False))
    assert all(len(b) == 2 and b[1].shape == (2, DIM) for b in batches)
    assert sum(int(b[1].shape[0]) for b in batches) == 2 * ((len(train) - 1) // 2)
    result = trainer.fit()
    assert result.epochs_completed == 2 and np.isfinite(result.history[-1]['val_cosine'])
    assert json.loads((tmp_path / 'run' / 'labels.json').read_text())[-1] == f'dim_{DIM - 1:03d}'


def test_a_table_without_the_training_tracks_is_refused_before_training(records, tmp_path):
    from training.config import ConfigError
    records, split_of = records
    train = [t for t, s in split_of.items() if s == 'train']
    target_table(tmp_path / 'other', [f'TROTHER{i:04d}' for i in range(30)])
    with pytest.raises(ConfigError) as e:
        make_trainer(tmp_path / 'run', tfrecord_config(records, targets=str(tmp_path / 'other')))
    assert e.value.key == 'task.targets'
    assert f'only 0 of the {len(train)} tracks of split "train"' in str(e.value) and 'TRTEST' in str(e.value)
    # most tracks missing is refused too
    target_table(tmp_path / 'few', sorted(train)[:1])
    with pytest.raises(ConfigError, match=f'only 1 of the {len(train)} tracks'):
        make_trainer(tmp_path / 'run', tfrecord_config(records, targets=str(tmp_path / 'few')))
    assert not (tmp_path / 'run' / 'checkpoints').exists()


def test_a_table_of_another_dimension_is_refused(records, tmp_path):
    from training.config import ConfigError
    records, split_of = records
    target_table(tmp_path / 'targets', sorted(split_of), dim=3)
    with pytest.raises(ConfigError) as e:
        make_trainer(tmp_path / 'run', tfrecord_config(records, targets=str(tmp_path / 'targets'), dim=DIM))
    assert e.value.key == 'task.dim' and 'dimension 3' in str(e.value)
    with pytest.raises(ConfigError) as e:
        make_trainer(tmp_path / 'run2', tfrecord_config(records, targets=str(tmp_path / 'missing')))
    assert e.value.key == 'task.targets' and 'missing' in str(e.value)


def test_resuming_with_a_table_of_another_dimension_is_refused(records, tmp_path):
    from training.config import ConfigError
    records, split_of = records
    target_table(tmp_path / 'five', sorted(split_of))
    target_table(tmp_path / 'three', sorted(split_of), dim=3)
    cfg = tfrecord_config(records, targets=str(tmp_path / 'five'))
    cfg['optimization']['epochs'] = 1
    make_trainer(tmp_path / 'run', cfg).fit()
    from training.config import parse_config
    from training.trainer import Trainer
    cfg['task']['targets'] = str(tmp_path / 'three')
    with pytest.raises(ConfigError) as e:
        Trainer(parse_config(cfg), run_dir=str(tmp_path / 'run'), resume=True, export=False, model_fn=tiny_model_fn())
    assert e.value.key == 'task.targets' and '3 dimensions' in str(e.value)


def test_track_ids_are_read_without_reading_the_audio(records, tmp_path, monkeypatch):
    import tensorflow as tf
    import training.targets as tg
    from preprocessing.dataset import load_manifest, split_files
    rec_dir, written = records
    files = split_files(str(rec_dir), load_manifest(str(rec_dir)), 'train')
    whole = tg._ids_by_parsing(files, '')
    read = []
    real_read = tf.io.gfile.GFile.read

    def counting_read(self, n=-1):
        data = real_read(self, n)
        read.append(len(data))
        return data
    monkeypatch.setattr(tf.io.gfile.GFile, 'read', counting_read)
    monkeypatch.setattr(tg, '_ids_by_parsing', lambda *a: pytest.fail('parsed whole'))
    assert tg.split_track_ids(files) == whole and len(whole) == sum(s == 'train' for s in written.values())
    size = sum(tf.io.gfile.stat(f).length for f in files)
    assert sum(read) < size / 5, (sum(read), size)          # the audio is skipped, not read
    monkeypatch.undo()
    # records laid out otherwise (the id after the audio, as another writer may do): parsed whole
    other = str(tmp_path / 'other.tfrecord')
    with tf.io.TFRecordWriter(other) as w:
        for tid in ('A', 'B'):
            ex = tf.train.Example(features=tf.train.Features(feature={
                'audio': tf.train.Feature(bytes_list=tf.train.BytesList(value=[b'\0' * 5000])),
                'track_id': tf.train.Feature(bytes_list=tf.train.BytesList(value=[tid.encode()]))}))
            w.write(ex.SerializeToString())
    assert tg.split_track_ids([other]) == ['A', 'B']
    gz = str(tmp_path / 'gz.tfrecord')
    with tf.io.TFRecordWriter(gz, options='GZIP') as w:
        w.write(tf.train.Example(features=tf.train.Features(feature={
            'track_id': tf.train.Feature(bytes_list=tf.train.BytesList(value=[b'C']))})).SerializeToString())
    assert tg.split_track_ids([gz], 'GZIP') == ['C']
