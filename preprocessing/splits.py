"""Persisted train/validation/test split manifests.

A split is a CSV (``track_id,split``) written once and read by every later stage, never derived
from directory-listing order (SPEC 10 item 2). Three ways to make one:

``by='artist'`` (default when the master CSV has artist ids)
    Every artist's tracks land in the same split (no artist leakage between train and test).
``by='track'``
    Independent per track.
``by='list'``
    Imported lists of track ids (one per line; extra tab/space/comma-separated columns ignored),
    e.g. the standard MSD split of Choi et al. used by musicnn, so results compare with published
    numbers.

The hash split is deterministic for a seed and *stable*: a track's split depends only on
``(seed, key)``, so adding tracks to the corpus never moves existing ones.
"""
from __future__ import annotations

import hashlib
import os
import re

import numpy as np
import pandas as pd

from preprocessing.io import atomic_write_text, read_master

__all__ = ['SPLITS', 'hash_unit', 'make_split', 'read_split_lists', 'read_splits', 'write_splits']

SPLITS = ('train', 'validation', 'test')
_TRACK_ID = re.compile(r'TR[A-Z0-9]{16}')


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


def make_split(master: pd.DataFrame, *, by='artist', ratios=(0.8, 0.1, 0.1), seed=0, lists=None):
    """Assign every master-CSV track to a split.

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
    """
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
            if 'artist_id' not in master.columns:
                raise ValueError("by='artist' needs an artist_id column in the master CSV (use --by track)")
            keys = master['artist_id'].fillna('').astype(str)
            # tracks without an artist id are their own "artist"
            keys = keys.where(keys != '', 'track:' + tids)
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


def write_splits(splits: pd.DataFrame, path, *, header=''):
    """Write ``track_id,split`` CSV atomically (``# header`` comment line first)."""
    text = splits[['track_id', 'split']].to_csv(index=False)
    atomic_write_text(path, (f'# {header}\n' if header else '') + text)


def read_splits(path) -> pd.DataFrame:
    """Read a split manifest, validating its columns and split names."""
    df = pd.read_csv(path, comment='#', dtype=str)
    missing = {'track_id', 'split'} - set(df.columns)
    if missing:
        raise ValueError(f'{path}: split manifest lacks column(s) {sorted(missing)}')
    bad = sorted(set(df['split']) - set(SPLITS))
    if bad:
        raise ValueError(f'{path}: unknown split name(s) {bad}; expected {list(SPLITS)}')
    if df['track_id'].duplicated().any():
        raise ValueError(f'{path}: track {df["track_id"][df["track_id"].duplicated()].iloc[0]} appears twice')
    return df


def split_command(args):
    """CLI body of ``python -m preprocessing split``."""
    master = read_master(args.master)
    if os.path.exists(args.out) and not args.overwrite:
        raise FileExistsError(f'{args.out} exists; pass --overwrite to replace it')
    by = args.by
    if by is None:
        by = 'artist' if 'artist_id' in master.columns and master['artist_id'].notna().any() else 'track'
    lists = read_split_lists(args.lists) if by == 'list' else None
    splits, report = make_split(master, by=by, ratios=args.ratios, seed=args.seed, lists=lists)
    write_splits(splits, args.out, header=f'musetag split --by {by} --ratios {" ".join(map(str, args.ratios))} --seed {args.seed}')
    extra = ''
    if by == 'list':
        extra = f'; {report["unlisted"]} master tracks in no list (dropped), {report["missing"]} listed tracks not in master'
    print(f'split ({by}): train {report["train"]}, validation {report["validation"]}, test {report["test"]}{extra} -> {args.out}')
    return report
