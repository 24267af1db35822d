"""Test helpers for the modeling tests: synthetic stereo music clips (MP3s from ``_audio_fixtures``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from _audio_fixtures import write_mp3


def synth_music(seconds: float = 30.0, sr: int = 44100, seed: int = 0) -> np.ndarray:
    """A deterministic music-like stereo signal: chords + bass + kick/hi-hat beats + noise.

    Returns
    -------
    np.ndarray float32 [n, 2] in [-1, 1] at ``sr`` Hz.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    bpm = float(rng.uniform(80, 150))
    beat = 60.0 / bpm
    # a chord per bar (4 beats) from a random progression, with a few harmonics
    roots = 220.0 * 2 ** (rng.integers(-5, 7, size=int(seconds / (4 * beat)) + 2) / 12)
    bar = (t // (4 * beat)).astype(int)
    f0 = roots[bar]
    tonal = np.zeros(n)
    for interval in (0, 4 if seed % 2 == 0 else 3, 7):
        f = f0 * 2 ** (interval / 12)
        phase = 2 * np.pi * np.cumsum(f) / sr
        for h, a in ((1, 1.0), (2, 0.4), (3, 0.2)):
            tonal += a * np.sin(h * phase)
    bass = np.sin(2 * np.pi * np.cumsum(f0 / 2) / sr)
    # kick: decaying 60 Hz burst on every beat; hi-hat: decaying noise on off-beats
    since_beat = t % beat
    kick = np.sin(2 * np.pi * 60 * since_beat) * np.exp(-since_beat * 25)
    since_off = (t + beat / 2) % beat
    hat = rng.standard_normal(n) * np.exp(-since_off * 60)
    mix = 0.12 * tonal + 0.2 * bass + (0.5 + 0.3 * (seed % 3)) * kick + 0.15 * hat
    mix += 0.02 * rng.standard_normal(n)
    # slow fade in/out and a quieter middle section, so patches differ
    mix *= 0.6 + 0.4 * np.sin(2 * np.pi * t / seconds) ** 2
    left = mix + 0.05 * np.sin(2 * np.pi * 440 * t)
    right = mix - 0.05 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, right], axis=1)
    return (0.8 * stereo / np.max(np.abs(stereo))).astype(np.float32)


def make_clips(directory, n: int = 2, seconds: float = 30.0) -> list:
    """Write ``n`` synthetic 30 s stereo 44.1 kHz MP3 clips; returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [write_mp3(directory / f'clip{i}.mp3', synth_music(seconds, seed=i), 44100) for i in range(n)]
