"""The target table: one vector per track, the space a latent model learns to predict.

A target table is a folder::

    DIR/targets.npz    arrays ``track_ids`` (str [n]) and ``vectors`` (float32 [n, d])
    DIR/targets.json   {"kind": "doc2vec" | "track2vec" | "index-space" | …, "dim": d, "count": n,
                        "key": "track_id" | "index_id", "params": {…}, "created": ISO time,
                        "source": {…}, …}
    DIR/rare.csv       optional: track_id,count,reason — tracks too rare to learn (listed, not dropped)

It is written whole or not at all (a temporary folder renamed into place, under an
:class:`~core.locks.OutputLock`), and read with :func:`read_targets`. Format details: ``docs/latent.md``.

This module also owns the two small contracts every model trained towards a target space shares:
the output names of a latent run (:func:`latent_labels`) and the per-example weights CSV
(:func:`read_weights`, header ``track_id,weight``; ``musetag feedback export`` writes it).
"""
from __future__ import annotations

import csv
import datetime
import io
import logging
import math
import os
from dataclasses import dataclass, field

import numpy as np

from core.errors import MuseTagError
from core.files import atomic_dir, atomic_write_text, json_text, read_json
from core.locks import OutputLock

__all__ = ['TargetTable', 'write_targets', 'read_targets', 'read_rare', 'latent_labels', 'read_weights',
           'WeightsError', 'RARE_COLUMNS',
           'NPZ_NAME', 'JSON_NAME', 'RARE_NAME']

log = logging.getLogger(__name__)

NPZ_NAME = 'targets.npz'
JSON_NAME = 'targets.json'
RARE_NAME = 'rare.csv'
RARE_COLUMNS = ('track_id', 'count', 'reason')


@dataclass
class TargetTable:
    """A target table read from its folder.

    Attributes
    ----------
    track_ids : list[str]
        Row keys (track ids, or index ids when ``meta['key'] == 'index_id'``), unique, [n].
    vectors : numpy.ndarray
        float32 [n, d], row ``i`` belongs to ``track_ids[i]``.
    meta : dict
        The content of ``targets.json``.
    path : str
        The folder it was read from ('' if built in memory).
    """

    track_ids: list
    vectors: np.ndarray
    meta: dict = field(default_factory=dict)
    path: str = ''

    def __post_init__(self):
        self.index = {t: i for i, t in enumerate(self.track_ids)}

    @property
    def dim(self) -> int:
        """Vector dimension d."""
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.track_ids)

    def lookup(self, ids) -> tuple:
        """Vectors of ``ids`` in their order.

        Returns
        -------
        (vectors, missing)
            ``vectors``: float32 [m, d] for the m ids present (order of ``ids``, missing ones
            skipped); ``missing``: the ids absent from the table, in order.
        """
        rows, missing = [], []
        for t in ids:
            i = self.index.get(str(t))
            if i is None:
                missing.append(str(t))
            else:
                rows.append(i)
        vectors = self.vectors[np.asarray(rows, dtype=np.int64)] if rows else \
            np.zeros((0, self.dim), np.float32)
        return vectors.astype(np.float32, copy=False), missing


def _check_arrays(track_ids, vectors) -> tuple:
    ids = [str(t) for t in track_ids]
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f'target vectors must be a 2-D array [n, d], got shape {vectors.shape}')
    if len(ids) != vectors.shape[0]:
        raise ValueError(f'{len(ids)} track ids for {vectors.shape[0]} vectors')
    if len(set(ids)) != len(ids):
        seen, dup = set(), []
        for t in ids:
            if t in seen:
                dup.append(t)
            seen.add(t)
        raise ValueError(f'duplicate track ids in the target table: {dup[:5]}')
    if not np.isfinite(vectors).all():
        raise ValueError('target vectors contain NaN or infinite values')
    return ids, vectors


def _rare_csv(rare) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(RARE_COLUMNS)
    for row in rare:
        if isinstance(row, dict):
            row = (row['track_id'], row.get('count', 0), row.get('reason', ''))
        track_id, count, reason = row
        w.writerow((track_id, int(count), reason))
    return buf.getvalue()


def write_targets(out_dir, track_ids, vectors, meta: dict, rare=None, overwrite: bool = False,
                  extra_files: dict | None = None) -> str:
    """Write a target table folder atomically and return its path.

    Parameters
    ----------
    out_dir : path
        The folder to create (replaced whole with ``overwrite``).
    track_ids : sequence of str, [n]
    vectors : array-like, [n, d] (stored as float32)
    meta : dict
        Goes into ``targets.json``; must hold ``kind``; ``dim``, ``count`` are set from the arrays,
        ``key`` defaults to ``"track_id"``, ``created`` to now (UTC ISO), ``params``/``source`` to {}.
    rare : iterable of (track_id, count, reason) or dicts with those keys, optional
        Written to ``rare.csv`` when given (even if empty).
    extra_files : dict file name -> text, optional
        More files written into the folder with the table (e.g. ``held_out.txt``).

    Raises
    ------
    core.errors.OutputExistsError
        ``out_dir`` exists and ``overwrite`` is false.
    core.locks.LockedError
        Another job is writing ``out_dir``.
    ValueError
        Mismatched lengths, duplicate ids, non-finite values, no ``kind``.
    """
    ids, vectors = _check_arrays(track_ids, vectors)
    if not meta or not meta.get('kind'):
        raise ValueError('target table meta must name its "kind" (doc2vec, track2vec, index-space, …)')
    info = dict(meta)
    info['dim'] = int(vectors.shape[1])
    info['count'] = len(ids)
    info.setdefault('key', 'track_id')
    info.setdefault('params', {})
    info.setdefault('source', {})
    info.setdefault('created', datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
    text = json_text(info)   # fails on NaN before anything is written
    out_dir = os.fspath(out_dir)
    with OutputLock(out_dir), atomic_dir(out_dir, overwrite=overwrite) as tmp:
        with open(os.path.join(tmp, NPZ_NAME), 'wb') as f:
            np.savez(f, track_ids=np.asarray(ids, dtype=str), vectors=vectors)
        atomic_write_text(os.path.join(tmp, JSON_NAME), text)
        if rare is not None:
            atomic_write_text(os.path.join(tmp, RARE_NAME), _rare_csv(rare))
        for name, content in (extra_files or {}).items():
            atomic_write_text(os.path.join(tmp, os.path.basename(name)), content)
    log.info('wrote %d target vectors of dimension %d to %s', len(ids), info['dim'], out_dir)
    return out_dir


def read_targets(path) -> TargetTable:
    """Read the target table folder ``path``.

    Raises
    ------
    core.errors.MuseTagError
        The folder is missing, lacks ``targets.npz``/``targets.json``, or they are malformed or
        disagree (count, dimension), naming the folder and the fix.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise MuseTagError(f'{path}: no target table folder there (make one with `musetag latent '
                           'doc2vec` or `musetag latent track2vec`)')
    npz, js = os.path.join(path, NPZ_NAME), os.path.join(path, JSON_NAME)
    for f in (npz, js):
        if not os.path.isfile(f):
            raise MuseTagError(f'{path} is not a target table: {os.path.basename(f)} is missing '
                               '(a target table folder holds targets.npz and targets.json)')
    try:
        meta = read_json(js, 'target table metadata')
    except ValueError as e:
        raise MuseTagError(f'{path}: {e}') from None
    if not isinstance(meta, dict):
        raise MuseTagError(f'{js}: expected a JSON object')
    try:
        with np.load(npz, allow_pickle=False) as data:
            ids = [str(t) for t in data['track_ids'].tolist()]
            vectors = np.asarray(data['vectors'], dtype=np.float32)
    except (OSError, ValueError, KeyError) as e:
        raise MuseTagError(f'{npz}: not a readable target table ({e}); rewrite it') from None
    try:
        ids, vectors = _check_arrays(ids, vectors)
    except ValueError as e:
        raise MuseTagError(f'{npz}: {e}') from None
    for key, actual in (('count', len(ids)), ('dim', int(vectors.shape[1]))):
        if key in meta and int(meta[key]) != actual:
            raise MuseTagError(f'{path}: targets.json says {key} {meta[key]} but targets.npz holds {actual}')
    return TargetTable(ids, vectors, meta, path)


def read_rare(path) -> list:
    """Rows of ``rare.csv`` in a target table folder as dicts (track_id, count int, reason); [] if
    the folder has none."""
    f = os.path.join(os.fspath(path), RARE_NAME)
    if not os.path.isfile(f):
        return []
    with open(f, newline='', encoding='utf-8') as fh:
        return [{'track_id': r['track_id'], 'count': int(r['count']), 'reason': r['reason']}
                for r in csv.DictReader(fh)]


def latent_labels(dim: int) -> list:
    """Output names of a run regressing ``dim``-dimensional vectors: ``['dim_000', 'dim_001', …]``
    (``dim_1000`` past 999). The run directory's ``labels.json`` of a latent or image run."""
    return [f'dim_{i:03d}' for i in range(int(dim))]


class WeightsError(MuseTagError, ValueError):
    """A per-example weights CSV that cannot be used; the message names the file and the line."""


def read_weights(path: str) -> dict:
    """Read a per-example weights CSV → ``{track_id: weight}``.

    The header has ``track_id`` and ``weight`` (extra columns are ignored); a weight is a finite
    number >= 0; tracks not listed weigh 1.0 where the weights are used.

    Raises
    ------
    WeightsError
        Naming the file (and line): unreadable or not UTF-8, no ``track_id``/``weight`` column, an
        empty id, a weight that is not a finite number >= 0, or an id listed twice.
    """
    try:
        with open(path, encoding='utf-8', newline='') as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ('track_id', 'weight') if c not in (reader.fieldnames or [])]
            if missing:
                raise WeightsError(f'{path} has no {" and no ".join(missing)} column '
                                   f'(header: {",".join(reader.fieldnames or [])}); expected track_id,weight')
            weights = {}
            for line, row in enumerate(reader, start=2):
                tid = (row.get('track_id') or '').strip()
                if not tid:
                    raise WeightsError(f'{path} line {line}: empty track_id')
                if tid in weights:
                    raise WeightsError(f'{path} line {line}: track {tid} is listed twice')
                raw = (row.get('weight') or '').strip()
                try:
                    value = float(raw)
                except ValueError:
                    value = math.nan
                if not math.isfinite(value) or value < 0:
                    raise WeightsError(f'{path} line {line}: weight {raw!r} is not a finite number >= 0')
                weights[tid] = value
    except OSError as exc:
        raise WeightsError(f'cannot read {path}: {exc.strerror or exc}') from None
    except UnicodeDecodeError as exc:
        raise WeightsError(f'{path} is not UTF-8 text: {exc.reason}') from None
    return weights
