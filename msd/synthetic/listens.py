"""Taste-Profile-format listening data for the synthetic corpus, with designed neighbourhoods.

Written into ``taste_profile/`` of the corpus (the formats of the MSD's Taste Profile subset,
<http://millionsongdataset.com/tasteprofile/>):

``train_triplets.txt``
    ``user_id<TAB>song_id<TAB>play_count``, sorted by user (40-hex-digit user ids, as published).
``unique_tracks.txt``
    ``track_id<SEP>song_id<SEP>artist<SEP>title`` for every h5 track. A track named in the corpus's
    ``sid_mismatches.txt`` is listed with that line's song id, as in the real data (the pair is a
    wrong match): that song is played by listeners of *another* taste cluster, so a learner that
    keeps the pair puts the track in the wrong neighbourhood.
``clusters.json``
    The ground truth: ``track_cluster`` (track id -> taste cluster), ``clusters`` (cluster -> track
    ids), ``mismatched`` ([song, track, cluster of its listeners]), ``unknown_songs`` (song ids in
    the triplets that no track has), ``users``, ``single_song_users``, ``triplets``.

Taste clusters are the corpus's genres crossed with its mood (``ballad`` or not): 10 genres x 2.
Each user loves one cluster (a fifth also a second one); a user's songs come from the loved
cluster(s) with probability 0.85, from anywhere in the catalogue with 0.10 (noise) and from songs
outside the catalogue with 0.05 (unknown ids); a few users have a single song. Play counts are
1 + geometric. Everything is drawn from ``numpy.random.default_rng((seed, 9, …))``: the same corpus
seed gives the same files, and the rest of the corpus is unchanged by this module.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

__all__ = ['taste_cluster', 'listening_data', 'write_listens', 'LISTENS_DIR', 'LISTEN_FILES']

LISTENS_DIR = 'taste_profile'
LISTEN_FILES = ('train_triplets.txt', 'unique_tracks.txt', 'clusters.json')
_PAIR = re.compile(r'<(SO[A-Z0-9]+) (TR[A-Z0-9]+)>')
_P_LOVED, _P_NOISE = 0.85, 0.10      # the rest: songs outside the catalogue
_P_SECOND, _P_SINGLE = 0.2, 0.03


def taste_cluster(labels: dict) -> str:
    """The taste cluster of a track's labels: ``'<genre>/ballad'`` or ``'<genre>/upbeat'``."""
    return f"{labels['genre']}/{'ballad' if labels.get('ballad') else 'upbeat'}"


def _rng(seed, *parts):
    return np.random.default_rng([int(seed), 9, *[int(p) for p in parts]])


def _hex_ids(rng, n, length):
    ids = set()
    while len(ids) < n:
        ids.add(''.join('0123456789abcdef'[int(i)] for i in rng.integers(16, size=length)))
    return sorted(ids)


def _catalogue(plan, rng):
    """Songs as (song_id, track_id, cluster its listeners love) and the mismatched ones."""
    mism = dict((tr, so) for so, tr in (m.groups() for m in map(_PAIR.search, plan['mism_lines']) if m))
    clusters = sorted({taste_cluster(t['labels']) for t in plan['tracks']})
    songs, mismatched = [], []
    for t in plan['tracks']:
        own = taste_cluster(t['labels'])
        if t['track_id'] in mism:
            others = [c for c in clusters if c != own] or clusters
            wrong = others[int(rng.integers(len(others)))]
            songs.append((mism[t['track_id']], t['track_id'], wrong))
            mismatched.append([mism[t['track_id']], t['track_id'], wrong])
        else:
            songs.append((t['song_id'], t['track_id'], own))
    return songs, mismatched


def _pick(rng, cumulative):
    """Index drawn with the probabilities whose cumulative sums are ``cumulative`` (last = 1)."""
    return min(int(np.searchsorted(cumulative, rng.random(), side='right')), len(cumulative) - 1)


def _user_songs(rng, pools, n_songs, n_unknown, cluster_cum):
    """One user's {song index (negative: unknown song -1-i): play count}.

    ``pools``: per cluster (song indices, cumulative popularity) ; ``cluster_cum``: cumulative
    cluster weights.
    """
    loved = [_pick(rng, cluster_cum)]
    if rng.random() < _P_SECOND:
        loved.append(_pick(rng, cluster_cum))
    n = 1 if rng.random() < _P_SINGLE else 4 + int(rng.poisson(8))
    plays = {}
    for _ in range(n):
        u = rng.random()
        if u < _P_LOVED:
            songs, cum = pools[loved[int(rng.integers(len(loved)))]]
            song = songs[_pick(rng, cum)]
        elif u < _P_LOVED + _P_NOISE:
            song = int(rng.integers(n_songs))
        else:
            song = -1 - int(rng.integers(n_unknown))
        plays[song] = plays.get(song, 0) + 1 + int(min(rng.geometric(0.35) - 1, 40))
    return plays


def listening_data(plan, seed: int, users: int | None = None) -> dict:
    """The listening files' text and the truth for a corpus ``plan``.

    Returns
    -------
    dict
        ``triplets`` (str), ``unique_tracks`` (str), ``truth`` (dict, see the module docstring).
    """
    rng = _rng(seed, 0)
    songs, mismatched = _catalogue(plan, rng)
    n_tracks = len(plan['tracks'])
    users = users if users is not None else max(60, 5 * n_tracks)
    clusters = sorted({c for _, _, c in songs})
    by_cluster = {c: [i for i, s in enumerate(songs) if s[2] == c] for c in clusters}
    sizes = np.array([len(by_cluster[c]) for c in clusters], dtype=np.float64)
    cluster_cum = np.cumsum(sizes / sizes.sum())
    popularity = rng.lognormal(0.0, 0.6, size=len(songs))
    pools = []
    for c in clusters:
        w = popularity[by_cluster[c]]
        pools.append((by_cluster[c], np.cumsum(w / w.sum())))
    unknown = _hex_ids(rng, max(3, n_tracks // 20), 16)
    unknown = ['SO' + u.upper() for u in unknown]
    user_ids = _hex_ids(rng, users, 40)
    lines, single = [], 0
    for u, user in enumerate(user_ids):
        plays = _user_songs(_rng(seed, 1, u), pools, len(songs), len(unknown), cluster_cum)
        single += len(plays) == 1
        for song, count in plays.items():
            song_id = songs[song][0] if song >= 0 else unknown[-1 - song]
            lines.append(f'{user}\t{song_id}\t{count}\n')
    meta = {t['track_id']: t for t in plan['tracks']}
    unique_text = ''.join(f"{tr}<SEP>{so}<SEP>{meta[tr]['artist_name']}<SEP>{meta[tr]['title']}\n"
                          for so, tr, _ in songs)
    track_cluster = {t['track_id']: taste_cluster(t['labels']) for t in plan['tracks']}
    truth = {'clusters': {c: sorted(t for t, k in track_cluster.items() if k == c) for c in clusters},
             'track_cluster': track_cluster, 'mismatched': mismatched, 'unknown_songs': unknown,
             'users': users, 'single_song_users': int(single), 'triplets': len(lines)}
    return {'triplets': ''.join(lines), 'unique_tracks': unique_text, 'truth': truth}


def write_listens(folder, plan, seed: int, users: int | None = None) -> dict:
    """Write ``taste_profile/``'s files into ``folder`` (created; it is inside the corpus's temporary
    directory, which is renamed into place whole) and return the truth."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = listening_data(plan, seed, users)
    (folder / 'train_triplets.txt').write_text(data['triplets'], encoding='utf-8')
    (folder / 'unique_tracks.txt').write_text(data['unique_tracks'], encoding='utf-8')
    (folder / 'clusters.json').write_text(json.dumps(data['truth'], indent=1, ensure_ascii=False) + '\n',
                                          encoding='utf-8')
    return data['truth']
