"""Tiny, learnable in-memory data and a tiny deterministic model for the training tests.

Also a command line used by the subprocess tests (multi-worker, kill + resume, locks, a full disk)::

    python tests/_training_fixtures.py trainer --config-json '{...}' --run-dir DIR [--resume] [HOOKS]
    python tests/_training_fixtures.py cli [HOOKS] -- <musetag train arguments>

``trainer`` trains the tiny model on the in-memory data with ``training.trainer.Trainer`` (strategy
from the config / TF_CONFIG) and prints one JSON line with the result. ``cli`` runs the real
command line (``training.__main__.main``, exit code and all) with the TFRecord source and the
model registry replaced by the in-memory data and the tiny model.

HOOKS stop the job at a known point, so tests never depend on timing:

``--block-at-batch N --marker PATH``
    the training data pipeline, when it makes its N-th batch (counted over the process, 16 batches
    per epoch), creates ``PATH`` and waits until ``PATH.release`` exists: with N = 20 the job holds
    its run directory in epoch 2, after epoch 1's checkpoint and history row were written.
``--file-size-limit-at-save EPOCH --file-size-limit BYTES``
    right before the job saves epoch EPOCH, every file it writes is limited to BYTES
    (``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored): a larger write fails with ``EFBIG`` ("File too
    large"), as it would on a full disk.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

if __name__ == '__main__':  # run as a script: make the repo importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

T, F = 8, 6          # frames x mel bands of one window
TAGS = ['rock', 'pop', 'jazz', 'piano']
BATCHES_PER_EPOCH = 16   # make_arrays() default: 256 training windows in batches of 16


def make_arrays(n_train=256, n_val_tracks=24, windows_per_track=3, n_tags=None, seed=0):
    """Learnable windows: x = noise + sum of the fixed patterns of the track's tags.

    Returns
    -------
    dict with x_train float32 [n_train, T, F], y_train [n_train, K], x_val [M, T, F], y_val [M, K],
    val_ids (str [M], ``windows_per_track`` windows per validation track).
    """
    n_tags = len(TAGS) if n_tags is None else n_tags
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


def feature_params():
    """Log-mel front-end parameters of the tiny windows (F mel bands), as features.json stores them."""
    from preprocessing.features import get_params
    return get_params('musicnn', n_mels=F).to_dict()


def input_info():
    from training.data import InputInfo
    return InputInfo(kind='log-mel', sr=16000, window_seconds=0.25, frames=T, n_mels=F, params=feature_params())


class BatchGate:
    """Blocks a data pipeline at its ``at``-th batch: creates ``marker``, waits for ``marker.release``."""

    def __init__(self, at: int, marker: str):
        self.at, self.marker, self.count = int(at), marker, 0

    def __call__(self):
        self.count += 1
        if self.count == self.at:
            with open(self.marker, 'w') as f:
                f.write(str(os.getpid()))
            while not os.path.exists(self.marker + '.release'):
                time.sleep(0.05)
        return np.float32(0)


def make_source(batch_size, arrays=None, labels=TAGS, shuffle=True, validation=True, gate=None):
    """An ArraySource over :func:`make_arrays`; ``gate`` (a :class:`BatchGate`) sees every training batch."""
    from training.data import ArraySource
    a = arrays or make_arrays(n_tags=len(labels))
    src = ArraySource(a['x_train'], a['y_train'], labels, input_info(), batch_size,
                      x_val=a['x_val'] if validation else None, y_val=a['y_val'] if validation else None,
                      val_track_ids=a['val_ids'] if validation else None, shuffle=shuffle)
    if gate is not None:
        import tensorflow as tf
        base = src.train_dataset

        def through_gate(x, y):
            return x + tf.numpy_function(gate, [], tf.float32), y

        src.train_dataset = lambda seed, repeat: base(seed, repeat).map(through_gate)
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


# ------------------------------------------------------------------------------ command line
def _hooks(parser):
    parser.add_argument('--block-at-batch', type=int, default=None)
    parser.add_argument('--marker', default=None)
    parser.add_argument('--file-size-limit-at-save', type=int, default=None)
    parser.add_argument('--file-size-limit', type=int, default=4096)


def _install_file_size_limit(epoch: int, limit: int) -> None:
    import resource
    import signal

    from training.trainer import Trainer
    original = Trainer._save_epoch

    def save_epoch(trainer, at, *args, **kwargs):
        if at == epoch:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        return original(trainer, at, *args, **kwargs)

    Trainer._save_epoch = save_epoch


def _gate(args):
    return BatchGate(args.block_at_batch, args.marker) if args.block_at_batch else None


def _run_trainer(args) -> int:
    from training.config import parse_config
    from training.trainer import Trainer
    cfg = parse_config(json.loads(args.config_json))
    trainer = Trainer(cfg, run_dir=args.run_dir, resume=args.resume,
                      data=make_source(cfg.input.batch_size, gate=_gate(args)), model_fn=tiny_model_fn())
    result = trainer.fit()
    print(json.dumps({'epochs': result.epochs_completed, 'iterations': trainer.iterations,
                      'chief': trainer.worker.is_chief, 'replicas': trainer.replicas,
                      'losses': [r['train_loss'] for r in result.history]}), flush=True)
    return 0


def _run_cli(args, cli_args) -> int:
    import training.trainer
    from training.__main__ import main
    gate = _gate(args)
    training.trainer.TFRecordSource = lambda cfg: make_source(cfg.input.batch_size, gate=gate)
    training.trainer.registry_model_fn = lambda model_cfg: tiny_model_fn()
    return main(cli_args, prog='musetag train')


def _main() -> int:
    p = argparse.ArgumentParser(allow_abbrev=False)
    sub = p.add_subparsers(dest='mode', required=True)
    t = sub.add_parser('trainer', allow_abbrev=False)
    t.add_argument('--config-json', required=True)
    t.add_argument('--run-dir', required=True)
    t.add_argument('--resume', action='store_true')
    _hooks(t)
    c = sub.add_parser('cli', allow_abbrev=False)
    _hooks(c)
    argv = sys.argv[1:]
    cli_args = []
    if '--' in argv:
        argv, cli_args = argv[:argv.index('--')], argv[argv.index('--') + 1:]
    args = p.parse_args(argv)
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    if args.file_size_limit_at_save:
        _install_file_size_limit(args.file_size_limit_at_save, args.file_size_limit)
    if args.mode == 'cli':
        return _run_cli(args, cli_args)
    import logging
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    return _run_trainer(args)


if __name__ == '__main__':
    sys.exit(_main())
