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

Cold start (:func:`cold_start_evaluate`, ``docs/latent.md``): the tracks held out of a track2vec
target table query every other indexed track; a result is right when it is one of the query's *true
co-listening neighbours* (at least ``min_common`` users or playlists have both, counted over all the
listening data). Rows: each index's output space (``predicted-latent`` for a latent run,
``tag-probability`` for a tagger) and embedding space, and ``random``.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from core.errors import MuseTagError

__all__ = ['evaluate_index', 'master_paths', 'format_report', 'ranking_metrics', 'labelled_tracks',
           'cold_start_evaluate', 'format_cold_start', 'co_listeners', 'is_latent_index']

log = logging.getLogger(__name__)

SPACES = ('embedding', 'tags', 'random')


def master_paths(master) -> dict:
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
    by_path = master_paths(master)
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


# --------------------------------------------------------------------------------------------------
# cold start: held-out tracks against their true co-listening neighbours (docs/latent.md)
# --------------------------------------------------------------------------------------------------
def co_listeners(listening, held_out) -> dict:
    """``{held-out track: {other track: number of users (playlists) with both}}`` over one pass of
    ``listening`` (a :class:`latent.track2vec.ListeningSource` read *without* a hold-out: the truth
    uses every listen)."""
    held = set(held_out)
    common = {h: {} for h in held}
    for _, tracks in listening:
        ids = [t for t, _ in tracks]
        for h in (t for t in ids if t in held):
            row = common[h]
            for t in ids:
                if t != h:
                    row[t] = row.get(t, 0) + 1
    return common


def is_latent_index(index) -> bool:
    """True when the index's run is a latent run (its outputs are named ``dim_000``, ``dim_001``, …)."""
    labels = index.manifest.get('labels') or []
    return bool(labels) and all(str(x).startswith('dim_') for x in labels)


def _index_track_ids(index, by_path) -> dict:
    """``{track_id: index id}`` of the index tracks that have a master row (first one wins)."""
    out = {}
    for t in index.tracks():
        row = by_path.get(os.path.realpath(t.path))
        if row is not None:
            out.setdefault(row[0], t.id)
    return out


def _space_rows(index, name: str) -> list:
    """``[(row label, store name)]`` of one index: its output space and its embedding space."""
    output = 'predicted-latent' if is_latent_index(index) else 'tag-probability'
    return [(f'{output} ({name})', 'tags'), (f'embedding ({name})', 'embedding')]


def _precision(neighbours, candidates, truth_sets) -> tuple:
    """(mean precision@k, share of queries with a hit) of ``neighbours`` [q, k] (indices into
    ``candidates``) against each query's set of true neighbour track ids."""
    prec, hits = [], []
    for row, truth in zip(neighbours, truth_sets):
        got = sum(candidates[j] in truth for j in row)
        prec.append(got / len(row))
        hits.append(got > 0)
    return float(np.mean(prec)), float(np.mean(hits))


def _ranked(vectors: np.ndarray, queries: list, k: int) -> np.ndarray:
    """Indices [len(queries), k] of each query row's k nearest other rows by cosine."""
    v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    scores = v[queries] @ v.T
    scores[np.arange(len(queries)), queries] = -np.inf
    return np.argsort(-scores, axis=1, kind='stable')[:, :k]


def cold_start_evaluate(indexes, *, master, listening, held_out, k: int = 10, min_common: int = 2,
                        seed: int = 0) -> dict:
    """Precision@k of held-out tracks' neighbours against their true co-listening neighbours.

    Parameters
    ----------
    indexes : list of (name, Index)
        The first is the index evaluated; more (``--compare-index``) are scored on the same tracks.
    master : master.csv (index tracks -> track ids by audio path).
    listening : :class:`latent.track2vec.ListeningSource` without hold-out.
    held_out : track ids held out of the latent targets (``held_out.txt``).
    min_common : a track is a true neighbour of a held-out track when at least this many users
        (playlists) have both.

    Candidates are the tracks every index holds (matched through master.csv); queries are the held-out
    candidates with at least one true neighbour among the candidates. Every space ranks all other
    candidates by cosine to the query; ``random`` ranks them by a seeded permutation.
    """
    by_path = master_paths(master)
    maps = [_index_track_ids(index, by_path) for _, index in indexes]
    candidates = sorted(set.intersection(*(set(m) for m in maps)))
    if len(candidates) < 2:
        raise MuseTagError(f'only {len(candidates)} track(s) of {master} are in every index; nothing to evaluate')
    position = {t: i for i, t in enumerate(candidates)}
    held = [t for t in dict.fromkeys(held_out) if t in position]
    common = co_listeners(listening, held)
    truth, queries = [], []
    for h in held:
        n = {t for t, c in common[h].items() if c >= min_common and t in position}
        if n:
            queries.append(position[h])
            truth.append(n)
    if not queries:
        raise MuseTagError(f'none of the {len(held)} held-out track(s) found in the index has a co-listening '
                           f'neighbour (>= {min_common} common users) among the indexed tracks; index more tracks '
                           'or lower --min-common')
    k = min(k, len(candidates) - 1)
    report = {'k': k, 'min_common': min_common, 'n_candidates': len(candidates), 'n_held_out': len(held_out),
              'n_held_out_indexed': len(held), 'n_queries': len(queries), 'seed': seed,
              'mean_true_neighbours': float(np.mean([len(n) for n in truth])),
              'listening': listening.report.as_dict(),
              'indexes': {name: os.path.abspath(index.path) for name, index in indexes}, 'spaces': {}}
    for (name, index), ids in zip(indexes, maps):
        for label, store in _space_rows(index, name):
            vectors, _ = index.stores[store].get([ids[t] for t in candidates])
            nb = _ranked(np.asarray(vectors, dtype=np.float64), queries, k)
            p, hit = _precision(nb, candidates, truth)
            report['spaces'][label] = {'precision_at_k': p, 'hit_rate': hit}
    rng = np.random.default_rng(seed)
    nb = np.array([rng.permutation(np.delete(np.arange(len(candidates)), q))[:k] for q in queries])
    p, hit = _precision(nb, candidates, truth)
    report['spaces']['random'] = {'precision_at_k': p, 'hit_rate': hit}
    return report


def format_cold_start(report: dict) -> str:
    """A table: one row per space (precision@k and hit rate)."""
    k = report['k']
    width = max(len(s) for s in report['spaces']) + 2
    rows = [f'{"space":<{width}} {"P@" + str(k):>7} {"hit@" + str(k):>7}']
    for space, m in report['spaces'].items():
        rows.append(f'{space:<{width}} {m["precision_at_k"]:>7.3f} {m["hit_rate"]:>7.3f}')
    rows.append(f'cold start: {report["n_queries"]} held-out queries ({report["n_held_out_indexed"]} of '
                f'{report["n_held_out"]} held-out tracks indexed) among {report["n_candidates"]} tracks; true '
                f'neighbours: >= {report["min_common"]} common listeners (mean {report["mean_true_neighbours"]:.1f} '
                'per query)')
    return '\n'.join(rows)
