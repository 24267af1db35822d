"""Test fixtures for evaluation/: tiny Keras models saved as run directories (docs/run-directory.md).

Audio fixtures come from ``_audio_fixtures`` (one module for every test). Kept import-light at
module level (TF/Keras imported inside the functions) so subprocess probes can import it cheaply.
"""
from __future__ import annotations

from pathlib import Path

LABELS = ['rock', 'pop', 'jazz', 'female vocalists', 'ambient', 'punk']


def tiny_model(kind='log-mel', n_out=None, length=None, n_mels=96, seed=0):
    """A few-hundred-parameter Keras model with a run directory's input/output convention.

    log-mel: float32 [B, length|None, n_mels] -> sigmoid [B, n_out] named "tags";
    waveform: float32 [B, length|None] -> sigmoid [B, n_out].
    """
    import keras
    n_out = len(LABELS) if n_out is None else n_out
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
    from modeling.rundir import write_run_files
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
    write_run_files(path, config={'model': {'name': 'tiny'}, 'test_fixture': True}, labels=list(labels),
                    features=feats)
    if checkpoints:
        for sub, s in (('', seed + 1), ('best', seed + 2)):
            other = tiny_model(kind, len(labels), length if fixed_length else None, n_mels or 96, s)
            tf.train.Checkpoint(model=other).save(str(path / 'checkpoints' / sub / 'ckpt'))
    return path


def deny_read(path, monkeypatch, request):
    """Make ``path`` (a file or a folder) unreadable for this process, as ``chmod 000`` does.

    Root reads anything whatever the mode, so for root the kernel's answer is also given by the
    one call that reads the path: ``open`` in :mod:`preprocessing.audio` for a file, ``os.scandir``
    for a folder (both raise ``PermissionError`` for ``path`` only). The mode is restored at teardown.
    """
    import builtins
    import os
    path = Path(path)
    is_dir = path.is_dir()
    os.chmod(path, 0)
    request.addfinalizer(lambda: os.chmod(path, 0o755 if is_dir else 0o644))
    if os.geteuid() != 0:
        return
    denied = os.path.abspath(path)

    def refuse(p):
        if os.path.abspath(os.fsdecode(p)) == denied:
            raise PermissionError(13, 'Permission denied', os.fsdecode(p))

    if is_dir:
        real_scandir = os.scandir

        def scandir(p='.'):
            refuse(p)
            return real_scandir(p)
        monkeypatch.setattr(os, 'scandir', scandir)
    else:
        import preprocessing.audio as pa

        def open_(p, *args, **kwargs):
            refuse(p)
            return builtins.open(p, *args, **kwargs)
        monkeypatch.setattr(pa, 'open', open_, raising=False)
