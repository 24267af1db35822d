"""Build the clean tag DB from the raw Last.fm DB (layout and columns: ``docs/clean-tag-db.md``).

A re-implementation of the Orpheus project's ``lastfm_cleaning.py``
(<https://github.com/pukkapies/urop2019>) that keeps ``val``, never repeats a (track, tag) pair and
numbers the tags reproducibly.

``python -m msd clean-tags --lastfm lastfm_tags.db --out clean_tags.db [--min-count 2000]
[--pool-min-count 10] [--val-threshold 0] [--combine a,b]… [--drop x]… [--lists DIR]``

Steps: load the raw DB once (pandas); raw popularity = distinct tracks per raw tag over all pairs;
:func:`msd.tagclean.map_tags` decides raw tag -> clean tag; the pairs are filtered by strength
(``val > val_threshold``), mapped, and merged so each (track, clean tag) pair appears once with
``val`` = the maximum of the merged raw values; every step is vectorised (NumPy/pandas), no per-tag SQL.

Output ``clean_tags.db`` (same layout as the raw DB, so :class:`msd.lastfm.LastFm` reads both):

* ``tags(tag TEXT)`` — **numbering rule**: rowid = rank by clean popularity, i.e. the number of
  distinct tracks carrying the clean tag after the strength filter, descending; ties broken by tag
  name (ascending). Clean tags left with no track are omitted. The rule depends only on the data
  and the cleaning settings, so the numbering is reproducible.
* ``tids(tid TEXT)`` — rowids identical to the raw DB's; ``tid`` is NULL for tracks without any
  clean tag.
* ``tid_tag(tid INTEGER, tag INTEGER, val FLOAT)`` — no duplicate (tid, tag) pairs (repeats would
  inflate the popularity counts that choose the training tags).
* ``meta(key TEXT, value TEXT)`` — the settings and list checksums that produced the DB.

``tag_map.csv`` (next to the DB unless ``--tag-map`` says otherwise) lists raw tag -> clean tag for
audit: raw_tag, raw_tag_num, raw_count, clean_tag, clean_tag_num, kind, status, rule, clean_count
(:func:`tag_map_table`).
"""
from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import time

import numpy as np
import pandas as pd

from core.files import atomic_path, check_output

from .common import MsdError, command_line, write_csv
from .lastfm import check_schema, connect_readonly, write_tables
from .tagclean import CuratedLists, map_tags

log = logging.getLogger(__name__)

NUMBERING_RULE = 'clean popularity (distinct tracks after the val filter) descending, ties by tag name'


def load_raw(path):
    """Read a raw Last.fm DB into memory.

    Returns
    -------
    tags : pandas.Series
        Tag name by raw tag_num (rowid).
    tids : pandas.Series
        Track id by raw tid_num (rowid).
    pairs : pandas.DataFrame
        tid, tag (int64 rowids), val (float64; NaN if the DB has no val column).
    has_val : bool
    """
    conn = connect_readonly(path)
    try:
        has_val = check_schema(conn, path)
        try:
            tags = pd.read_sql_query('SELECT rowid AS num, tag FROM tags', conn).set_index('num')['tag']
            tids = pd.read_sql_query('SELECT rowid AS num, tid FROM tids', conn).set_index('num')['tid']
            cur = conn.execute('SELECT tid, tag, {} FROM tid_tag'.format('val' if has_val else 'NULL'))
            rows = cur.fetchall()
        except (sqlite3.Error, ValueError) as e:
            raise MsdError(f'{path}: cannot read the tag tables ({e})') from None
    finally:
        conn.close()
    try:
        # fast path: numbers (and NULL -> NaN) straight into one float array
        arr = np.array(rows, dtype=np.float64).reshape(-1, 3)
        pairs = pd.DataFrame({'tid': arr[:, 0], 'tag': arr[:, 1], 'val': arr[:, 2]})
    except (TypeError, ValueError):
        # text or blobs where numbers belong: coerce per column, bad cells become NaN (dropped below)
        tid, tag, val = zip(*rows)
        pairs = pd.DataFrame({'tid': pd.to_numeric(pd.Series(tid, dtype=object), errors='coerce'),
                              'tag': pd.to_numeric(pd.Series(tag, dtype=object), errors='coerce'),
                              'val': pd.to_numeric(pd.Series(val, dtype=object), errors='coerce')})
    bad_num = (pairs['tid'] % 1 != 0) | (pairs['tag'] % 1 != 0)
    pairs.loc[bad_num, ['tid', 'tag']] = np.nan
    bad = pairs['tid'].isna() | pairs['tag'].isna()
    known = pairs['tid'].isin(tids.index) & pairs['tag'].isin(tags[tags.notna()].index)
    n_bad = int((bad | ~known).sum())
    if n_bad:
        log.warning('%s: %d tid_tag rows reference missing tracks/tags or are not numbers; ignored',
                       path, n_bad)
        pairs = pairs[~bad & known]
    pairs = pairs.astype({'tid': 'int64', 'tag': 'int64', 'val': 'float64'}).reset_index(drop=True)
    return tags, tids, pairs, has_val


def raw_popularity(tags: pd.Series, pairs: pd.DataFrame) -> pd.DataFrame:
    """DataFrame[tag_num, tag, count]: distinct tracks per raw tag (tags without pairs: count 0)."""
    uniq = pairs[['tid', 'tag']].drop_duplicates()
    counts = uniq.groupby('tag').size()
    t = tags[tags.notna()]
    return pd.DataFrame({'tag_num': t.index.to_numpy(dtype='int64'), 'tag': t.to_numpy(dtype=object),
                         'count': counts.reindex(t.index, fill_value=0).to_numpy(dtype='int64')})


class CleanResult:
    """What :func:`clean_tags` produced: the final tags (in number order), counts and the summary."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return f'CleanResult({self.summary})'


def apply_mapping(mapping, tags, tids, pairs, has_val, val_threshold):
    """Map raw pairs to clean pairs (see module docstring).

    Returns
    -------
    names : list of str
        Clean tag names; position + 1 = clean tag number.
    counts : np.ndarray int64
        Distinct tracks per clean tag (same order).
    clean : pandas.DataFrame
        tid (raw rowid), tag (clean number), val; unique (tid, tag), sorted.
    stats : dict
    """
    raw_to_clean = mapping.raw_to_clean()
    provisional = sorted(mapping.groups)  # any fixed order; renumbered by popularity below
    pos = {name: i + 1 for i, name in enumerate(provisional)}
    max_tag = int(max(tags.index.max() if len(tags) else 0, pairs['tag'].max() if len(pairs) else 0))
    lut = np.zeros(max_tag + 1, dtype=np.int64)
    for num, name in raw_to_clean.items():
        if 0 <= num <= max_tag:
            lut[num] = pos[name]
    stats = {'raw_pairs': len(pairs)}
    if has_val and val_threshold is not None and val_threshold > -math.inf:
        keep = pairs['val'].to_numpy() > val_threshold
        stats['below_val'] = int((~keep).sum())
        p = pairs[keep]
    else:
        stats['below_val'] = 0
        p = pairs
    ctag = lut[p['tag'].to_numpy()]
    mapped = ctag > 0
    stats['unmapped'] = int((~mapped).sum())
    tid = p['tid'].to_numpy()[mapped]
    ctag = ctag[mapped]
    val = p['val'].to_numpy()[mapped]
    n_before = len(tid)
    df = pd.DataFrame({'tid': tid, 'tag': ctag, 'val': val})
    # max val per (tid, tag); NaN vals (DB without val) stay NaN
    df = df.groupby(['tid', 'tag'], sort=False, as_index=False)['val'].max()
    stats['merged_duplicates'] = n_before - len(df)
    counts = np.bincount(df['tag'].to_numpy(), minlength=len(provisional) + 1)[1:]
    order = sorted(range(len(provisional)), key=lambda i: (-counts[i], provisional[i]))
    order = [i for i in order if counts[i] > 0]
    names = [provisional[i] for i in order]
    renum = np.zeros(len(provisional) + 1, dtype=np.int64)
    for new, i in enumerate(order, 1):
        renum[i + 1] = new
    df['tag'] = renum[df['tag'].to_numpy()]
    df = df.sort_values(['tid', 'tag'], kind='stable').reset_index(drop=True)
    stats['empty_tags'] = [provisional[i] for i in range(len(provisional)) if counts[i] == 0]
    return names, counts[order].astype('int64'), df, stats


def write_clean_db(path, names, tids, clean, meta, overwrite=False):
    """Write the clean DB (schema in the module docstring) atomically."""
    tagged = np.unique(clean['tid'].to_numpy())
    tid_values = tids.where(tids.index.isin(tagged), None)
    with atomic_path(path, overwrite) as tmp:
        conn = sqlite3.connect(tmp)
        try:
            conn.execute('PRAGMA journal_mode=OFF')
            conn.execute('PRAGMA synchronous=OFF')
            vals = clean['val'].astype(object).where(clean['val'].notna(), None).tolist()
            write_tables(conn, enumerate(names, 1),
                         zip(tid_values.index.tolist(),
                             tid_values.astype(object).where(tid_values.notna(), None).tolist()),
                         zip(clean['tid'].tolist(), clean['tag'].tolist(), vals))
            conn.execute('CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)')
            conn.executemany('INSERT INTO meta(key, value) VALUES (?, ?)',
                             [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in meta.items()])
            conn.commit()
        finally:
            conn.close()
        # make sure the temp file survives the context manager's cleanup check: it is renamed there
        if not os.path.exists(tmp):
            raise MsdError(f'failed to write {path}')


def tag_map_table(mapping, names, counts) -> pd.DataFrame:
    """``tag_map.csv`` rows (columns and order in docs/clean-tag-db.md) from the mapping and the
    final clean tags ``names`` (in number order) with their track ``counts``."""
    num_of = {n: i for i, n in enumerate(names, 1)}
    count_of = dict(zip(names, counts.tolist()))
    table = mapping.table.copy()
    table['clean_tag_num'] = pd.array([num_of.get(n) for n in table['clean_tag']], dtype='Int64')
    table['clean_count'] = pd.array([count_of.get(n) for n in table['clean_tag']], dtype='Int64')
    empty = table['clean_tag'].notna() & table['clean_tag_num'].isna()
    table.loc[empty, 'status'] = 'empty'
    table = table[['raw_tag', 'raw_tag_num', 'raw_count', 'clean_tag', 'clean_tag_num', 'kind',
                   'status', 'rule', 'clean_count']]
    return table.assign(_m=table['clean_tag_num'].isna()).sort_values(
        ['_m', 'clean_tag_num', 'raw_count', 'raw_tag_num'], ascending=[True, True, False, True],
        kind='stable').drop(columns='_m').reset_index(drop=True)


def clean_tags(lastfm, out, *, tag_map=None, lists=None, min_count=2000, pool_min_count=10,
               val_threshold=0.0, unlisted='drop', overwrite=False, command=None) -> CleanResult:
    """Clean the raw DB ``lastfm`` into ``out`` (+ ``tag_map.csv``); see the module docstring.

    Parameters
    ----------
    lastfm : str
        Raw ``lastfm_tags.db``.
    out : str
        Clean DB to write.
    tag_map : str, optional
        Audit CSV; default ``tag_map.csv`` next to ``out``.
    lists : CuratedLists, optional
        Default: the shipped lists (``CuratedLists.load()``).
    min_count, pool_min_count : int
        Tracks needed to be a genre target / a merged variant.
    val_threshold : float
        Keep pairs with ``val > val_threshold`` (default 0 drops the val-0 pairs; ``-inf`` keeps
        all, NULL vals included; ignored with a warning for a DB without ``val``).
    unlisted : {'drop', 'keep'}
        Candidates in neither genre list.

    Returns
    -------
    CleanResult
        ``names`` (clean tags in number order), ``counts``, ``n_pairs``, ``n_tracks``,
        ``mapping`` (TagMapping), ``tag_map`` (DataFrame), ``summary``.
    """
    t0 = time.perf_counter()
    out = os.fspath(out)
    tag_map = os.fspath(tag_map) if tag_map else os.path.join(os.path.dirname(os.path.abspath(out)),
                                                              'tag_map.csv')
    if val_threshold is None or (isinstance(val_threshold, float) and math.isnan(val_threshold)):
        raise MsdError('--val-threshold must be a number')
    check_output(out, overwrite)
    check_output(tag_map, overwrite)
    lists = lists if lists is not None else CuratedLists.load()
    tags, tids, pairs, has_val = load_raw(lastfm)
    if not has_val and val_threshold > -math.inf:
        if val_threshold > 0:
            raise MsdError(f'{lastfm}: tid_tag has no val column, so --val-threshold {val_threshold} '
                           'cannot be applied')
        log.warning('%s: tid_tag has no val column; no strength filter, clean val is NULL', lastfm)
    pop = raw_popularity(tags, pairs)
    mapping = map_tags(pop, lists, min_count=min_count, pool_min_count=pool_min_count, unlisted=unlisted)
    names, counts, clean, stats = apply_mapping(mapping, tags, tids, pairs, has_val, val_threshold)
    if stats['empty_tags']:
        log.info('clean tags without any track after the val filter (omitted): %s',
                    ', '.join(stats['empty_tags'][:20]))
    meta = {'command': command or command_line(), 'source_db': os.path.abspath(lastfm),
            'min_count': min_count, 'pool_min_count': pool_min_count,
            'val_threshold': val_threshold if math.isfinite(val_threshold) else str(val_threshold),
            'unlisted': unlisted, 'numbering': NUMBERING_RULE, 'lists': lists.sources,
            'combine': lists.combine, 'drop': lists.drop}
    write_clean_db(out, names, tids, clean, meta, overwrite)

    table = tag_map_table(mapping, names, counts)
    write_csv(table, tag_map, command=command or command_line(), overwrite=overwrite)

    n_tracks = int(clean['tid'].nunique())
    kinds = [mapping.kinds.get(n, 'genre') for n in names]
    st = table['status'].value_counts()
    summary = (f'clean-tags: {len(tags)} raw tags -> {len(names)} clean tags '
               f'({kinds.count("genre")} genre/mood, {kinds.count("vocal")} vocal; '
               f'{int(st.get("variant", 0))} variants merged, {int(st.get("rejected", 0))} rejected, '
               f'{int(st.get("unreviewed", 0))} unreviewed, {int(st.get("dropped", 0))} dropped); '
               f'{stats["raw_pairs"]} raw pairs -> {len(clean)} clean pairs '
               f'({stats["below_val"]} with val <= {val_threshold:g} or NULL, {stats["merged_duplicates"]} '
               f'duplicates merged) over {n_tracks} tracks in {time.perf_counter() - t0:.2f} s -> {out}')
    return CleanResult(names=names, counts=counts, n_pairs=len(clean), n_tracks=n_tracks,
                       mapping=mapping, tag_map=table, stats=stats, summary=summary, out=out,
                       tag_map_path=tag_map)
