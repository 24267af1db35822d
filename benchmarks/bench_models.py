"""Benchmark every registered model on this machine: training and inference throughput, size, memory,
and the input pipeline's speed against each model's training consumption.

    python benchmarks/bench_models.py [--models musicnn short_res] [--batch 16] [--seconds 15]
                                      [--tracks 8] [--passes 4] [--no-pipeline]
                                      [--device cpu|gpu] [--mixed-precision]

Prints one JSON line per figure (``benchmarks/_common.emit``)::

    {"bench": "models", "metric": "train_examples_per_sec", "value": …, "unit": "examples/s", "model": …}

Per model (its default window, 50 outputs, full-size default hyper-parameters), each model in its own
child process so that its memory figure is its own:

- ``params_trainable``, ``params_total`` (BatchNorm moving statistics included);
- ``train_examples_per_sec``: a compiled Adam step on a fixed random batch (``--batch``, 16),
  sigmoid cross-entropy;
- ``infer_windows_per_sec``: the compiled forward pass in inference mode, same batch;
- ``peak_rss_mb``: the child's peak resident memory (``VmHWM``) after building, training and
  inference, with ``rss_after_import_mb`` (TensorFlow and the registry loaded) alongside;
- ``pipeline_windows_per_sec`` and ``pipeline_to_training_ratio`` (unless ``--no-pipeline``):
  ``preprocessing.dataset.make_dataset`` alone (random windows, shuffle, batch 16, as the trainer
  reads it) on TFRecords of ``--tracks`` synthetic 30 s tracks in the model's input format (waveform,
  or log-mel with the model's preset), divided by ``train_examples_per_sec`` (target >= 3: the
  input pipeline must never be the bottleneck). Both are measured in turn, not concurrently.

Inputs of the model timings are random. Each timing runs >= ``--min-steps`` steps and >= ``--seconds``
after 2 warm-up steps. ``--device gpu`` runs the model timings on the first GPU and fails (exit 2) when
TensorFlow sees none; ``--mixed-precision`` sets the ``mixed_float16`` policy with a loss-scaling
optimizer (meant for GPUs; on a CPU it runs, slowly). No PyTorch reference throughput is built in: the
reference repository publishes none, and PyTorch is not a dependency.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from _common import emit  # also puts the repo on sys.path and sets TF/numba env defaults

BENCH = 'models'
N_OUTPUTS = 50


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


def _rss_mb() -> float:
    """Peak resident memory of this process in MB: VmHWM (ru_maxrss survives exec() and would carry the
    parent's peak into the child), ru_maxrss where /proc is missing."""
    try:
        with open('/proc/self/status') as f:
            return next(float(line.split()[1]) for line in f if line.startswith('VmHWM')) / 1024.0   # KiB
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench(name: str, batch: int, seconds: float, min_steps: int, mixed_precision: bool = False):
    """Yield the figures of model ``name`` as dicts (``metric``, ``value``, ``unit`` + context)."""
    import keras
    import tensorflow as tf
    import modeling
    info = modeling.model_info(name)
    shape, preset = input_shape(name, info['default_window_seconds'])
    kind = info['input_kind']
    spec = modeling.InputSpec(kind=kind, n_mels=96, frames=shape[0] if kind == 'log-mel' else None,
                              samples=shape[0] if kind == 'waveform' else None)
    keras.utils.set_random_seed(0)
    if mixed_precision:
        keras.mixed_precision.set_global_policy('mixed_float16')
    model = modeling.build_model(name, N_OUTPUTS, spec)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(scale=0.1, size=(batch, *shape)).astype(np.float32))
    y = tf.constant((rng.random((batch, N_OUTPUTS)) < 0.1).astype(np.float32))
    logits_model = modeling.logits_model(model)
    opt = keras.optimizers.Adam(1e-3)
    if mixed_precision:
        opt = keras.optimizers.LossScaleOptimizer(opt)
    opt.build(model.trainable_variables)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            logits = tf.cast(logits_model(x, training=True), tf.float32)
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))
            scaled = opt.scale_loss(loss) if mixed_precision else loss
        grads = tape.gradient(scaled, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def infer_step():
        return model(x, training=False)

    common = {'model': name, 'batch': batch, 'window_seconds': info['default_window_seconds'],
              'input_shape': list(shape), 'feature_preset': preset, 'n_outputs': N_OUTPUTS,
              'hparams': info['hparams'], 'cpu_count': os.cpu_count(), 'machine': platform.machine(),
              'precision': 'mixed_float16' if mixed_precision else 'float32',
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


def write_records(tmp: str, n_tracks: int, fmt: str, preset: str) -> str:
    """TFRecords (``fmt``, ``preset``) of ``n_tracks`` synthetic 30 s tracks, all in the train split."""
    from bench_pipeline import rendered_clips, write_corpus
    from preprocessing.tfrecords import write_tfrecords
    root = os.path.join(tmp, 'corpus')
    if not os.path.exists(os.path.join(root, 'master.csv')):
        write_corpus(root, n_tracks, rendered_clips(os.path.join(root, 'audio'), n=min(n_tracks, 8)))
    out = os.path.join(tmp, f'records-{fmt}-{preset}')
    if not os.path.exists(out):
        corpus = {k: os.path.join(root, f) for k, f in (('master', 'master.csv'), ('tags_db', 'clean_tags.db'),
                                                        ('splits', 'splits.csv'))}
        write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], out, format=fmt, preset=preset,
                        shards_per_split=2, workers=1, progress=False)
    return out


def run_child(args) -> int:
    """One model in this process: its figures, peak RSS and (with ``--records``) the pipeline ratio."""
    import tensorflow as tf
    import modeling
    modeling.model_info(args.models[0])                  # loads the registry (and Keras) before the RSS mark
    rss_import = _rss_mb()
    if args.device == 'gpu' and not tf.config.list_physical_devices('GPU'):
        print('bench_models: error: --device gpu, but TensorFlow sees no GPU', file=sys.stderr)
        return 2
    name, train_rate = args.models[0], None
    with tf.device('/GPU:0' if args.device == 'gpu' else '/CPU:0'):
        for rec in bench(name, args.batch, args.seconds, args.min_steps, args.mixed_precision):
            rec = dict(rec)
            metric, value = rec.pop('metric'), rec.pop('value')
            emit(BENCH, metric, value, rec.pop('unit'), device=args.device, **rec)
            if metric == 'train_examples_per_sec':
                train_rate = value
    emit(BENCH, 'peak_rss_mb', _rss_mb(), 'MB', model=name, device=args.device, batch=args.batch,
         rss_after_import_mb=round(rss_import, 1))
    if args.records:
        from bench_training import pipeline_rate
        window = modeling.model_info(name)['default_window_seconds']
        p_rate, n = pipeline_rate(args.records, window, args.passes)
        common = {'model': name, 'window_seconds': window, 'batch': 16, 'records': os.path.basename(args.records)}
        emit(BENCH, 'pipeline_windows_per_sec', p_rate, 'windows/s', windows=n, **common)
        ratio = p_rate / train_rate
        emit(BENCH, 'pipeline_to_training_ratio', ratio, 'x', target='>= 3', ok=bool(ratio >= 3),
             train_examples_per_sec=round(train_rate, 3), device=args.device, **common)
    return 0


def main(argv=None) -> int:
    import modeling
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=None,
                        help='model names (default: every registered whole model)')
    parser.add_argument('--batch', type=int, default=16, help='training and inference batch size')
    parser.add_argument('--seconds', type=float, default=15.0, help='minimum timed seconds per figure')
    parser.add_argument('--min-steps', type=int, default=3, help='minimum timed steps per figure')
    parser.add_argument('--tracks', type=int, default=8, help='synthetic 30 s tracks of the pipeline TFRecords')
    parser.add_argument('--passes', type=int, default=4, help='timed passes over them per pipeline figure')
    parser.add_argument('--no-pipeline', action='store_true', help='skip the input-pipeline figures')
    parser.add_argument('--device', choices=('cpu', 'gpu'), default='cpu', help='where the model timings run')
    parser.add_argument('--mixed-precision', action='store_true', help='mixed_float16 policy + loss scaling')
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--records', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args)
    names = args.models or modeling.list_models(combinations=False)
    tmp = tempfile.mkdtemp(prefix='bench-models-')
    failed = 0
    try:
        for name in names:
            cmd = [sys.executable, os.path.abspath(__file__), '--child', '--models', name, '--batch', str(args.batch),
                   '--seconds', str(args.seconds), '--min-steps', str(args.min_steps), '--passes', str(args.passes),
                   '--device', args.device] + (['--mixed-precision'] if args.mixed_precision else [])
            if not args.no_pipeline:
                cmd += ['--records', _records_for(name, tmp, args.tracks)]
            code = subprocess.call(cmd)
            failed += code != 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f'bench_models: {len(names) - failed} model(s) benchmarked, {failed} failed', file=sys.stderr)
    return 1 if failed else 0


def _records_for(name: str, tmp: str, tracks: int) -> str:
    """The pipeline TFRecords in model ``name``'s input format (written once per format)."""
    import modeling
    shape, preset = input_shape(name, modeling.model_info(name)['default_window_seconds'])
    return write_records(tmp, tracks, 'waveform', 'musicnn') if preset is None else \
        write_records(tmp, tracks, 'log-mel', preset)


if __name__ == '__main__':
    sys.exit(main())
