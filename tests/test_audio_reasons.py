"""preprocessing.audio: why a file cannot be decoded (reasons and our own messages), and iter_audio."""
import os
import threading

import numpy as np
import pytest
import soundfile as sf

import preprocessing.audio as pa
from preprocessing.audio import AudioLoadError, iter_audio, load_audio, mpeg_frame_length, sniff_format

from _audio_fixtures import encode_mp3, music_like, write_mp3, write_wav
from _evaluation_fixtures import deny_read

SR = 16000
JPEG = b'\xff\xd8\xff\xe0\x00\x10JFIF\x00' + bytes(range(256)) * 8
PNG = b'\x89PNG\r\n\x1a\n' + bytes(range(255, -1, -1)) * 8
M4A = b'\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom' + b'\x00' * 600


def _random_bytes(seed=0, n=6000):
    """Random bytes, 0xFF included: lone MPEG sync patterns appear, as in any binary file."""
    data = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    assert any(data[i] == 0xFF and data[i + 1] >= 0xE0 for i in range(len(data) - 1))
    return data


@pytest.mark.parametrize('name, content, reason, message', [
    ('random.mp3', _random_bytes(), 'not-audio', 'no known audio format'),
    ('random.bin', _random_bytes(1), 'not-audio', 'no known audio format'),
    ('image.png', PNG, 'not-audio', 'a PNG image'),
    ('image.mp3', PNG, 'not-audio', 'a PNG image'),
    ('photo.wav', JPEG, 'not-audio', 'a JPEG image'),
    ('notes.mp3', 'some text\n' * 50, 'not-audio', 'text'),
    ('archive.flac', b'PK\x03\x04' + bytes(500), 'not-audio', 'a ZIP archive'),
    ('song.m4a', M4A, 'unsupported', 'MPEG-4'),
    ('song.wma', b'\x30\x26\xb2\x75\x8e\x66\xcf\x11' + bytes(500), 'unsupported', 'Windows Media'),
])
@pytest.mark.parametrize('reader', ['load_audio', 'iter_audio', 'audio_info', 'read_audio'])
def test_not_audio_and_unsupported_files_get_our_message(tmp_path, name, content, reason, message, reader):
    f = tmp_path / name
    f.write_bytes(content) if isinstance(content, bytes) else f.write_text(content)
    with pytest.raises(AudioLoadError) as e:
        getattr(pa, reader)(f)
    assert e.value.reason == reason, e.value
    assert message in e.value.detail
    assert 'does not exist' not in str(e.value) and 'Format not recognised' not in str(e.value)


def test_corrupt_audio_is_unreadable_not_not_audio(tmp_path):
    good = encode_mp3(music_like(3, 44100, seed=1), 44100)
    # valid MPEG frames, then garbage: a damaged MP3 (no ID3 tag: recognised by its frame headers)
    assert sniff_format(good[:8192]) == ('audio', 'MP3')
    f = tmp_path / 'cut.wav'
    write_wav(f, music_like(1, SR), SR)
    f.write_bytes(f.read_bytes()[:30])                    # WAV header cut in half
    with pytest.raises(AudioLoadError) as e:
        load_audio(f)
    assert e.value.reason == 'unreadable' and 'WAV' in e.value.detail


def test_permission_denied_file_is_reported_as_such(tmp_path, monkeypatch, request):
    f = write_wav(tmp_path / 'locked.wav', music_like(1, SR), SR)
    deny_read(f, monkeypatch, request)
    for reader in (load_audio, iter_audio, pa.audio_info, pa.read_audio):
        with pytest.raises(AudioLoadError) as e:
            reader(f)
        assert e.value.reason == 'permission-denied', e.value
        assert 'may not read' in e.value.detail


def test_folder_and_fifo_are_not_audio_and_never_block(tmp_path):
    with pytest.raises(AudioLoadError) as e:
        load_audio(tmp_path)
    assert e.value.reason == 'not-audio' and 'folder' in e.value.detail
    fifo = tmp_path / 'pipe.mp3'
    os.mkfifo(fifo)
    result = {}

    def read():
        try:
            load_audio(fifo)
        except AudioLoadError as err:
            result['err'] = err
    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(30)                       # opening a FIFO without a writer would block forever
    assert not t.is_alive() and result['err'].reason == 'not-audio'
    assert 'regular file' in result['err'].detail


def test_one_sample_at_44k_leaves_no_samples_at_16k(tmp_path):
    f = tmp_path / 'one.wav'
    sf.write(str(f), np.array([0.25], np.float32), 44100)
    for reader in (load_audio, lambda p: np.concatenate(list(iter_audio(p)))):
        with pytest.raises(AudioLoadError) as e:
            reader(f)
        assert e.value.reason == 'no-samples' and 'leave none at 16000 Hz' in e.value.detail
    assert load_audio(f, sr=None).shape == (1,)


def test_mpeg_frame_length():
    assert mpeg_frame_length(0xFFFB9064) == 417          # MPEG-1 layer III, 128 kbps, 44.1 kHz
    assert mpeg_frame_length(0xFFFB9264) == 418          # the same with the padding bit
    assert mpeg_frame_length(0xFFF38800) == 288          # MPEG-2 layer III, 64 kbps, 16 kHz: 72·64000/16000
    assert mpeg_frame_length(0xFFFBF064) is None         # bitrate index 15 is invalid
    assert mpeg_frame_length(0x12345678) is None         # no sync


# ---------------------------------------------------------------- iter_audio

@pytest.mark.parametrize('sr_in, channels, kind', [(44100, 2, 'mp3'), (22050, 1, 'wav'), (16000, 1, 'wav')])
@pytest.mark.parametrize('block_seconds', [0.05, 1.0, None])
def test_iter_audio_blocks_concatenate_to_load_audio(tmp_path, sr_in, channels, kind, block_seconds):
    audio = music_like(5.3, sr_in, seed=11, channels=channels)
    f = write_mp3(tmp_path / 'x.mp3', audio, sr_in) if kind == 'mp3' else \
        write_wav(tmp_path / 'x.wav', audio, sr_in, subtype='FLOAT')
    for sr in (SR, None):
        blocks = list(iter_audio(f, sr, block_seconds))
        assert blocks and all(b.dtype == np.float32 and b.ndim == 1 and b.size for b in blocks)
        if block_seconds == 0.05:
            assert len(blocks) > 50
        np.testing.assert_array_equal(np.concatenate(blocks), load_audio(f, sr))


def test_iter_audio_raises_header_errors_at_the_call(tmp_path):
    with pytest.raises(AudioLoadError) as e:
        iter_audio(tmp_path / 'nope.wav')                  # before any iteration
    assert e.value.reason == 'missing'
    z = tmp_path / 'z.wav'
    sf.write(str(z), np.zeros((0, 1), np.float32), SR)
    blocks = iter_audio(z)
    with pytest.raises(AudioLoadError) as e:
        list(blocks)
    assert e.value.reason == 'no-samples'
    with pytest.raises(ValueError, match='block_seconds'):
        iter_audio(write_wav(tmp_path / 'x.wav', music_like(1, SR), SR), block_seconds=0)
