"""Persisted train/validation/test split manifests (``splits.csv``, format in ``docs/master-table.md``).

A split is a table (``track_id,split``) written once and read by every later stage, never derived
from the order of a directory listing. Three ways to make one:

``by='artist'`` (default when every track of the master table has an artist id)
    Every artist's tracks land in the same split (no artist leaks between train and test).
``by='track'``
    Independent per track (tracks of one artist may land in different splits).
``by='list'``
    Imported lists of track ids (one per line; extra tab/space/comma-separated columns ignored),
    e.g. the standard MSD split of Choi et al. used by musicnn, so results compare with published
    numbers.

The hash split is deterministic for a seed and *stable*: a track's split depends only on
``(seed, key)``, so adding tracks to the corpus never moves existing ones. With few artists the
hash split is coarse (44 tracks of 11 artists can leave a split empty): :func:`split_warnings`
names every split that ends up empty or far below its ratio.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re

import numpy as np

from core.errors import MuseTagError
from msd.tables import SPLIT_COLUMNS, BadLine, Table, read_table, write_table

__all__ = ['SPLITS', 'hash_unit', 'make_split', 'read_split_lists', 'read_splits', 'write_splits',
           'missing_artists', 'split_warnings', 'split_command']

log = logging.getLogger(__name__)

SPLITS = ('train', 'validation', 'test')
#: a split below this fraction of the tracks its ratio asks for is reported as tiny
TINY_FRACTION = 0.5


def hash_unit(keys, seed=0) -> np.ndarray:
    """Map strings to deterministic pseudo-uniform floats in [0, 1) (blake2b of ``seed:key``)."""
    out = np.empty(len(keys), dtype=np.float64)
    for i, key in enumerate(keys):
        digest = hashlib.blake2b(f'{seed}:{key}'.encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, 'big') / 2.0 ** 64
    return out


def read_split_lists(paths) -> dict:
    """Read three track-id list files (train, validation, test) into ``{split: [track_id, …]}``.

    Lines are stripped; empty lines and ``#`` comments are ignored; the first field of each line
    (split on tab, comma or whitespace) is the track id.
    """
    if len(paths) != 3:
        raise ValueError(f'--lists needs exactly 3 files (train, validation, test), got {len(paths)}')
    lists = {}
    for split, path in zip(SPLITS, paths):
        if not os.path.exists(path):
            raise FileNotFoundError(f'split list for {split} not found: {path}')
        ids = []
        with open(path, encoding='utf-8') as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith('#'):
                    continue
                ids.append(re.split(r'[\t,\s]+', line)[0])
        lists[split] = ids
    seen = {}
    for split, ids in lists.items():
        for tid in ids:
            if tid in seen and seen[tid] != split:
                raise ValueError(f'track {tid} is listed in both {seen[tid]} and {split}')
            seen[tid] = split
    return lists


def missing_artists(master) -> int:
    """Number of tracks of ``master`` (DataFrame) without an artist id (all of them if no column)."""
    if 'artist_id' not in master.columns:
        return len(master)
    ids = master['artist_id']
    return int((ids.isna() | (ids.astype(str).str.strip() == '')).sum())


def make_split(master, *, by='artist', ratios=(0.8, 0.1, 0.1), seed=0, lists=None):
    """Assign every master-table track to a split.

    Parameters
    ----------
    master : DataFrame with ``track_id`` (and ``artist_id`` for ``by='artist'``).
    by : {'artist', 'track', 'list'}
    ratios : three non-negative numbers (normalised to sum 1).
    lists : ``{split: [track_id…]}`` for ``by='list'``.

    Returns
    -------
    splits : DataFrame[track_id, split] in master order (tracks absent from the lists dropped).
    report : dict of counts (per split, and ``unlisted`` / ``missing`` for lists).

    Raises
    ------
    core.errors.MuseTagError
        ``by='artist'`` and some tracks have no artist id: an artist split could not keep their
        artists apart.
    """
    import pandas as pd
    if 'track_id' not in master.columns:
        raise ValueError('master CSV has no track_id column')
    tids = master['track_id'].astype(str)
    if tids.duplicated().any():
        dup = tids[tids.duplicated()].iloc[0]
        raise ValueError(f'master CSV lists track {dup} more than once')
    report = {}
    if by == 'list':
        if lists is None:
            raise ValueError("by='list' needs the three track-id lists")
        lookup = {tid: split for split, ids in lists.items() for tid in ids}
        split = tids.map(lookup)
        report['unlisted'] = int(split.isna().sum())
        report['missing'] = int(len(set(lookup) - set(tids)))
        out = pd.DataFrame({'track_id': tids, 'split': split}).dropna()
    else:
        r = np.asarray(ratios, dtype=np.float64)
        if r.shape != (3,) or (r < 0).any() or r.sum() <= 0:
            raise ValueError(f'--ratios needs three non-negative numbers, got {list(ratios)}')
        edges = np.cumsum(r / r.sum())
        if by == 'artist':
            lacking = missing_artists(master)
            if lacking:
                raise MuseTagError(
                    f'{lacking} of {len(master)} tracks have no artist id, so an artist split cannot keep their '
                    'artists apart: tracks of one artist could land in both train and test. Use --by track '
                    '(artists may then leak between splits) or give every track its artist_id.')
            keys = master['artist_id'].astype(str)
        elif by == 'track':
            keys = tids
        else:
            raise ValueError(f"unknown split method {by!r}; use 'artist', 'track' or 'list'")
        u = hash_unit(list(keys), seed)
        idx = np.minimum(np.searchsorted(edges, u, side='right'), 2)
        out = pd.DataFrame({'track_id': tids, 'split': np.asarray(SPLITS)[idx]})
    for s in SPLITS:
        report[s] = int((out['split'] == s).sum())
    return out.reset_index(drop=True), report


def split_warnings(report: dict, ratios) -> list:
    """Messages for every split that is empty or below :data:`TINY_FRACTION` of what its ratio asks.

    ``report`` is :func:`make_split`'s; ``ratios`` the three requested ratios (any scale).
    """
    total = sum(report[s] for s in SPLITS)
    r = np.asarray(ratios, dtype=np.float64)
    r = r / r.sum() if r.sum() > 0 else r
    out = []
    for s, want in zip(SPLITS, r):
        got = report[s]
        if want <= 0:
            continue
        if got == 0:
            out.append(f'the {s} split is empty (asked for {want:.0%} of {total} tracks)')
        elif got < TINY_FRACTION * want * total:
            out.append(f'the {s} split is tiny: {got} tracks, {got / total:.1%} of {total} where {want:.0%} '
                       'was asked for')
    return out


def write_splits(splits, path, *, command: str | None = None, overwrite: bool = True) -> None:
    """Write ``track_id,split`` atomically (normal permissions), ``# musetag <command>`` first."""
    write_table(splits[list(SPLIT_COLUMNS)], path, command=command, overwrite=overwrite, key='track_id')


def read_splits(path) -> Table:
    """Read a split manifest with the rules of ``master.csv`` (docs/master-table.md).

    Returns
    -------
    msd.tables.Table
        ``.frame`` holds the good rows (``track_id``, ``split``); ``.bad_lines`` every line
        skipped: wrong field count, unterminated quote, repeated track id, a split name other
        than train/validation/test, ….

    Raises
    ------
    ValueError
        No header with ``track_id`` and ``split``, or no good row at all (the first bad lines are
        named).
    """
    table = read_table(path, what='split manifest', required=SPLIT_COLUMNS, key='track_id',
                       text_columns=SPLIT_COLUMNS)
    frame = table.frame
    names = frame['split'].fillna('').astype(str).str.strip()
    unknown = ~names.isin(SPLITS)
    if unknown.any():
        for i in np.nonzero(unknown.to_numpy())[0]:
            table.bad_lines.append(BadLine(table.lines[i], f'unknown split {names.iloc[i]!r} (expected one of '
                                           f'{", ".join(SPLITS)})', f'{frame["track_id"].iloc[i]},{names.iloc[i]}'))
        table.bad_lines.sort(key=lambda b: b.line)
    keep = ~unknown.to_numpy()
    table.frame = frame.assign(split=names)[keep].reset_index(drop=True)
    table.lines = [n for n, k in zip(table.lines, keep) if k]
    if table.frame.empty:
        detail = '; '.join(map(str, table.bad_lines[:3]))
        raise ValueError(f'{path}: no usable row in the split manifest' + (f' ({detail})' if detail else ''))
    return table


# ---------------------------------------------------------------------------------------- command
def choose_method(master, by):
    """The split method for ``--by`` (None: artist when every track has an artist id).

    Returns ``(method, warning or None)``. Falling back to ``track`` is a warning stating that
    artists may then leak between splits; an explicit or implied artist split with tracks lacking
    artist ids raises :class:`~core.errors.MuseTagError` (from :func:`make_split`).
    """
    if by is not None:
        return by, None
    lacking = missing_artists(master)
    if lacking == len(master):
        return 'track', ('the master table has no artist ids: splitting by track (--by track), so tracks of one '
                         'artist may land in different splits and artists leak between train and test')
    return 'artist', None


def split_command(args) -> int:
    """CLI body of ``preprocessing split``: read the master table, split, write, report.

    Returns the exit code (0; 1 when bad master lines were skipped).
    """
    from core.files import check_output
    from msd.tables import read_master, report_bad_lines
    table = read_master(args.master)
    check_output(args.out, args.overwrite)
    report_bad_lines(table, 'master CSV')
    master = table.frame
    by, fallback = choose_method(master, args.by)
    if fallback:
        log.warning(fallback)
    lists = read_split_lists(args.lists) if by == 'list' else None
    splits, report = make_split(master, by=by, ratios=args.ratios, seed=args.seed, lists=lists)
    command = args.command_line + f' (--by {by})' if args.by is None else args.command_line
    write_splits(splits, args.out, command=command, overwrite=args.overwrite)
    total = len(splits)
    parts = ', '.join(f'{s} {report[s]} ({report[s] / total:.2f})' if total else f'{s} 0' for s in SPLITS)
    extra = ''
    if by == 'list':
        extra = (f'; {report["unlisted"]} master tracks in no list (dropped), {report["missing"]} listed tracks '
                 'not in the master table')
    elif by == 'artist':
        extra = f'; {master["artist_id"].nunique()} artists'
    if table.bad_lines:
        extra += f'; {len(table.bad_lines)} bad master line(s) skipped'
    reached = 'from the lists' if by == 'list' else 'ratios reached; asked ' + '/'.join(f'{r:g}' for r in args.ratios)
    for message in split_warnings(report, args.ratios) if by != 'list' else []:
        log.warning('%s%s', message, ' (few artists: an artist split moves whole artists)' if by == 'artist' else '')
    print(f'split ({by}): {parts} of {total} tracks ({reached}){extra} -> {args.out}')
    return 1 if table.bad_lines else 0
