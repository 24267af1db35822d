"""Tiny hand-made inputs for the msd tests (raw Last.fm DBs, summary h5 files) and the msd CLI runner.

Audio signals and files come from :mod:`tests._audio_fixtures`.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import numpy as np

from msd.lastfm import write_tables

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_msd(*args, cwd=None, timeout=300, check=True):
    """Run ``python -m msd ARGS`` in a subprocess; returns CompletedProcess (text)."""
    p = subprocess.run([sys.executable, '-m', 'msd', *map(str, args)], cwd=cwd, env=msd_env(), text=True,
                       capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f'msd {args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}')
    return p


def msd_env(**extra):
    """The environment of an msd subprocess: this checkout importable, numba's cache in the repo, plus ``extra``."""
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('NUMBA_CACHE_DIR', os.path.join(REPO, '.cache', 'numba'))
    env.update(extra)
    return env


def write_file(path, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)
    return path


def make_raw_db(path, tids, tags, pairs, *, with_val=True, extra_sql=()):
    """SQLite DB in the Last.fm layout; ``pairs`` = [(tid_rowid, tag_rowid, val)] (1-based rowids).

    Written by :func:`msd.lastfm.write_tables` (with the real DB's indexes). ``with_val=False``
    deliberately builds a layout without a ``val`` column (which ``write_tables`` never
    writes) to test the readers' handling of it, so that variant stays hand-written.
    """
    if os.path.exists(path):
        os.unlink(path)
    c = sqlite3.connect(path)
    if with_val:
        write_tables(c, enumerate(tags, 1), enumerate(tids, 1), pairs)
    else:
        c.execute('CREATE TABLE tags(tag TEXT)')
        c.execute('CREATE TABLE tids(tid TEXT)')
        c.execute('CREATE TABLE tid_tag(tid INTEGER, tag INTEGER)')
        c.executemany('INSERT INTO tags(tag) VALUES (?)', [(t,) for t in tags])
        c.executemany('INSERT INTO tids(tid) VALUES (?)', [(t,) for t in tids])
        c.executemany('INSERT INTO tid_tag VALUES (?, ?)', [p[:2] for p in pairs])
    for sql in extra_sql:
        c.execute(sql)
    c.commit()
    c.close()
    return path


def make_h5(path, rows, *, drop_fields=()):
    """A summary file with the three compound tables (subset of the real fields).

    rows: list of dicts with track_id, track_7digitalid and optional song_id, artist_id,
    artist_name, title, release, year, duration.
    """
    import h5py
    meta = [('artist_id', 'S32'), ('artist_name', 'S64'), ('release', 'S64'), ('song_id', 'S32'),
            ('title', 'S64'), ('track_7digitalid', '<i4')]
    analysis = [('duration', '<f8'), ('track_id', 'S32')]
    mb = [('year', '<i4')]
    with h5py.File(path, 'w') as f:
        for group, fields in (('metadata', meta), ('analysis', analysis), ('musicbrainz', mb)):
            fields = [x for x in fields if x[0] not in drop_fields]
            if not fields:
                continue
            arr = np.zeros(len(rows), dtype=np.dtype(fields))
            for i, r in enumerate(rows):
                for name, kind in fields:
                    v = r.get(name, 0 if kind[0] in '<' else '')
                    arr[i][name] = v.encode('utf-8') if isinstance(v, str) else v
            f.create_group(group).create_dataset('songs', data=arr)
    return path


def tid(i):
    """A valid-looking MSD track id for number ``i``."""
    return 'TR' + f'{i:016d}'.replace('0', 'A')[-16:]
