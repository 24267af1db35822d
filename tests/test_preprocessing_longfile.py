"""TFRecord writing of full-length tracks (MTG-Jamendo's are 3-6 minutes) never holds a whole
native-rate decoded copy: a 6-minute 44.1 kHz stereo MP3 is decoded and resampled block by block
(``preprocessing.audio.load_audio`` above ``STREAM_ABOVE_SECONDS``), so encoding it and serialising
its record needs less memory than one native-rate float32 copy (121 MiB) would take.

Memory is measured as the peak of the allocations ``tracemalloc`` traces (NumPy arrays and Python
objects: every buffer the decoder, resampler and front end hand over) while one track is encoded,
in a fresh process. The peak RSS is not used: its growth over the start-up's high-water mark
depends on what the kernel evicted meanwhile (pages of TensorFlow's libraries under memory
pressure), so on a busy machine it read 0 MiB even for a one-shot decode.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SR, CHANNELS, SECONDS = 44100, 2, 360.0

#: Encodes a warm-up file (imports, FFT plans, first allocations), then the long one; prints the
#: traced allocation peak (MiB) of the second. ``argv[4]`` (optional) overrides STREAM_ABOVE_SECONDS.
_PROBE = """
import json, sys, tracemalloc
import preprocessing.audio as audio
from preprocessing.encode import encode_track
from preprocessing.tfrecords import feature_spec, serialize_example
fmt, warm, long = sys.argv[1:4]
if len(sys.argv) > 4:
    audio.STREAM_ABOVE_SECONDS = float(sys.argv[4])
feats = feature_spec(fmt, sr=16000, preset='musicnn')
serialize_example('w', '', [0], *encode_track(warm, feats))
tracemalloc.start()
data, shape, duration = encode_track(long, feats)
record = serialize_example('t', '', [0], data, shape, duration)
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({'peak_mib': peak / 2 ** 20, 'stored_mib': len(data) / 2 ** 20, 'duration': duration,
                  'shape': shape}))
"""


@pytest.fixture(scope='module')
def mp3s(tmp_path_factory):
    """(warm-up 5 s MP3, 6-minute 44.1 kHz stereo MP3)."""
    from msd.synthetic import encode_mp3
    folder = tmp_path_factory.mktemp('long')
    t = np.arange(int(SR * SECONDS)) / SR
    rng = np.random.default_rng(0)
    left = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    right = 0.3 * np.sin(2 * np.pi * 330 * t + 1.0)
    y = np.stack([left, right], 1).astype(np.float32) + 0.02 * rng.standard_normal((t.size, 2)).astype(np.float32)
    paths = []
    for name, part in (('warm.mp3', y[:5 * SR]), ('long.mp3', y)):
        path = folder / name
        path.write_bytes(encode_mp3(part, SR, 128))
        paths.append(str(path))
    return paths


def _probe(fmt, warm, long, *override):
    r = subprocess.run([sys.executable, '-c', _PROBE, fmt, warm, long, *override], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, 'PYTHONPATH': ROOT}, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


NATIVE_COPY_MIB = SR * SECONDS * CHANNELS * 4 / 2 ** 20       # 121 MiB of float32


@pytest.mark.slow
@pytest.mark.parametrize('fmt', ['log-mel', 'waveform'])
def test_encoding_a_6_minute_track_holds_no_native_rate_copy(mp3s, fmt):
    got = _probe(fmt, *mp3s)
    assert got['duration'] == pytest.approx(SECONDS, abs=0.1)
    assert got['peak_mib'] < NATIVE_COPY_MIB, got


@pytest.mark.slow
def test_the_probe_sees_a_native_rate_copy_when_one_is_made(mp3s):
    # the same probe with block decoding switched off: the one-shot decode is caught
    got = _probe('log-mel', *mp3s, '1e9')
    assert got['peak_mib'] > NATIVE_COPY_MIB, got
