"""Shared helpers for benchmark scripts: JSON-line output and timing."""
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('NUMBA_CACHE_DIR', os.path.join(ROOT, '.cache', 'numba'))


def emit(bench, metric, value, unit, **extra):
    """Print one JSON line per figure (the format every benchmark uses)."""
    rec = {'bench': bench, 'metric': metric, 'value': round(float(value), 4) if value is not None else None,
           'unit': unit, **extra}
    print(json.dumps(rec), flush=True)
    return rec


#: (sample rate, channels, kbps) of MSD's 7digital previews, as benchmark MP3s use them
PREVIEW_FORMATS = ((44100, 2, 128), (44100, 1, 96), (22050, 2, 96), (22050, 1, 64))


def preview_mp3s(seconds):
    """One MP3 (bytes) per preview format, synthesised by the corpus generator (deterministic)."""
    from msd.synthetic import encode_mp3, render_audio
    out = []
    for k, (sr, ch, kbps) in enumerate(PREVIEW_FORMATS):
        spec = dict(genre=('rock', 'jazz', 'hip-hop', 'ambient')[k], vocal='female', decade=None, ballad=False,
                    tempo=110.0, key=k, mode=1, prog=0)
        out.append(encode_mp3(render_audio(spec, sr, ch, seconds, seed=k), sr, kbps))
    return out


def median_time(fn, repeat=5, warmup=1):
    """Median wall seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine():
    return {'cpus': os.cpu_count(), 'python': platform.python_version()}
