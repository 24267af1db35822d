"""Benchmark the web app under load (``musetag serve``). Prints one JSON line per figure.

A real server (``python -m webapp serve`` in its own process, uvicorn on 127.0.0.1, an index of the
clips) receives N concurrent clients, each uploading ``--per-client`` 30 s clips to ``POST /api/tag``
(the four 7digital preview formats of MSD, synthesised by :mod:`msd.synthetic`), for N in ``--levels``
(default 1, 4, 16). Figures:

* ``latency_p50_n<N>``, ``latency_p99_n<N>`` (seconds per upload) and ``errors_n<N>`` (must be 0);
* ``peak_rss_n<N>``: the server process's peak RSS (VmHWM, MB) after level N, and
  ``peak_rss_ratio_max_vs_first`` (flat means ≤ about 1.2: uploads are streamed to disk and tagged
  window by window, at most ``--workers`` at a time);
* ``server_tagging_speed_n4``: audio seconds tagged per wall second by the server at N = 4, against
  ``cli_tagging_speed`` (``evaluation.tagger.Tagger.predict_file`` on the same files, one after the
  other, in this process while the server is idle): ``server_vs_cli`` (target ≥ 0.8).

    python benchmarks/bench_serve.py [--workdir DIR] [--run RUN] [--clips 8] [--seconds 30]
                                     [--levels 1 4 16] [--per-client 2] [--workers 2] [--tiny]

``--tiny`` (tests): 4 clips of 10 s, levels 1 and 4, one upload per client.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from _common import ROOT, emit, machine, preview_mp3s  # (sets paths/env first)

BENCH = 'serve'


# ------------------------------------------------------------------------------------------ fixtures
def make_clips(workdir: Path, clips: int, seconds: float) -> list:
    """``clips`` MP3 files of ``seconds`` (cycling through the preview formats), written once."""
    from core import files
    folder = workdir / f'audio-{seconds:g}s'
    previews, out = None, []
    for i in range(clips):
        path = folder / f'clip{i:02d}.mp3'
        if not path.exists():
            previews = previews or preview_mp3s(seconds)
            files.atomic_write_bytes(path, previews[i % len(previews)])
        out.append(str(path))
    return out


def ensure_run(workdir: Path, run) -> str:
    """The run dir: ``run``, else MSD_musicnn imported into the work folder's cache."""
    if run:
        return str(run)
    from modeling.pretrained import cached_run
    return str(cached_run('MSD_musicnn', cache_dir=workdir / 'cache'))


def ensure_index(workdir: Path, run: str, clips: list) -> str:
    """An index of the clips' folder built by ``run`` (incremental: reused when up to date)."""
    from retrieval.index import build_index
    index = workdir / f'index-{Path(clips[0]).parent.name}'
    build_index(str(index), run, [str(Path(clips[0]).parent)], progress=False)
    return str(index)


# ------------------------------------------------------------------------------------------ the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_server(run: str, index: str, workdir: Path, workers: int, timeout: float = 300.0):
    """``(process, base URL)`` of ``python -m webapp serve`` once ``/api/info`` answers."""
    port = free_port()
    cmd = [sys.executable, '-m', 'webapp', 'serve', '--run', run, '--index', index, '--port', str(port),
           '--workers', str(workers), '--feedback', str(workdir / 'feedback.sqlite'), '-q']
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f'http://127.0.0.1:{port}'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f'the server exited ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}')
        try:
            with urllib.request.urlopen(url + '/api/info', timeout=5) as r:
                if r.status == 200:
                    return proc, url
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f'the server did not answer within {timeout:g} s')


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of process ``pid``, MB."""
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    raise RuntimeError('no VmHWM in /proc (Linux only)')


def multipart(path: str) -> tuple:
    """``(body, content type)`` of a multipart form holding the file as field ``audio``."""
    boundary = uuid.uuid4().hex
    with open(path, 'rb') as f:
        data = f.read()
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="{os.path.basename(path)}"\r\n'
            'Content-Type: application/octet-stream\r\n\r\n').encode()
    return head + data + f'\r\n--{boundary}--\r\n'.encode(), f'multipart/form-data; boundary={boundary}'


def upload(url: str, body: bytes, ctype: str) -> tuple:
    """``(seconds, ok, audio seconds)`` of one ``POST /api/tag``."""
    req = urllib.request.Request(url + '/api/tag', data=body, headers={'Content-Type': ctype}, method='POST')
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            out = json.loads(r.read())
            return time.perf_counter() - t0, r.status == 200, float(out['duration_s'])
    except (urllib.error.URLError, OSError, ValueError):
        return time.perf_counter() - t0, False, 0.0


def load_level(url: str, bodies: list, n: int, per_client: int) -> dict:
    """N clients at once, each uploading ``per_client`` clips (cycling): latencies, errors, throughput."""
    results, lock = [], threading.Lock()

    def client(k):
        for j in range(per_client):
            body, ctype = bodies[(k * per_client + j) % len(bodies)]
            r = upload(url, body, ctype)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(r[0] for r in results)
    return {'p50': statistics.median(lat), 'p99': lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))],
            'errors': sum(not r[1] for r in results), 'audio_seconds': sum(r[2] for r in results), 'wall': wall}


def cli_speed(run: str, clips: list) -> float:
    """Audio seconds per wall second of ``Tagger.predict_file`` over ``clips`` (after one warm-up)."""
    from core.logs import import_tensorflow
    import_tensorflow()
    from evaluation.tagger import Tagger
    tagger = Tagger.from_run(run)
    tagger.predict_file(clips[0])
    t0 = time.perf_counter()
    seconds = sum(tagger.predict_file(p).duration_s for p in clips)
    return seconds / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------ main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--workdir', default='/tmp/musetag-bench-serve', help='clips, run, index (reused)')
    p.add_argument('--run', default=None, help='run dir (default: MSD_musicnn imported into WORKDIR/cache)')
    p.add_argument('--clips', type=int, default=8, help='distinct clips uploaded (cycled)')
    p.add_argument('--seconds', type=float, default=30.0, help='clip length, seconds')
    p.add_argument('--levels', type=int, nargs='+', default=[1, 4, 16], help='concurrent clients per level')
    p.add_argument('--per-client', type=int, default=2, help='uploads per client per level')
    p.add_argument('--workers', type=int, default=2, help='the server\'s --workers')
    p.add_argument('--tiny', action='store_true', help='test size: 4 clips of 10 s, levels 1 and 4, 1 upload each')
    args = p.parse_args(argv)
    if args.tiny:
        args.clips, args.seconds, args.levels, args.per_client = 4, 10.0, [1, 4], 1
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    clips = make_clips(workdir, args.clips, args.seconds)
    run = ensure_run(workdir, args.run)
    index = ensure_index(workdir, run, clips)
    bodies = [multipart(c) for c in clips]
    proc, url = start_server(run, index, workdir, args.workers)
    extra = dict(clip_seconds=args.seconds, workers=args.workers, **machine())
    try:
        upload(url, *bodies[0])                     # warm-up
        rss, levels = [], {}
        for n in args.levels:
            r = levels[n] = load_level(url, bodies, n, args.per_client)
            rss.append(peak_rss_mb(proc.pid))
            emit(BENCH, f'latency_p50_n{n}', r['p50'], 's', clients=n, **extra)
            emit(BENCH, f'latency_p99_n{n}', r['p99'], 's', clients=n, **extra)
            emit(BENCH, f'errors_n{n}', r['errors'], 'count', clients=n, target=0, **extra)
            emit(BENCH, f'peak_rss_n{n}', rss[-1], 'MB', clients=n, **extra)
        emit(BENCH, 'peak_rss_ratio_max_vs_first', max(rss) / rss[0], 'ratio', target='<= 1.2', **extra)
        throughput_n = 4 if 4 in levels else args.levels[-1]
        level = levels[throughput_n]
        server = level['audio_seconds'] / level['wall']
        emit(BENCH, f'server_tagging_speed_n{throughput_n}', server, 'audio-s/s', **extra)
    finally:
        proc.terminate()
        proc.wait(30)
    cli = cli_speed(run, clips)
    emit(BENCH, 'cli_tagging_speed', cli, 'audio-s/s', **extra)
    emit(BENCH, 'server_vs_cli', server / cli, 'ratio', target='>= 0.8', clients=throughput_n, **extra)
    return 0


if __name__ == '__main__':
    sys.exit(main())
