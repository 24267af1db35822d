"""evaluation.tagger: windows, streamed features, memory independent of length, short/silent/bad files."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from evaluation.tagger import Tagger, WindowCutter, window_starts
from modeling.rundir import RunDirError, load_run_info
from preprocessing.audio import AudioLoadError, load_audio, resample
from preprocessing.features import log_mel

from _audio_fixtures import music_like, write_mp3, write_wav
from _evaluation_fixtures import LABELS, make_run_dir, tiny_model

REPO = Path(__file__).resolve().parents[1]
SR = 16000


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp('run') / 'musicnn_tiny', checkpoints=True)


@pytest.fixture(scope='module')
def tagger(run_dir):
    return Tagger.from_run(run_dir)


@pytest.fixture(scope='module')
def orpheus_tagger(tmp_path_factory):
    return Tagger.from_run(make_run_dir(tmp_path_factory.mktemp('orph') / 'run', preset='orpheus'))


def _unchunked(tagger, audio, hop=None, length=None):
    """Reference: whole-track log-mel (preprocessing.features.log_mel), every window materialised,
    one model call."""
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


@pytest.mark.parametrize('total, length, hop', [(10, 5, 5), (12, 5, 5), (12, 5, 2), (5, 5, 3), (40, 7, 13),
                                                (100, 1, 1), (33, 10, 1)])
@pytest.mark.parametrize('piece', [1, 3, 8, 1000])
def test_window_cutter_equals_window_starts_on_any_pieces(total, length, hop, piece):
    x = np.arange(total * 2, dtype=np.float32).reshape(total, 2)        # units with a feature axis
    cutter = WindowCutter(length, hop)
    got = []
    for i in range(0, total, piece):
        got += cutter.push(x[i:i + piece])
    got += cutter.finish()
    starts = window_starts(total, length, hop)
    assert [s for s, _ in got] == list(starts)
    for (_, w), ref in zip(got, starts):
        np.testing.assert_array_equal(w, x[ref:ref + length])


def test_window_cutter_refuses_signal_shorter_than_a_window():
    cutter = WindowCutter(5, 5)
    assert cutter.push(np.zeros(4)) == []
    with pytest.raises(ValueError, match='shorter than one window'):
        cutter.finish()


@pytest.mark.parametrize('hop_seconds', [None, 1.0])
def test_predict_array_equals_unchunked_prediction(tagger, hop_seconds):
    audio = music_like(40.7, SR, seed=2)
    res = tagger.predict_array(audio, SR, hop_seconds=hop_seconds, batch_size=4)
    hop = None if hop_seconds is None else int(round(hop_seconds * SR / 256))
    ref, starts = _unchunked(tagger, audio, hop=hop)
    assert res.taggram.shape == ref.shape
    np.testing.assert_allclose(res.taggram, ref, atol=1e-5)
    np.testing.assert_allclose(res.mean, ref.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(res.window_starts_s, starts * 256 / SR)
    # the last window ends at the end of the track (trailing audio covered)
    assert starts[-1] + 187 == 1 + audio.size // 256
    assert res.labels == LABELS and res.duration_s == pytest.approx(40.7, abs=1e-3)
    assert len(res.top(3)) == 3 and res.top(3)[0][1] == pytest.approx(res.mean.max())
    assert res.warnings == {}


@pytest.mark.parametrize('preset', ['musicnn', 'orpheus'])
@pytest.mark.parametrize('block_seconds, hop_seconds', [(0.37, None), (2.0, 0.5), (None, 7.0)])
def test_predict_file_streams_blocks_and_equals_whole_track(tagger, orpheus_tagger, tmp_path, preset,
                                                            block_seconds, hop_seconds):
    tg = tagger if preset == 'musicnn' else orpheus_tagger
    audio = music_like(31.3, 44100, seed=3)
    audio[:44100 * 3] *= 1e-4          # quiet start: the orpheus top_db clip is active there
    audio[-44100 * 2:] *= 2.0          # the loudest frames are in the last blocks
    f = write_wav(tmp_path / 'x.wav', audio, 44100, subtype='FLOAT')
    res = tg.predict_file(f, block_seconds=block_seconds, hop_seconds=hop_seconds, batch_size=3)
    p = tg.info.params
    hop = None if hop_seconds is None else int(round(hop_seconds * SR / p.hop_length))
    whole = load_audio(f, sr=SR)
    ref, starts = _unchunked(tg, whole, hop=hop)
    if preset == 'orpheus':        # the clip is relative to the maximum of the whole track
        feats = log_mel(whole, p)
        assert feats.min() == pytest.approx(feats.max() - 80, abs=1e-3)
    np.testing.assert_allclose(res.taggram, ref, atol=1e-5)
    np.testing.assert_allclose(res.window_starts_s, starts * p.hop_length / SR)
    assert res.duration_s == pytest.approx(whole.size / SR) and res.path == str(f)


def test_orpheus_file_is_decoded_twice_for_the_track_maximum(orpheus_tagger, tagger, tmp_path, monkeypatch):
    import evaluation.tagger as tagger_mod
    f = write_wav(tmp_path / 'x.wav', music_like(8.0, SR, seed=4), SR)
    opened = []
    real = tagger_mod.iter_audio
    monkeypatch.setattr(tagger_mod, 'iter_audio', lambda *a: opened.append(a) or real(*a))
    orpheus_tagger.predict_file(f)
    assert len(opened) == 2           # first pass: maximum; second pass: windows
    opened.clear()
    tagger.predict_file(f)
    assert len(opened) == 1           # musicnn's log10(1 + 10000 x) needs no maximum: one decode


def test_waveform_run_streams_and_accepts_other_windows(tmp_path):
    run = make_run_dir(tmp_path / 'wave', kind='waveform', window_seconds=2.0, fixed_length=False)
    tg = Tagger.from_run(run)
    audio = music_like(9.5, SR, seed=8)
    res = tg.predict_array(audio, SR, batch_size=2)
    starts = window_starts(audio.size, 32000, 32000)
    x = np.stack([audio[s:s + 32000] for s in starts])
    np.testing.assert_allclose(res.taggram, np.asarray(tg.model(x)), atol=1e-5)
    assert res.window_starts_s[-1] == pytest.approx((audio.size - 32000) / SR)
    f = write_wav(tmp_path / 'w.wav', audio, SR, subtype='FLOAT')
    np.testing.assert_allclose(tg.predict_file(f, block_seconds=0.3).taggram, res.taggram, atol=1e-6)
    # a variable-length model accepts another window length, within reason
    res3 = tg.predict_array(audio, SR, window_seconds=3.0, hop_seconds=1.5)
    assert res3.window_seconds == pytest.approx(3.0) and res3.taggram.shape[0] == 6
    with pytest.raises(ValueError, match='at most 600'):
        tg.predict_array(audio, SR, window_seconds=1e9)       # would tile 9.5 s into 1.6e13 samples


def test_stereo_and_other_rate_are_resampled(tagger):
    audio = music_like(7.0, 22050, seed=3)
    stereo = np.stack([audio, audio])                     # channels-first
    a = tagger.predict_array(stereo, 22050)
    b = tagger.predict_array(stereo.T, 22050)             # channels-last
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-7)
    ref, _ = _unchunked(tagger, resample(audio, 22050, SR))
    np.testing.assert_allclose(a.mean, ref.mean(axis=0), atol=1e-5)


def test_short_audio_is_repeat_padded_with_a_warning(tagger, tmp_path):
    short = music_like(1.2, SR, seed=4)
    res = tagger.predict_array(short, SR)
    assert res.taggram.shape == (1, len(LABELS)) and np.all(np.isfinite(res.mean))
    need = 186 * 256
    tiled = np.tile(short, -(-need // short.size))[:need]
    ref, _ = _unchunked(tagger, tiled)
    np.testing.assert_allclose(res.mean, ref[0], atol=1e-5)
    assert res.duration_s == pytest.approx(1.2)
    assert set(res.warnings) == {'short'} and 'shorter than one' in res.warnings['short']
    assert res.to_dict()['warnings'] == ['short']
    # a 50 ms file also works, through a real file
    f = write_wav(tmp_path / 'tiny.wav', music_like(0.05, SR, seed=5), SR)
    assert tagger.predict_file(f).taggram.shape == (1, len(LABELS))


def test_one_sample_file_is_tagged_with_a_warning_or_reported(tagger, tmp_path):
    one = tmp_path / 'one.wav'
    sf.write(str(one), np.array([0.5], np.float32), SR)
    res = tagger.predict_file(one)
    assert res.duration_s == pytest.approx(1 / SR) and set(res.warnings) == {'short'}
    assert '(1 samples)' in res.warnings['short']
    # one sample at 44.1 kHz leaves nothing at 16 kHz: reported, not a crash
    sf.write(str(tmp_path / 'one44.wav'), np.array([0.5], np.float32), 44100)
    with pytest.raises(AudioLoadError) as e:
        tagger.predict_file(tmp_path / 'one44.wav')
    assert e.value.reason == 'no-samples'


@pytest.mark.parametrize('kind', ['digital', 'hiss'])
def test_silent_file_is_tagged_with_a_warning(tagger, tmp_path, kind):
    y = np.zeros(SR * 5, np.float32)
    if kind == 'hiss':
        y += np.random.default_rng(0).standard_normal(y.size).astype(np.float32) * 1e-5   # ≈ -90 dBFS
    f = write_wav(tmp_path / 'silent.wav', y, SR, subtype='FLOAT')
    res = tagger.predict_file(f)
    assert set(res.warnings) == {'silent'} and res.to_dict()['warnings'] == ['silent']
    assert ('digital silence' in res.warnings['silent']) == (kind == 'digital')
    loud = tagger.predict_file(write_wav(tmp_path / 'loud.wav', music_like(5.0, SR), SR))
    assert loud.warnings == {}


def test_predict_file_mp3_equals_predict_array(tagger, tmp_path):
    f = write_mp3(tmp_path / 'x.mp3', music_like(9.0, 44100, seed=6, channels=2), 44100)
    res = tagger.predict_file(f)
    ref = tagger.predict_array(load_audio(f, sr=SR), SR)
    np.testing.assert_allclose(res.mean, ref.mean, atol=1e-7)
    assert res.path == str(f)
    d = res.to_dict(top=2, taggram=True)
    assert d['file'] == str(f) and len(d['tags']) == 2 and d['warnings'] == []
    assert np.array(d['taggram']['probabilities']).shape == res.taggram.shape
    assert [t for t, _ in res.to_dict(all_tags=True)['tags']] == [t for t, _ in res.ranked()]
    assert len(res.ranked()) == len(LABELS)
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
    res = tg.predict_array(music_like(4.0, SR), SR)
    assert res.labels == shuffled
    assert {t for t, _ in res.top(len(shuffled))} == set(shuffled)
    # a labels.json that does not match the model's outputs is refused
    (run / 'labels.json').write_text(json.dumps(shuffled[:4]))
    with pytest.raises(RunDirError, match='outputs'):
        Tagger.from_run(run)
    (run / 'labels.json').unlink()
    with pytest.raises(RunDirError, match='labels.json'):
        Tagger.from_run(run)


def test_checkpoints_best_last_and_path(run_dir):
    audio = music_like(6.0, SR, seed=7)
    means = {}
    for ck in (None, 'last', 'best', str(run_dir / 'checkpoints' / 'best' / 'ckpt-1')):
        means[ck] = Tagger.from_run(run_dir, checkpoint=ck).predict_array(audio, SR).mean
    assert not np.allclose(means[None], means['best'])
    assert not np.allclose(means['last'], means['best'])
    np.testing.assert_allclose(means['best'], means[str(run_dir / 'checkpoints' / 'best' / 'ckpt-1')])
    # "best" holds the weights of the seed-2 model
    info = load_run_info(run_dir)
    ref = Tagger(tiny_model('log-mel', len(LABELS), 187, 96, seed=2), info).predict_array(audio, SR)
    np.testing.assert_allclose(means['best'], ref.mean, atol=1e-6)
    with pytest.raises(FileNotFoundError):
        Tagger.from_run(run_dir, checkpoint=str(run_dir / 'nope'))


def test_fixed_length_model_refuses_other_window(tagger):
    with pytest.raises(ValueError, match='fixed windows'):
        tagger.predict_array(music_like(10.0, SR), SR, window_seconds=5.0)


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
embed = sys.argv[4] == 'embed'
if embed:                                                    # warm-up: trace, lazy imports
    tg.embed_array(np.zeros(16000 * 4, np.float32), 16000, pooling='meanstd')
else:
    tg.predict_array(np.zeros(16000 * 4, np.float32), 16000)
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
res = tg.embed_file(sys.argv[2], pooling='meanstd').tags if embed else tg.predict_file(sys.argv[2])
if sampler is not None:
    stop.set()
    sampler.join()
    peak = max(samples + [status('VmRSS')])
else:
    peak = status('VmHWM')
print(json.dumps({'base': base, 'peak': peak, 'mean': res.mean.tolist(), 'n': int(res.taggram.shape[0])}))
'''


def _probe(run_dir, path, mode='tag'):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, '-c', _PROBE, str(run_dir), str(path), str(Path(__file__).parent), mode],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['tag', 'embed'])
def test_long_file_memory_does_not_grow_with_length(run_dir, tagger, tmp_path, mode):
    """Tagging, and embedding (Tagger.embed_file), stream a 20-minute file in bounded memory."""
    clip = music_like(30.0, 44100, seed=9, channels=2)
    long_f = tmp_path / 'long.wav'
    with sf.SoundFile(str(long_f), 'w', 44100, 2, subtype='PCM_16') as out:   # 20 minutes of 44.1 kHz stereo
        for _ in range(40):
            out.write(clip)
    short_f = write_wav(tmp_path / 'short.wav', clip, 44100)
    long_r, short_r = _probe(run_dir, long_f, mode), _probe(run_dir, short_f, mode)
    assert long_r['n'] == 1 + (1 + 1200 * SR // 256) // 187 and short_r['n'] == 11
    growth_long = long_r['peak'] - long_r['base']
    growth_short = short_r['peak'] - short_r['base']
    # The decoded 20 minutes alone are 77 MB at 16 kHz (and 212 MB of native-rate stereo per 10 min
    # when decoded in one go); streamed, only the taggram grows with the length.
    assert growth_long - growth_short < 25e6, (growth_long, growth_short)
    # same mean as the whole-track reference
    ref, _ = _unchunked(tagger, load_audio(long_f, sr=SR))
    np.testing.assert_allclose(long_r['mean'], ref.mean(axis=0), atol=1e-5)


def test_package_exports_the_api(run_dir):
    import evaluation
    assert evaluation.Tagger is Tagger
    res = evaluation.Tagger.from_run(run_dir).predict_array(music_like(3.5, SR), SR)
    assert isinstance(res, evaluation.TagResult) and res.mean.shape == (len(LABELS),)


# ------------------------------------------------------------------------------------------------
# embeddings (the API; files, the command and the musicnn fidelity are in tests/test_retrieval_embed*.py)
# ------------------------------------------------------------------------------------------------
def test_pool_windows_math():
    from evaluation.tagger import pool_windows
    w = np.array([[1.0, -2.0, 3.0], [3.0, 2.0, 3.0], [2.0, 0.0, 6.0]], np.float32)
    np.testing.assert_allclose(pool_windows(w, 'mean'), [2.0, 0.0, 4.0])
    np.testing.assert_allclose(pool_windows(w, 'max'), [3.0, 2.0, 6.0])
    std = np.sqrt([2 / 3, 8 / 3, 2.0])                                         # population std (ddof 0)
    np.testing.assert_allclose(pool_windows(w, 'meanstd'), np.concatenate([[2.0, 0.0, 4.0], std]), rtol=1e-6)
    assert pool_windows(w, 'meanstd').dtype == np.float32
    np.testing.assert_array_equal(pool_windows(w[:1], 'meanstd')[3:], 0.0)    # one window: no spread
    with pytest.raises(ValueError, match='pooling must be one of mean, meanstd, max'):
        pool_windows(w, 'median')
    with pytest.raises(ValueError, match='n_windows'):
        pool_windows(np.zeros((0, 3), np.float32), 'mean')


def test_embed_shapes_and_tags_of_the_same_pass(tagger, tmp_path):
    """penultimate of the tiny model = its pooled [mean, max] 16-vector (the input of 'tags')."""
    import keras
    from evaluation.tagger import Embedding
    assert tagger.embedding_layers() == ['penultimate', 'taggram']
    audio = music_like(20.3, SR, seed=4)
    f = write_wav(tmp_path / 'e.wav', audio, SR, subtype='FLOAT')
    ref = tagger.predict_file(f, hop_seconds=2.0, batch_size=3)
    emb = tagger.embed_file(f, hop_seconds=2.0, batch_size=3)
    assert isinstance(emb, Embedding) and emb.layer == 'penultimate' and emb.pooling == 'mean'
    np.testing.assert_array_equal(emb.tags.taggram, ref.taggram)             # same probabilities, same windows
    np.testing.assert_array_equal(emb.starts, ref.window_starts_s)
    assert emb.path == str(f) and emb.duration == pytest.approx(ref.duration_s)
    assert emb.windows.shape == (ref.taggram.shape[0], 16) and emb.windows.dtype == np.float32
    # the window vectors are what the Dense 'tags' layer receives
    head = tagger.model.get_layer('tags')
    np.testing.assert_allclose(np.asarray(head(keras.ops.convert_to_tensor(emb.windows))), ref.taggram, atol=1e-6)
    np.testing.assert_allclose(emb.vector, emb.windows.mean(axis=0), rtol=1e-6)
    mx = tagger.embed(str(f), pooling='max', hop_seconds=2.0)
    np.testing.assert_allclose(mx.vector, emb.windows.max(axis=0), rtol=1e-6)
    ms = tagger.embed(audio, sr=SR, pooling='meanstd', hop_seconds=2.0)
    assert ms.vector.shape == (32,) and ms.path is None
    np.testing.assert_allclose(ms.vector[16:], emb.windows.std(axis=0), rtol=1e-4, atol=1e-6)
    tg = tagger.embed_array(audio, SR, layer='taggram', pooling='max', hop_seconds=2.0)
    np.testing.assert_array_equal(tg.windows, ref.taggram)
    np.testing.assert_array_equal(tg.vector, ref.taggram.max(axis=0))
    with pytest.raises(TypeError, match='sample rate'):
        tagger.embed(audio)


def test_embed_unknown_layer_or_pooling_fails_before_reading(tagger, tmp_path):
    from evaluation.tagger import UnknownLayerError
    from core.errors import MuseTagError
    missing = tmp_path / 'never-read.wav'                 # would raise AudioLoadError if it were read
    with pytest.raises(UnknownLayerError, match=r"no embedding layer 'mean_pool'; available: penultimate, taggram"):
        tagger.embed_file(missing, layer='mean_pool')
    assert issubclass(UnknownLayerError, MuseTagError)
    with pytest.raises(ValueError, match="pooling must be one of mean, meanstd, max, got 'avg'"):
        tagger.embed_file(missing, pooling='avg')


@pytest.mark.slow
def test_every_registered_model_offers_penultimate_the_input_of_its_classifier():
    """For every registry model: 'penultimate' is the default layer, and the layer with weights that
    makes the logits, applied to it, gives the model's tags (so it is that layer's input)."""
    import types
    import keras
    from modeling import InputSpec, build_model, list_models, model_info
    rng = np.random.default_rng(0)
    for name in list_models(combinations=False):
        info = model_info(name)
        if info['input_kind'] == 'log-mel':
            frames = info['fixed_frames'] or int(round(info['default_window_seconds'] * SR / 256))
            spec = InputSpec(kind='log-mel', frames=frames)
            x = rng.normal(size=(2, frames, 96)).astype(np.float32)
        else:
            samples = int(round(info['default_window_seconds'] * SR))
            spec = InputSpec(kind='waveform', samples=samples)
            x = rng.normal(0, 0.1, size=(2, samples)).astype(np.float32)
        model = build_model(name, 5, spec)
        tg = Tagger(model, types.SimpleNamespace(labels=list('abcde'), kind=info['input_kind'], run_dir=name,
                                                 params=types.SimpleNamespace(n_mels=96)))
        assert tg.embedding_layers()[0] == 'penultimate' and tg.embedding_layers()[-1] == 'taggram', name
        probs, vec = tg._infer_fn(x.shape[1], 'penultimate')(x)
        np.testing.assert_allclose(probs, model(x, training=False), atol=1e-6, err_msg=name)
        head = model.get_layer('tags').input._keras_history[0]          # the logits layer
        assert head.weights, name
        logits = head(vec)
        np.testing.assert_allclose(keras.ops.sigmoid(logits), probs, atol=1e-5, err_msg=name)
