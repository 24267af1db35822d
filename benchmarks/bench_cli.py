"""How fast the ``musetag`` command answers when it should not need TensorFlow. One JSON line per figure.

Each figure is the wall time of a whole process (start-up included), compared with
``python -c "import tensorflow"`` measured in the same rounds: both run back to back in each round,
in alternating order, and the ratio is taken within the round (the machines are shared and noisy);
the figure is the median over the rounds. Targets: under 1 s each on an idle machine, and under
0.1 × the TensorFlow import.

* ``musetag --help`` and ``musetag tag --help``;
* a missing run directory: ``musetag tag --run DOES-NOT-EXIST song.wav`` (exit 2);
* ``musetag pretrained list`` (model cards read from the musicnn wheel).

    python benchmarks/bench_cli.py [--rounds 7]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from _common import ROOT, emit, machine

TARGET_SECONDS = 1.0
TARGET_RATIO = 0.1


def _command():
    exe = shutil.which('musetag', path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, '-m', 'musetag']


def _time(argv, expect_rc):
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if proc.returncode != expect_rc:
        raise SystemExit(f'{argv} exited {proc.returncode}, expected {expect_rc}:\n{proc.stderr[-2000:]}')
    return seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--rounds', type=int, default=7, help='paired rounds per figure (default 7)')
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix='bench-cli-')
    song = os.path.join(work, 'song.wav')
    with open(song, 'wb') as f:       # never opened: the run directory check comes first
        f.write(b'RIFF')
    mt = _command()
    figures = {
        'musetag --help': (mt + ['--help'], 0),
        'musetag tag --help': (mt + ['tag', '--help'], 0),
        'missing run dir': (mt + ['tag', '--run', os.path.join(work, 'no-such-run'), song], 2),
        'musetag pretrained list': (mt + ['pretrained', 'list'], 0),
    }
    tf_import = ([sys.executable, '-c', 'import tensorflow'], 0)
    for cmd, rc in list(figures.values()) + [tf_import]:      # warm the file cache once
        _time(cmd, rc)
    for name, (cmd, rc) in figures.items():
        own, tf, ratios = [], [], []
        for r in range(args.rounds):
            if r % 2 == 0:                     # alternate which side runs first
                a = _time(cmd, rc)
                b = _time(*tf_import)
            else:
                b = _time(*tf_import)
                a = _time(cmd, rc)
            own.append(a)
            tf.append(b)
            ratios.append(a / b)
        seconds, ratio = statistics.median(own), statistics.median(ratios)
        emit('cli', name, seconds, 's', ratio_to_tf_import=round(ratio, 4),
             tf_import_s=round(statistics.median(tf), 3), best_s=round(min(own), 4), rounds=args.rounds,
             target_s=TARGET_SECONDS, target_ratio=TARGET_RATIO,
             met=bool(seconds < TARGET_SECONDS and ratio < TARGET_RATIO), **machine())
    shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
