"""Benchmarks are code too: each one runs here at a tiny size, so it cannot rot between the runs
that produce its figures (``make bench``). The figures themselves are not checked: at these sizes
they mean nothing; what is checked is that the script finishes and prints well-formed JSON lines."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    'bench_cli.py': ['--rounds', '1'],
    'bench_datasets.py': ['--tiny'],
    'bench_export.py': ['--tiny'],
    'bench_frontend.py': ['--files', '1'],
    'bench_image.py': ['--tiny'],
    'bench_index.py': ['--clips', '2', '--seconds', '5', '--rounds', '1'],
    'bench_latent.py': ['--tiny'],
    'bench_models.py': ['--models', 'short', '--batch', '2', '--seconds', '0.2', '--min-steps', '1', '--tracks', '2',
                        '--passes', '1'],
    'bench_msd.py': ['--only', 'scan', '--files', '64', '--repeats', '1'],
    'bench_pipeline.py': ['--tracks', '4', '--epochs', '1', '--write-tracks', '4', '--rounds', '1',
                          '--write-rounds', '1'],
    'bench_predict.py': ['--tiny'],
    'bench_retrieval.py': ['--sizes', '500', '--queries', '10'],
    'bench_serve.py': ['--tiny'],
    'bench_synthetic.py': ['--tracks', '4', '--seconds', '3', '--workers', '1'],
    'bench_training.py': ['--models', 'musicnn', '--seconds', '0.2', '--min-steps', '1', '--tracks', '48',
                          '--passes', '1'],
}


def test_every_benchmark_has_a_tiny_size():
    assert sorted(TINY) == sorted(p.name for p in (ROOT / 'benchmarks').glob('bench_*.py'))


@pytest.mark.slow
@pytest.mark.parametrize('script', sorted(TINY))
def test_benchmark_runs_at_a_tiny_size(script, tmp_path):
    args = list(TINY[script])
    if script in ('bench_predict.py', 'bench_datasets.py', 'bench_serve.py', 'bench_latent.py'):
        args += ['--workdir', str(tmp_path / 'work')]
    env = {**os.environ, 'TMPDIR': str(tmp_path)}
    proc = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / script), *args], cwd=str(tmp_path),
                          capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{')]
    assert records, f'{script} printed no JSON line:\n{proc.stdout[-2000:]}'
    for rec in records:                    # the shared format (benchmarks/_common.py: emit), or bench_msd's own
        assert isinstance(rec.get('bench'), str) and rec['bench'], rec
        if script != 'bench_msd.py':
            assert {'metric', 'value', 'unit'} <= set(rec), rec
