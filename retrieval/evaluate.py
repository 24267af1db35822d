"""Retrieval quality of an index on labelled tracks: ``musetag index evaluate``.

Index tracks are matched to ``master.csv`` rows by their audio file (both paths resolved; a row's
file is ``file_path`` under the table's audio root, else ``audio_path``), and get their true tags
from the clean tag DB. Tracks without a row or without a true tag take no part. With a split
manifest only the tracks of one split are used, as queries *and* as candidates (tracks the model
never trained on).

Every labelled track queries every other one, exactly (cosine over the vectors the index stores), in

* the ``embedding`` space (the layer the index was built with),
* the ``tags`` space (the tag probabilities of the same forward pass),
* ``random`` ranking (a seeded permutation per query: the chance level),

and the top ``k`` are scored:

``precision_at_k``   share of the top k sharing at least one true tag with the query
``jaccard_at_k``     mean Jaccard index of the true tag sets of the query and each of its top k
``same_artist_at_k`` share of the top k by the query's artist (``same_album_at_k``: release)
``artist_hit_rate``  share of queries with at least one track of their artist in the top k, over the
                     queries whose artist has another labelled track (``album_hit_rate`` likewise)
"""
from __future__ import annotations

import logging
import os

import numpy as np

from core.errors import MuseTagError

__all__ = ['evaluate_index', 'format_report', 'ranking_metrics', 'labelled_tracks']

log = logging.getLogger(__name__)

SPACES = ('embedding', 'tags', 'random')


def _master_paths(master) -> dict:
    """``{resolved audio path: (track_id, artist, album)}`` from ``master.csv``."""
    from msd.tables import read_master
    table = read_master(master)
    df = table.frame
    root = table.audio_root
    out = {}
    for i in range(len(df)):
        row = df.iloc[i]
        path = None
        rel = row.get('file_path') if 'file_path' in df.columns else None
        if root and isinstance(rel, str) and rel:
            path = os.path.join(root, rel)
        elif 'audio_path' in df.columns and isinstance(row.get('audio_path'), str):
            path = row['audio_path']
        if path:
            artist = row.get('artist_id') if isinstance(row.get('artist_id'), str) else row.get('artist_name')
            album = row.get('release') if isinstance(row.get('release'), str) else None
            out[os.path.realpath(path)] = (row['track_id'], artist if isinstance(artist, str) else None, album)
    return out


def _split_ids(splits, split) -> set:
    from msd.tables import read_table
    df = read_table(splits, what='split manifest', required=('track_id', 'split'), key='track_id').frame
    ids = set(df.loc[df['split'].astype(str).str.strip() == split, 'track_id'])
    if not ids:
        raise MuseTagError(f'{splits}: no track in split {split!r}')
    return ids


def labelled_tracks(index, *, master, tags_db, splits=None, split='test') -> tuple:
    """``(tracks, labels, n_unmatched)``: the index tracks with a master row and true tags (in
    ``split`` when ``splits`` is given), and per track ``(set of tag numbers, artist, album)``."""
    from msd.lastfm import load_clean_tags
    by_path = _master_paths(master)
    truth = load_clean_tags(tags_db).by_track
    keep = _split_ids(splits, split) if splits else None
    tracks, labels, unmatched = [], [], 0
    for t in index.tracks():
        row = by_path.get(os.path.realpath(t.path))
        if row is None:
            unmatched += 1
            continue
        tid, artist, album = row
        if keep is not None and tid not in keep:
            continue
        tags = set(truth.get(tid, ()))
        if tags:
            tracks.append(t)
            labels.append((tags, artist, album))
    return tracks, labels, unmatched


def _top_k(vectors: np.ndarray, k: int) -> np.ndarray:
    """Indices [n, k] of every row's k nearest other rows by cosine, best first."""
    v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    scores = v @ v.T
    np.fill_diagonal(scores, -np.inf)
    return np.argsort(-scores, axis=1, kind='stable')[:, :k]


def _random_k(n: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        others = np.delete(np.arange(n), i)
        out[i] = rng.permutation(others)[:k]
    return out


def ranking_metrics(neighbours: np.ndarray, labels: list) -> dict:
    """The figures of the module docstring for ``neighbours`` [n, k] (indices into ``labels``)."""
    n, k = neighbours.shape
    prec, jac, s_art, s_alb = (np.zeros(n) for _ in range(4))
    art_hit, alb_hit = [], []
    artists = [a for _, a, _ in labels]
    albums = [(a, b) if b else None for _, a, b in labels]
    for i in range(n):
        tags, artist, _ = labels[i]
        nb = neighbours[i]
        prec[i] = np.mean([bool(tags & labels[j][0]) for j in nb])
        jac[i] = np.mean([len(tags & labels[j][0]) / len(tags | labels[j][0]) for j in nb])
        same_a = [artist is not None and artists[j] == artist for j in nb]
        same_b = [albums[i] is not None and albums[j] == albums[i] for j in nb]
        s_art[i], s_alb[i] = np.mean(same_a), np.mean(same_b)
        if artist is not None and artists.count(artist) > 1:
            art_hit.append(any(same_a))
        if albums[i] is not None and albums.count(albums[i]) > 1:
            alb_hit.append(any(same_b))
    return {'precision_at_k': float(prec.mean()), 'jaccard_at_k': float(jac.mean()),
            'same_artist_at_k': float(s_art.mean()), 'same_album_at_k': float(s_alb.mean()),
            'artist_hit_rate': float(np.mean(art_hit)) if art_hit else None, 'artist_queries': len(art_hit),
            'album_hit_rate': float(np.mean(alb_hit)) if alb_hit else None, 'album_queries': len(alb_hit)}


def evaluate_index(index, *, master, tags_db, splits=None, split='test', k: int = 10, seed: int = 0) -> dict:
    """Score the index's two spaces and random ranking (module docstring); JSON-ready dict."""
    tracks, labels, unmatched = labelled_tracks(index, master=master, tags_db=tags_db, splits=splits, split=split)
    if len(tracks) < 2:
        raise MuseTagError(f'{index.path}: only {len(tracks)} index track(s) match labelled rows of {master}'
                           + (f' in split {split!r}' if splits else '') + '; nothing to evaluate')
    k = min(k, len(tracks) - 1)
    ids = [t.id for t in tracks]
    report = {'index': os.path.abspath(index.path), 'layer': index.manifest['layer'], 'k': k,
              'n_queries': len(tracks), 'n_index_tracks': len(index), 'n_unmatched': unmatched,
              'split': split if splits else None, 'seed': seed, 'spaces': {}}
    for space in SPACES:
        if space == 'random':
            nb = _random_k(len(tracks), k, seed)
        else:
            vectors, _ = index.stores[space].get(ids)
            nb = _top_k(np.asarray(vectors, dtype=np.float64), k)
        report['spaces'][space] = ranking_metrics(nb, labels)
    return report


def format_report(report: dict) -> str:
    """A table: one row per space."""
    k = report['k']
    head = f'{"space":<10} {"P@" + str(k):>7} {"Jacc@" + str(k):>8} {"artist@" + str(k):>9} {"album@" + str(k):>8} ' \
           f'{"artist hit":>10} {"album hit":>9}'
    rows = [head]
    for space, m in report['spaces'].items():
        def f(x):
            return '-' if x is None else f'{x:.3f}'
        rows.append(f'{space:<10} {f(m["precision_at_k"]):>7} {f(m["jaccard_at_k"]):>8} {f(m["same_artist_at_k"]):>9} '
                    f'{f(m["same_album_at_k"]):>8} {f(m["artist_hit_rate"]):>10} {f(m["album_hit_rate"]):>9}')
    rows.append(f'{report["n_queries"]} labelled queries of {report["n_index_tracks"]} index tracks '
                f'({report["n_unmatched"]} not in the master table)'
                + (f', split {report["split"]}' if report['split'] else ''))
    return '\n'.join(rows)
