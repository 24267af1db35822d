"""Training-loop throughput per model, and input pipeline vs training speed.

    python benchmarks/bench_training.py [--models musicnn vgg] [--seconds 10] [--tracks 60] [--skip-models]

Prints one JSON line per figure (``{"bench": "training", "metric": ..., "value": ..., ...}``):

Per registered model (batch 16, the model's default window and preset, 50 outputs, full-size
default hyper-parameters):

- ``loop_train_examples_per_sec``: the real training step of ``training.trainer.Trainer``
  (``Trainer.train_steps``: ``strategy.run`` under the default strategy, BCE + global-batch
  scaling, Adam) on in-memory random windows;
- ``infer_windows_per_sec``, ``params_trainable``, ``bare_step_train_examples_per_sec``: from
  ``benchmarks/bench_models.py`` (imported, not duplicated: it times a bare compiled Adam step and
  the forward pass), and ``loop_vs_bare_step`` = loop / bare step.

For the two reference configs, ``msd_logmel`` (orpheus preset, 15 s, orpheus_logmel) and
``msd_musicnn`` (musicnn preset, 3 s, musicnn), on the usable 30 s tracks of a synthetic corpus
(``msd.synthetic.generate`` → ``musetag msd all`` with the corpus' recommended cleaning thresholds →
``preprocessing.splits.make_split`` → ``preprocessing.tfrecords.write_tfrecords``), all public APIs:

- ``pipeline_windows_per_sec``: ``make_dataset`` alone (random windows, shuffle, batch 16), as the
  trainer reads it;
- ``pipeline_to_training_ratio``: that rate / ``loop_train_examples_per_sec`` of the config's model
  (target >= 3: the input pipeline must never be the bottleneck);
- ``e2e_train_examples_per_sec`` and ``e2e_vs_in_memory``: the same trainer fed from the TFRecords
  instead of memory (close to 1 = the pipeline costs the loop nothing).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from _common import emit  # also puts the repo on sys.path and sets TF/numba env defaults

BENCH = 'training'
BATCH = 16
N_TAGS = 50
CONFIGS = {'msd_logmel': ('orpheus_logmel', 'orpheus', 15.0), 'msd_musicnn': ('musicnn', 'musicnn', 3.0)}


def _trainer(model_name, info, data, run_dir):
    from training.config import parse_config
    from training.trainer import Trainer
    cfg = parse_config({'model': {'name': model_name}, 'input': {'batch_size': BATCH,
                                                                 'window_seconds': info.window_seconds},
                        'callbacks': {'early_stopping': {'patience': None}},
                        'logging': {'progress': False, 'tensorboard': False}})
    return Trainer(cfg, run_dir=run_dir, data=data, export=False)


def loop_rate(trainer, seconds, min_steps):
    """Examples/s of ``trainer``'s distributed training step over its repeated training data."""
    steps_run = trainer.train_steps()
    for _ in range(2):                                   # warm-up: tracing, first allocations
        next(steps_run)
    steps, t0 = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - t0 < seconds:
        next(steps_run)
        steps += 1
    elapsed = time.perf_counter() - t0
    trainer.close()
    return steps * BATCH / elapsed, steps, elapsed


def memory_source(info, n=4 * BATCH, n_tags=N_TAGS):
    from training.data import ArraySource
    rng = np.random.default_rng(0)
    shape = (info.frames, info.n_mels) if info.kind == 'log-mel' else (info.samples,)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    y = (rng.random((n, n_tags)) < 0.1).astype(np.float32)
    return ArraySource(x, y, [f'tag{i}' for i in range(n_tags)], info, BATCH)


def model_info(name):
    import modeling
    from bench_models import input_shape
    from preprocessing.features import get_params
    from training.data import InputInfo
    window = modeling.model_info(name)['default_window_seconds']
    shape, preset = input_shape(name, window)
    if len(shape) == 1:
        return InputInfo('waveform', 16000, window, samples=shape[0]), preset
    return InputInfo('log-mel', 16000, window, frames=shape[0], n_mels=96,
                     params=get_params(preset).to_dict()), preset


def bench_models_part(names, seconds, min_steps, tmp):
    import bench_models
    rates = {}
    for name in names:
        info, preset = model_info(name)
        common = {'model': name, 'batch': BATCH, 'window_seconds': info.window_seconds,
                  'input_frames': info.frames, 'input_samples': info.samples, 'feature_preset': preset}
        trainer = _trainer(name, info, memory_source(info), os.path.join(tmp, f'run-{name}'))
        rate, steps, elapsed = loop_rate(trainer, seconds, min_steps)
        rates[name] = rate
        emit(BENCH, 'loop_train_examples_per_sec', rate, 'examples/s', steps=steps, seconds=round(elapsed, 2),
             replicas=trainer.replicas, **common)
        for rec in bench_models.bench(name, BATCH, seconds, min_steps):
            if rec['metric'] in ('infer_windows_per_sec', 'params_trainable'):
                emit(BENCH, rec['metric'], rec['value'], rec['unit'], source='bench_models', **common)
            elif rec['metric'] == 'train_examples_per_sec':   # bare compiled step, no strategy
                emit(BENCH, 'bare_step_train_examples_per_sec', rec['value'], rec['unit'], source='bench_models',
                     **common)
                emit(BENCH, 'loop_vs_bare_step', rate / rec['value'], 'x',
                     target='~1 (strategy.run loop adds no overhead)', **common)
        del trainer
    return rates


def write_corpus(tmp, tracks):
    """A synthetic MSD-format corpus cleaned by ``musetag msd all``, every usable track in ``train``.

    Runs before TensorFlow is imported, so the generator's and the scan's worker processes fork.

    Returns
    -------
    dict with ``master``, ``tags_db`` and ``splits`` (paths) and ``tracks`` (usable tracks).
    """
    from msd.__main__ import main as msd_main
    from msd.synthetic import generate
    from msd.tables import read_master
    from preprocessing.splits import make_split, write_splits
    data, out = os.path.join(tmp, 'corpus'), os.path.join(tmp, 'msd')
    clean = generate(data, tracks=tracks, seconds=30.0, seed=0, workers=2, progress=False)['recommended_clean_args']
    code = msd_main(['all', '--data', data, '--out', out, '--min-count', str(clean['min_count']),
                     '--pool-min-count', str(clean['pool_min_count']), '--val-threshold', str(clean['val_threshold']),
                     '--workers', '2', '-q'], prog='musetag msd')
    if code not in (0, 1):
        raise RuntimeError(f'musetag msd all failed with exit code {code}')
    master = os.path.join(out, 'master.csv')
    splits, _ = make_split(read_master(master).frame, by='track', ratios=(1, 0, 0))
    path = os.path.join(tmp, 'splits.csv')
    write_splits(splits, path)
    return {'master': master, 'tags_db': os.path.join(out, 'clean_tags.db'), 'splits': path, 'tracks': len(splits)}


def pipeline_rate(directory, window_seconds, passes):
    """Steady-state windows/s of make_dataset as the trainer reads it (random windows, shuffle,
    batch 16, full batches), over ``passes`` repetitions after a warm-up pass."""
    from preprocessing.dataset import TagSelection, make_dataset

    def make(repeat):
        return make_dataset(directory, 'train', tags=TagSelection(top=None), window_seconds=window_seconds,
                            window='random', batch_size=BATCH, shuffle=True, seed=1,
                            repeat=repeat)

    for _ in make(False):                                # warm-up pass: tracing, page cache
        pass
    n, t0 = 0, time.perf_counter()
    for x, _y in make(passes):
        n += int(x.shape[0])
    return n / (time.perf_counter() - t0), n


def bench_pipeline_part(corpus, passes, seconds, min_steps, tmp):
    from preprocessing.tfrecords import write_tfrecords
    from training.config import parse_config
    from training.data import TFRecordSource
    tracks = corpus['tracks']
    for cfg_name, (model, preset, window) in CONFIGS.items():
        out = os.path.join(tmp, f'tfrecords-{preset}')
        write_tfrecords(corpus['master'], corpus['tags_db'], corpus['splits'], out, format='log-mel', preset=preset,
                        shards_per_split=4, workers=2, progress=False)
        p_rate, n = pipeline_rate(out, window, passes)
        cfg = parse_config({'dataset': {'dir': out, 'validation_split': '', 'tags': {'top': None}},
                            'model': {'name': model}, 'input': {'batch_size': BATCH, 'window_seconds': window}})
        source = TFRecordSource(cfg)
        info, k = source.info, len(source.labels)
        common = {'config': cfg_name, 'model': model, 'feature_preset': preset, 'window_seconds': window,
                  'input_frames': info.frames, 'batch': BATCH, 'tracks': tracks, 'n_outputs': k}
        # the loop on in-memory windows of the same shape and tag count ...
        trainer = _trainer(model, info, memory_source(info, n_tags=k), os.path.join(tmp, f'mem-{cfg_name}'))
        mem = loop_rate(trainer, seconds, min_steps)[0]
        del trainer
        emit(BENCH, 'pipeline_windows_per_sec', p_rate, 'windows/s', windows=n, **common)
        ratio = p_rate / mem
        emit(BENCH, 'pipeline_to_training_ratio', ratio, 'x', target='>= 3', ok=bool(ratio >= 3),
             train_examples_per_sec=round(mem, 3), **common)
        # ... and the same loop reading the TFRecords through make_dataset
        trainer = _trainer(model, info, source, os.path.join(tmp, f'e2e-{cfg_name}'))
        e2e, steps, elapsed = loop_rate(trainer, seconds, min_steps)
        del trainer
        emit(BENCH, 'e2e_train_examples_per_sec', e2e, 'examples/s', steps=steps, seconds=round(elapsed, 2), **common)
        emit(BENCH, 'e2e_vs_in_memory', e2e / mem, 'x', target='~1 (pipeline not the bottleneck)',
             in_memory_examples_per_sec=round(mem, 3), **common)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--models', nargs='+', default=None, help='registered models (default: every whole model)')
    ap.add_argument('--seconds', type=float, default=10.0, help='minimum timed seconds per figure')
    ap.add_argument('--min-steps', type=int, default=3)
    ap.add_argument('--tracks', type=int, default=60,
                    help='tracks of the synthetic corpus for the pipeline part (a little over half are usable)')
    ap.add_argument('--passes', type=int, default=5, help='passes over the tracks when timing make_dataset')
    ap.add_argument('--skip-models', action='store_true', help='only the pipeline-vs-training part')
    args = ap.parse_args(argv)
    from core.logs import setup_logging
    setup_logging(-1)                                     # warnings only: the figures are the output
    tmp = tempfile.mkdtemp(prefix='bench_training_')
    t0 = time.time()
    try:
        corpus = write_corpus(tmp, args.tracks)           # before TensorFlow: its workers fork
        from core.logs import import_tensorflow
        import_tensorflow()                               # without its C++ start-up noise
        if args.models is None:
            import modeling
            args.models = modeling.list_models(combinations=False)
        rates = {} if args.skip_models else bench_models_part(args.models, args.seconds, args.min_steps, tmp)
        bench_pipeline_part(corpus, args.passes, args.seconds, args.min_steps, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f'bench_training: {len(rates)} model(s), {len(CONFIGS)} pipeline config(s) in {time.time() - t0:.0f} s',
          file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
