"""Test fixtures for evaluation/: tiny Keras models saved in the CONTRACT run-dir layout, and audio.

Kept import-light at module level (TF/Keras imported inside the functions) so the memory-probe
subprocess can import it cheaply.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LABELS = ['rock', 'pop', 'jazz', 'female vocalists', 'ambient', 'punk']


def tiny_model(kind='log-mel', n_out=len(LABELS), length=None, n_mels=96, seed=0):
    """A few-hundred-parameter Keras model with the CONTRACT input/output convention.

    log-mel: float32 [B, length|None, n_mels] -> sigmoid [B, n_out] named "tags";
    waveform: float32 [B, length|None] -> sigmoid [B, n_out].
    """
    import keras
    keras.utils.set_random_seed(seed)
    if kind == 'log-mel':
        inp = keras.Input((length, n_mels), name='logmel')
        x = keras.layers.Conv1D(8, 5, activation='relu')(inp)
    else:
        inp = keras.Input((length,), name='waveform')
        x = keras.layers.Reshape((-1, 1))(inp)
        x = keras.layers.Conv1D(8, 64, strides=32, activation='relu')(x)
    # Mean and max pooling over time: window-content dependent, so wrong windows change outputs.
    x = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling1D()(x),
                                    keras.layers.GlobalMaxPooling1D()(x)])
    out = keras.layers.Dense(n_out, activation='sigmoid', name='tags')(x)
    return keras.Model(inp, out)


def make_run_dir(path, *, kind='log-mel', labels=LABELS, preset='musicnn', window_seconds=3.0,
                 fixed_length=True, seed=0, checkpoints=False, params_overrides=None):
    """Write a run dir (config.json, labels.json, features.json, model.keras[, checkpoints/]).

    Returns
    -------
    Path
        The run dir. With ``checkpoints=True`` it also holds ``checkpoints/ckpt-1`` (weights of a
        differently seeded model: "last") and ``checkpoints/best/ckpt-1`` (another seed: "best").
    """
    import tensorflow as tf
    from preprocessing.features import get_params

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if kind == 'log-mel':
        params = get_params(preset, **(params_overrides or {}))
        frames = int(round(window_seconds * params.sr / params.hop_length))
        if preset == 'musicnn' and window_seconds == 3.0:
            frames = 187     # musicnn's patch length
        feats = {'input': 'log-mel', 'sr': params.sr, 'params': params.to_dict(),
                 'window_seconds': window_seconds, 'input_frames': frames, 'input_samples': None}
        length, n_mels = frames, params.n_mels
    else:
        samples = int(round(window_seconds * 16000))
        feats = {'input': 'waveform', 'sr': 16000, 'params': None, 'window_seconds': window_seconds,
                 'input_frames': None, 'input_samples': samples}
        length, n_mels = samples, None
    model = tiny_model(kind, len(labels), length if fixed_length else None, n_mels or 96, seed)
    model.save(path / 'model.keras')
    (path / 'labels.json').write_text(json.dumps(list(labels)))
    (path / 'features.json').write_text(json.dumps(feats))
    (path / 'config.json').write_text(json.dumps({'model': {'name': 'tiny'}, 'test_fixture': True}))
    if checkpoints:
        for sub, s in (('', seed + 1), ('best', seed + 2)):
            other = tiny_model(kind, len(labels), length if fixed_length else None, n_mels or 96, s)
            tf.train.Checkpoint(model=other).save(str(path / 'checkpoints' / sub / 'ckpt'))
    return path


def music_like(seconds, sr=16000, seed=0):
    """float32 [seconds·sr] test signal whose spectrum changes over time (sweeps, beeps, noise)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n, dtype=np.float64) / sr
    f = 200 + 1800 * (0.5 + 0.5 * np.sin(2 * np.pi * t / 7.3))
    phase = 2 * np.pi * np.cumsum(f) / sr
    env = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * t * 1.7))
    y = 0.3 * np.sin(phase) + 0.2 * env * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n)
    return y.astype(np.float32)


def write_mp3(path, audio, sr=16000, channels=1, bitrate=64):
    """Encode float32 [n] (duplicated to ``channels``) to MP3 with lameenc."""
    from msd.synthetic import encode_mp3
    audio = np.asarray(audio, dtype=np.float32)
    Path(path).write_bytes(encode_mp3(np.stack([audio] * channels, axis=1), sr, kbps=bitrate, quality=7))
    return Path(path)


def write_wav(path, audio, sr=16000):
    import soundfile as sf
    sf.write(str(path), audio, sr, subtype='PCM_16')
    return Path(path)
