"""Track vectors from co-listening (Deej-A.I.): word2vec with tracks as words.

Each user's listening (Taste Profile) or each playlist is one *sentence*. A user's tracks are
repeated by play count, capped at ``max_repeat`` copies, and shuffled with a generator seeded by
``(seed, sentence number)``: the Taste Profile has no listening order, so a shuffled bag of the
user's tracks is the honest sentence, and the cap keeps one obsessive play count from drowning the
rest. Playlists keep their order (one copy per track). Skip-gram with negative sampling.

The corpus is streamed from the files on every pass (one counting pass, gensim's vocabulary pass,
one pass per epoch); nothing holds all listens in memory.

* **Rare tracks**: a track heard by fewer than ``min_count`` distinct users (playlists) is not
  learned; it is listed in the target table's ``rare.csv`` with its count.
* **Held-out tracks** (cold start): removed from every sentence on purpose and listed in
  ``held_out.txt`` of the target table (and counted in ``targets.json``), so an evaluation can use
  them as unseen tracks. Chosen by a file of ids or by a fraction (a stable hash of seed and id).

Deterministic for a seed with ``workers=1`` (gensim's own threads otherwise race); the result does not
depend on ``PYTHONHASHSEED`` (gensim's ``hashfxn`` is a stable CRC-32, not Python's salted ``hash``).
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from .common import epoch_callback, quiet_gensim, stable_hash
from .listens import (ListenReport, iter_playlists, iter_user_listens, read_mismatch_pairs, read_unique_tracks)
from .targets import write_targets

__all__ = ['Track2VecParams', 'ListeningSource', 'HashHoldOut', 'SetHoldOut', 'train_track2vec', 'read_held_out',
           'HELD_OUT_NAME']

log = logging.getLogger(__name__)

HELD_OUT_NAME = 'held_out.txt'


@dataclass
class Track2VecParams:
    """word2vec settings. ``min_count`` counts distinct users (playlists), not plays."""

    dim: int = 32
    window: int = 10
    min_count: int = 2
    epochs: int = 10
    seed: int = 0
    workers: int = 1
    max_repeat: int = 5
    negative: int = 5
    alpha: float = 0.025
    #: sentences are kept in memory (read once) when they hold at most this many tokens, else every
    #: pass re-reads the files; 0: always stream
    memory_tokens: int = 20_000_000


class HashHoldOut:
    """Holds out a stable ``fraction`` of track ids: those whose SHA-1 of ``"seed:id"`` falls below it.

    ``in`` tests membership and records the ids met in ``seen``.
    """

    def __init__(self, fraction: float, seed: int = 0):
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f'hold-out fraction must be in [0, 1), got {fraction}')
        self.fraction, self.seed = float(fraction), int(seed)
        self.seen = set()
        self._cache = {}

    def __contains__(self, track_id) -> bool:
        hit = self._cache.get(track_id)
        if hit is None:
            digest = hashlib.sha1(f'{self.seed}:{track_id}'.encode()).digest()
            hit = int.from_bytes(digest[:8], 'big') / 2.0 ** 64 < self.fraction
            self._cache[track_id] = hit
        if hit:
            self.seen.add(track_id)
        return hit


class SetHoldOut:
    """A fixed set of held-out ids that records the ids met in ``seen``."""

    def __init__(self, ids):
        self.ids = frozenset(ids)
        self.seen = set()

    def __contains__(self, track_id) -> bool:
        if track_id in self.ids:
            self.seen.add(track_id)
            return True
        return False


def read_held_out(path) -> list:
    """Track ids of a held-out list (one per line; blank lines and ``#`` comments skipped)."""
    with open(os.fspath(path), encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


class ListeningSource:
    """Listening data as a re-iterable stream of ``(name, [(track_id, count), …])``.

    Either Taste Profile files (``triplets`` + ``unique_tracks`` [+ ``mismatches``]) or a playlist file
    (``playlists``). ``held_out``: a container of track ids removed from every group (``None``: none).
    Each iteration re-reads the files and leaves its counts in :attr:`report`.
    """

    def __init__(self, *, triplets=None, unique_tracks=None, mismatches=None, playlists=None, held_out=None):
        if (triplets is None) == (playlists is None):
            raise ValueError('give either triplets (with unique_tracks) or playlists')
        if triplets is not None and unique_tracks is None:
            raise ValueError('triplets need unique_tracks (the song id -> track id table)')
        self.triplets, self.playlists = triplets, playlists
        self.held_out = held_out if held_out is not None else frozenset()
        self.song_tracks, self.unique_report = (read_unique_tracks(unique_tracks) if triplets is not None
                                                else ({}, None))
        self.mismatches, self.mismatch_report = (read_mismatch_pairs(mismatches) if mismatches else (set(), None))
        self.mismatched_tracks = frozenset(t for _, t in self.mismatches)
        self.report = ListenReport()

    @property
    def path(self) -> str:
        return os.fspath(self.triplets if self.triplets is not None else self.playlists)

    def __iter__(self):
        self.report = ListenReport(self.path)
        if self.triplets is not None:
            return iter_user_listens(self.triplets, self.song_tracks, self.mismatches, self.held_out, self.report)
        return iter_playlists(self.playlists, self.held_out, self.report, mismatched_tracks=self.mismatched_tracks)

    def describe(self) -> dict:
        """The input files, for ``targets.json``'s ``source``."""
        if self.triplets is not None:
            return {'triplets': os.path.abspath(self.triplets),
                    'unique_tracks': os.path.abspath(self.unique_report.path),
                    'mismatches': os.path.abspath(self.mismatch_report.path) if self.mismatch_report else None,
                    'mismatch_pairs': len(self.mismatches)}
        return {'playlists': os.path.abspath(self.playlists)}


class _Sentences:
    """The word2vec corpus: one token list per group, rare tracks removed (re-iterable)."""

    def __init__(self, source: ListeningSource, vocab: set, params: Track2VecParams, shuffle: bool):
        self.source, self.vocab, self.params, self.shuffle = source, vocab, params, shuffle

    def __iter__(self):
        p = self.params
        for number, (_, tracks) in enumerate(self.source):
            words = []
            for track, count in tracks:
                if track in self.vocab:
                    words.extend([track] * min(int(count), p.max_repeat))
            if len(words) < 2:
                continue
            if self.shuffle:
                rng = np.random.default_rng((p.seed, number))
                words = [words[i] for i in rng.permutation(len(words))]
            yield words


def count_listeners(source: ListeningSource, max_repeat: int = 5, progress: bool = False) -> tuple:
    """One pass over ``source``: ``({track_id: number of users (playlists) with it}, tokens)``, tokens
    being the sentence length summed over groups (play counts capped at ``max_repeat``)."""
    from tqdm import tqdm
    counts, tokens = {}, 0
    with tqdm(desc='counting listeners', unit=' user', disable=not progress, leave=False) as bar:
        for _, tracks in source:
            for track, count in tracks:
                counts[track] = counts.get(track, 0) + 1
                tokens += min(int(count), max_repeat)
            bar.update(1)
    return counts, tokens


def _fit(sentences, params: Track2VecParams, progress: bool):
    from gensim.models import Word2Vec
    from tqdm import tqdm
    model = Word2Vec(vector_size=params.dim, window=params.window, min_count=1, sg=1, negative=params.negative,
                     alpha=params.alpha, seed=params.seed, workers=params.workers, epochs=params.epochs,
                     sample=0.0, hashfxn=stable_hash)
    model.build_vocab(corpus_iterable=sentences)
    with tqdm(total=params.epochs, desc='word2vec', unit=' epoch', disable=not progress, leave=False) as bar:
        model.train(corpus_iterable=sentences, total_examples=model.corpus_count, epochs=params.epochs,
                    callbacks=[epoch_callback(bar)])
    return model


def train_track2vec(source: ListeningSource, out, params: Track2VecParams | None = None, *, overwrite=False,
                    progress=False) -> dict:
    """Learn one vector per track from ``source`` and write the target table ``out``.

    Returns
    -------
    dict
        Summary: ``tracks`` learned, ``rare`` listed, ``held_out_tracks`` met, the listening report's counts,
        ``seconds``, ``listens_per_s`` (kept listens x epochs / training time).

    Raises
    ------
    core.errors.MuseTagError
        Fewer than two tracks reach ``min_count`` (nothing to learn).
    """
    from core.errors import MuseTagError
    params = params or Track2VecParams()
    t0 = time.perf_counter()
    counts, tokens = count_listeners(source, params.max_repeat, progress)
    report = source.report
    log.info('%s', report.summary())
    vocab = {t for t, c in counts.items() if c >= params.min_count}
    if len(vocab) < 2:
        raise MuseTagError(f'{source.path}: only {len(vocab)} track(s) heard by at least {params.min_count} '
                           'users; lower --min-count or give more listening data')
    held = sorted(getattr(source.held_out, 'seen', ()))
    rare = [(t, c, f'heard by {c} user(s) < min-count {params.min_count}')
            for t, c in counts.items() if c < params.min_count]
    rare += [(t, 0, 'every play came through a mismatched song id (sid_mismatches)')
             for t in sorted(source.mismatched_tracks) if t not in counts and t not in held]
    rare.sort()
    t_train = time.perf_counter()
    sentences = _Sentences(source, vocab, params, shuffle=source.triplets is not None)
    if tokens <= params.memory_tokens:
        sentences = list(sentences)
    with quiet_gensim():
        model = _fit(sentences, params, progress)
    train_s = time.perf_counter() - t_train
    ids = sorted(vocab)
    vectors = np.stack([model.wv[t] for t in ids]).astype(np.float32)
    meta = {'kind': 'track2vec', 'key': 'track_id', 'params': asdict(params),
            'source': source.describe(), 'listening': report.as_dict(), 'rare_count': len(rare),
            'held_out_count': len(held), 'held_out_file': HELD_OUT_NAME,
            'sentences': 'user: tracks repeated by play count (capped at max_repeat), shuffled per user'
                         if source.triplets is not None else 'playlist: tracks in order'}
    write_targets(out, ids, vectors, meta, rare=rare, overwrite=overwrite,
                  extra_files={HELD_OUT_NAME: ''.join(t + '\n' for t in held)})
    return {'tracks': len(ids), 'rare': len(rare), 'held_out_tracks': len(held), **report.as_dict(),
            'seconds': time.perf_counter() - t0,
            'listens_per_s': report.listens * params.epochs / max(train_s, 1e-9)}
