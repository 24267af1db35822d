"""Playlists in an embedding space: Deej-A.I.'s "join the dots", and continuing from a track.

Both algorithms see the collection through a :class:`Space`: the vector of a track, the tracks
nearest a point (cosine similarity, best first) and the artist of a track. :class:`ArraySpace` is an
exact in-memory space over a matrix of vectors; :class:`StoreSpace` asks a
:class:`retrieval.store.VectorStore` (the index's ``embedding`` store), so a playlist over a large
index never loads every vector.

Join the dots (Deej-A.I., https://github.com/teticio/Deej-A.I.)
    The playlist starts at the first chosen track and ends at the last, passing through the
    ``via`` tracks in order. Each leg between two chosen tracks ``a`` and ``b`` gets its share of
    the free slots; slot ``j`` of ``s`` is the point ``(1 - t)·â + t·b̂`` with ``t = j / (s + 1)``
    (``â``, ``b̂`` the unit vectors of the endpoints), filled with the unused track nearest that
    point. No track appears twice; with ``artist_spread=K`` no artist appears twice within ``K``
    consecutive positions (the chosen tracks themselves are kept as given).

Continue from a seed
    From the seed, each next track is drawn among the ``candidates`` unused tracks nearest the
    current one, with probability ``softmax(score / temperature)``; ``temperature=0`` takes the
    nearest (greedy, deterministic).
"""
from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np

from core.errors import MuseTagError

__all__ = ['Space', 'ArraySpace', 'StoreSpace', 'join_the_dots', 'continue_from', 'leg_slots']

log = logging.getLogger(__name__)


class Space:
    """What the playlist algorithms need of a collection (subclasses implement the three methods)."""

    def vector(self, track_id: str) -> np.ndarray:
        """The vector of ``track_id``: float32 [d]; ``KeyError`` for an unknown id."""
        raise NotImplementedError

    def nearest(self, point: np.ndarray, k: int) -> list:
        """The ``k`` tracks nearest ``point`` (float [d]) as ``[(id, cosine), …]``, best first."""
        raise NotImplementedError

    def artist(self, track_id: str):
        """The artist of ``track_id`` (str, or None when unknown)."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class ArraySpace(Space):
    """Exact space over in-memory vectors.

    Parameters
    ----------
    ids : sequence of str, length n
    vectors : float [n, d]
        Any scale: rows are normalised (cosine).
    artists : sequence of (str or None), length n, optional
    """

    def __init__(self, ids: Sequence[str], vectors, artists: Sequence | None = None):
        self.ids = [str(i) for i in ids]
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim != 2 or v.shape[0] != len(self.ids):
            raise ValueError(f'vectors must be [{len(self.ids)}, d], got {v.shape}')
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        self.unit = v / np.where(norms > 0, norms, 1.0)
        self.row = {t: i for i, t in enumerate(self.ids)}
        self.artists = list(artists) if artists is not None else [None] * len(self.ids)

    def vector(self, track_id):
        return self.unit[self.row[track_id]]

    def nearest(self, point, k):
        p = np.asarray(point, dtype=np.float32)
        p = p / (np.linalg.norm(p) or 1.0)
        scores = self.unit @ p
        order = np.argsort(-scores, kind='stable')[:k]
        return [(self.ids[i], float(scores[i])) for i in order]

    def artist(self, track_id):
        return self.artists[self.row[track_id]]

    def __len__(self):
        return len(self.ids)


class StoreSpace(Space):
    """A :class:`retrieval.store.VectorStore` seen as a :class:`Space` (artists from the payloads).

    ``keep(payload) -> bool``, when given, hides the tracks it refuses from :meth:`nearest` (the index
    hides tracks whose path has left the indexed roots).
    """

    def __init__(self, store, keep: Callable[[dict], bool] | None = None):
        self.store = store
        self.keep = keep
        self._artists = {}

    def vector(self, track_id):
        vectors, payloads = self.store.get([track_id])
        self._artists[track_id] = (payloads[0] or {}).get('artist')
        return np.asarray(vectors[0], dtype=np.float32)

    def nearest(self, point, k):
        hits = self.store.search(np.asarray(point, dtype=np.float32), k=k)[0]
        for h in hits:
            self._artists[h.id] = (h.payload or {}).get('artist')
        return [(h.id, float(h.score)) for h in hits if self.keep is None or self.keep(h.payload or {})]

    def artist(self, track_id):
        if track_id not in self._artists:
            self.vector(track_id)
        return self._artists[track_id]

    def __len__(self):
        return len(self.store)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def _nearest_allowed(space: Space, point, allowed: Callable[[str], bool], start_k: int = 16) -> list:
    """``[(id, score), …]`` of the allowed tracks nearest ``point``, best first (at least one when any
    track is allowed): asks for more neighbours until one passes or the whole space was seen."""
    k = max(1, start_k)
    total = len(space)
    while True:
        hits = space.nearest(point, min(k, total))
        ok = [(t, s) for t, s in hits if allowed(t)]
        if ok or k >= total:
            return ok
        k *= 4


def leg_slots(n_free: int, n_legs: int) -> list:
    """Free slots per leg: ``n_free`` spread evenly over ``n_legs`` (earlier legs take the remainder)."""
    base, extra = divmod(n_free, n_legs)
    return [base + (1 if i < extra else 0) for i in range(n_legs)]


class _Filler:
    """The slots of one playlist and the rules a track must pass to fill a slot."""

    def __init__(self, space: Space, slots: list, artist_spread: int):
        self.space, self.slots, self.spread = space, slots, int(artist_spread)
        self.used = {t for t in slots if t is not None}
        self.relaxed = 0          # slots filled without the artist rule (no track passed it)

    def _artist_clash(self, track: str, pos: int) -> bool:
        if self.spread <= 0:
            return False
        artist = self.space.artist(track)
        if artist is None:
            return False
        lo, hi = max(0, pos - self.spread + 1), min(len(self.slots), pos + self.spread)
        return any(t is not None and i != pos and self.space.artist(t) == artist
                   for i, t in enumerate(self.slots[lo:hi], start=lo))

    def candidates(self, point, pos: int, k: int = 1) -> list:
        """Up to ``k`` unused tracks nearest ``point`` that may stand at ``pos``, ``[(id, score)]``."""
        def allowed(t):
            return t not in self.used and not self._artist_clash(t, pos)
        found = _nearest_allowed(self.space, point, allowed, start_k=max(16, k))
        if not found:
            self.relaxed += 1
            found = _nearest_allowed(self.space, point, lambda t: t not in self.used, start_k=max(16, k))
        if not found:
            raise MuseTagError('the index has no unused track left for this playlist')
        return found[:k]

    def put(self, pos: int, track: str) -> None:
        self.slots[pos] = track
        self.used.add(track)


def join_the_dots(space: Space, waypoints: Sequence[str], length: int, *, artist_spread: int = 0) -> list:
    """Deej-A.I.'s join-the-dots playlist through ``waypoints`` (module docstring).

    Parameters
    ----------
    space : Space
    waypoints : sequence of str, at least 2, distinct
        The first and last tracks and the ``via`` tracks between them, in order.
    length : int
        Tracks in the playlist, waypoints included (≥ ``len(waypoints)``, ≤ the tracks in ``space``).
    artist_spread : int
        No artist twice within this many consecutive positions (0 or 1: no rule).

    Returns
    -------
    list of str, length ``length``: starts at ``waypoints[0]``, ends at ``waypoints[-1]``, no repeats.
    """
    waypoints = [str(w) for w in waypoints]
    if len(waypoints) < 2:
        raise MuseTagError('a join-the-dots playlist needs a start and an end track')
    if len(set(waypoints)) != len(waypoints):
        raise MuseTagError('the --from, --via and --to tracks must be different tracks')
    if length < len(waypoints):
        raise MuseTagError(f'--length {length} is shorter than the {len(waypoints)} chosen tracks')
    if length > len(space):
        raise MuseTagError(f'--length {length} is longer than the index ({len(space)} tracks)')
    vectors = [_unit(space.vector(w)) for w in waypoints]
    per_leg = leg_slots(length - len(waypoints), len(waypoints) - 1)
    slots, positions = [], []
    for i, n in enumerate(per_leg):
        slots.append(waypoints[i])
        positions.append([(len(slots) + j, i, (j + 1) / (n + 1)) for j in range(n)])
        slots.extend([None] * n)
    slots.append(waypoints[-1])
    filler = _Filler(space, slots, artist_spread)
    for leg in positions:
        for pos, i, t in leg:
            point = (1.0 - t) * vectors[i] + t * vectors[i + 1]
            filler.put(pos, filler.candidates(point, pos)[0][0])
    if filler.relaxed:
        log.warning('%d position(s) took an artist inside the --artist-spread window: no other track was left',
                    filler.relaxed)
    return filler.slots


def continue_from(space: Space, seed: str, length: int, *, temperature: float = 0.0, candidates: int = 10,
                  artist_spread: int = 0, rng: np.random.Generator | None = None) -> list:
    """A playlist of ``length`` tracks starting at ``seed``, each next track near the previous one.

    Each step samples among the ``candidates`` nearest allowed tracks with probability
    ``softmax(score / temperature)`` (scores are cosines in [-1, 1]); ``temperature=0`` is greedy.
    ``rng`` (default: seeded with 0) makes sampling reproducible.

    Returns
    -------
    list of str, length ``length``, starting with ``seed``, no repeats.
    """
    if temperature < 0:
        raise MuseTagError(f'--temperature must be >= 0, got {temperature}')
    if length < 1:
        raise MuseTagError(f'--length must be >= 1, got {length}')
    if length > len(space):
        raise MuseTagError(f'--length {length} is longer than the index ({len(space)} tracks)')
    rng = rng if rng is not None else np.random.default_rng(0)
    filler = _Filler(space, [str(seed)] + [None] * (length - 1), artist_spread)
    current = space.vector(str(seed))
    for pos in range(1, length):
        found = filler.candidates(current, pos, k=1 if temperature == 0 else candidates)
        if temperature == 0 or len(found) == 1:
            choice = found[0][0]
        else:
            scores = np.array([s for _, s in found], dtype=np.float64) / temperature
            p = np.exp(scores - scores.max())
            choice = found[int(rng.choice(len(found), p=p / p.sum()))][0]
        filler.put(pos, choice)
        current = space.vector(choice)
    if filler.relaxed:
        log.warning('%d position(s) took an artist inside the --artist-spread window: no other track was left',
                    filler.relaxed)
    return filler.slots
