"""Fixtures for the index / query / playlist tests: a tiny run directory, a small tagged library of
MP3s (artist, album and title in their ID3 tags), and the state of an index as plain data.

Kept import-light at module level (TF/Keras only inside functions) so subprocesses import it cheaply.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np

#: (relative path, artist, album, title, seed, base frequency) of the library's tracks
LIBRARY = [
    ('a/one.mp3', 'Ann', 'First', 'One', 1, 220.0),
    ('a/two.mp3', 'Ann', 'First', 'Two', 2, 247.0),
    ('a/three.mp3', 'Ann', 'Second', 'Three', 3, 262.0),
    ('b/four.mp3', 'Bob', 'Blue', 'Four', 4, 330.0),
    ('b/five.mp3', 'Bob', 'Blue', 'Five', 5, 349.0),
    ('b/deep/six.mp3', 'Cid', 'Deep', 'Six', 6, 440.0),
    ('seven.mp3', None, None, None, 7, 523.0),
]


def make_run(path, seed=0):
    """A tiny log-mel run directory (tests/_evaluation_fixtures.make_run_dir, 3 s musicnn windows)."""
    from tests._evaluation_fixtures import make_run_dir
    return make_run_dir(path, seed=seed)


def write_track(path, seed, freq, artist=None, album=None, title=None, seconds=4.0, sr=16000):
    """A short music-like MP3 (a chord of plucks around ``freq``) with ID3 artist/album/title when given."""
    from tests._audio_fixtures import music_like, write_mp3
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.5 * music_like(seconds, sr, seed=seed) + 0.2 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    write_mp3(path, y.astype(np.float32), sr)
    if any((artist, album, title)):
        from mutagen.easyid3 import EasyID3
        from mutagen.id3 import ID3
        ID3().save(str(path))
        tags = EasyID3(str(path))
        for key, value in (('artist', artist), ('album', album), ('title', title)):
            if value:
                tags[key] = value
        tags.save()
    return path


def make_library(root, entries=LIBRARY):
    """Write ``entries`` under ``root``; returns ``{relative path: absolute path}``."""
    out = {}
    for rel, artist, album, title, seed, freq in entries:
        out[rel] = str(write_track(Path(root) / rel, seed, freq, artist, album, title))
    return out


def index_state(index_dir) -> dict:
    """``{id: (path, duration, artist, album, title, tags, probs, embedding vector, tags vector, payloads)}``
    of an index, read back through its public API (for comparing two builds)."""
    from retrieval.index import Index
    out = {}
    with Index.open(index_dir) as index:
        for t in index.tracks():
            ev, ep = index.stores['embedding'].get([t.id])
            tv, tp = index.stores['tags'].get([t.id])
            out[t.id] = (t.path, t.duration, t.artist, t.album, t.title, tuple(t.tags),
                         np.round(t.probs, 6).tolist(), np.round(ev[0], 5).tolist(), np.round(tv[0], 5).tolist(),
                         ep[0], tp[0])
    return out


def table_ids(index_dir) -> list:
    con = sqlite3.connect(os.path.join(index_dir, 'tracks.sqlite'))
    try:
        return sorted(r[0] for r in con.execute('SELECT id FROM tracks'))
    finally:
        con.close()
