"""DSP building blocks of the synthesiser: filters, oscillators, drum one-shots and notes.

All vectorised NumPy; arrays are float64 mono ``[n]`` unless stated.
"""
from __future__ import annotations

import numpy as np


def _response(f, lp=None, hp=None, order=2):
    """Zero-phase Butterworth-like magnitude response at frequencies ``f`` (Hz)."""
    g = np.ones_like(f)
    if lp:
        g /= np.sqrt(1.0 + (f / lp) ** (2 * order))
    if hp:
        with np.errstate(divide='ignore'):
            g /= np.sqrt(1.0 + (hp / np.maximum(f, 1e-3)) ** (2 * order))
    return g


def _fast_len(m):
    """Smallest 2^a 3^b 5^c >= m (pocketfft is several times slower on lengths with large factors)."""
    best = 1 << int(np.ceil(np.log2(m)))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35 << max(0, int(np.ceil(np.log2(m / p35))))
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def _fft_filter(x, sr, lp=None, hp=None, order=2):
    """FFT-domain zero-phase low/high-pass of a short signal ``x`` [n] at rate ``sr`` (Hz)."""
    if not lp and not hp:
        return x
    n = x.shape[-1]
    m = _fast_len(n)
    spec = np.fft.rfft(x, m, axis=-1)
    spec *= _response(np.fft.rfftfreq(m, 1.0 / sr), lp, hp, order)
    return np.fft.irfft(spec, m, axis=-1)[..., :n]


def _fir_kernel(sr, lp=None, hp=None):
    """Windowed-sinc (Blackman) FIR: low-pass at ``lp`` and/or high-pass at ``hp`` (Hz).

    Long signals are filtered with these short kernels (np.convolve) because whole-clip FFTs cost
    ~10x more; the transition bands are wide (a few hundred Hz to ~2 kHz), which is all timbre
    shaping needs.
    """
    def low(fc):
        taps = int(np.clip(4.0 * sr / fc, 15, 255)) | 1
        k = np.arange(taps) - taps // 2
        h = np.sinc(2.0 * fc / sr * k) * np.blackman(taps)
        return h / h.sum()

    h = np.ones(1)
    if lp and lp < 0.48 * sr:
        h = low(lp)
    if hp and hp >= 150:  # lower cut-offs only remove rumble/DC: _filter subtracts the mean instead
        d = -low(hp)
        d[len(d) // 2] += 1.0  # spectral inversion: delta - low-pass
        h = np.convolve(h, d)
    return h


def _filter(x, sr, lp=None, hp=None, order=2):
    """Zero-phase low/high-pass of ``x`` [n] (Hz): FFT for short signals, FIR for long ones."""
    if not lp and not hp:
        return x
    if x.ndim > 1 or x.shape[-1] <= 1 << 16:
        return _fft_filter(x, sr, lp, hp, order)
    h = _fir_kernel(sr, lp, hp)
    if hp and hp < 150:
        x = x - x.mean()
    return np.convolve(x, h, mode='same') if len(h) > 1 else x


def _osc(kind, phase):
    """Naive oscillator of ``kind`` for ``phase`` in cycles (aliasing is harmless here)."""
    p = phase - np.floor(phase)
    if kind == 'saw':
        return 2.0 * p - 1.0
    if kind == 'square':
        return np.where(p < 0.5, 1.0, -1.0)
    if kind == 'tri':
        return 4.0 * np.abs(p - 0.5) - 1.0
    return np.sin(2 * np.pi * p)


def _midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=float) - 69.0) / 12.0)


def _place(buf, shot, times, vels, sr):
    """Add ``shot`` scaled by each velocity at each time (s) into ``buf`` (clipped to its length)."""
    n, m = len(buf), len(shot)
    for t, v in zip(times, vels):
        i = int(round(t * sr))
        if i >= n or i + m <= 0:
            continue
        s0 = max(0, -i)
        i0 = max(0, i)
        k = min(m - s0, n - i0)
        buf[i0:i0 + k] += v * shot[s0:s0 + k]


# ---- drum one-shots -------------------------------------------------------------------------

def _kick(sr, rng, f_hi, f_lo, decay, click=0.3, drive=1.0):
    m = int(sr * min(1.2, 5 * decay))
    t = np.arange(m) / sr
    f = f_lo + (f_hi - f_lo) * np.exp(-t / rng.uniform(0.025, 0.045))
    y = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / decay)
    y += click * rng.standard_normal(m) * np.exp(-t / 0.003)
    if drive > 1:
        y = np.tanh(drive * y) / np.tanh(drive)
    return y


def _noise_shot(sr, rng, decay, lp=None, hp=None, length=None, attack=0.0005, gate=None):
    m = int(sr * (length or min(2.5, 6 * decay)))
    t = np.arange(m) / sr
    env = np.minimum(1.0, t / attack) * np.exp(-t / decay)
    if gate:  # 80s-style gated tail: flat, then cut
        env = np.where(t < gate, np.maximum(env, 0.35), env * np.exp(-(t - gate) / 0.015))
    y = _filter(rng.standard_normal(m), sr, lp, hp)
    y = y / (np.abs(y).max() + 1e-9)
    return y * env


def _snare(sr, rng, tone=190.0, tone_decay=0.05, noise_decay=0.12, lp=9000, hp=900, snap=0.7,
           gate=None):
    y = snap * _noise_shot(sr, rng, noise_decay, lp, hp, gate=gate)
    t = np.arange(len(y)) / sr
    y += np.sin(2 * np.pi * tone * t) * np.exp(-t / tone_decay)
    return y


def _clap(sr, rng):
    y = np.zeros(int(0.5 * sr))
    for k, d in enumerate((0.0, 0.011, 0.022)):
        burst = _noise_shot(sr, rng, 0.012 if k < 2 else 0.14, 3500, 900, length=0.45)
        i = int(d * sr)
        k = min(len(burst), len(y) - i)
        y[i:i + k] += burst[:k]
    return y


def _metal(sr, rng, decay, base=420.0, lp=None, hp=5000):
    """Cymbal-like shot: inharmonic square partials (the 808 trick) plus high-passed noise."""
    m = int(sr * min(3.0, 5 * decay))
    t = np.arange(m) / sr
    ratios = np.array([1.0, 1.342, 1.2312, 1.6532, 1.9523, 2.1523]) * base * rng.uniform(0.95, 1.05)
    y = sum(np.sign(np.sin(2 * np.pi * r * t + rng.uniform(0, 6.28))) for r in ratios) / 6
    y = 0.5 * y + rng.standard_normal(m)
    y = _filter(y, sr, lp, hp)
    y /= np.abs(y).max() + 1e-9
    return y * np.exp(-t / decay)


# ---- notes -----------------------------------------------------------------------------------

_TIMBRES = {
    # name: (oscillator or partials [(ratio, amp, decay factor)], attack s, release s)
    'saw': ('saw', 0.004, 0.05), 'square': ('square', 0.004, 0.04), 'sine': ('sine', 0.004, 0.06),
    'tri': ('tri', 0.004, 0.05),
    'pluck': ([(k, 1.0 / k, k ** -0.7) for k in range(1, 9)], 0.002, 0.04),
    'bell': ([(1, 1, 1), (2.76, .5, .5), (5.4, .25, .3), (8.93, .12, .2)], 0.002, 0.3),
    'epiano': ([(1, 1, 1), (2, .4, .6), (3, .15, .4), (7, .12, .08)], 0.004, 0.15),
    'piano': ([(k * (1 + 0.0004 * k * k), k ** -1.3, k ** -0.5) for k in range(1, 7)], 0.002, 0.1),
    'organ': ([(0.5, .5, 0), (1, 1, 0), (2, .7, 0), (3, .4, 0), (4, .3, 0)], 0.01, 0.05),
    'wbass': ([(1, 1, 1), (2, .5, .6), (3, .2, .4), (4, .08, .3)], 0.005, 0.06),
}


def _note(sr, rng, freq, dur, timbre, decay=None, detune=(), attack=None):
    """One note: float [round((dur + release) * sr)].

    ``decay`` (s) makes it percussive (exponential); partial timbres scale it per partial.
    ``detune`` adds oscillators at relative frequency offsets (supersaw/chorus).
    """
    osc, att, rel = _TIMBRES[timbre]
    att = attack if attack is not None else att
    m = max(8, int((dur + rel) * sr))
    # float32 inside a note: transcendental functions are ~4x faster and phases stay < 1e4 cycles.
    t = np.arange(m, dtype=np.float32) / np.float32(sr)
    ph0 = rng.uniform(0, 1)
    if isinstance(osc, str):
        y = _osc(osc, np.float32(freq) * t + np.float32(ph0))
        for d in detune:
            y = y + _osc(osc, np.float32(freq * (1 + d)) * t + np.float32(rng.uniform(0, 1)))
        y /= 1 + len(detune)
        if decay:
            y *= np.exp(-t / np.float32(decay))
    else:
        y = np.zeros(m, dtype=np.float32)
        for ratio, amp, dscale in osc:
            if freq * ratio > 0.45 * sr:
                continue
            part = np.sin(np.float32(2 * np.pi * freq * ratio) * t + np.float32(2 * np.pi * ph0 * ratio))
            if decay and dscale:
                part *= np.exp(t * np.float32(-1.0 / (decay * dscale)))
            y += np.float32(amp) * part
    env = np.minimum(np.float32(1.0), t / np.float32(att)) * np.clip((dur + rel - t) / np.float32(rel), 0.0, 1.0)
    return y * env


def _render_notes(n, sr, rng, notes, timbre, decay=None, detune=(), attack=None):
    """Sum notes [(start s, dur s, midi, vel)] into a float [n] buffer.

    Repeated notes (same pitch and length: chords of a looping progression) reuse one rendering,
    as a sampler would; this is most of the synthesis speed.
    """
    buf = np.zeros(n)
    cache = {}
    for t0, dur, midi, vel in notes:
        if t0 >= n / sr or t0 + dur + 0.5 < 0:
            continue
        key = (int(midi), round(float(dur), 3))
        y = cache.get(key)
        if y is None:
            y = cache[key] = _note(sr, rng, float(_midi_hz(midi)), dur, timbre, decay, detune, attack)
        _place(buf, y, [t0], [vel], sr)
    return buf
