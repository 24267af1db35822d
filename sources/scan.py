"""Check the files an adapter's rows name: inside the audio folder, not repeated, present, not empty,
a readable audio header, long enough. Headers only (``soundfile`` info), never a decode.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor

from core.procs import exit_with_parent

from .contract import inside_root, probe_audio

__all__ = ['Candidate', 'check_files']

log = logging.getLogger(__name__)


class Candidate:
    """One row to check: ``item`` (its id or line, for reports), ``rel`` (path relative to the
    audio folder), ``data`` (whatever the adapter needs back)."""
    __slots__ = ('item', 'rel', 'data')

    def __init__(self, item, rel, data=None):
        self.item, self.rel, self.data = item, rel, data


def _probe_many(paths):
    return [probe_audio(p) for p in paths]


def _init(owner):
    exit_with_parent(owner)


def _probe_all(paths, workers, progress):
    """probe_audio over ``paths`` (in order), on ``workers`` processes in chunks."""
    from tqdm import tqdm
    bar = tqdm(total=len(paths), desc='headers', unit='file', disable=not progress)
    out = []
    chunk = 64
    chunks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
    if workers <= 1 or len(chunks) <= 1:
        for c in chunks:
            out += _probe_many(c)
            bar.update(len(c))
    else:
        import multiprocessing as mp
        import sys
        method = 'forkserver' if 'tensorflow' in sys.modules else 'fork'
        with ProcessPoolExecutor(workers, mp_context=mp.get_context(method), initializer=_init,
                                 initargs=(os.getpid(),)) as pool:
            for c, res in zip(chunks, pool.map(_probe_many, chunks)):
                out += res
                bar.update(len(c))
    bar.close()
    return out


def check_files(candidates, root, collection, *, min_seconds=0.0, workers=1, progress=False, lookup=None):
    """The candidates whose files are usable, as ``(candidate, absolute path, duration s, sample rate,
    channels)``; every other one goes to ``collection.skip`` with its reason.

    ``lookup(rel) -> rel`` may name an alternative file to use when ``rel`` is missing (MTG-Jamendo's
    ``.low.mp3``)."""
    root_real = os.path.realpath(root)
    seen = {}
    todo = []
    for c in candidates:
        path, why = inside_root(root_real, c.rel)
        if why:
            collection.skip('outside-root', c.item, c.rel, why)
            continue
        key = os.path.realpath(path)
        if key in seen:
            collection.skip('duplicate-path', c.item, c.rel, f'also named by {seen[key]}')
            continue
        seen[key] = c.item
        if lookup is not None and not os.path.exists(path):
            alt = lookup(c.rel)
            if alt and os.path.exists(os.path.join(root_real, alt)):
                path, _ = inside_root(root_real, alt)
        todo.append((c, path))
    results = _probe_all([p for _, p in todo], workers, progress)
    good = []
    for (c, path), (duration, sr, channels, problem) in zip(todo, results):
        if problem:
            collection.skip(problem[0], c.item, c.rel, problem[1])
        elif duration < min_seconds:
            collection.skip('too-short', c.item, c.rel, f'{duration:.2f} s < --min-seconds {min_seconds:g}')
        else:
            good.append((c, path, duration, sr, channels))
    return good
