"""MP3 encoding with lameenc (CBR, deterministic) and ID3v2 tags (text and cover art) with mutagen."""
from __future__ import annotations

import numpy as np


def encode_mp3(y, sr, kbps=128, quality=7):
    """float32 [n] or [n, channels] in [-1, 1] -> MP3 bytes (lameenc, CBR, deterministic).

    ``quality`` is LAME's 0 (best, slowest) … 9; 7 is fast, and enough for synthetic data.
    """
    try:
        import lameenc
    except ImportError as e:  # pinned in requirements.txt; say so rather than crash obscurely
        raise RuntimeError('msd.synthetic needs lameenc to write MP3s: pip install lameenc') from e
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 1:
        y = y[:, None]
    pcm = (np.clip(y, -1.0, 1.0) * 32767.0).round().astype('<i2')
    enc = lameenc.Encoder()
    enc.set_bit_rate(int(kbps))
    enc.set_in_sample_rate(int(sr))
    enc.set_channels(int(y.shape[1]))
    enc.set_quality(int(quality))
    return bytes(enc.encode(pcm.tobytes()) + enc.flush())


def id3_tag(title=None, artist=None, album=None, picture: bytes | None = None, mime: str = 'image/jpeg') -> bytes:
    """An ID3v2.4 tag (TIT2 title, TPE1 artist, TALB album, APIC front cover ``picture`` of type ``mime``)
    as bytes to put before MP3 frames.

    Deterministic (no timestamps, fixed padding), so the corpus stays byte-identical for a seed.
    Returns ``b''`` when every field is empty.
    """
    import io

    from mutagen.id3 import APIC, ID3, TALB, TIT2, TPE1
    tag = ID3()
    for frame, text in ((TIT2, title), (TPE1, artist), (TALB, album)):
        if text:
            tag.add(frame(encoding=3, text=[str(text)]))
    if picture:
        tag.add(APIC(encoding=3, mime=mime, type=3, desc='Cover', data=bytes(picture)))
    if not tag:
        return b''
    buf = io.BytesIO()
    tag.save(buf, v2_version=4, padding=lambda info: 0)
    return buf.getvalue()


def with_info_frame(mp3: bytes) -> bytes:
    """``mp3`` (MP3 frames from :func:`encode_mp3`, no tag) with a LAME-style ``Info`` frame first.

    The ``Info`` frame (the CBR form of the Xing header: an empty frame of the stream's geometry
    holding the frame and byte counts, http://gabriel.mp3-tech.org/mp3infotag.html) tells decoders the
    exact length: without it, libsndfile/mpg123 estimate the duration from the file size, which
    counts an ID3 tag (e.g. the cover art) as seconds of audio. Decoders skip the frame.
    """
    from preprocessing.audio import mpeg_frame_length
    if len(mp3) < 4:
        return mp3
    header = int.from_bytes(mp3[:4], 'big')
    frames, pos = 0, 0
    while pos + 4 <= len(mp3):
        length = mpeg_frame_length(int.from_bytes(mp3[pos:pos + 4], 'big'))
        if not length:
            break
        frames, pos = frames + 1, pos + length
    if not frames:
        return mp3
    info_header = header & ~(1 << 9) | (1 << 16)             # no padding, no CRC
    size = mpeg_frame_length(info_header)
    mpeg1, mono = (header >> 19) & 3 == 3, (header >> 6) & 3 == 3
    side_info = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    frame = bytearray(size)
    frame[:4] = info_header.to_bytes(4, 'big')
    body = b'Info' + (3).to_bytes(4, 'big') + frames.to_bytes(4, 'big') + (len(mp3) + size).to_bytes(4, 'big')
    frame[4 + side_info:4 + side_info + len(body)] = body
    return bytes(frame) + mp3
