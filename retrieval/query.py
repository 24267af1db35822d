"""Similar-track queries on an index, and the output formats of queries and playlists.

A query is a vector in one of the index's two spaces (``docs/retrieval.md``):

* ``embedding``: a track of the index (``--track``), or any audio clip embedded with the run and
  layer that built the index (``--audio``);
* ``tags``: a target over the run's tag vocabulary (``--tags "a, b"``: weight 1 per tag, or
  ``--text``: tags chosen by :mod:`retrieval.text`), compared by cosine with every track's tag
  probabilities; a track can also be looked up in this space (``space='tags'``).

Filters: leave out the query track itself, tracks of the same artist or album, require tags (every
one of them) or forbid tags (any of them) among a track's top predicted tags (the payload's
``tags``). The first required tag, the artist, the album and the forbidden tags go to the store as a
:class:`retrieval.store.Filter`; the other required tags and the query track are filtered here,
asking the store for more results until ``k`` pass or the index is exhausted. Results whose path is
not inside the indexed roots (a file replaced by a link that leaves them) are never returned.

Formats: ``table`` (aligned text), ``json`` (``{"query": …, "results": [...]}``), ``csv`` (one row
per result) and ``m3u`` (extended M3U: ``#EXTM3U``, then per track ``#EXTINF:<seconds>,<artist> -
<title>`` and the path).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ['Query', 'Result', 'search', 'track_vector', 'FORMATS', 'format_results', 'm3u_text',
           'results_from_ids']

log = logging.getLogger(__name__)

FORMATS = ('table', 'json', 'csv', 'm3u')


@dataclass
class Query:
    """A query vector in ``space`` (``'embedding'`` or ``'tags'``) and what it stands for.

    ``track_id``: the index track it came from (excluded from its own results); ``artist`` /
    ``album``: those of the query (for the same-artist / same-album filters); ``describe``: what the
    user asked, for the outputs (e.g. ``{"text": "slow sad piano", "tags": [["sad", 1.0], …]}``).
    """
    vector: np.ndarray
    space: str = 'embedding'
    track_id: str | None = None
    artist: str | None = None
    album: str | None = None
    describe: dict = field(default_factory=dict)


@dataclass
class Result:
    """One result: rank (1-based), id, score (cosine similarity) and the track's payload fields."""
    rank: int
    id: str
    score: float
    path: str
    duration: float | None = None
    artist: str | None = None
    album: str | None = None
    title: str | None = None
    tags: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {'rank': self.rank, 'id': self.id, 'score': round(self.score, 6), 'path': self.path,
                'duration': self.duration, 'artist': self.artist, 'album': self.album, 'title': self.title,
                'tags': list(self.tags)}


def track_vector(index, track, space: str = 'embedding') -> np.ndarray:
    """The stored vector of ``track`` (a :class:`retrieval.index.Track`) in ``space``: float32 [d]."""
    vectors, _ = index.stores[space].get([track.id])
    return np.asarray(vectors[0], dtype=np.float32)


def _store_filter(query: Query, *, exclude_same_artist: bool, exclude_same_album: bool, require_tags, forbid_tags):
    from retrieval.store import Filter
    must, must_not = {}, {}
    if require_tags:
        must['tags'] = [require_tags[0]]
    if forbid_tags:
        must_not['tags'] = list(forbid_tags)
    if exclude_same_artist:
        if query.artist:
            must_not['artist'] = [query.artist]
        else:
            log.warning('--exclude-same-artist: the query has no artist (no file tag): nothing excluded')
    if exclude_same_album:
        if query.album:
            must_not['album'] = [query.album]
        else:
            log.warning('--exclude-same-album: the query has no album (no file tag): nothing excluded')
    return Filter(must=must, must_not=must_not) if must or must_not else None


def search(index, query: Query, *, k: int = 10, exclude_same_artist: bool = False, exclude_same_album: bool = False,
           require_tags=(), forbid_tags=()) -> list:
    """The ``k`` best tracks for ``query`` that pass the filters (module docstring): list of :class:`Result`."""
    require_tags, forbid_tags = list(require_tags or ()), list(forbid_tags or ())
    store = index.stores.get(query.space)
    if store is None or len(store) == 0:
        return []
    flt = _store_filter(query, exclude_same_artist=exclude_same_artist, exclude_same_album=exclude_same_album,
                        require_tags=require_tags, forbid_tags=forbid_tags)
    rest = set(require_tags[1:])
    total = len(store)
    ask = min(total, k + (1 if query.track_id else 0))
    while True:
        hits = store.search(np.asarray(query.vector, dtype=np.float32), k=ask, filter=flt)[0]
        kept = [h for h in hits if h.id != query.track_id and rest <= set(h.payload.get('tags') or ())
                and _inside(index, h)]
        if len(kept) >= k or len(hits) < ask or ask >= total:
            break
        ask = min(total, ask * 4)
    return results_from_hits(kept[:k])


def _inside(index, hit) -> bool:
    path = (hit.payload or {}).get('path')
    if path and index.inside_roots(path):
        return True
    log.warning('left out %s: its path %r is not inside the indexed roots', hit.id, path)
    return False


def results_from_hits(hits) -> list:
    out = []
    for rank, h in enumerate(hits, start=1):
        p = h.payload or {}
        out.append(Result(rank=rank, id=h.id, score=float(h.score), path=p.get('path'), duration=p.get('duration'),
                          artist=p.get('artist'), album=p.get('album'), title=p.get('title'),
                          tags=list(p.get('tags') or ())))
    return out


def results_from_ids(index, ids, scores=None) -> list:
    """Results for index tracks ``ids`` in order (a playlist), scores default 0."""
    out = []
    for rank, track_id in enumerate(ids, start=1):
        t = index.track(track_id)
        out.append(Result(rank=rank, id=t.id, score=float(scores[rank - 1]) if scores is not None else 0.0,
                          path=t.path, duration=t.duration, artist=t.artist, album=t.album, title=t.title,
                          tags=list(t.tags)))
    return out


# --------------------------------------------------------------------------------------------------
# formats
# --------------------------------------------------------------------------------------------------
def _label(r: Result) -> str:
    title = r.title or os.path.splitext(os.path.basename(r.path or ''))[0]
    return f'{r.artist} - {title}' if r.artist else title


def m3u_text(results) -> str:
    """Extended M3U: ``#EXTM3U``, then ``#EXTINF:<whole seconds, -1 unknown>,<artist> - <title>`` and
    the path of every track."""
    lines = ['#EXTM3U']
    for r in results:
        seconds = int(round(r.duration)) if r.duration is not None else -1
        label = _label(r).replace('\n', ' ').replace('\r', ' ')
        lines += [f'#EXTINF:{seconds},{label}', r.path]
    return '\n'.join(lines) + '\n'


def _table(results) -> str:
    if not results:
        return 'no results\n'
    rows = [('#', 'score', 'track', 'tags', 'path')]
    rows += [(str(r.rank), f'{r.score:.4f}', _label(r), ', '.join(r.tags[:3]), r.path) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return ''.join('  '.join(c.ljust(w) for c, w in zip(row[:4], widths)) + '  ' + row[4] + '\n' for row in rows)


def _csv(results) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(['rank', 'id', 'score', 'path', 'duration', 'artist', 'album', 'title', 'tags'])
    for r in results:
        w.writerow([r.rank, r.id, f'{r.score:.6f}', r.path, '' if r.duration is None else r.duration,
                    r.artist or '', r.album or '', r.title or '', ';'.join(r.tags)])
    return buf.getvalue()


def format_results(results, fmt: str, *, describe: dict | None = None) -> str:
    """``results`` as text in ``fmt`` (one of :data:`FORMATS`); ``describe`` heads the JSON output."""
    if fmt == 'table':
        return _table(results)
    if fmt == 'json':
        return json.dumps({'query': describe or {}, 'results': [r.to_dict() for r in results]}, indent=1,
                          ensure_ascii=False) + '\n'
    if fmt == 'csv':
        return _csv(results)
    if fmt == 'm3u':
        return m3u_text(results)
    raise ValueError(f'unknown format {fmt!r}; choose one of {", ".join(FORMATS)}')
