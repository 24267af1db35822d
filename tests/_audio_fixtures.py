"""Small audio fixtures shared by tests: signals, MP3s made with lameenc, WAVs with soundfile."""
import os

import numpy as np
import soundfile as sf


def encode_mp3(audio, sr, bitrate=128):
    """MP3 bytes of float audio [n] or [n, channels] in [-1, 1] (lameenc via msd.synthetic)."""
    from msd.synthetic import encode_mp3 as _encode
    return _encode(audio, sr, kbps=bitrate, quality=2)


def write_mp3(path, audio, sr, bitrate=128):
    path.write_bytes(encode_mp3(audio, sr, bitrate))
    return path


def write_wav(path, audio, sr, subtype='PCM_16'):
    """Write float audio [n] or [n, channels] as a WAV (``subtype='FLOAT'`` keeps samples exact);
    missing parent folders are created."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sf.write(str(path), np.asarray(audio, dtype=np.float32), sr, subtype=subtype)
    return path


def tone(seconds, sr, freq=440.0, amp=0.3, channels=1):
    """A sine of ``freq`` Hz and amplitude ``amp``: float32 [n] (or [n, channels], equal channels)."""
    t = np.arange(int(seconds * sr)) / sr
    y = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return y if channels == 1 else np.stack([y] * channels, axis=1)


def square(n, amp=0.5):
    """A +-amp square wave at Nyquist/2, float32 [n]: every sample has |x| = amp, so the RMS of any
    k samples is exactly ``amp``."""
    y = np.full(n, amp, dtype=np.float32)
    y[1::2] *= -1
    return y


def music_like(seconds, sr, seed=0, channels=1):
    """Speech-free synthetic music: a chord of decaying plucks on a beat plus a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = np.zeros(n, np.float32)
    beat = 0.5
    for start in np.arange(0, seconds, beat):
        i = int(start * sr)
        f0 = 110 * 2 ** (rng.integers(0, 12) / 12)
        seg = t[: n - i]
        env = np.exp(-seg * 6)
        y[i:] += (env * sum(np.sin(2 * np.pi * f0 * h * seg) / h for h in (1, 2, 3))).astype(np.float32) * 0.15
    y += rng.standard_normal(n).astype(np.float32) * 0.01
    y = np.clip(y, -0.9, 0.9)
    if channels == 1:
        return y
    return np.stack([y * (1 - 0.2 * c) for c in range(channels)], axis=1)
