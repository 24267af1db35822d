"""The audio front end: decoding (load_audio), the NumPy log-mel and its TF layer twin."""
import numpy as np
import pytest
import soundfile as sf

import preprocessing.audio as pa
from preprocessing.audio import (AudioLoadError, audio_info, load_audio, load_audio_streaming, read_audio,
                                 resample, to_mono)
from preprocessing.features import FeatureParams, get_params, log_mel, mel_power, n_frames, frames_per_second
from tests._audio_fixtures import music_like, write_mp3, write_wav

SR = 16000


def _signals():
    rng = np.random.default_rng(1)
    t = np.arange(SR * 4) / SR
    return {
        'music': music_like(4, SR, seed=3),
        'noise': (rng.standard_normal(SR * 4) * 0.1).astype(np.float32),
        'silence': np.zeros(SR * 4, np.float32),
        'sine': (0.05 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
    }


# ---------------------------------------------------------------- decoding

def test_load_audio_mp3_stereo_44k_downmixes_and_resamples(tmp_path):
    stereo = music_like(3, 44100, seed=1, channels=2)
    path = write_mp3(tmp_path / 'a.mp3', stereo, 44100)
    y = load_audio(path, sr=SR)
    assert y.dtype == np.float32 and y.ndim == 1
    # lameenc adds encoder delay/padding: length within ~0.1 s of 3 s at 16 kHz
    assert abs(len(y) - 3 * SR) < 0.1 * SR
    native, sr = read_audio(path)
    assert sr == 44100 and native.shape[1] == 2


def test_load_audio_matches_librosa_load(tmp_path):
    import librosa
    path = write_mp3(tmp_path / 'b.mp3', music_like(2, 22050, seed=2, channels=2), 22050)
    ours = load_audio(path, sr=SR)
    ref, _ = librosa.load(str(path), sr=SR)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize('sr_in, channels', [(8000, 1), (11025, 2), (48000, 3), (16000, 1)])
def test_load_audio_odd_rates_and_channels(tmp_path, sr_in, channels):
    audio = music_like(1.5, sr_in, seed=4, channels=channels)
    path = write_wav(tmp_path / f'x{sr_in}.wav', audio, sr_in, subtype='FLOAT')
    y = load_audio(path, sr=SR)
    assert abs(len(y) - int(1.5 * SR)) <= 2
    if sr_in == SR:
        expected = audio if channels == 1 else audio.mean(axis=1)
        np.testing.assert_allclose(y, expected, atol=1e-7)
    assert load_audio(path, sr=None).shape[0] == int(1.5 * sr_in)


def test_load_audio_channel_mean(tmp_path):
    left = np.full(SR, 0.5, np.float32)
    right = np.full(SR, -0.1, np.float32)
    path = write_wav(tmp_path / 's.wav', np.stack([left, right], 1), SR, subtype='FLOAT')
    np.testing.assert_allclose(load_audio(path, sr=SR), 0.2, atol=1e-7)


@pytest.mark.parametrize('stream_above', [None, -1.0], ids=['default', 'all-block-wise'])
@pytest.mark.parametrize('kind, reason', [
    ('missing', 'missing'), ('empty', 'empty'), ('text', 'not-audio'), ('random', None),
    ('truncated_wav', None), ('zero_frames', 'no-samples'),
])
def test_load_audio_bad_files_raise_typed_error(tmp_path, monkeypatch, kind, reason, stream_above):
    blocks = []
    if stream_above is not None:          # every file with a readable header takes the block path
        monkeypatch.setattr(pa, 'STREAM_ABOVE_SECONDS', stream_above)
        real = pa._decode_blocks
        monkeypatch.setattr(pa, '_decode_blocks', lambda *a: blocks.append(a) or real(*a))
    path = tmp_path / f'{kind}.mp3'
    if kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'text':
        path.write_text('this is not an mp3 file\n' * 20)
    elif kind == 'random':
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif kind == 'truncated_wav':
        path = tmp_path / 't.wav'
        write_wav(path, music_like(1, SR), SR)
        path.write_bytes(path.read_bytes()[:30])  # header cut in half
    elif kind == 'zero_frames':
        path = tmp_path / 'z.wav'
        sf.write(str(path), np.zeros((0, 1), np.float32), SR)
    with pytest.raises(AudioLoadError) as err:
        load_audio(path)
    assert err.value.path == str(path)
    assert str(path) in str(err.value)
    if reason:
        assert err.value.reason == reason
    else:
        assert err.value.reason in ('not-audio', 'unreadable')
    assert isinstance(err.value, ValueError)
    if stream_above is not None and kind == 'zero_frames':
        assert blocks                     # the header was readable: the block path raised it
    elif kind in ('missing', 'empty', 'text'):
        assert not blocks                 # no readable header: the one-shot path classified it


def test_truncated_mp3_decodes_shorter_or_fails_cleanly(tmp_path):
    full = write_mp3(tmp_path / 'full.mp3', music_like(4, 44100, seed=5), 44100)
    cut = tmp_path / 'cut.mp3'
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    try:
        y = load_audio(cut)
    except AudioLoadError as e:
        assert e.reason in ('unreadable', 'not-audio', 'no-samples')
    else:
        assert len(y) < 0.5 * len(load_audio(full))


def test_audio_info(tmp_path):
    path = write_wav(tmp_path / 'i.wav', music_like(2, 22050, channels=2), 22050)
    info = audio_info(path)
    assert (info.samplerate, info.channels, info.frames) == (22050, 2, 44100)
    assert info.duration == pytest.approx(2.0)
    with pytest.raises(AudioLoadError):
        audio_info(tmp_path / 'nope.wav')


# ---------------------------------------------------------------- block-wise decoding of long files

def _one_shot(path, sr):
    """The whole-file chain (decode at the native rate, channel mean, soxr HQ), never block-wise."""
    audio, native = read_audio(path)
    mono = to_mono(audio)
    return mono if sr is None else resample(mono, native, sr)


@pytest.mark.parametrize('sr_in, channels, kind', [(44100, 2, 'mp3'), (22050, 1, 'wav'), (16000, 1, 'wav'),
                                                   (48000, 3, 'wav')])
def test_streaming_decode_is_identical_to_one_shot(tmp_path, sr_in, channels, kind):
    audio = music_like(6.3, sr_in, seed=11, channels=channels)
    if kind == 'mp3':
        f = write_mp3(tmp_path / 'x.mp3', audio, sr_in)
    else:
        f = write_wav(tmp_path / 'x.wav', audio, sr_in, subtype='FLOAT')
    for sr in (SR, None):
        ref = _one_shot(f, sr)
        for block in (4096, 65536, 10 ** 6):          # many blocks, a few, one
            got = load_audio_streaming(f, sr, block_frames=block)
            assert got.dtype == np.float32 and got.shape == ref.shape
            np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize('content, reason', [(b'', 'empty'), (b'plain text' * 50, 'not-audio'), (None, 'missing'),
                                             ('zero_frames', 'no-samples'), ('nan', 'unreadable')])
def test_streaming_decode_errors_are_classified(tmp_path, content, reason):
    f = tmp_path / 'bad.flac'
    if content == 'zero_frames':
        f = tmp_path / 'z.wav'
        sf.write(str(f), np.zeros((0, 1), np.float32), SR)
    elif content == 'nan':
        f = tmp_path / 'nan.wav'
        y = music_like(1, SR)
        y[SR // 2] = np.nan
        sf.write(str(f), y, SR, subtype='FLOAT')
    elif content is not None:
        f.write_bytes(content)
    with pytest.raises(AudioLoadError) as e:
        load_audio_streaming(f, block_frames=4096)
    assert e.value.reason == reason


def _count_blocks(monkeypatch):
    """Spy on libsndfile reads made by preprocessing.audio: the frame counts asked for."""
    asked = []
    real = sf.SoundFile.read

    def read(self, frames=-1, *args, **kwargs):
        asked.append(frames)
        return real(self, frames, *args, **kwargs)
    monkeypatch.setattr(sf.SoundFile, 'read', read)
    return asked


@pytest.mark.parametrize('sr', [SR, None])
def test_load_audio_decodes_long_files_block_by_block(tmp_path, monkeypatch, sr):
    f = write_mp3(tmp_path / 'long.mp3', music_like(5, 44100, seed=13, channels=2), 44100)
    ref = _one_shot(f, sr)
    monkeypatch.setattr(pa, 'STREAM_ABOVE_SECONDS', 3.0)      # 5 s counts as long
    monkeypatch.setattr(pa, '_BLOCK_FRAMES', 8192)
    asked = _count_blocks(monkeypatch)
    got = load_audio(f, sr=sr)
    # block path: only 8192-frame reads (≥ 5 s · 44.1 kHz / 8192 of them), no whole-file read
    assert asked and set(asked) == {8192} and len(asked) >= 5 * 44100 // 8192
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-7)


def test_load_audio_reads_short_files_in_one_go(tmp_path, monkeypatch):
    f = write_wav(tmp_path / 'short.wav', music_like(2, 22050, seed=14, channels=2), 22050, subtype='FLOAT')
    monkeypatch.setattr(pa, 'STREAM_ABOVE_SECONDS', 3.0)
    monkeypatch.setattr(pa, '_BLOCK_FRAMES', 8192)
    asked = _count_blocks(monkeypatch)
    got = load_audio(f, sr=SR)
    assert len(asked) == 1 and asked[0] != 8192   # one whole-file read (soundfile.read), no blocks
    np.testing.assert_array_equal(got, _one_shot(f, SR))


# ---------------------------------------------------------------- NumPy log-mel vs librosa

@pytest.mark.parametrize('preset', ['orpheus', 'musicnn'])
@pytest.mark.parametrize('name', ['music', 'noise', 'silence', 'sine'])
def test_log_mel_matches_librosa(preset, name):
    import librosa
    y = _signals()[name]
    p = get_params(preset, float16=False) if preset == 'musicnn' else get_params(preset)
    ours = log_mel(y, p)
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=p.n_fft, hop_length=p.hop_length, n_mels=p.n_mels).T
    if preset == 'orpheus':
        ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
    else:
        ref = np.log10(1 + 10000 * mel)
    assert ours.shape == ref.shape == (n_frames(len(y), p), 96)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_musicnn_float16_quirk_matches_musicnn_recipe():
    import librosa
    y = _signals()['music']
    p = get_params('musicnn')
    assert p.float16
    mel = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=256, n_fft=512, n_mels=96).T
    ref = np.log10(10000 * mel.astype(np.float16) + 1)  # musicnn/extractor.py's arithmetic
    assert ref.dtype == np.float32  # NumPy < 2 promotes float16 * 10000 to float32: no float16 log
    ours = log_mel(y, p)
    # our mel power differs from librosa's in the 7th digit, which can flip a float16 rounding
    assert np.mean(ours == ref) > 0.99
    np.testing.assert_allclose(ours, ref, rtol=2 ** -10, atol=1e-6)


def test_float16_quantisation_is_applied():
    y = _signals()['music']
    quant = log_mel(y, get_params('musicnn'))
    exact = log_mel(y, get_params('musicnn', float16=False))
    assert np.isfinite(quant).all()
    diff = np.abs(quant - exact)
    assert diff.max() > 1e-5  # the rounding really happens
    assert diff.max() < 1e-3  # and is small (float16 has 11 significant bits)


@pytest.mark.parametrize('n', [1, 255, 256, 511, 2047, 2048, 16001])
@pytest.mark.parametrize('preset', ['orpheus', 'musicnn'])
def test_frame_counts_odd_and_short_lengths(preset, n):
    p = get_params(preset)
    y = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.01
    out = log_mel(y, p)
    assert out.shape == (1 + n // p.hop_length, 96) == (n_frames(n, p), 96)


def test_silence_is_floor():
    p = get_params('orpheus')
    out = log_mel(np.zeros(SR, np.float32), p)
    np.testing.assert_allclose(out, -100.0, atol=1e-4)
    np.testing.assert_array_equal(log_mel(np.zeros(SR, np.float32), get_params('musicnn')), 0.0)


def test_params_validation_and_roundtrip():
    p = get_params('orpheus', n_mels=128)
    assert FeatureParams.from_dict(p.to_dict()) == p
    assert frames_per_second(get_params('musicnn')) == 62.5
    with pytest.raises(ValueError, match='unknown feature parameter'):
        get_params('orpheus', nmels=96)
    with pytest.raises(ValueError, match='unknown feature preset'):
        get_params('pons')
    with pytest.raises(ValueError, match='hop_length'):
        FeatureParams(hop_length=0)
    with pytest.raises(ValueError, match='mono'):
        mel_power(np.zeros((10, 2), np.float32), p)
    with pytest.raises(ValueError, match='empty'):
        mel_power(np.zeros(0, np.float32), p)


# ---------------------------------------------------------------- TF layer vs NumPy path

@pytest.mark.parametrize('preset', ['orpheus', 'musicnn', 'musicnn32'])
def test_tf_layer_matches_numpy(preset):
    from preprocessing.tf_frontend import LogMel
    p = get_params('musicnn', float16=False) if preset == 'musicnn32' else get_params(preset)
    sigs = _signals()
    layer = LogMel(p)
    for name, y in sigs.items():
        ref = log_mel(y, p)
        got = layer(y[None, :])[0].numpy()
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-3, err_msg=name)


def test_tf_layer_batch_short_input_and_serialisation(tmp_path):
    import keras
    from preprocessing.tf_frontend import LogMel
    p = get_params('orpheus')
    batch = np.stack([_signals()['music'][:5000], _signals()['noise'][:5000]])
    inp = keras.Input((None,))
    model = keras.Model(inp, LogMel(p)(inp))
    out = model(batch).numpy()
    assert out.shape == (2, n_frames(5000, p), 96)
    for i in range(2):  # top_db is per example, not per batch
        np.testing.assert_allclose(out[i], log_mel(batch[i], p), atol=1e-3)
    tiny = LogMel(p)(np.zeros((1, 10), np.float32)).numpy()
    assert tiny.shape == (1, 1, 96)
    model.save(tmp_path / 'm.keras')
    loaded = keras.saving.load_model(tmp_path / 'm.keras')
    np.testing.assert_allclose(loaded(batch).numpy(), out, atol=1e-5)


@pytest.mark.parametrize('sr, n_fft, n_mels, fmin, fmax', [
    (16000, 512, 96, 0.0, None), (16000, 2048, 96, 0.0, None), (22050, 1024, 128, 30.0, 11025.0),
    (44100, 2048, 40, 100.0, 8000.0)])
def test_mel_basis_equals_librosa_exactly(sr, n_fft, n_mels, fmin, fmax):
    import librosa
    from preprocessing.features import mel_basis
    p = FeatureParams(sr=sr, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels, fmin=fmin, fmax=fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    np.testing.assert_array_equal(mel_basis(p), ref)


# ---------------------------------------------------------------- the front end on a stream of blocks

@pytest.mark.parametrize('preset, pad_mode, center', [('musicnn', 'constant', True), ('orpheus', 'constant', True),
                                                      ('orpheus', 'reflect', True), ('musicnn', 'reflect', False)])
@pytest.mark.parametrize('n', [1, 255, 256, 257, 1025, 2048, 2049, 40000])
@pytest.mark.parametrize('chunk_frames', [1024, 7])
def test_iter_log_mel_is_bit_identical_to_log_mel(monkeypatch, preset, pad_mode, center, n, chunk_frames):
    import preprocessing.features as pf
    from preprocessing.features import iter_log_mel, max_mel_power
    monkeypatch.setattr(pf, 'CHUNK_FRAMES', chunk_frames)      # 7: many group boundaries inside blocks
    p = get_params(preset, pad_mode=pad_mode, center=center)
    y = music_like(n / SR + 1, SR, seed=n)[:n]
    y[: n // 3] *= 1e-4                    # a quiet start: orpheus' top_db clip is active there
    ref = log_mel(y, p)
    for block in (1, 300, 4096, n):
        blocks = [y[i:i + block] for i in range(0, n, block)]
        if block == 1 and n > 3000:
            continue
        mx = max_mel_power(blocks, p) if p.log == 'power_to_db' else None
        chunks = list(iter_log_mel(blocks, p, max_power=mx))
        assert all(c.dtype == np.float32 and c.shape[0] for c in chunks)
        np.testing.assert_array_equal(np.concatenate(chunks), ref)


def test_mel_frames_hold_one_group_and_refuse_misuse():
    from preprocessing.features import CHUNK_FRAMES, MelFrames, iter_log_mel
    p = get_params('musicnn')
    frames = MelFrames(p)
    y = music_like(60, SR, seed=1)
    done = []
    for i in range(0, y.size, 16000):
        done.append(frames.push(y[i:i + 16000]))
        # never more than one group of samples (plus a block and n_fft) held between calls
        assert frames._buf.size <= CHUNK_FRAMES * p.hop_length + p.n_fft + 16000
    done.append(frames.finish())
    assert frames.frames_done == n_frames(y.size, p) == sum(d.shape[0] for d in done)
    with pytest.raises(ValueError, match='after finish'):
        frames.push(y[:10])
    with pytest.raises(ValueError, match='empty'):
        MelFrames(p).finish()
    with pytest.raises(ValueError, match='max_power'):
        next(iter_log_mel([y], get_params('orpheus')))


def test_mel_power_of_a_long_signal_is_computed_group_by_group(monkeypatch):
    import preprocessing.features as pf
    calls = []
    real = pf.scipy.fft.rfft
    monkeypatch.setattr(pf.scipy.fft, 'rfft', lambda x, **kw: calls.append(x.shape) or real(x, **kw))
    out = mel_power(music_like(100, SR, seed=2), get_params('musicnn'))
    assert out.shape[0] == 6251 and len(calls) == 7 and max(c[0] for c in calls) == pf.CHUNK_FRAMES
