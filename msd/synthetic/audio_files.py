"""The audio tree: one job per file (good clips and the deliberately bad ones), run in worker processes."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..parallel import init_worker, mp_context, stop_pool
from .covers import cover_bytes, cover_plan
from .mp3 import encode_mp3, id3_tag, with_info_frame
from .plan import _rng
from .render import render_audio

_HTML_404 = (b'<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body><h1>Not Found</h1>\n'
             b'<p>The requested preview was not found on this server.</p>\n</body></html>\n')


def _gap_mask(n, sr, seconds):
    """Sample mask that silences ~63% of a clip in two long gaps (> 3 s each at 30 s clips)."""
    keep = np.ones(n, dtype=bool)
    for a, b in ((4 / 30, 12 / 30), (15 / 30, 26 / 30)):
        keep[int(a * seconds * sr):int(b * seconds * sr)] = False
    return keep


def _render_job(job):
    """Write one audio file of the job's kind; returns a small report dict (never raises for content)."""
    path = Path(job['root']) / job['audio_path']
    path.parent.mkdir(parents=True, exist_ok=True)
    kind, sr, ch, seconds = job['kind'], job['sample_rate'], job['channels'], job['seconds']
    rng = _rng(job['seed'], 2, job['index'])
    data = b''
    clip = 0.0
    if kind == 'not-audio':
        if job.get('html'):
            data = _HTML_404
        else:  # random bytes without 0xFF, so no MPEG frame sync can be found by any decoder
            data = rng.integers(0, 255, size=int(rng.integers(20_000, 60_000)), dtype=np.uint8).tobytes()
    elif kind != 'zero-byte':
        clip = min(10.0, 0.5 * seconds) if kind == 'short' else seconds
        if kind == 'silent':
            y = np.zeros((int(round(clip * sr)), ch), dtype=np.float32)
        else:
            y = render_audio(job['labels'], sr, ch, clip, seed=[job['seed'], 3, job['index']])
            if kind == 'gappy':
                y[~_gap_mask(len(y), sr, clip)] = 0.0
        # the clip's ID3 tag (title, artist, album, the album's cover art) first, as the previews carry one
        # and an Info frame with the exact length (not on clips about to be truncated: it would contradict them)
        picture = cover_bytes(job['cover']) if job.get('cover') else None
        frames = encode_mp3(y, sr, job['bitrate'])
        tag = id3_tag(job.get('title'), job.get('artist'), job.get('album'), picture=picture)
        data = tag + (frames if kind == 'truncated' else with_info_frame(frames))
        if kind == 'truncated':            # cut inside the audio frames, whatever the size of the tag
            cut = len(tag) + int(len(frames) * rng.uniform(0.3, 0.55))
            while data[cut:cut + 1] == b'\xff':  # never cut exactly at a frame header
                cut += 1
            data = data[:cut]
    path.write_bytes(data)  # inside the corpus's temporary directory (see generator.py)
    return dict(index=job['index'], audio_path=job['audio_path'], kind=kind, size=len(data), clip_seconds=clip)


def audio_jobs(plan, root):
    """One render job per clip of ``plan`` to write under ``root``; each clip of an album carries the album's
    cover (:func:`msd.synthetic.covers.cover_plan`)."""
    jobs = []
    n_html = 0
    covers = cover_plan(plan)
    for t in plan['tracks']:
        if not t['has_audio'] or 'audio_of' in t:
            continue
        html = False
        if t['audio_kind'] == 'not-audio':
            html = n_html % 2 == 1  # first one random bytes, then alternate with an HTML error page
            n_html += 1
        jobs.append(dict(root=str(root), index=t['index'], audio_path=t['audio_path'], kind=t['audio_kind'],
                         sample_rate=t['sample_rate'], channels=t['channels'], bitrate=t['bitrate'],
                         labels=t['labels'], seconds=plan['seconds'], seed=plan['seed'], html=html,
                         title=t.get('title'), artist=t.get('artist_name'), album=t.get('release'),
                         cover=covers.get(t['index'])))
    for o in plan['orphans']:
        jobs.append(dict(root=str(root), index=o['index'], audio_path=o['audio_path'], kind='ok',
                         sample_rate=o['sample_rate'], channels=o['channels'], bitrate=o['bitrate'],
                         labels=o['labels'], seconds=plan['seconds'], seed=plan['seed'], html=False))
    return jobs


def render_files(jobs, workers, progress=True):
    """Render jobs inline (workers <= 1) or on a process pool; results in job order.

    Workers end with this process (:func:`msd.parallel.init_worker`); on Ctrl-C or an error the
    queued jobs are cancelled and the workers stopped at once.
    """
    from tqdm import tqdm
    bar = tqdm(total=len(jobs), desc='audio', unit='file', disable=not progress)
    results = []
    if workers <= 1:
        for job in jobs:
            results.append(_render_job(job))
            bar.update()
    else:
        ctx = mp_context(preload=('msd.synthetic.audio_files',))
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker,
                                   initargs=(None, os.getpid()))
        try:
            for res in pool.map(_render_job, jobs, chunksize=1):
                results.append(res)
                bar.update()
        except BaseException:
            stop_pool(pool)
            raise
        pool.shutdown(wait=True)
    bar.close()
    return results
