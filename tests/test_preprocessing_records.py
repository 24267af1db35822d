"""The writer's TensorFlow-free records (preprocessing.records) equal what TensorFlow writes, byte for byte."""
import os
import subprocess
import sys

import numpy as np
import pytest

from preprocessing import records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = (0, 1, 127, 128, 16_383, 16_384, 1 << 20, (1 << 20) + 4099)


@pytest.fixture(scope='module')
def tf():
    from core.logs import import_tensorflow
    return import_tensorflow()


def _tf_example(tf, track_id, artist_id, tags, audio, shape, duration):
    """The writer's record as TensorFlow's protobuf classes serialise it (two Examples back to back)."""
    feat = tf.train.Feature
    meta = tf.train.Example(features=tf.train.Features(feature={
        'track_id': feat(bytes_list=tf.train.BytesList(value=[str(track_id).encode()])),
        'artist_id': feat(bytes_list=tf.train.BytesList(value=[str(artist_id or '').encode()])),
        'tags': feat(int64_list=tf.train.Int64List(value=[int(t) for t in tags])),
        'shape': feat(int64_list=tf.train.Int64List(value=list(shape))),
        'duration': feat(float_list=tf.train.FloatList(value=[float(duration)])),
    }))
    tail = tf.train.Example(features=tf.train.Features(feature={
        'audio': feat(bytes_list=tf.train.BytesList(value=[bytes(audio)]))}))
    return meta.SerializeToString(deterministic=True) + tail.SerializeToString(deterministic=True)


@pytest.mark.parametrize('size', SIZES)
def test_framed_record_equals_tfrecordwriter_and_reads_back(tf, tmp_path, size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    path = str(tmp_path / 'tf.tfrecord')
    with tf.io.TFRecordWriter(path) as w:
        w.write(data)
    with open(path, 'rb') as f:
        expected = f.read()
    assert records.frame_record(data) == expected
    assert records.frame_record([data[:size // 3], memoryview(data)[size // 3:]]) == expected   # parts: no join first
    ours = tmp_path / 'ours.tfrecord'
    ours.write_bytes(records.frame_record(data) * 2)
    back = [r.numpy() for r in tf.data.TFRecordDataset(str(ours))]
    assert back == [data, data]


CASES = [
    ('TRAAAAW128F429D538', 'ARD7TVE1187B99BFB1', [0, 3, 49], 1 << 20, [524_288], 32.768),
    ('t', '', [], 0, [0], 0.0),                                   # no tags, no artist, empty audio
    ('tr\u00e4ck', None, [1 << 40, 127, 128], 300, [100, 96], 1e9),  # non-ASCII id, big varints
    ('x' * 200, 'a' * 300, list(range(200)), 7, [7], 29.123456789),  # long fields (two-byte lengths)
]


@pytest.mark.parametrize('case', CASES, ids=lambda c: c[0][:8] or 'empty')
def test_serialize_example_equals_tensorflow(tf, case):
    tid, artist, tags, n, shape, duration = case
    audio = np.random.default_rng(n).integers(-32768, 32767, n // 2, dtype='<i2').tobytes() + b'\x01' * (n % 2)
    expected = _tf_example(tf, tid, artist, tags, audio, shape, duration)
    ours = records.serialize_example(tid, artist, tags, audio, shape, duration)
    assert ours == expected
    assert ours.endswith(audio)
    parsed = tf.train.Example.FromString(ours).features.feature
    assert parsed['audio'].bytes_list.value[0] == audio
    assert list(parsed['tags'].int64_list.value) == tags


def test_records_module_uses_a_native_crc_and_no_tensorflow():
    code = ('import sys; from preprocessing import records; '
            'assert records.crc32c_backend() == "google-crc32c", records.crc32c_backend(); '
            'assert records.crc32c_is_native(), "crcmod runs its pure-Python CRC"; '
            'assert "tensorflow" not in sys.modules, "preprocessing.records imported TensorFlow"; '
            'import preprocessing.encode; assert "tensorflow" not in sys.modules, "encode imported TensorFlow"')
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_crcmod_fallback_frames_the_same_bytes():
    """Without google-crc32c the writer falls back to crcmod's C extension, with identical output."""
    data = np.random.default_rng(5).integers(0, 256, 70_001, dtype=np.uint8).tobytes()
    code = ('import sys; sys.modules["google_crc32c"] = None; from preprocessing import records; '
            'assert records.crc32c_backend() == "crcmod", records.crc32c_backend(); '
            'assert records.crc32c_is_native(); '
            'sys.stdout.buffer.write(records.frame_record([sys.stdin.buffer.read()]))')
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, input=data, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == records.frame_record(data)
    assert records.crc32c_backend() == 'google-crc32c'
