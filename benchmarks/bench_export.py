"""Benchmark the exported models: SavedModel and TFLite windows per second against ``Tagger``.

A published musicnn model (``--model``, imported into the work folder's cache) or a run (``--run``)
is exported with ``evaluation.export.export_run`` as a SavedModel and as TFLite, then the same audio
(``--windows`` non-overlapping windows of a clip synthesised by :mod:`msd.synthetic`, 22.05 kHz
resampled to the model's rate) is tagged, in this process, by:

* ``evaluation.tagger.Tagger.embed_array`` (tags and embedding, NumPy front end): the baseline;
* the SavedModel's ``serving_default`` (front end, windowing and pooling in the graph);
* the TFLite ``window`` signature, once per window (``--tflite-threads`` interpreter threads).

Figures (one JSON line each): ``tagger_windows_per_s``, ``savedmodel_windows_per_s``,
``tflite_windows_per_s``, the ratios ``savedmodel_vs_tagger`` and ``tflite_vs_tagger``, and the
agreement of each with ``Tagger`` (largest absolute difference of the track tags / of the window tags,
in millionths).

    python benchmarks/bench_export.py [--model MSD_musicnn | --run RUN] [--windows 64] [--repeats 3]
                                      [--workdir DIR] [--tiny]

``--tiny`` (CI): 4 windows, one timed repeat.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from _common import emit, machine, median_time  # (sets paths/env first)

BENCH = 'export'


def clip(seconds: float, sr: int):
    """A synthesised rock clip, mono float32 at ``sr`` Hz."""
    from msd.synthetic.render import render_audio
    from preprocessing.audio import resample, to_mono
    spec = dict(genre='rock', vocal='female', decade=None, ballad=False, tempo=120.0, key=2, mode=1, prog=0)
    audio = to_mono(render_audio(spec, 22050, 1, seconds, seed=0).reshape(-1, 1))
    return resample(audio, 22050, sr)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument('--model', default='MSD_musicnn', help='published model, imported into the work folder')
    src.add_argument('--run', default=None, help='a run directory instead of a published model')
    p.add_argument('--windows', type=int, default=64, help='windows of audio tagged per timing')
    p.add_argument('--repeats', type=int, default=3, help='timed repeats (the median is reported)')
    p.add_argument('--tflite-threads', type=int, default=1, help='TFLite interpreter threads')
    p.add_argument('--workdir', default=None, help='work folder (default: a temporary one)')
    p.add_argument('--tiny', action='store_true', help='4 windows, one repeat (CI)')
    args = p.parse_args(argv)
    if args.tiny:
        args.windows, args.repeats = 4, 1
    work = Path(args.workdir or tempfile.mkdtemp(prefix='bench_export_'))
    from core.logs import import_tensorflow
    tf = import_tensorflow()
    import numpy as np

    from evaluation.tagger import Tagger
    from evaluation.export import export_run
    from modeling.pretrained import cached_run
    run = args.run or str(cached_run(args.model, cache_dir=work / 'cache'))
    specs = {fmt: export_run(run, work / fmt, fmt, overwrite=True) for fmt in ('savedmodel', 'tflite')}
    tagger = Tagger.from_run(run)
    w = specs['tflite']['window']
    audio = clip(args.windows * w['samples'] / tagger.sr + 1.0, tagger.sr)[:args.windows * w['samples']]
    audio = np.ascontiguousarray(audio, np.float32)
    windows = audio.reshape(args.windows, w['samples'])
    n = tagger.embed_array(audio, tagger.sr).windows.shape[0]      # windows Tagger cuts from the audio
    saved = tf.saved_model.load(str(work / 'savedmodel')).signatures['serving_default']
    interpreter = tf.lite.Interpreter(str(work / 'tflite' / 'model.tflite'), num_threads=args.tflite_threads)
    runner = interpreter.get_signature_runner('window')
    x = tf.constant(audio)

    ref = tagger.embed_array(audio, tagger.sr)
    got = saved(audio=x)
    one = [runner(audio=win)['tags'] for win in windows]
    one_ref = [tagger.predict_array(win, tagger.sr).mean for win in windows]
    t_tagger = median_time(lambda: tagger.embed_array(audio, tagger.sr), args.repeats)
    t_saved = median_time(lambda: saved(audio=x)['tags'].numpy(), args.repeats)
    t_lite = median_time(lambda: [runner(audio=win) for win in windows], args.repeats)
    extra = {'model': args.run or args.model, 'windows': n, 'window_samples': w['samples'],
             'tflite_threads': args.tflite_threads, **machine()}
    emit(BENCH, 'tagger_windows_per_s', n / t_tagger, 'windows/s', **extra)
    emit(BENCH, 'savedmodel_windows_per_s', n / t_saved, 'windows/s', **extra)
    emit(BENCH, 'tflite_windows_per_s', args.windows / t_lite, 'windows/s', **extra)
    emit(BENCH, 'savedmodel_vs_tagger', t_tagger / t_saved, 'ratio', **extra)
    emit(BENCH, 'tflite_vs_tagger', (args.windows / t_lite) / (n / t_tagger), 'ratio', **extra)
    emit(BENCH, 'savedmodel_max_abs_diff_tags', 1e6 * float(np.max(np.abs(got['tags'].numpy() - ref.tags.mean))),
         'probability x 1e-6', **extra)
    emit(BENCH, 'tflite_max_abs_diff_tags', 1e6 * float(np.max(np.abs(np.stack(one) - np.stack(one_ref)))),
         'probability x 1e-6', **extra)
    return 0


if __name__ == '__main__':
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    raise SystemExit(main())
