"""Track vectors from tags (shufl): gensim Doc2Vec over each track's clean tags.

Each track is one document whose words are its clean tags. Last.fm's tag strength ``val`` (0-100)
becomes a repetition weight: a tag is written ``round(val / 10) + 1`` times (1 to 11 copies), so a
strongly applied tag counts more than a weak one; a DB without ``val`` gives every tag one copy.
The copies are in a fixed order (tag name, then copies), which does not matter to the model used:
PV-DBOW (``dm=0``), which predicts a document's words from its vector and ignores word order.

* ``min_count`` applies to tags (total copies over all tracks); a rarer tag is dropped from
  every document. A track left without any tag (or without a clean tag at all when ``--master``
  names it) gets no vector: it is listed in ``rare.csv`` with the reason.
* Deterministic for a seed with ``workers=1`` (gensim's threads race otherwise), whatever
  ``PYTHONHASHSEED``: gensim seeds its vectors from the seed and the word or document key through
  ``hashfxn``, which is a stable hash here (CRC-32 of the UTF-8 key), not Python's salted ``hash``.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import asdict, dataclass

import numpy as np

from core.errors import MuseTagError

from .common import epoch_callback, quiet_gensim, stable_hash
from .targets import write_targets

__all__ = ['Doc2VecParams', 'read_tag_documents', 'tag_copies', 'train_doc2vec']

log = logging.getLogger(__name__)


@dataclass
class Doc2VecParams:
    """Doc2Vec settings (PV-DBOW, negative sampling)."""

    dim: int = 40
    epochs: int = 40
    min_count: int = 2
    seed: int = 0
    workers: int = 1
    negative: int = 5
    alpha: float = 0.025


def tag_copies(val) -> int:
    """How many times a tag of Last.fm strength ``val`` (0-100; None: unknown) is repeated: 1 to 11."""
    if val is None:
        return 1
    return int(round(min(max(float(val), 0.0), 100.0) / 10.0)) + 1


def read_tag_documents(tags_db) -> dict:
    """``{track_id: [(tag, val or None), …]}`` from a clean tag DB (tags sorted by name; the
    strongest ``val`` if a pair repeats). Tracks with no clean tag are absent.

    Raises
    ------
    core.errors.MuseTagError
        The file is missing or not a tag DB (naming it).
    """
    from msd.lastfm import check_schema, connect_readonly
    path = os.fspath(tags_db)
    conn = connect_readonly(path)
    try:
        has_val = check_schema(conn, path)
        sql = ('SELECT tids.tid, tags.tag, {} FROM tid_tag JOIN tids ON tid_tag.tid = tids.rowid '
               'JOIN tags ON tid_tag.tag = tags.rowid WHERE tids.tid IS NOT NULL').format(
            'tid_tag.val' if has_val else 'NULL')
        docs = {}
        for tid, tag, val in conn.execute(sql):
            if tag is None:
                continue
            d = docs.setdefault(str(tid), {})
            prev = d.get(tag)
            d[tag] = val if prev is None else max(prev, val if val is not None else prev)
    except sqlite3.DatabaseError as e:
        raise MuseTagError(f'{path}: not a readable clean tag DB ({e})') from None
    finally:
        conn.close()
    return {tid: sorted(d.items()) for tid, d in docs.items()}


def _documents(tag_docs: dict, track_ids, min_count: int) -> tuple:
    """(words per kept track [(track_id, [words])], rare rows, tag vocabulary size)."""
    totals = {}
    for tid in track_ids:
        for tag, val in tag_docs.get(tid, ()):
            totals[tag] = totals.get(tag, 0) + tag_copies(val)
    vocab = {t for t, c in totals.items() if c >= min_count}
    kept, rare = [], []
    for tid in track_ids:
        tags = tag_docs.get(tid)
        if not tags:
            rare.append((tid, 0, 'no clean tag'))
            continue
        words = [w for tag, val in tags if tag in vocab for w in [tag] * tag_copies(val)]
        if not words:
            rare.append((tid, len(tags), f'every tag is below min-count {min_count}'))
            continue
        kept.append((tid, words))
    return kept, rare, len(vocab)


class _TaggedDocs:
    """Re-iterable gensim corpus of TaggedDocument(words, [track_id])."""

    def __init__(self, kept):
        self.kept = kept

    def __iter__(self):
        from gensim.models.doc2vec import TaggedDocument
        for tid, words in self.kept:
            yield TaggedDocument(words, [tid])


def _fit(kept, params: Doc2VecParams, progress: bool):
    from gensim.models.doc2vec import Doc2Vec
    from tqdm import tqdm
    model = Doc2Vec(vector_size=params.dim, dm=0, min_count=1, negative=params.negative, alpha=params.alpha,
                    seed=params.seed, workers=params.workers, epochs=params.epochs, sample=0.0,
                    hashfxn=stable_hash)
    corpus = _TaggedDocs(kept)
    model.build_vocab(corpus_iterable=corpus)
    with tqdm(total=params.epochs, desc='doc2vec', unit=' epoch', disable=not progress, leave=False) as bar:
        model.train(corpus_iterable=corpus, total_examples=model.corpus_count, epochs=params.epochs,
                    callbacks=[epoch_callback(bar)])
    return model


def train_doc2vec(tags_db, out, params: Doc2VecParams | None = None, *, track_ids=None, overwrite=False,
                  progress=False, source: dict | None = None) -> dict:
    """One vector per track from its clean tags; write the target table ``out``.

    Parameters
    ----------
    tags_db : the clean tag DB.
    track_ids : tracks to learn (e.g. master.csv's); None: every track with a clean tag. Listed
        tracks without usable tags go to ``rare.csv``.

    Returns
    -------
    dict
        ``tracks`` learned, ``rare`` listed, ``tags`` in the vocabulary, ``seconds``,
        ``tracks_per_s`` (tracks x epochs / training time).
    """
    params = params or Doc2VecParams()
    t0 = time.perf_counter()
    tag_docs = read_tag_documents(tags_db)
    ids = sorted(tag_docs) if track_ids is None else list(dict.fromkeys(str(t) for t in track_ids))
    kept, rare, n_tags = _documents(tag_docs, ids, params.min_count)
    if len(kept) < 2:
        raise MuseTagError(f'{tags_db}: only {len(kept)} track(s) with tags of min-count {params.min_count}; '
                           'nothing to learn (lower --min-count, or check --master names tracks of this DB)')
    if rare:
        log.warning('%d track(s) without a usable tag get no vector (listed in %s/rare.csv)', len(rare), out)
    t_train = time.perf_counter()
    with quiet_gensim():
        model = _fit(kept, params, progress)
    train_s = time.perf_counter() - t_train
    learned = [tid for tid, _ in kept]
    vectors = np.stack([model.dv[tid] for tid in learned]).astype(np.float32)
    meta = {'kind': 'doc2vec', 'key': 'track_id', 'params': asdict(params),
            'source': dict(source or {}, tags=os.path.abspath(os.fspath(tags_db))),
            'weights': 'each tag repeated round(val / 10) + 1 times (Last.fm strength val in 0-100)',
            'model': 'gensim Doc2Vec PV-DBOW (dm=0)', 'tags': n_tags, 'rare_count': len(rare)}
    write_targets(out, learned, vectors, meta, rare=rare, overwrite=overwrite)
    return {'tracks': len(learned), 'rare': len(rare), 'tags': n_tags, 'seconds': time.perf_counter() - t0,
            'tracks_per_s': len(learned) * params.epochs / max(train_s, 1e-9)}
