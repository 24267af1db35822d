"""Front-end cost per 30 s 44.1 kHz stereo MP3 (a synthetic 7digital-style preview, ``_common.preview_mp3s``).

Figures (median over >= 5 files, ms per file): decode+resample to 16 kHz mono (soundfile+soxr,
the baseline and the floor), log-mel NumPy path and TF layer for both presets, the total, and
tensorflow-io decode+resample for comparison. Target: the NumPy log-mel adds <= 25% on top of
decode+resample (``ratio_*`` lines).

Usage: python benchmarks/bench_frontend.py [--files 5]
"""
import argparse
import functools
import os
import statistics
import tempfile
import time

from _common import PREVIEW_FORMATS, emit, preview_mp3s  # (sets paths/env first)
from core.files import atomic_write_bytes
from preprocessing.audio import load_audio
from preprocessing.features import get_params, log_mel

BENCH = 'frontend'


def per_file(fn, items, repeat=3):
    """Median over files of (min over repeats) ms — min rejects noise from the shared machine."""
    out = []
    for it in items:
        best = float('inf')
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn(it)
            best = min(best, time.perf_counter() - t0)
        out.append(best * 1000)
    return statistics.median(out)


def _one_example(fn, audio):
    """``fn`` on a batch of one: float32 [n] -> its output [T, n_mels] as NumPy."""
    return fn(audio[None]).numpy()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--files', type=int, default=5)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix='bench_frontend_')
    mp3 = preview_mp3s(30.0)[PREVIEW_FORMATS.index((44100, 2, 128))]
    paths = [os.path.join(tmp, f'f{i}.mp3') for i in range(args.files)]
    for p in paths:
        atomic_write_bytes(p, mp3)
    load_audio(paths[0])  # warm-up (library loading)
    decode_ms = per_file(load_audio, paths)
    emit(BENCH, 'decode_resample_ms', decode_ms, 'ms/file', files=len(paths), method='soundfile+soxr')
    audios = [load_audio(p) for p in paths]
    from core.logs import import_tensorflow
    tf = import_tensorflow()          # (without its C++ start-up lines)
    from preprocessing.tf_frontend import LogMel
    for preset in ('orpheus', 'musicnn'):
        params = get_params(preset)
        log_mel(audios[0], params)
        np_ms = per_file(functools.partial(log_mel, params=params), audios)
        emit(BENCH, f'logmel_numpy_{preset}_ms', np_ms, 'ms/file', preset=preset)
        fn = tf.function(LogMel(params), reduce_retracing=True)
        fn(audios[0][None])
        tf_ms = per_file(functools.partial(_one_example, fn), audios)
        emit(BENCH, f'logmel_tf_layer_{preset}_ms', tf_ms, 'ms/file', preset=preset)
        emit(BENCH, f'total_decode_logmel_{preset}_ms', decode_ms + np_ms, 'ms/file', preset=preset)
        emit(BENCH, f'ratio_logmel_over_decode_{preset}', np_ms / decode_ms, 'x', target='<= 0.25',
             baseline='decode_resample_ms', ok=bool(np_ms / decode_ms <= 0.25))
    try:
        import tensorflow_io as tfio

        def tfio_load(p):
            data = tf.io.read_file(p)
            x = tfio.audio.decode_mp3(data)
            x = tf.reduce_mean(x, axis=1)
            return tfio.audio.resample(x, rate_in=44100, rate_out=16000).numpy()
        tfio_load(paths[0])
        tfio_ms = per_file(tfio_load, paths, repeat=1)
        emit(BENCH, 'tfio_decode_resample_ms', tfio_ms, 'ms/file', method='tensorflow-io')
        emit(BENCH, 'ratio_tfio_over_soundfile', tfio_ms / decode_ms, 'x', baseline='decode_resample_ms')
    except Exception as e:  # report, do not hide
        emit(BENCH, 'tfio_decode_resample_ms', None, 'ms/file', error=f'{type(e).__name__}: {e}')


if __name__ == '__main__':
    main()
