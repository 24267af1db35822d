"""Benchmark every registered model on this machine: training and inference throughput, size.

    python benchmarks/bench_models.py [--models musicnn vgg] [--batch 16] [--seconds 20]

Prints one JSON line per figure::

    {"bench": "models", "model": "musicnn", "metric": "train_examples_per_sec", "value": …, …}

metrics: ``params_trainable``, ``params_total``, ``train_examples_per_sec`` (compiled Adam step on
a fixed random batch, sigmoid cross-entropy, batch 16, the model's default window),
``infer_windows_per_sec`` (compiled forward pass in inference mode, same batch). Inputs are
random; the data pipeline is not part of this benchmark (see benchmarks/bench_training.py).
Each timing runs ≥ ``--min-steps`` steps and ≥ ``--seconds`` after 2 warm-up steps.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def input_shape(name: str, window_seconds: float, sr: int = 16000):
    """Per-example input shape of model ``name`` for its default window (and the preset used)."""
    import modeling
    from preprocessing.features import get_params, n_frames
    info = modeling.model_info(name)
    samples = int(round(window_seconds * sr))
    if info['input_kind'] == 'waveform':
        return (samples,), None
    if info['fixed_frames'] is not None:
        return (info['fixed_frames'], 96), 'musicnn'
    # 3 s models use the musicnn preset and its 187-frame patches (musicnn drops the last centred
    # frame: time_to_frames(3 s) + 1); 15 s Orpheus models the orpheus preset
    if window_seconds <= 3.0:
        return (187, 96), 'musicnn'
    return (n_frames(samples, get_params('orpheus')), 96), 'orpheus'


def _timed(fn, min_steps: int, seconds: float) -> tuple[int, float]:
    for _ in range(2):                                   # warm-up: tracing + first allocations
        fn()
    steps, start = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < seconds:
        fn()
        steps += 1
    return steps, time.perf_counter() - start


def bench(name: str, batch: int, seconds: float, min_steps: int):
    import keras
    import tensorflow as tf
    import modeling
    info = modeling.model_info(name)
    shape, preset = input_shape(name, info['default_window_seconds'])
    kind = info['input_kind']
    spec = modeling.InputSpec(kind=kind, n_mels=96, frames=shape[0] if kind == 'log-mel' else None)
    keras.utils.set_random_seed(0)
    model = modeling.build_model(name, 50, spec)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, *shape)).astype(np.float32))
    y = tf.constant((rng.random((batch, 50)) < 0.1).astype(np.float32))
    logits_model = modeling.logits_model(model)
    opt = keras.optimizers.Adam(1e-3)
    opt.build(model.trainable_variables)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            logits = logits_model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def infer_step():
        return model(x, training=False)

    common = {'bench': 'models', 'model': name, 'batch': batch, 'window_seconds': info['default_window_seconds'],
              'input_shape': list(shape), 'feature_preset': preset, 'n_outputs': 50,
              'hparams': info['hparams'], 'cpu_count': os.cpu_count(), 'machine': platform.machine(),
              'tensorflow': tf.__version__, 'keras': keras.__version__}
    trainable = int(sum(np.prod(v.shape) for v in model.trainable_weights))
    total = int(sum(np.prod(v.shape) for v in model.weights))
    yield {**common, 'metric': 'params_trainable', 'value': trainable, 'unit': 'parameters'}
    yield {**common, 'metric': 'params_total', 'value': total, 'unit': 'values'}
    steps, elapsed = _timed(train_step, min_steps, seconds)
    yield {**common, 'metric': 'train_examples_per_sec', 'value': round(steps * batch / elapsed, 2),
           'unit': 'examples/s', 'steps': steps, 'seconds': round(elapsed, 2)}
    steps, elapsed = _timed(lambda: infer_step().numpy(), min_steps, seconds)
    yield {**common, 'metric': 'infer_windows_per_sec', 'value': round(steps * batch / elapsed, 2),
           'unit': 'windows/s', 'steps': steps, 'seconds': round(elapsed, 2)}


def main(argv=None) -> int:
    import modeling
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=modeling.list_models(combinations=False),
                        help='model names (default: every registered whole model)')
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--seconds', type=float, default=15.0, help='minimum timed seconds per figure')
    parser.add_argument('--min-steps', type=int, default=3)
    args = parser.parse_args(argv)
    done = 0
    for name in args.models:
        for line in bench(name, args.batch, args.seconds, args.min_steps):
            print(json.dumps(line), flush=True)
        done += 1
    print(f'bench_models: {done} model(s) benchmarked', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
