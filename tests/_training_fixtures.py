"""Tiny, learnable in-memory data and a tiny deterministic model for the training tests.

Also a command line used by the subprocess tests (multi-worker, kill + resume)::

    python tests/_training_fixtures.py --config-json '{...}' --run-dir DIR [--resume] [--step-delay S]

It trains the tiny model on the in-memory data with ``training.trainer.Trainer`` exactly as the
CLI would (strategy from the config / TF_CONFIG) and prints one JSON line with the result.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

if __name__ == '__main__':  # run as a script: make the repo importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

T, F = 8, 6          # frames x mel bands of one window
TAGS = ['rock', 'pop', 'jazz', 'piano']


def make_arrays(n_train=256, n_val_tracks=24, windows_per_track=3, n_tags=len(TAGS), seed=0):
    """Learnable windows: x = noise + sum of the fixed patterns of the track's tags.

    Returns
    -------
    dict with x_train float32 [n_train, T, F], y_train [n_train, K], x_val [M, T, F], y_val [M, K],
    val_ids (str [M], ``windows_per_track`` windows per validation track).
    """
    rng = np.random.default_rng(seed)
    patterns = np.random.default_rng(1234).normal(size=(n_tags, T, F)).astype(np.float32)

    def draw(n):
        y = (rng.random((n, n_tags)) < 0.4).astype(np.float32)
        y[np.arange(n), rng.integers(0, n_tags, n)] = 1.0  # at least one tag per example
        return y

    y_train = draw(n_train)
    x_train = np.einsum('nk,ktf->ntf', y_train, patterns) + rng.normal(scale=1.0, size=(n_train, T, F))
    y_tracks = draw(n_val_tracks)
    y_val = np.repeat(y_tracks, windows_per_track, axis=0)
    x_val = np.einsum('nk,ktf->ntf', y_val, patterns) + rng.normal(scale=1.0, size=(len(y_val), T, F))
    val_ids = np.repeat([f'TRVAL{i:04d}' for i in range(n_val_tracks)], windows_per_track)
    return {'x_train': x_train.astype(np.float32), 'y_train': y_train, 'x_val': x_val.astype(np.float32),
            'y_val': y_val, 'val_ids': val_ids}


def input_info():
    from training.data import InputInfo
    return InputInfo(kind='log-mel', sr=16000, window_seconds=0.25, frames=T, n_mels=F, params=None)


def make_source(batch_size, arrays=None, labels=TAGS, shuffle=True, step_delay=0.0, validation=True):
    """An ArraySource over :func:`make_arrays` (optionally slowed down by ``step_delay`` s/batch)."""
    from training.data import ArraySource
    a = arrays or make_arrays(n_tags=len(labels))
    src = ArraySource(a['x_train'], a['y_train'], labels, input_info(), batch_size,
                      x_val=a['x_val'] if validation else None, y_val=a['y_val'] if validation else None,
                      val_track_ids=a['val_ids'] if validation else None, shuffle=shuffle)
    if step_delay:
        import time
        import tensorflow as tf
        base = src.train_dataset

        def slow(seed, repeat):
            def wait(x, y):
                def sleep():
                    time.sleep(step_delay)
                    return np.float32(0)
                z = tf.numpy_function(sleep, [], tf.float32)
                return x + z, y
            return base(seed, repeat).map(wait)
        src.train_dataset = slow
    return src


def tiny_model_fn(hidden=16):
    """Deterministic tiny tagger: flatten -> dense (frontend_dense) -> dense (hidden) -> logits -> tags."""

    def build(n_outputs, info):
        import keras
        init = lambda s: keras.initializers.GlorotUniform(seed=s)  # noqa: E731  fixed weights
        inp = keras.Input((info.frames, info.n_mels), name='audio')
        h = keras.layers.Flatten(name='flatten')(inp)
        h = keras.layers.Dense(hidden, activation='relu', kernel_initializer=init(1), name='frontend_dense')(h)
        h = keras.layers.Identity(name='frontend_output')(h)     # modeling's frontend marker
        h = keras.layers.Dense(hidden, activation='relu', kernel_initializer=init(2), name='hidden')(h)
        h = keras.layers.Dense(n_outputs, kernel_initializer=init(3), name='logits')(h)
        out = keras.layers.Activation('sigmoid', name='tags')(h)
        return keras.Model(inp, out, name='tiny')

    return build


def base_config(**sections):
    """A config dict for the tiny setup (dataset.dir unused: data comes from memory)."""
    cfg = {
        'input': {'batch_size': 16, 'window_seconds': 0.25},
        'model': {'name': 'tiny'},
        'optimization': {'optimizer': {'name': 'Adam', 'kwargs': {'learning_rate': 0.01}}, 'epochs': 3},
        'callbacks': {'early_stopping': {'patience': None}},
        'logging': {'log_every_steps': 5, 'progress': False},
        'seed': 7,
    }
    for key, value in sections.items():
        cfg.setdefault(key, {}).update(value) if isinstance(value, dict) else cfg.__setitem__(key, value)
    return cfg


def _main():
    p = argparse.ArgumentParser()
    p.add_argument('--config-json', required=True)
    p.add_argument('--run-dir', required=True)
    p.add_argument('--resume', action='store_true')
    p.add_argument('--step-delay', type=float, default=0.0)
    args = p.parse_args()
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    import logging
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    from training.config import parse_config
    from training.trainer import Trainer
    cfg = parse_config(json.loads(args.config_json))
    trainer = Trainer(cfg, run_dir=args.run_dir, resume=args.resume,
                      data=make_source(cfg.input.batch_size, step_delay=args.step_delay),
                      model_fn=tiny_model_fn())
    result = trainer.fit()
    print(json.dumps({'epochs': result.epochs_completed, 'iterations': trainer.iterations,
                      'chief': trainer.worker.is_chief, 'replicas': trainer.replicas,
                      'losses': [r['train_loss'] for r in result.history]}), flush=True)


if __name__ == '__main__':
    _main()
