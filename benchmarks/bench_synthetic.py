"""Benchmark of the synthetic corpus generator: tracks/s with 1 and 2 worker processes.

Prints one JSON line per figure (with the CPU seconds it took), in the format of every benchmark
(``_common.emit``), e.g. ``{"bench": "synthetic", "metric": "tracks_per_s", "value": 2.4, "unit":
"tracks/s", "workers": 2, ...}``.
Each figure is a whole ``msd.synthetic.generate`` run (plan, audio synthesis + MP3 encoding,
h5/DB/text files) into a temporary directory.  Usage:
``python benchmarks/bench_synthetic.py [--tracks 16] [--seconds 30] [--workers 1 2]``.
"""
import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from _common import emit  # also puts the repository on sys.path

from msd import synthetic


def _cpu_seconds():
    """User + system CPU time of this process and its reaped children (the worker pool), in s.

    Wall-clock figures depend on what else runs on the machine; CPU seconds do not, so both are
    reported (on an idle machine, tracks/s ~= workers * tracks / cpu_s).
    """
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--tracks', type=int, default=16, help='h5 tracks of each generated corpus')
    p.add_argument('--seconds', type=float, default=30.0, help='clip length in seconds')
    p.add_argument('--workers', type=int, nargs='+', default=[1, 2], help='worker counts to measure, one run each')
    args = p.parse_args()
    base = None
    for w in args.workers:
        with tempfile.TemporaryDirectory(prefix='bench_synthetic_') as tmp:
            t0 = time.perf_counter()
            cpu0 = _cpu_seconds()
            truth = synthetic.generate(Path(tmp) / 'mini', tracks=args.tracks, seconds=args.seconds, seed=0,
                                       workers=w, progress=False)
            elapsed = time.perf_counter() - t0
            cpu = _cpu_seconds() - cpu0
            n_files = sum(1 for _ in (Path(tmp) / 'mini' / 'audio').rglob('*.mp3'))
        rate = len(truth['tracks']) / elapsed
        base = base or rate
        emit('synthetic', 'tracks_per_s', rate, 'tracks/s', workers=w, tracks=args.tracks,
             clip_seconds=args.seconds, audio_files=n_files, elapsed_s=round(elapsed, 2),
             speedup_vs_first=round(rate / base, 2), cpu_s=round(cpu, 1),
             cpu_s_per_track=round(cpu / len(truth['tracks']), 3), cpu_count=os.cpu_count(),
             load_avg_1min=round(os.getloadavg()[0], 2))


if __name__ == '__main__':
    main()
