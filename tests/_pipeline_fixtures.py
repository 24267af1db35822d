"""A tiny dataset in the formats the msd stage hands to preprocessing (master table + clean tag DB).

Used by preprocessing/training/evaluation tests that must not depend on the whole msd chain. The
master table is written by the one writer of that format (``msd.tables.write_master``), with the
``# audio_root=`` line ``msd build`` records.
"""
import os
import sqlite3

import numpy as np
import pandas as pd

from msd.lastfm import write_tables
from msd.tables import write_master
from tests._audio_fixtures import music_like, write_wav

TAGS = ['rock', 'pop', 'jazz', 'female', 'male', 'instrumental', '80s']


def make_tiny_corpus(root, n_tracks=12, seconds=(2.0, 4.5), sr=16000, bad=True, seed=0):
    """Write audio + master.csv + clean_tags.db under ``root``; return a dict of paths and truth.

    Track i has tags chosen deterministically; lengths vary in ``seconds``; with ``bad`` the last
    track's file is not audio and one track has no clean tag. The audio root is ``root/audio``.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    audio_dir = os.path.join(root, 'audio')
    os.makedirs(audio_dir, exist_ok=True)
    rows, tags_of = [], {}
    for i in range(n_tracks):
        tid = f'TRTEST{i:012d}'
        artist = f'AR{(i // 2):016d}'  # two tracks per artist
        path = os.path.join(audio_dir, f'{i}.wav')
        dur = float(rng.uniform(*seconds))
        if bad and i == n_tracks - 1:
            path = os.path.join(audio_dir, f'{i}.mp3')
            with open(path, 'w') as f:
                f.write('not audio at all\n' * 50)
        else:
            write_wav(path, music_like(dur, sr, seed=i), sr)
        rows.append({'track_id': tid, 'artist_id': artist, 'artist_name': f'Artist {i // 2}',
                     'title': f'Song {i}', 'year': 1980 + i, 'audio_path': path,
                     'file_path': os.path.relpath(path, audio_dir)})
        if bad and i == n_tracks - 2:
            continue  # no clean tag
        k = [TAGS[i % 3], TAGS[3 + i % 3]]
        if i % 4 == 0:
            k.append('80s')
        tags_of[tid] = k
    master = os.path.join(root, 'master.csv')
    write_master(pd.DataFrame(rows), master, command='test fixture', meta={'audio_root': audio_dir}, overwrite=True)
    db = os.path.join(root, 'clean_tags.db')
    if os.path.exists(db):
        os.remove(db)
    con = sqlite3.connect(db)
    tids = [(j + 1, r['track_id'] if r['track_id'] in tags_of else None) for j, r in enumerate(rows)]
    pairs = [(j + 1, TAGS.index(t) + 1, 100.0) for j, r in enumerate(rows) for t in tags_of.get(r['track_id'], [])]
    write_tables(con, enumerate(TAGS, 1), tids, pairs)
    con.commit()
    con.close()
    return {'root': root, 'master': master, 'tags_db': db, 'audio_dir': audio_dir, 'tags_of': tags_of,
            'rows': rows}


def make_split_corpus(root, n_tracks=12):
    """:func:`make_tiny_corpus` plus a per-track 50/25/25 split CSV (``c['splits']``, ``c['split_of']``)."""
    from msd.tables import read_master
    from preprocessing.splits import make_split, write_splits
    c = make_tiny_corpus(str(root), n_tracks=n_tracks)
    splits, _ = make_split(read_master(c['master']).frame, by='track', ratios=(0.5, 0.25, 0.25), seed=3)
    c['splits'] = os.path.join(str(root), 'splits.csv')
    write_splits(splits, c['splits'], command='test fixture')
    c['split_of'] = dict(zip(splits.track_id, splits.split))
    return c
