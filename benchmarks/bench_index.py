"""Benchmark ``musetag index build`` end to end against tagging the same files. One JSON line per figure.

Files: ``--clips`` MP3 previews of ``--seconds`` (the four 7digital preview formats of the MSD,
synthesised by :mod:`msd.synthetic`). Run: ``--run RUN``, else the published ``MSD_musicnn`` model
imported into the work folder's cache. One :class:`evaluation.tagger.Tagger` serves every
measurement, each warmed up first (its tagging function and its two-output embedding model traced),
and the measurements alternate for ``--rounds`` rounds (medians), so a shared machine's load falls
on both alike:

* ``tagging_speed``: audio seconds per wall second of ``Tagger.predict_file`` over the clips (the
  baseline: what ``musetag tag`` does per file);
* ``embed_speed``: the same for ``Tagger.embed_file`` (tags and the penultimate layer in one pass);
* ``index_build_speed``: ``retrieval.index.build_index`` into a fresh index (walk, embed, read file
  tags, store both spaces, commit);
* ``index_build_overhead``: ``tagging_speed / index_build_speed - 1`` (target ≤ 0.10: embedding and
  storing add at most 10 % to tagging); ``embed_overhead`` likewise for ``embed_speed``.

    python benchmarks/bench_index.py [--workdir DIR] [--run RUN] [--clips 16] [--seconds 30] [--rounds 3]
                                     [--backend hnsw]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _common import emit, machine, preview_mp3s  # (sets paths/env first)

BENCH = 'index'


def make_clips(workdir: Path, clips: int, seconds: float) -> list:
    """``clips`` MP3 files under ``workdir/audio-<seconds>s`` (cycling through the preview formats)."""
    from core import files
    d = workdir / f'audio-{seconds:g}s'
    previews = None
    out = []
    for i in range(clips):
        p = d / f'clip{i:03d}.mp3'
        if not p.exists():
            previews = previews or preview_mp3s(seconds)
            files.atomic_write_bytes(p, previews[i % len(previews)])
        out.append(str(p))
    return out


def ensure_run(workdir: Path, run):
    """The run dir: ``run``, else MSD_musicnn imported into the work folder's cache."""
    if run:
        return str(run)
    from modeling.pretrained import cached_run
    return str(cached_run('MSD_musicnn', cache_dir=workdir / 'cache'))


def _rate(fn, paths) -> float:
    """Audio seconds per wall second of ``fn(path) -> seconds of audio`` over ``paths``."""
    t0 = time.perf_counter()
    audio = sum(fn(p) for p in paths)
    return audio / (time.perf_counter() - t0)


def _index_rate(tagger, run, paths, folder, index_dir, backend) -> float:
    from retrieval.index import build_index
    shutil.rmtree(index_dir, ignore_errors=True)
    summary = build_index(index_dir, run, [folder], tagger=tagger, backend=backend)
    if summary.skipped or summary.added != len(paths):
        raise RuntimeError(f'index build skipped files: {summary.skipped}')
    return summary.audio_seconds / summary.seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--workdir', default=os.path.join(tempfile.gettempdir(), 'musetag-bench-index'),
                   help='clips, model cache and index (reused)')
    p.add_argument('--run', default=None, help='run dir (default: MSD_musicnn imported into WORKDIR/cache)')
    p.add_argument('--clips', type=int, default=16, help='number of MP3 clips')
    p.add_argument('--seconds', type=float, default=30.0, help='length of each clip, seconds')
    p.add_argument('--rounds', type=int, default=3, help='alternating measurement rounds (medians reported)')
    p.add_argument('--backend', default='hnsw', help='vector store backend of the index')
    args = p.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    paths = make_clips(workdir, args.clips, args.seconds)
    run = ensure_run(workdir, args.run)
    from core.logs import import_tensorflow
    import_tensorflow()
    from evaluation.tagger import Tagger
    tagger = Tagger.from_run(run)
    tagger.predict_file(paths[0])                    # trace the tagging function
    tagger.embed_file(paths[0])                      # and the two-output embedding model

    rates = {'tagging': [], 'embed': [], 'index': []}
    folder = str(Path(paths[0]).parent)
    for _ in range(args.rounds):
        rates['tagging'].append(_rate(lambda f: tagger.predict_file(f).duration_s, paths))
        rates['embed'].append(_rate(lambda f: tagger.embed_file(f).duration, paths))
        rates['index'].append(_index_rate(tagger, run, paths, folder, workdir / 'index', args.backend))
    med = {k: statistics.median(v) for k, v in rates.items()}
    extra = dict(clips=args.clips, seconds=args.seconds, rounds=args.rounds, backend=args.backend, **machine())
    emit(BENCH, 'tagging_speed', med['tagging'], 'audio_s/s', **extra)
    emit(BENCH, 'embed_speed', med['embed'], 'audio_s/s', **extra)
    emit(BENCH, 'index_build_speed', med['index'], 'audio_s/s', **extra)
    emit(BENCH, 'embed_overhead', med['tagging'] / med['embed'] - 1, 'ratio', target='<= 0.10', **extra)
    emit(BENCH, 'index_build_overhead', med['tagging'] / med['index'] - 1, 'ratio', target='<= 0.10', **extra)


if __name__ == '__main__':
    main()
