"""MP3 encoding with lameenc (CBR, deterministic) and ID3v2 tags with mutagen."""
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


def id3_tag(title=None, artist=None, album=None) -> bytes:
    """An ID3v2.4 tag (TIT2 title, TPE1 artist, TALB album) as bytes to put before MP3 frames.

    Deterministic (no timestamps, fixed padding), so the corpus stays byte-identical for a seed.
    Returns ``b''`` when every field is empty.
    """
    import io

    from mutagen.id3 import ID3, TALB, TIT2, TPE1
    tag = ID3()
    for frame, text in ((TIT2, title), (TPE1, artist), (TALB, album)):
        if text:
            tag.add(frame(encoding=3, text=[str(text)]))
    if not tag:
        return b''
    buf = io.BytesIO()
    tag.save(buf, v2_version=4, padding=lambda info: 0)
    return buf.getvalue()
