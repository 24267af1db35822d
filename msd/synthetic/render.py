"""One clip from its labels: the stems of a genre style, a voice, then the master bus (decade
production signature, reverb, upsampling, loudness).
"""
from __future__ import annotations

import numpy as np

from .dsp import _fast_len, _fir_kernel, _response
from .styles import _STYLES, _bass, _drums, _harmony, _Song
from .voice import _voice

#: Internal synthesis rate (Hz).  44.1 kHz files are band-limited 2x upsamples (windowed-sinc
#: interpolation), which halves the synthesis cost; nothing above 11 kHz matters for 16 kHz features.
SYNTH_SR = 22050


_DECADE_FX = {
    None: dict(lp=None, hp=30, wet=0.12, rt60=1.1),
    '50s': dict(lp=2800, hp=200, wet=0.22, rt60=1.0, mono=True, hiss=0.025, crackle=True),
    '60s': dict(lp=4200, hp=140, wet=0.35, rt60=1.8, mono=True, hiss=0.012),
    '70s': dict(lp=5500, lp_order=1, hp=60, wet=0.15, rt60=1.0, wow=0.0018, tape=1.8),
    '80s': dict(hp=40, wet=0.5, rt60=0.35, gate=True, shelf=(3000, 6.0)),
    '90s': dict(hp=30, wet=0.08, rt60=0.8, smiley=True),
    '00s': dict(hp=30, wet=0.1, rt60=0.9, shelf=(5000, 3.0), limit=4.0),
}


def _master(stems, song, genre, decade, rng, out_sr, channels, seconds):
    """Mix mono stems to ``channels`` at ``out_sr``: float32 [round(seconds*out_sr), channels]."""
    sr, n = song.sr, song.n
    fx = _DECADE_FX[decade]
    style = _STYLES[genre]
    mono_out = channels == 1 or fx.get('mono')
    mix = np.zeros((1 if mono_out else 2, n))
    for x, pan, gain, haas in stems:
        if mono_out:
            mix[0] += 0.7 * gain * x
            continue
        a = (pan + 1) * np.pi / 4
        mix[0] += np.cos(a) * gain * x
        if haas:  # double-tracked width: a slightly delayed copy on the other side
            d = int(0.013 * sr)
            x = np.concatenate([np.zeros(d), x[:n - d]])
        mix[1] += np.sin(a) * gain * x
    if fx.get('wow'):
        t = np.arange(n) / sr
        warp = t + fx['wow'] * np.sin(2 * np.pi * 0.55 * t) + 0.4 * fx['wow'] * np.sin(2 * np.pi * 3.1 * t)
        mix = np.stack([np.interp(warp, t, ch) for ch in mix])
    if fx.get('tape'):
        peak = np.abs(mix).max() + 1e-9
        mix = np.tanh(fx['tape'] * mix / peak) * peak
    # One FFT pair per channel applies the decade EQ and the reverb.
    wet = max(fx['wet'], style['wet'])
    rt60 = style['rt60'] if style['wet'] > fx['wet'] else fx['rt60']
    ir_len = int(min(rt60, 4.0) * sr)
    nfft = _fast_len(n + ir_len)
    f = np.fft.rfftfreq(nfft, 1 / sr)
    h = _response(f, fx.get('lp'), fx.get('hp'), fx.get('lp_order', 2))
    tilt = rng.uniform(-2.0, 2.0)  # per-track EQ tilt, dB per decade of frequency around 1 kHz
    h *= 10 ** (tilt * np.log10(np.maximum(f, 20) / 1000) / 20)
    if fx.get('shelf'):
        fc, db = fx['shelf']
        h *= 10 ** (db / 20 * (1 / (1 + (fc / np.maximum(f, 1)) ** 2)))
    if fx.get('smiley'):
        h *= 10 ** ((7 / (1 + (f / 150) ** 2) + 6 / (1 + (5000 / np.maximum(f, 1)) ** 2)
                     - 5 * np.exp(-(np.log2(np.maximum(f, 1) / 1000)) ** 2)) / 20)
    ti = np.arange(ir_len) / sr
    env = np.where(ti < rt60, 1.0, 0.0) if fx.get('gate') else np.exp(-6.9 * ti / max(rt60, 0.05))
    ir = rng.standard_normal(ir_len) * env
    ramp = int(0.01 * sr)
    ir[:ramp] *= np.linspace(0, 1, ramp)
    ir_f = np.fft.rfft(ir, nfft) * _response(f, lp=9000 if fx.get('gate') else 6000) / np.sqrt(np.sum(ir ** 2))
    out = np.empty_like(mix)
    for c in range(len(mix)):
        # The right channel's reverb is the left one plus a 7 ms-delayed copy: decorrelated enough
        # for width at the cost of no extra FFT.
        rev = ir_f if c == 0 else (ir_f - ir_f * np.exp(-2j * np.pi * f * 0.007)) / np.sqrt(2)
        out[c] = np.fft.irfft(np.fft.rfft(mix[c], nfft) * h * (1 + wet * rev), nfft)[:n]
    if fx.get('limit'):
        peak = np.abs(out).max() + 1e-9
        out = np.tanh(fx['limit'] * out / peak) / np.tanh(fx['limit'])
    up = out_sr // sr
    if up > 1:  # band-limited upsampling: zero-stuffing + windowed-sinc interpolation filter
        h_up = _fir_kernel(out_sr, lp=0.46 * sr) * up
        stuffed = np.zeros((len(out), n * up))
        stuffed[:, ::up] = out
        out = np.stack([np.convolve(ch, h_up, mode='same') for ch in stuffed])
    out_n = int(round(seconds * out_sr))
    out = out[:, :out_n]
    if out.shape[1] < out_n:
        out = np.pad(out, ((0, 0), (0, out_n - out.shape[1])))
    if fx.get('hiss'):
        hiss = np.convolve(rng.standard_normal(out_n), _fir_kernel(out_sr, hp=2500), mode='same')
        out += fx['hiss'] * np.abs(out).max() * hiss / (np.abs(hiss).max() + 1e-9)
    if fx.get('crackle'):
        clicks = (rng.random(out_n) < 6.0 / out_sr) * rng.uniform(-1, 1, out_n)
        out += 0.3 * np.abs(out).max() * clicks
    fade = min(int(0.3 * out_sr), out_n // 4)
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade)
        out[:, :fade] *= ramp
        out[:, -fade:] *= ramp[::-1]
    out *= rng.uniform(0.5, 0.92) / (np.abs(out).max() + 1e-9)
    if channels == 2 and len(out) == 1:
        out = np.repeat(out, 2, axis=0)
    return np.ascontiguousarray(out.T, dtype=np.float32)


def render_audio(spec, sr=44100, channels=2, seconds=30.0, seed=0):
    """Synthesise one clip from its labels.

    Parameters
    ----------
    spec : dict
        ``genre`` (one of ``GENRES``), ``vocal`` (``VOCALS`` or None), ``decade`` (``DECADES`` or
        None), ``ballad`` (bool), ``tempo`` (BPM), ``key`` (pitch class 0-11), ``mode`` (1 major,
        0 minor), ``prog`` (progression index, any int).
    sr : int
        Output sample rate (Hz): 22050 or 44100 (synthesis runs at 22050 Hz).
    channels : int
        1 or 2.
    seconds : float
        Clip length (s).
    seed : int or sequence of int
        Seed of the clip's own random generator (timing, mix, noise ...).

    Returns
    -------
    numpy.ndarray
        float32 [round(seconds * sr), channels], peak in [0.5, 0.92].
    """
    if sr % SYNTH_SR:
        raise ValueError(f'sample rate must be a multiple of {SYNTH_SR} Hz, got {sr}')
    rng = np.random.default_rng(seed)
    genre = spec['genre']
    style = _STYLES[genre]
    n = int(round(seconds * SYNTH_SR))
    progs = style['progs']
    song = _Song(n, SYNTH_SR, rng, spec['tempo'], style['swing'], 40 + (spec['key'] - 4) % 12,
                 progs[spec.get('prog', 0) % len(progs)], style.get('bars_per_chord', 1))
    ballad = bool(spec.get('ballad'))
    vocal = spec.get('vocal')
    stems = []
    if genre != 'ambient':
        stems.append((_drums(song, genre, rng, ballad, spec.get('decade')), 0.0, rng.uniform(0.8, 1.1), False))
    stems.append((_bass(song, genre, rng, ballad), 0.0, rng.uniform(0.5, 0.8), False))
    stems += _harmony(song, genre, rng, ballad, vocal == 'instrumental' or vocal is None, spec.get('mode', 1))
    music_rms = np.sqrt(np.mean(sum(g * x for x, _, g, _ in stems) ** 2)) + 1e-9
    if vocal in ('female', 'male', 'rap'):
        v = _voice(song, vocal, rng, ballad, spec.get('mode', 1))
        stems.append((v, rng.uniform(-0.1, 0.1), music_rms * rng.uniform(0.8, 1.3), False))
    return _master(stems, song, genre, spec.get('decade'), rng, sr, channels, seconds)
