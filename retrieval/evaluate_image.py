"""How well an image run finds music for a picture: ``musetag index evaluate-image`` (``docs/images.md``).

Held-out pairs (``--split``, default ``test``: pictures of albums the run never saw) are the
queries. Each query picture is answered with ``k`` tracks of the index by three systems:

``image_run``         the picture encoded by the run, its ``k`` nearest index tracks (cosine) in the
                      space the run regressed (``embedding`` or ``tags``);
``colour_histogram``  the tracks of the training pairs whose pictures have the most similar colours
                      (:mod:`imagemusic.histogram`); it can never return the query's own track,
                      which is not a training pair;
``random``            ``k`` index tracks drawn at random (seeded): the chance level,

and scored with

``recall_at_k``     share of queries whose own track is among the ``k`` answers;
``precision_at_k``  share of answers that share at least one true tag with the query's track (over
                    the queries whose track has a true tag).

True tags come from the clean tag DB when ``--master`` and ``--tags`` are given (index tracks matched
to master.csv rows by their audio file), else from the index itself: each track's ``top_tags`` most
probable predicted tags (the report says which). Predicted tags make precision a measure of how
well the picture predicts what the *audio model* hears, not what listeners said.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from core.errors import MuseTagError

__all__ = ['Catalogue', 'catalogue_from_index', 'nearest', 'random_answers', 'score', 'evaluate_pairs',
           'evaluate_image_run', 'format_report', 'SYSTEMS']

log = logging.getLogger(__name__)

SYSTEMS = ('image_run', 'colour_histogram', 'random')


@dataclass
class Catalogue:
    """The tracks a query can be answered with.

    ``ids`` [n]; ``vectors`` float32 [n, d] in the image run's space; ``truth`` {id: set of tags}
    (tracks without true tags absent); ``truth_source`` says where the tags came from.
    """
    ids: list
    vectors: np.ndarray
    truth: dict
    truth_source: str


def catalogue_from_index(index, space: str, *, master=None, tags_db=None, top_tags: int = 3) -> Catalogue:
    """Every track of ``index`` with its vector in ``space`` and its true tags (module docstring)."""
    tracks = index.tracks()
    ids = [t.id for t in tracks]
    vectors, _ = index.stores[space].get(ids)
    if master and tags_db:
        from retrieval.evaluate import labelled_tracks
        labelled, labels, _ = labelled_tracks(index, master=master, tags_db=tags_db)
        truth = {t.id: set(tags) for t, (tags, _, _) in zip(labelled, labels)}
        source = f'clean tag DB {os.path.abspath(tags_db)} (via {os.path.abspath(master)})'
    else:
        names = index.labels
        truth = {}
        for t in tracks:
            top = np.argsort(-np.asarray(t.probs), kind='stable')[:top_tags]
            truth[t.id] = {names[i] for i in top}
        source = f'the index\'s top {top_tags} predicted tags of each track'
    return Catalogue(ids, np.asarray(vectors, np.float32), truth, source)


def nearest(queries, vectors, ids, k: int) -> list:
    """The ``k`` ids nearest (cosine) each query: queries [q, d], vectors [n, d] -> q lists of ids."""
    def unit(v):
        v = np.asarray(v, np.float64)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    scores = unit(queries) @ unit(vectors).T
    order = np.argsort(-scores, axis=1, kind='stable')[:, :k]
    return [[ids[j] for j in row] for row in order]


def random_answers(n_queries: int, ids, k: int, seed: int) -> list:
    """``k`` distinct ids drawn at random for each of ``n_queries`` queries (seeded)."""
    rng = np.random.default_rng(seed)
    return [[ids[j] for j in rng.permutation(len(ids))[:k]] for _ in range(n_queries)]


def score(answers: list, own: list, truth: dict) -> dict:
    """``recall_at_k`` and ``precision_at_k`` (module docstring) of ``answers`` (lists of ids) to queries
    whose own tracks are ``own``."""
    recall = [o in a for a, o in zip(answers, own)]
    precision = [np.mean([bool(truth[o] & truth.get(t, set())) for t in a]) if a else 0.0
                 for a, o in zip(answers, own) if truth.get(o)]
    return {'recall_at_k': float(np.mean(recall)) if recall else None,
            'precision_at_k': float(np.mean(precision)) if precision else None,
            'queries': len(recall), 'tagged_queries': len(precision)}


def _pictures(pairs: list, size: int) -> tuple:
    """Decoded pictures float32 [n, size, size, 3] of ``pairs`` and the pairs kept (bad ones logged)."""
    from imagemusic.data import picture_array
    from imagemusic.pictures import PictureError
    arrays, kept = [], []
    for p in pairs:
        try:
            with open(p.image, 'rb') as fh:
                arrays.append(picture_array(fh.read(), size))
            kept.append(p)
        except (OSError, PictureError) as exc:
            log.warning('pair left out: picture %s: %s', p.image, exc)
    return (np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.float32)), kept


def evaluate_pairs(encoder, pairs_dir, catalogue: Catalogue, *, split: str = 'test', k: int = 10,
                   seed: int = 0) -> dict:
    """Score the image run, the colour histogram and random answers on the ``split`` pairs of
    ``pairs_dir`` (module docstring); JSON-ready dict."""
    from imagemusic.data import read_pairs
    from imagemusic.histogram import HistogramBaseline
    pairs = read_pairs(pairs_dir)
    known = set(catalogue.ids)
    queries = [p for p in pairs if p.split == split and p.track_id in known]
    training = [p for p in pairs if p.split == 'train']
    unknown = sum(1 for p in pairs if p.split == split and p.track_id not in known)
    x, queries = _pictures(queries, encoder.image_size)
    train_x, training = _pictures(training, encoder.image_size)
    if not queries:
        raise MuseTagError(f'{pairs_dir}: no usable pair of split {split!r} whose track is in the index '
                           f'({unknown} pair(s) of that split name tracks the index lacks)')
    if not training:
        raise MuseTagError(f'{pairs_dir}: no usable training pair for the colour-histogram baseline')
    k = min(k, len(catalogue.ids))
    own = [p.track_id for p in queries]
    answers = {'image_run': nearest(encoder.encode_arrays(x), catalogue.vectors, catalogue.ids, k),
               'colour_histogram': HistogramBaseline(train_x, [p.track_id for p in training]).query(x, k),
               'random': random_answers(len(queries), catalogue.ids, k, seed)}
    return {'pairs': os.path.abspath(os.fspath(pairs_dir)), 'run': os.path.abspath(encoder.run_dir),
            'space': encoder.space, 'split': split, 'k': k, 'seed': seed, 'truth': catalogue.truth_source,
            'n_queries': len(queries), 'n_training_pairs': len(training), 'n_catalogue': len(catalogue.ids),
            'n_not_in_index': unknown, 'systems': {name: score(a, own, catalogue.truth) for name, a in answers.items()}}


def evaluate_image_run(index_dir, pairs_dir, run_dir, *, split: str = 'test', k: int = 10, seed: int = 0,
                       master=None, tags_db=None, top_tags: int = 3) -> dict:
    """Open the index and the image run, then :func:`evaluate_pairs`; the report names the index."""
    from imagemusic.encode import load_image_encoder
    from retrieval.index import Index
    encoder = load_image_encoder(run_dir)
    index = Index.open(index_dir)
    try:
        if encoder.dim != index.stores[encoder.space].dim:
            raise MuseTagError(f'image run {run_dir} predicts {encoder.dim}-dimensional {encoder.space} vectors, '
                               f'the index {index_dir} stores {index.stores[encoder.space].dim}')
        catalogue = catalogue_from_index(index, encoder.space, master=master, tags_db=tags_db, top_tags=top_tags)
    finally:
        index.close()
    report = evaluate_pairs(encoder, pairs_dir, catalogue, split=split, k=k, seed=seed)
    return {'index': os.path.abspath(os.fspath(index_dir)), **report}


def format_report(report: dict) -> str:
    """A table: one row per system."""
    k = report['k']

    def f(x):
        return '-' if x is None else f'{x:.3f}'
    rows = [f'{"system":<17} {"recall@" + str(k):>10} {"P@" + str(k) + " tags":>10}']
    for name, m in report['systems'].items():
        rows.append(f'{name:<17} {f(m["recall_at_k"]):>10} {f(m["precision_at_k"]):>10}')
    rows.append(f'{report["n_queries"]} {report["split"]} pictures against {report["n_catalogue"]} index tracks in the '
                f'{report["space"]} space; true tags: {report["truth"]}')
    return '\n'.join(rows)
