"""evaluation.tagger: windows, chunked features, bounded memory, short/bad files, labels from the run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import preprocessing.audio as pa
from evaluation.tagger import Tagger, _ChunkedLogMel, load_run_info, window_starts
from preprocessing.audio import AudioLoadError, load_audio
from preprocessing.features import get_params, log_mel

from _evaluation_fixtures import LABELS, make_run_dir, music_like, tiny_model, write_mp3, write_wav

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp('run') / 'musicnn_tiny', checkpoints=True)


@pytest.fixture(scope='module')
def tagger(run_dir):
    return Tagger.from_run(run_dir)


def _unchunked(tagger, audio, hop=None, length=None):
    """Reference: whole-track log-mel, every window materialised, one model call."""
    p = tagger.info.params
    length = length or tagger.info.input_frames
    feats = log_mel(audio, p)
    starts = window_starts(feats.shape[0], length, hop or length)
    x = np.stack([feats[s:s + length] for s in starts])
    return np.asarray(tagger.model(x, training=False)), starts


def test_window_starts_cover_track_with_end_aligned_last_window():
    np.testing.assert_array_equal(window_starts(10, 5, 5), [0, 5])          # exact fit
    np.testing.assert_array_equal(window_starts(12, 5, 5), [0, 5, 7])       # trailing 2 covered
    np.testing.assert_array_equal(window_starts(12, 5, 2), [0, 2, 4, 6, 7])  # overlapping hop
    np.testing.assert_array_equal(window_starts(5, 5, 3), [0])
    with pytest.raises(ValueError):
        window_starts(4, 5, 5)


@pytest.mark.parametrize('preset,pad_mode', [('musicnn', 'constant'), ('orpheus', 'constant'),
                                             ('orpheus', 'reflect')])
def test_chunked_log_mel_equals_whole_track(preset, pad_mode, monkeypatch):
    import evaluation.tagger as tagger_mod
    monkeypatch.setattr(tagger_mod, '_MAX_PASS_FRAMES', 50)     # several chunks in the max pass
    audio = music_like(12.3, seed=1)
    audio[: 16000 * 2] *= 1e-4        # quiet start: the orpheus top_db clip is active there
    audio[-16000:] *= 3.0             # loudest frames in the last chunk of the max pass
    p = get_params(preset, pad_mode=pad_mode)
    ref = log_mel(audio, p)
    chunked = _ChunkedLogMel(audio, p)
    assert chunked.total == ref.shape[0]
    t = ref.shape[0]
    for f0, f1 in [(0, 7), (0, t), (3, 250), (t - 9, t), (t // 2, t // 2 + 1)]:
        np.testing.assert_allclose(chunked(f0, f1), ref[f0:f1], rtol=0, atol=2e-5)
    if preset == 'orpheus':      # the clip must be relative to the whole-track maximum
        assert np.isclose(ref.min(), ref.max() - 80, atol=1e-3)
        np.testing.assert_allclose(chunked(0, 50), ref[:50], atol=2e-5)


@pytest.mark.parametrize('hop_seconds', [None, 1.0])
def test_predict_array_equals_unchunked_prediction(tagger, hop_seconds):
    audio = music_like(40.7, seed=2)
    res = tagger.predict_array(audio, 16000, hop_seconds=hop_seconds, batch_size=4)
    hop = None if hop_seconds is None else int(round(hop_seconds * 16000 / 256))
    ref, starts = _unchunked(tagger, audio, hop=hop)
    assert res.taggram.shape == ref.shape
    np.testing.assert_allclose(res.taggram, ref, atol=1e-5)
    np.testing.assert_allclose(res.mean, ref.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(res.window_starts_s, starts * 256 / 16000)
    # the last window ends at the end of the track (trailing audio covered)
    n_frames_total = 1 + audio.size // 256
    assert starts[-1] + 187 == n_frames_total
    assert res.labels == LABELS and res.duration_s == pytest.approx(40.7, abs=1e-3)
    assert len(res.top(3)) == 3 and res.top(3)[0][1] == pytest.approx(res.mean.max())


def test_stereo_and_other_rate_are_resampled(tagger):
    audio = music_like(7.0, sr=22050, seed=3)
    stereo = np.stack([audio, audio])                     # channels-first
    a = tagger.predict_array(stereo, 22050)
    b = tagger.predict_array(stereo.T, 22050)             # channels-last
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-7)
    ref, _ = _unchunked(tagger, load_audio_like(audio, 22050))
    np.testing.assert_allclose(a.mean, ref.mean(axis=0), atol=1e-5)


def load_audio_like(audio, sr):
    from preprocessing.audio import resample
    return resample(audio, sr, 16000)


def test_short_audio_is_repeat_padded(tagger, tmp_path):
    short = music_like(1.2, seed=4)
    res = tagger.predict_array(short, 16000)
    assert res.taggram.shape == (1, len(LABELS)) and np.all(np.isfinite(res.mean))
    need = 186 * 256
    tiled = np.tile(short, -(-need // short.size))[:need]
    ref, _ = _unchunked(tagger, tiled)
    np.testing.assert_allclose(res.mean, ref[0], atol=1e-5)
    assert res.duration_s == pytest.approx(1.2)
    # a 50 ms file also works, through a real file
    f = write_wav(tmp_path / 'tiny.wav', music_like(0.05, seed=5))
    assert tagger.predict_file(f).taggram.shape == (1, len(LABELS))


def test_predict_file_mp3_equals_predict_array(tagger, tmp_path):
    f = write_mp3(tmp_path / 'x.mp3', music_like(9.0, sr=44100, seed=6), sr=44100, channels=2, bitrate=128)
    res = tagger.predict_file(f)
    ref = tagger.predict_array(load_audio(f, sr=16000), 16000)
    np.testing.assert_allclose(res.mean, ref.mean, atol=1e-7)
    assert res.path == str(f)
    d = res.to_dict(top=2, taggram=True)
    assert d['file'] == str(f) and len(d['tags']) == 2
    assert np.array(d['taggram']['probabilities']).shape == res.taggram.shape
    json.dumps(d)


@pytest.mark.parametrize('content,reason', [(b'', 'empty'), (b'this is not audio' * 40, 'not-audio'),
                                            (None, 'missing')])
def test_bad_files_raise_with_reason(tagger, tmp_path, content, reason):
    f = tmp_path / f'bad_{reason}.mp3'
    if content is not None:
        f.write_bytes(content)
    with pytest.raises(AudioLoadError) as e:
        tagger.predict_file(f)
    assert e.value.reason == reason


def test_labels_always_come_from_the_run_dir(tmp_path):
    shuffled = ['zz-' + t for t in reversed(LABELS)]
    run = make_run_dir(tmp_path / 'shuffled', labels=shuffled)
    tg = Tagger.from_run(run)
    res = tg.predict_array(music_like(4.0), 16000)
    assert res.labels == shuffled
    assert {t for t, _ in res.top(len(shuffled))} == set(shuffled)
    # a labels.json that does not match the model's outputs is refused
    (run / 'labels.json').write_text(json.dumps(shuffled[:4]))
    with pytest.raises(ValueError, match='outputs'):
        Tagger.from_run(run)
    (run / 'labels.json').unlink()
    with pytest.raises(FileNotFoundError, match='labels.json'):
        Tagger.from_run(run)


def test_checkpoints_best_last_and_path(run_dir):
    audio = music_like(6.0, seed=7)
    means = {}
    for ck in (None, 'last', 'best', str(run_dir / 'checkpoints' / 'best' / 'ckpt-1')):
        means[ck] = Tagger.from_run(run_dir, checkpoint=ck).predict_array(audio, 16000).mean
    assert not np.allclose(means[None], means['best'])
    assert not np.allclose(means['last'], means['best'])
    np.testing.assert_allclose(means['best'], means[str(run_dir / 'checkpoints' / 'best' / 'ckpt-1')])
    # "best" holds the weights of the seed-2 model
    info = load_run_info(run_dir)
    ref = Tagger(tiny_model('log-mel', len(LABELS), 187, 96, seed=2), info).predict_array(audio, 16000)
    np.testing.assert_allclose(means['best'], ref.mean, atol=1e-6)
    with pytest.raises(FileNotFoundError):
        Tagger.from_run(run_dir, checkpoint=str(run_dir / 'nope'))


def test_waveform_run_and_variable_window(tmp_path):
    run = make_run_dir(tmp_path / 'wave', kind='waveform', window_seconds=2.0, fixed_length=False)
    tg = Tagger.from_run(run)
    audio = music_like(9.5, seed=8)
    res = tg.predict_array(audio, 16000, batch_size=2)
    starts = window_starts(audio.size, 32000, 32000)
    x = np.stack([audio[s:s + 32000] for s in starts])
    np.testing.assert_allclose(res.taggram, np.asarray(tg.model(x)), atol=1e-5)
    assert res.window_starts_s[-1] == pytest.approx((audio.size - 32000) / 16000)
    # a variable-length model accepts another window length
    res3 = tg.predict_array(audio, 16000, window_seconds=3.0, hop_seconds=1.5)
    assert res3.window_seconds == pytest.approx(3.0) and res3.taggram.shape[0] == 6


def test_fixed_length_model_refuses_other_window(tagger):
    with pytest.raises(ValueError, match='fixed windows'):
        tagger.predict_array(music_like(10.0), 16000, window_seconds=5.0)


def test_predict_file_decodes_long_files_block_by_block(tagger, tmp_path, monkeypatch):
    # the streaming decode itself is tested in test_frontend.py; here: predict_file goes through
    # preprocessing.audio.load_audio, which takes the block path for a long file
    f = write_mp3(tmp_path / 'long.mp3', music_like(7.0, sr=44100, seed=12), sr=44100, channels=2, bitrate=128)
    ref = tagger.predict_array(pa.to_mono(pa.read_audio(f)[0]), 44100)
    calls = []
    real = pa._decode_blocks
    monkeypatch.setattr(pa, '_decode_blocks', lambda *a: calls.append(a) or real(*a))
    monkeypatch.setattr(pa, 'STREAM_ABOVE_SECONDS', 5.0)
    monkeypatch.setattr(pa, '_BLOCK_FRAMES', 8192)
    res = tagger.predict_file(f)
    assert len(calls) == 1
    np.testing.assert_allclose(res.mean, ref.mean, atol=1e-7)
    np.testing.assert_allclose(res.taggram, ref.taggram, atol=1e-7)


_PROBE = r'''
import json, sys
sys.path.insert(0, sys.argv[3])
import numpy as np
from evaluation.tagger import Tagger


def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key + ':'):
            return int(line.split()[1]) * 1024


tg = Tagger.from_run(sys.argv[1])
tg.predict_array(np.zeros(16000 * 4, np.float32), 16000)     # warm-up: trace, lazy imports
try:
    # Reset the kernel's peak-RSS mark (VmHWM) so the peak below belongs to predict_file alone.
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    sampler = None
except OSError:
    # No clear_refs (restricted /proc): sample the RSS every millisecond instead.
    import threading, psutil
    proc, samples, stop = psutil.Process(), [], threading.Event()
    def sample():
        while not stop.is_set():
            samples.append(proc.memory_info().rss)
            stop.wait(0.001)
    sampler = threading.Thread(target=sample, daemon=True)
base = status('VmRSS')
if sampler is not None:
    sampler.start()
res = tg.predict_file(sys.argv[2])
if sampler is not None:
    stop.set()
    sampler.join()
    peak = max(samples + [status('VmRSS')])
else:
    peak = status('VmHWM')
print(json.dumps({'base': base, 'peak': peak, 'mean': res.mean.tolist(), 'n': int(res.taggram.shape[0])}))
'''


def _probe(run_dir, path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, '-c', _PROBE, str(run_dir), str(path), str(Path(__file__).parent)],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_ten_minute_file_bounded_memory_and_same_mean(run_dir, tagger, tmp_path):
    long_audio = music_like(600.0, seed=9)
    long_f = write_wav(tmp_path / 'long.wav', long_audio)
    short_f = write_wav(tmp_path / 'short.wav', long_audio[:30 * 16000])
    long_r, short_r = _probe(run_dir, long_f), _probe(run_dir, short_f)
    assert long_r['n'] == 1 + (1 + 600 * 16000 // 256) // 187 and short_r['n'] == 11
    growth_long = long_r['peak'] - long_r['base']
    growth_short = short_r['peak'] - short_r['base']
    # Decoding 10 min at 16 kHz costs 38 MB (+ a block); a whole-track STFT alone would add
    # > 200 MB (complex [37 501, 257] + frames), all windows another 69 MB.
    assert growth_long - growth_short < 100e6, (growth_long, growth_short)
    assert long_r['peak'] / short_r['peak'] < 1.3, (long_r, short_r)
    # same mean as unchunked prediction of the whole track
    ref, _ = _unchunked(tagger, load_audio(long_f, sr=16000))
    np.testing.assert_allclose(long_r['mean'], ref.mean(axis=0), atol=1e-5)


def test_package_exports_the_api(run_dir):
    import evaluation
    assert evaluation.Tagger is Tagger
    res = evaluation.Tagger.from_run(run_dir).predict_array(music_like(3.5), 16000)
    assert isinstance(res, evaluation.TagResult) and res.mean.shape == (len(LABELS),)
