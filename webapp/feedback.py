"""Listeners' likes and dislikes: the SQLite store, the re-ranking of results, the export as weights.

The store (``docs/webapp.md``) is one SQLite file with one table::

    feedback(id INTEGER PRIMARY KEY, listener TEXT, item TEXT, query TEXT (JSON), verdict TEXT
             ('like' | 'dislike'), time TEXT (ISO 8601, UTC))

Every press is kept (a history); what counts for a listener and an item is the listener's LATEST
verdict on it. Every statement binds its values (``?`` parameters): no user string is ever part of
SQL text. The file is created with the permissions of a plain ``open()`` (0644 under umask 022).

Re-ranking (:func:`rerank`), for one listener:

* items the listener dislikes leave the results;
* every other candidate gets ``score + LIKE_BOOST * max(0, max cosine to a liked item)`` in the
  index's embedding space, so a liked item itself rises by ``LIKE_BOOST`` and its near neighbours
  by nearly as much; candidates are then sorted by that score.

The caller asks the index for more candidates than it shows (:func:`candidates_needed`) so that
dropped items are replaced.

Export (:func:`export_weights`): per-example training weights (UTF-8 CSV ``track_id,weight,likes,
dislikes``): an item's ``likes``/``dislikes`` count the listeners whose latest verdict it is; its
weight is ``like_weight`` when likes outnumber dislikes, ``dislike_weight`` when dislikes do, and is
not written (weight 1.0, the trainer's default) on a tie.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import re
import sqlite3
import threading
from dataclasses import dataclass

import numpy as np

from core import files
from core.errors import MuseTagError

__all__ = ['FeedbackStore', 'Verdicts', 'VERDICTS', 'LIKE_BOOST', 'rerank', 'candidates_needed', 'check_listener',
           'export_weights', 'ExportSummary', 'LISTENER_PATTERN']

log = logging.getLogger(__name__)

VERDICTS = ('like', 'dislike')
#: Score added to a liked item; its neighbours get this times their cosine to it (if positive).
LIKE_BOOST = 0.5
#: A listener id: a cookie value or a name the page lets the user choose.
LISTENER_PATTERN = re.compile(r'[A-Za-z0-9_.@-]{1,64}')
#: Extra candidates asked of the index beyond ``k`` (liked neighbours that may rise).
EXTRA_CANDIDATES = 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    listener TEXT NOT NULL,
    item TEXT NOT NULL,
    query TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('like', 'dislike')),
    time TEXT NOT NULL
)
"""
_INDEX = 'CREATE INDEX IF NOT EXISTS feedback_listener ON feedback (listener, item)'
# the latest verdict of every (listener, item): the row with the largest id
_LATEST = """
SELECT f.listener, f.item, f.verdict FROM feedback AS f
JOIN (SELECT MAX(id) AS id FROM feedback GROUP BY listener, item) AS last ON f.id = last.id
"""


class BadFeedbackError(MuseTagError):
    """A feedback record or database the store refuses (exit 2 from the command line)."""


def check_listener(name: str) -> str:
    """``name`` if it is a valid listener id (letters, digits, ``_ . @ -``, 1-64 characters)."""
    if not isinstance(name, str) or not LISTENER_PATTERN.fullmatch(name):
        raise BadFeedbackError(f'listener {name!r}: use 1-64 letters, digits or _ . @ -')
    return name


@dataclass
class Verdicts:
    """One listener's current verdicts: sets of liked and disliked item ids."""
    liked: set
    disliked: set


class FeedbackStore:
    """The SQLite feedback file at ``path`` (created on first use), safe to share between threads."""

    def __init__(self, path):
        self.path = os.fspath(path)
        if os.path.isdir(self.path):
            raise BadFeedbackError(f'{self.path} is a directory; give a file for the feedback database')
        files.make_dir(os.path.dirname(os.path.abspath(self.path)))
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute(_SCHEMA)
            self._db.execute(_INDEX)
            self._db.commit()
        except sqlite3.DatabaseError as e:
            raise BadFeedbackError(f'{self.path} is not a feedback database ({e}); give another --feedback file') \
                from None

    @classmethod
    def open_existing(cls, path) -> 'FeedbackStore':
        """Open a store that must exist (the ``feedback`` commands read it)."""
        if not os.path.isfile(path):
            raise BadFeedbackError(f'{path}: no such feedback database (`musetag serve` writes it)')
        return cls(path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def add(self, listener: str, item: str, verdict: str, query: dict | None = None) -> dict:
        """Store one verdict; returns the stored record as a dict."""
        check_listener(listener)
        if verdict not in VERDICTS:
            raise BadFeedbackError(f'verdict {verdict!r}: use one of {", ".join(VERDICTS)}')
        if not isinstance(item, str) or not item or len(item) > 256:
            raise BadFeedbackError('item: a track id of 1-256 characters')
        when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='milliseconds')
        text = json.dumps(query or {}, ensure_ascii=False, sort_keys=True)
        with self._lock:
            cur = self._db.execute('INSERT INTO feedback (listener, item, query, verdict, time) VALUES (?, ?, ?, ?, ?)',
                                   (listener, item, text, verdict, when))
            self._db.commit()
        return {'id': cur.lastrowid, 'listener': listener, 'item': item, 'query': query or {}, 'verdict': verdict,
                'time': when}

    def verdicts(self, listener: str) -> Verdicts:
        """The listener's latest verdict on every item they judged."""
        with self._lock:
            rows = self._db.execute(_LATEST + ' WHERE f.listener = ?', (listener,)).fetchall()
        return Verdicts(liked={r[1] for r in rows if r[2] == 'like'},
                        disliked={r[1] for r in rows if r[2] == 'dislike'})

    def records(self, listener: str | None = None) -> list:
        """Every stored press (oldest first) as dicts, optionally of one listener."""
        sql = 'SELECT id, listener, item, query, verdict, time FROM feedback'
        params = ()
        if listener is not None:
            sql, params = sql + ' WHERE listener = ?', (listener,)
        with self._lock:
            rows = self._db.execute(sql + ' ORDER BY id', params).fetchall()
        return [{'id': r[0], 'listener': r[1], 'item': r[2], 'query': json.loads(r[3]), 'verdict': r[4],
                 'time': r[5]} for r in rows]

    def counts(self) -> dict:
        """``{item: (likes, dislikes)}``: listeners whose latest verdict on the item is each."""
        with self._lock:
            rows = self._db.execute(_LATEST).fetchall()
        out = {}
        for _, item, verdict in rows:
            likes, dislikes = out.get(item, (0, 0))
            out[item] = (likes + (verdict == 'like'), dislikes + (verdict == 'dislike'))
        return out


# --------------------------------------------------------------------------------------------------
# re-ranking
# --------------------------------------------------------------------------------------------------
def candidates_needed(k: int, verdicts: Verdicts | None) -> int:
    """How many results to ask the index for so that ``k`` remain after :func:`rerank`."""
    if verdicts is None or not (verdicts.liked or verdicts.disliked):
        return k
    return k + len(verdicts.disliked) + EXTRA_CANDIDATES


def _unit(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    norms = np.linalg.norm(m, axis=-1, keepdims=True)
    return m / np.where(norms > 0, norms, 1.0)


def rerank(results: list, verdicts: Verdicts | None, vectors_of, k: int) -> list:
    """The listener's view of ``results`` (module docstring): at most ``k`` of them.

    Parameters
    ----------
    results : list of dict
        Track-list entries with ``id`` and ``score`` (best first).
    verdicts : Verdicts or None
    vectors_of : callable
        ``ids -> float32 [len(ids), d]``: the embedding vectors of index tracks (ids not in the index
        are never passed).
    k : int

    Returns
    -------
    list of dict
        Copies of the kept entries with ``score`` re-ranked and ``boost`` (what was added) set.
    """
    if verdicts is None or not (verdicts.liked or verdicts.disliked):
        return results[:k]
    kept = [dict(r) for r in results if r['id'] not in verdicts.disliked]
    if verdicts.liked and kept:
        liked = sorted(verdicts.liked)
        cand = _unit(vectors_of([r['id'] for r in kept]))
        like = _unit(vectors_of(liked))
        best = np.clip((cand @ like.T).max(axis=1), 0.0, 1.0)
        for r, cos in zip(kept, best):
            r['boost'] = round(float(LIKE_BOOST * cos), 6)
            r['score'] = round(float(r['score']) + r['boost'], 6)
        kept.sort(key=lambda r: -r['score'])
    return kept[:k]


# --------------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------------
@dataclass
class ExportSummary:
    """What :func:`export_weights` wrote: rows, items judged, and those it could not map."""
    rows: int = 0
    items: int = 0
    ties: int = 0
    unmapped: list = None

    def line(self) -> str:
        unmapped = len(self.unmapped or [])
        return (f'{self.rows} weights written for {self.items} judged items ({self.ties} ties left at 1.0, '
                f'{unmapped} not mapped to a training track)')


def export_weights(counts: dict, id_map, out, *, like_weight: float = 2.0, dislike_weight: float = 0.0,
                   overwrite: bool = False) -> ExportSummary:
    """Write the per-example weights CSV (module docstring) to ``out``.

    Parameters
    ----------
    counts : dict
        ``{index item id: (likes, dislikes)}`` (:meth:`FeedbackStore.counts`).
    id_map : callable
        ``index item id -> training track id or None`` (None: counted in ``unmapped``).
    out : path
    like_weight, dislike_weight : float
        Finite and ≥ 0.
    """
    import csv
    import io
    import math
    for name, w in (('like weight', like_weight), ('dislike weight', dislike_weight)):
        if not (math.isfinite(w) and w >= 0):
            raise MuseTagError(f'the {name} must be a finite number ≥ 0, got {w}')
    summary = ExportSummary(unmapped=[])
    rows = {}
    for item in sorted(counts):
        likes, dislikes = counts[item]
        summary.items += 1
        if likes == dislikes:
            summary.ties += 1
            continue
        track_id = id_map(item)
        if track_id is None:
            summary.unmapped.append(item)
            continue
        old = rows.get(track_id, (0, 0))
        rows[track_id] = (old[0] + likes, old[1] + dislikes)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(['track_id', 'weight', 'likes', 'dislikes'])
    for track_id, (likes, dislikes) in sorted(rows.items()):
        if likes == dislikes:           # two index items of one training track cancelled out
            summary.ties += 1
            continue
        w.writerow([track_id, repr(float(like_weight if likes > dislikes else dislike_weight)), likes, dislikes])
        summary.rows += 1
    files.check_output(out, overwrite)
    files.atomic_write_text(out, buf.getvalue())
    return summary
