"""The synthetic voice: glottal pulses through moving vowel formants (STFT), vibrato, consonant noise bursts."""
from __future__ import annotations

import numpy as np

from .dsp import _midi_hz, _response
from .styles import _SCALES

#: Male vowel formants F1..F4 (Hz); female formants are ~16% higher.
_VOWELS = np.array([
    [730, 1090, 2440, 3400],   # a
    [530, 1840, 2480, 3500],   # e
    [270, 2290, 3010, 3700],   # i
    [570, 840, 2410, 3400],    # o
    [300, 870, 2240, 3400],    # u
], dtype=float)
_FORMANT_BW = np.array([80.0, 100.0, 140.0, 200.0])
_FORMANT_AMP = np.array([1.0, 0.65, 0.4, 0.25])


def _sung_syllables(song, kind, rng, ballad, mode):
    """Sung phrases on the song's scale, female or male range: syllables (see :func:`_voice`)."""
    sr, n, spb = song.sr, song.n, song.spb
    syl = []
    lo, hi = (55, 70) if kind == 'female' else (43, 57)
    scale = _SCALES[mode]
    pitches = [song.root + 12 * o + s for o in range(-1, 5) for s in scale]
    pitches = [p for p in pitches if lo <= p <= hi]
    i = len(pitches) // 2
    beat = float(rng.choice([0, 1, 2]))
    end = (n / sr + song.offset) / spb
    durs, p = ((1, 2, 3), (.3, .5, .2)) if ballad else ((0.5, 1, 1.5, 2), (.25, .4, .2, .15))
    while beat < end:
        phrase_end = beat + rng.choice([6, 8, 8, 12])
        while beat < phrase_end:
            d = float(rng.choice(durs, p=p))
            i = int(np.clip(i + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, len(pitches) - 1))
            f = float(_midi_hz(pitches[i]))
            t0 = float(song.time(0, beat))
            va = int(rng.integers(5))
            vb = va if rng.random() < 0.6 else int(rng.integers(5))  # 40% diphthongs
            syl.append((t0, t0 + 0.93 * d * spb, f, f, va, vb, 0.6 if rng.random() < 0.4 else 0.0))
            beat += d
        beat += float(rng.choice([1, 2, 2, 3]))
    return syl


def _rapped_syllables(song, rng):
    """Short speech-like syllables on a 16th grid, falling pitch, consonant bursts (see :func:`_voice`)."""
    spb = song.spb
    syl = []
    base = rng.uniform(105, 150)
    for b in range(song.n_bars):
        if rng.random() < 0.12:
            continue
        density = rng.uniform(0.55, 0.85)
        for k in range(16):
            if rng.random() > density:
                continue
            x = song.step_beat(k)
            t0 = float(song.time(b, x))
            d = rng.choice([0.22, 0.22, 0.4]) * spb
            f = base * (1.18 - 0.25 * k / 16) * (1 + 0.07 * rng.standard_normal())
            syl.append((t0, t0 + d, f, 0.88 * f, rng.integers(5), rng.integers(5), rng.uniform(0.5, 1.0)))
    return syl


def _envelopes(syl, n, sr, kind, rng):
    """Per-sample pitch (Hz, 0 between syllables), amplitude and consonant-noise level: float [n] each."""
    f0 = np.zeros(n)
    amp = np.zeros(n)
    cons = np.zeros(n)
    att = 0.012 if kind == 'rap' else 0.03
    for t0, t1, fa, fb, _, _, c in syl:
        i0, i1 = int(t0 * sr), int(t1 * sr)
        if i1 <= 0 or i0 >= n or i1 - i0 < 8:
            continue
        seg = np.arange(i0, i1)
        tt = (seg - i0) / sr
        dur = (i1 - i0) / sr
        ok = (seg >= 0) & (seg < n)
        f0[seg[ok]] = np.linspace(fa, fb, len(seg))[ok]
        env = np.minimum(1, tt / att) * np.clip((dur - tt) / 0.05, 0, 1)
        amp[seg[ok]] = env[ok]
        if c:
            cl = int(rng.uniform(0.025, 0.07) * sr)
            cseg = np.arange(i0, i0 + cl)
            cok = (cseg >= 0) & (cseg < n)
            cons[cseg[cok]] += c * np.exp(-np.arange(cl) / (0.3 * cl))[cok]
    return f0, amp, cons


def _glottal_source(f0, amp, cons, kind, rng, sr):
    """Voiced source (differentiated Rosenberg pulses with held pitch, portamento, vibrato and
    jitter) and the consonant noise: (source, noise), float32 [n] each."""
    n = len(f0)
    # Hold the pitch between syllables (phase continuity), then glide (portamento ~25 ms).
    idx = np.where(f0 > 0, np.arange(n), 0)
    np.maximum.accumulate(idx, out=idx)
    f0 = f0[idx]
    f0[f0 == 0] = f0[f0 > 0][0]
    w = int(0.025 * sr)
    c = np.cumsum(np.concatenate([np.zeros(w), np.log(f0), np.full(w, np.log(f0[-1]))]))
    f0 = np.exp((c[2 * w:] - c[:-2 * w])[:n] / (2 * w))
    t = np.arange(n) / sr
    if kind != 'rap':
        depth = 0.03 if kind == 'female' else 0.022
        f0 *= 1 + depth * np.sin(2 * np.pi * rng.uniform(5.0, 6.2) * t + rng.uniform(0, 6))
    knots = np.arange(0, n + int(0.05 * sr), int(0.05 * sr))
    f0 *= 1 + 0.004 * np.interp(np.arange(n), knots, rng.standard_normal(len(knots)))
    # Rosenberg glottal pulse, differentiated: a buzzy source with a natural spectral slope.
    ph = np.cumsum(f0) / sr  # float64: the phase accumulates over the whole clip
    ph = (ph - np.floor(ph)).astype(np.float32)
    pulse = np.zeros(n, dtype=np.float32)
    rise = ph < 0.4
    fall = ~rise & (ph < 0.6)
    pulse[rise] = 0.5 * (1 - np.cos(np.float32(np.pi / 0.4) * ph[rise]))
    pulse[fall] = np.cos(np.float32(np.pi / 0.4) * (ph[fall] - np.float32(0.4)))
    src = np.diff(pulse, prepend=np.float32(0)) * (0.1 * sr / np.maximum(f0, 50)).astype(np.float32)
    src = (src + 0.02 * rng.standard_normal(n, dtype=np.float32)) * amp.astype(np.float32)
    noise = rng.standard_normal(n, dtype=np.float32) * cons.astype(np.float32)
    return src, noise


def _formant_filter(src, noise, syl, kind, sr):
    """Source through the syllables' moving vowel formants, noise through a 3-9 kHz band (STFT,
    hop 256, Hann^2 overlap-add at 75%): float [n], unit RMS."""
    n = len(src)
    nfft, hop = 1024, 256
    pad = np.concatenate([np.zeros(nfft), src, np.zeros(nfft)])
    padn = np.concatenate([np.zeros(nfft), noise, np.zeros(nfft)])
    frames_idx = np.arange(0, len(pad) - nfft + 1, hop)
    win = np.hanning(nfft + 1)[:-1]
    fr = np.lib.stride_tricks.sliding_window_view(pad, nfft)[::hop] * win
    frn = np.lib.stride_tricks.sliding_window_view(padn, nfft)[::hop] * win
    freqs = np.fft.rfftfreq(nfft, 1 / sr)
    centers = (frames_idx + nfft / 2 - nfft) / sr
    starts = np.array([s[0] for s in syl])
    ends = np.array([s[1] for s in syl])
    va = np.array([s[4] for s in syl])
    vb = np.array([s[5] for s in syl])
    k = np.clip(np.searchsorted(starts, centers) - 1, 0, len(syl) - 1)
    # Hold the vowel, glide to the second one (a diphthong, or the next syllable's vowel) at the end.
    pos = np.clip((centers - starts[k]) / np.maximum(ends[k] - starts[k], 1e-3), 0, 1)
    frac = np.clip((pos - 0.65) / 0.35, 0, 1)[:, None]
    scale = 1.16 if kind == 'female' else 1.0
    formants = ((1 - frac) * _VOWELS[va[k]] + frac * _VOWELS[vb[k]]) * scale  # [frames, 4]
    # Only frames with voice get filtered (phrases leave 20-40% of frames empty).
    active = np.flatnonzero(np.abs(fr).max(axis=1) + np.abs(frn).max(axis=1) > 0)
    f32 = freqs.astype(np.float32)[None, :]
    fm = formants[active].astype(np.float32)
    gain = np.zeros((len(active), len(freqs)), dtype=np.float32)
    for j in range(4):
        bw = np.float32(_FORMANT_BW[j] * scale / 2)
        gain += np.float32(_FORMANT_AMP[j]) / (1 + np.square((f32 - fm[:, j:j + 1]) / bw))
    spec = np.fft.rfft(fr[active], axis=1) * gain
    spec += np.fft.rfft(frn[active], axis=1) * (0.35 * _response(freqs, lp=9000, hp=3000, order=2))[None, :]
    out_frames = np.zeros((len(frames_idx), nfft))
    out_frames[active] = np.fft.irfft(spec, nfft, axis=1) * win
    y = np.zeros(len(pad) + nfft)
    for r in range(nfft // hop):
        sub = out_frames[r::nfft // hop]
        flat = sub.reshape(-1)
        y[r * hop:r * hop + len(flat)] += flat
    y = y[nfft:nfft + n] / 1.5
    return y / (np.sqrt(np.mean(y ** 2)) + 1e-9)


def _voice(song, kind, rng, ballad, mode):
    """Voice stem for ``kind`` in {'female', 'male', 'rap'}: float [n].

    Syllables are ``(t0 s, t1 s, f0 start Hz, f0 end Hz, vowel a, vowel b, consonant level)``.
    """
    if kind in ('female', 'male'):
        syl = _sung_syllables(song, kind, rng, ballad, mode)
    else:
        syl = _rapped_syllables(song, rng)
    f0, amp, cons = _envelopes(syl, song.n, song.sr, kind, rng)
    if not syl or amp.max() == 0:
        return np.zeros(song.n)
    src, noise = _glottal_source(f0, amp, cons, kind, rng, song.sr)
    return _formant_filter(src, noise, syl, kind, song.sr)
