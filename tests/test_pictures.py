"""imagemusic.pictures: finding a track's picture, refusing every kind of bad picture, normalising good ones."""
from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from core.errors import MuseTagError
from imagemusic import pictures as pic


def _image_bytes(fmt='JPEG', size=(64, 48), colour=(200, 30, 30), mode='RGB', **kw) -> bytes:
    im = Image.new(mode, size, colour)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _noisy_jpeg(size=(400, 300), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, format='JPEG', quality=95)
    return buf.getvalue()


def _png_bomb(width=100_000, height=100_000) -> bytes:
    """A valid small PNG whose header declares ``width`` x ``height`` pixels (CRC fixed)."""
    data = bytearray(_image_bytes('PNG', (8, 8)))
    ihdr = 8 + 8                               # signature, then length + b'IHDR'
    data[ihdr:ihdr + 8] = struct.pack('>II', width, height)
    crc = zlib.crc32(bytes(data[12:ihdr + 13])) & 0xFFFFFFFF
    data[ihdr + 13:ihdr + 17] = struct.pack('>I', crc)
    return bytes(data)


def _animated_gif() -> bytes:
    frames = [Image.new('RGB', (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format='GIF', save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


@pytest.mark.parametrize('data, reason', [
    (b'\xff\xd8\xff\xe0' + bytes(range(256)) * 20, 'corrupt'),
    (b'this is a text file, not a picture\n' * 10, 'not-image'),
    (b'', 'not-image'),
    (_png_bomb(), 'bomb'),
    (_png_bomb(8000, 8000), 'bomb'),
    (_animated_gif(), 'animated'),
])
def test_bad_pictures_raise_their_reason(data, reason):
    with pytest.raises(pic.PictureError) as e:
        pic.normalise(data)
    assert e.value.reason == reason
    assert isinstance(e.value, MuseTagError)


@pytest.mark.parametrize('fmt', ['JPEG', 'PNG'])
def test_truncated_picture_is_refused(fmt):
    if fmt == 'JPEG':
        good = _noisy_jpeg()
    else:
        rng = np.random.default_rng(1)
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf, format='PNG')
        good = buf.getvalue()
    pic.normalise(good)                                           # the whole picture is fine
    with pytest.raises(pic.PictureError) as e:
        pic.normalise(good[:len(good) // 2])
    assert e.value.reason == 'truncated'


def test_too_many_bytes_is_refused_before_decoding(monkeypatch):
    data = _noisy_jpeg()
    monkeypatch.setattr(pic, 'MAX_BYTES', len(data) - 1)
    with pytest.raises(pic.PictureError) as e:
        pic.normalise(data)
    assert e.value.reason == 'too-large'


def test_sniff_knows_the_five_formats():
    assert pic.sniff(_image_bytes('JPEG')) == 'JPEG'
    assert pic.sniff(_image_bytes('PNG')) == 'PNG'
    assert pic.sniff(_image_bytes('GIF')) == 'GIF'
    assert pic.sniff(_image_bytes('BMP')) == 'BMP'
    assert pic.sniff(_image_bytes('WEBP')) == 'WEBP'
    assert pic.sniff(b'RIFF\0\0\0\0WAVEfmt ') is None


def test_normalise_shrinks_keeps_aspect_and_is_deterministic():
    p1 = pic.normalise(_noisy_jpeg((600, 300)))
    p2 = pic.normalise(_noisy_jpeg((600, 300)))
    assert (p1.width, p1.height) == (pic.SIZE, pic.SIZE // 2)
    assert p1.data == p2.data and p1.sha256 == p2.sha256
    assert Image.open(io.BytesIO(p1.data)).format == 'JPEG'
    small = pic.normalise(_image_bytes('PNG', (20, 10)))
    assert (small.width, small.height) == (20, 10)                # never enlarged


def test_transparency_is_composed_on_white():
    data = _image_bytes('PNG', (8, 8), (0, 0, 0, 0), mode='RGBA')
    im = Image.open(io.BytesIO(pic.normalise(data).data))
    assert im.mode == 'RGB'
    assert min(im.getpixel((4, 4))) > 240


def _mp3_with_pictures(path, frames):
    """An MP3 file whose ID3 tag holds APIC ``frames`` [(type, bytes)]."""
    from mutagen.id3 import APIC, ID3

    from msd.synthetic.mp3 import encode_mp3
    path.write_bytes(encode_mp3(np.zeros(8000, np.float32), 16000, 32))
    tag = ID3()
    for kind, data in frames:
        tag.add(APIC(encoding=3, mime='image/jpeg', type=kind, desc=f'p{kind}', data=data))
    tag.save(str(path))
    return path


def test_id3_front_cover_is_preferred(tmp_path):
    back = _image_bytes('JPEG', colour=(0, 0, 255))
    front = _image_bytes('PNG', colour=(0, 255, 0))
    track = _mp3_with_pictures(tmp_path / 'a.mp3', [(0, back), (3, front)])
    p = pic.read_picture(track)
    assert p.source == 'embedded' and p.origin == 'APIC:3'
    r, g, b = Image.open(io.BytesIO(p.data)).getpixel((5, 5))
    assert g > 200 and r < 50 and b < 50


def test_flac_and_ogg_pictures(tmp_path):
    from mutagen.flac import FLAC
    from mutagen.flac import Picture as FlacPicture
    from mutagen.oggvorbis import OggVorbis
    flac, ogg = tmp_path / 'a.flac', tmp_path / 'b.ogg'
    sf.write(str(flac), np.zeros(4000, np.float32), 16000)
    sf.write(str(ogg), np.zeros(4000, np.float32), 16000, format='OGG', subtype='VORBIS')
    block = FlacPicture()
    block.type, block.mime, block.data = 3, 'image/png', _image_bytes('PNG', colour=(10, 20, 250))
    f = FLAC(str(flac))
    f.add_picture(block)
    f.save()
    o = OggVorbis(str(ogg))
    o['metadata_block_picture'] = [base64.b64encode(block.write()).decode('ascii')]
    o.save()
    assert pic.read_picture(flac).origin == 'flac:3'
    assert pic.read_picture(ogg).origin == 'vorbis:3'


def test_folder_picture_case_insensitive_and_broken_embedded_falls_back(tmp_path):
    track = _mp3_with_pictures(tmp_path / 'a.mp3', [(3, b'\xff\xd8\xff\xe0garbage' * 50)])
    with pytest.raises(pic.PictureError) as e:
        pic.read_picture(track)
    assert e.value.reason in ('corrupt', 'truncated')
    (tmp_path / 'Folder.PNG').write_bytes(_image_bytes('PNG'))
    got = pic.read_picture(track)
    assert got.source == 'file' and got.origin == 'Folder.PNG'
    (tmp_path / 'COVER.jpg').write_bytes(_image_bytes('JPEG'))
    assert pic.read_picture(track).origin == 'COVER.jpg'          # cover before folder


def test_track_without_picture_is_none(tmp_path):
    track = tmp_path / 'a.wav'
    sf.write(str(track), np.zeros(1000, np.float32), 8000)
    assert pic.read_picture(track) is None
    (tmp_path / 'notes.txt').write_text('x')
    assert pic.read_picture(track) is None


def test_unreadable_and_non_image_files(tmp_path):
    with pytest.raises(pic.PictureError) as e:
        pic.read_image_file(tmp_path / 'missing.jpg')
    assert e.value.reason == 'unreadable'
    (tmp_path / 'x.jpg').write_text('hello')
    with pytest.raises(pic.PictureError) as e:
        pic.read_image_file(tmp_path / 'x.jpg')
    assert e.value.reason == 'not-image'


@pytest.mark.parametrize('fmt', ['JPEG', 'PNG', 'GIF', 'BMP', 'WEBP'])
def test_damaged_pictures_only_ever_raise_picture_error(fmt):
    """Random byte changes and cuts of a good picture: normalised, or refused with PictureError (nothing else)."""
    rng = np.random.default_rng(7)
    good = _image_bytes(fmt, (50, 40))
    refused = 0
    for _ in range(200):
        data = bytearray(good)
        for _ in range(int(rng.integers(1, 8))):
            data[int(rng.integers(0, min(len(data), 200)))] = int(rng.integers(0, 256))
        if rng.random() < 0.3:
            data = data[:int(rng.integers(8, len(data)))]
        try:
            pic.normalise(bytes(data))
        except pic.PictureError as e:
            assert e.reason in pic.REASONS
            refused += 1
    assert refused > 0
