"""Query the Last.fm tag database: the raw ``lastfm_tags.db`` or MuseTag's ``clean_tags.db``.

The raw DB is the Million Song Dataset's Last.fm dataset (<http://millionsongdataset.com/lastfm/>);
the clean DB has the same layout (``docs/clean-tag-db.md``). The query surface follows the Orpheus
project's ``LastFm`` / ``LastFm2Pandas`` (<https://github.com/pukkapies/urop2019>).

Schema (both DBs): ``tags(tag TEXT)`` and ``tids(tid TEXT)`` whose implicit ``rowid`` is the tag
number / track number, and ``tid_tag(tid INTEGER, tag INTEGER, val FLOAT)`` pairs of rowids with
Last.fm's tag strength ``val`` in [0, 100]. In a clean DB ``tids.tid`` is NULL for tracks without
any clean tag (rowids stay identical to the raw DB's).

Two classes with the same query surface:

* :class:`LastFm` runs one SQL query per call (bound parameters only): cheap to open, fine for
  a few look-ups.
* :class:`LastFmPandas` loads the three tables into memory once (from the DB, from the CSVs of
  :meth:`LastFm.to_csv`, or from DataFrames) and answers with vectorised pandas: use it for
  analysis over many tags/tracks.

Numbers are rowids everywhere (``tag_num``, ``tid_num``); ``threshold`` arguments keep only pairs
with ``val > threshold``. Unknown names or numbers raise ``KeyError``.

>>> lf = LastFm('clean_tags.db')                          # doctest: +SKIP
>>> lf.query_tags('TRAAAAW128F429D538')                   # ['rock', 'female', ...] strongest first
>>> lf.popularity().head()                                # tag, tag_num, count (distinct tracks)
>>> lf.with_tag('jazz')                                   # track ids
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import sqlite3

import numpy as np
import pandas as pd

from .common import MsdError

_CHUNK = 900  # SQLite's default limit is 999 bound parameters per statement


class LastFmSchemaError(MsdError):
    """The database does not have the tags/tids/tid_tag layout."""


def _is_seq(x):
    return isinstance(x, (list, tuple, np.ndarray, pd.Series, pd.Index))


def check_schema(conn, path) -> bool:
    """Raise :class:`LastFmSchemaError` unless the DB has tags(tag), tids(tid), tid_tag(tid, tag[, val]).

    Returns whether ``tid_tag`` has a ``val`` column.
    """
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as e:
        raise LastFmSchemaError(f'{path}: not an SQLite database ({e})') from None
    need = {'tags': ['tag'], 'tids': ['tid'], 'tid_tag': ['tid', 'tag']}
    for table, cols in need.items():
        if table not in tables:
            raise LastFmSchemaError(f'{path}: table {table!r} missing (tables: {sorted(tables)}); '
                                    'expected tags(tag), tids(tid), tid_tag(tid, tag, val)')
        have = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
        missing = [c for c in cols if c not in have]
        if missing:
            raise LastFmSchemaError(f'{path}: table {table!r} has columns {have}, missing {missing}')
    return 'val' in [r[1] for r in conn.execute('PRAGMA table_info("tid_tag")')]


def write_tables(conn, tags, tids, pairs):
    """Create and fill the Last.fm layout in the open connection ``conn`` (no commit).

    ``tags`` and ``tids`` are iterables of ``(rowid, text)`` (a ``None`` tid marks a track kept
    only for its number); ``pairs`` of ``(tid_rowid, tag_rowid, val)``. The one writer of the
    layout for the clean DB, the corpus generator and test/benchmark fixtures.
    """
    # spelled as in the published lastfm_tags.db
    conn.execute('CREATE TABLE tids (tid TEXT)')
    conn.execute('CREATE TABLE tags (tag TEXT)')
    conn.execute('CREATE TABLE tid_tag (tid INTEGER, tag INTEGER, val FLOAT)')
    conn.executemany('INSERT INTO tags(rowid, tag) VALUES (?, ?)', tags)
    conn.executemany('INSERT INTO tids(rowid, tid) VALUES (?, ?)', tids)
    conn.executemany('INSERT INTO tid_tag(tid, tag, val) VALUES (?, ?, ?)', pairs)
    # the published DB's indexes
    conn.execute('CREATE INDEX tid_tag_tid ON tid_tag(tid)')
    conn.execute('CREATE INDEX tid_tag_tag ON tid_tag(tag)')
    conn.execute('CREATE INDEX tags_tag ON tags(tag)')
    conn.execute('CREATE INDEX tids_tid ON tids(tid)')


@dataclasses.dataclass
class TagDB:
    """Clean tag vocabulary and per-track tag numbers read from a clean tag DB.

    Attributes
    ----------
    vocabulary : dict int -> str
        Clean tag number (the ``tags`` rowid) -> tag name.
    by_track : dict str -> list[int]
        Track id -> sorted distinct clean tag numbers.
    """
    vocabulary: dict
    by_track: dict


def load_clean_tags(path) -> TagDB:
    """Read ``tags``, ``tids`` and ``tid_tag`` of a clean tag DB (``python -m msd clean-tags``).

    Tracks whose ``tids.tid`` is NULL (no clean tag) and pairs naming a tag number missing from
    ``tags`` are left out.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (the message names it).
    ValueError
        If the file is not an SQLite DB with the expected tables and columns (naming the file).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f'clean tag DB not found: {path}')
    try:
        con = sqlite3.connect(pathlib.Path(path).resolve().as_uri() + '?mode=ro', uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            for table, cols in (('tags', {'tag'}), ('tids', {'tid'}), ('tid_tag', {'tid', 'tag'})):
                if table not in tables:
                    raise ValueError(f'{path}: clean tag DB has no table {table!r} (found {sorted(tables)})')
                have = {r[1] for r in con.execute(f'PRAGMA table_info({table})')}
                if not cols <= have:
                    raise ValueError(f'{path}: table {table} lacks column(s) {sorted(cols - have)}')
            vocab = {int(n): str(t) for n, t in con.execute('SELECT rowid, tag FROM tags ORDER BY rowid')}
            by_track = {}
            rows = con.execute('SELECT tids.tid, tid_tag.tag FROM tid_tag JOIN tids ON tid_tag.tid = tids.rowid '
                               'WHERE tids.tid IS NOT NULL')
            for tid, tag in rows:
                if tag in vocab:
                    by_track.setdefault(tid, set()).add(int(tag))
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise ValueError(f'{path}: not a readable SQLite tag DB ({e})') from None
    return TagDB(vocab, {tid: sorted(nums) for tid, nums in by_track.items()})


def connect_readonly(path):
    """Read-only sqlite3 connection to ``path`` (MsdError if missing)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MsdError(f'{path}: no such file')
    uri = pathlib.Path(path).resolve().as_uri() + '?mode=ro'
    try:
        return sqlite3.connect(uri, uri=True)
    except sqlite3.Error as e:
        raise MsdError(f'{path}: cannot open as SQLite ({e})') from None


class _DerivedQueries:
    """Queries both back ends derive from ``query_tags_dict`` (one definition, same semantics)."""

    def tid_tag_count(self, tids, threshold=None) -> dict:
        """``{tid: number of tags}`` (0 for unknown or untagged ids)."""
        return {t: len(v) for t, v in self.query_tags_dict(tids, threshold).items()}

    def tid_tag_count_filter(self, tids, min_tags, threshold=None) -> list:
        """The ids among ``tids`` with at least ``min_tags`` tags (input order)."""
        counts = self.tid_tag_count(tids, threshold)
        return [t for t in counts if counts[t] >= min_tags]


class LastFm(_DerivedQueries):
    """SQL-backed queries on a Last.fm tag DB.

    Parameters
    ----------
    path : str
        ``lastfm_tags.db`` or a clean DB.

    Raises
    ------
    LastFmSchemaError
        If the DB lacks the expected tables/columns.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._conn = connect_readonly(self.path)
        try:
            self.has_val = check_schema(self._conn, self.path)
        except Exception:
            self._conn.close()
            raise

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self):
        conn = getattr(self, '_conn', None)
        if conn is not None:
            conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def _q(self, sql, params=()):
        return self._conn.execute(sql, params).fetchall()

    def _val_clause(self, threshold, alias=''):
        if threshold is None:
            return '', ()
        if not self.has_val:
            raise MsdError(f'{self.path}: tid_tag has no val column; cannot filter by threshold')
        return f' AND {alias}val > ?', (float(threshold),)

    def _in_chunks(self, sql_head, values, sql_tail='', extra=()):
        """Run ``sql_head IN (?, …) sql_tail`` over ``values`` in chunks; concatenated rows."""
        rows = []
        values = list(values)
        for i in range(0, len(values), _CHUNK):
            chunk = values[i:i + _CHUNK]
            marks = ','.join('?' * len(chunk))
            rows.extend(self._q(f'{sql_head} IN ({marks}){sql_tail}', tuple(chunk) + tuple(extra)))
        return rows

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def n_tags(self) -> int:
        return self._q('SELECT COUNT(*) FROM tags WHERE tag IS NOT NULL')[0][0]

    @property
    def n_tids(self) -> int:
        return self._q('SELECT COUNT(*) FROM tids WHERE tid IS NOT NULL')[0][0]

    @property
    def n_pairs(self) -> int:
        return self._q('SELECT COUNT(*) FROM tid_tag')[0][0]

    # -- number <-> name ------------------------------------------------------------------------
    def _map(self, table, key, value, x, cast):
        if _is_seq(x):
            keys = [cast(v) for v in x]
            rows = dict(self._in_chunks(f'SELECT {key}, {value} FROM {table} WHERE {key}', keys))
            missing = [k for k in keys if k not in rows]
            if missing:
                raise KeyError(f'{missing[:5]} not in {table} of {self.path}')
            return [rows[k] for k in keys]
        rows = self._q(f'SELECT {value} FROM {table} WHERE {key} = ? ORDER BY rowid LIMIT 1', (cast(x),))
        if not rows or rows[0][0] is None:
            raise KeyError(f'{x!r} not in {table} of {self.path}')
        return rows[0][0]

    def tag_num_to_tag(self, tag_num):
        """Tag name(s) of tag number(s) (scalar -> str, sequence -> list)."""
        return self._map('tags', 'rowid', 'tag', tag_num, int)

    def tag_to_tag_num(self, tag):
        """Tag number(s) of tag name(s) (exact, case-sensitive)."""
        return self._map('tags', 'tag', 'rowid', tag, str)

    def tid_num_to_tid(self, tid_num):
        """Track id(s) of track number(s)."""
        return self._map('tids', 'rowid', 'tid', tid_num, int)

    def tid_to_tid_num(self, tid):
        """Track number(s) of track id(s)."""
        return self._map('tids', 'tid', 'rowid', tid, str)

    # -- listings -------------------------------------------------------------------------------
    def get_tags(self) -> list:
        """All tag names in tag-number order."""
        return [r[0] for r in self._q('SELECT tag FROM tags WHERE tag IS NOT NULL ORDER BY rowid')]

    def get_tag_nums(self) -> list:
        return [r[0] for r in self._q('SELECT rowid FROM tags WHERE tag IS NOT NULL ORDER BY rowid')]

    def get_tids(self) -> list:
        """All non-NULL track ids in track-number order."""
        return [r[0] for r in self._q('SELECT tid FROM tids WHERE tid IS NOT NULL ORDER BY rowid')]

    def get_tid_nums(self) -> list:
        return [r[0] for r in self._q('SELECT rowid FROM tids WHERE tid IS NOT NULL ORDER BY rowid')]

    def tagged_tids(self, threshold=None) -> list:
        """Track ids with at least one tag (``val > threshold`` if given), in track-number order."""
        clause, params = self._val_clause(threshold)
        # IN (subquery) builds one temporary index: fast even when tid_tag has no index on tid
        sql = ('SELECT tid FROM tids WHERE tid IS NOT NULL AND rowid IN '
               f'(SELECT tid FROM tid_tag WHERE 1{clause}) ORDER BY rowid')
        return [r[0] for r in self._q(sql, params)]

    def fetch_all_tids_tags(self, threshold=None) -> pd.DataFrame:
        """All pairs as DataFrame[tid, tag, val] of numbers (``val`` NaN if the DB has none)."""
        clause, params = self._val_clause(threshold)
        val = 'val' if self.has_val else 'NULL'
        df = pd.read_sql_query(f'SELECT tid, tag, {val} AS val FROM tid_tag WHERE 1{clause} '
                               'ORDER BY tid, tag', self._conn, params=params)
        return df.astype({'tid': 'int64', 'tag': 'int64', 'val': 'float64'})

    def fetch_all_tids_tags_threshold(self, threshold) -> pd.DataFrame:
        """Pairs with ``val > threshold`` (the Orpheus name of ``fetch_all_tids_tags(threshold)``)."""
        return self.fetch_all_tids_tags(threshold)

    # -- queries --------------------------------------------------------------------------------
    def tid_num_to_tag_nums(self, tid_num, threshold=None) -> list:
        """Tag numbers of one track number, strongest (highest val) first, ties by number."""
        clause, params = self._val_clause(threshold)
        order = 'val DESC, tag' if self.has_val else 'tag'
        return [r[0] for r in self._q(f'SELECT tag FROM tid_tag WHERE tid = ?{clause} ORDER BY {order}',
                                      (int(tid_num),) + params)]

    def query_tags(self, tid, threshold=None) -> list:
        """Tag names of one track id, strongest first; KeyError for an unknown track."""
        clause, params = self._val_clause(threshold, 'p.')
        order = 'p.val DESC, p.tag' if self.has_val else 'p.tag'
        num = self.tid_to_tid_num(tid)
        sql = (f'SELECT g.tag FROM tid_tag p JOIN tags g ON g.rowid = p.tag WHERE p.tid = ?{clause} '
               f'ORDER BY {order}')
        return [r[0] for r in self._q(sql, (num,) + params)]

    def query_tags_dict(self, tids, threshold=None) -> dict:
        """``{tid: [tag names]}`` for several track ids (unknown ids map to ``[]``)."""
        clause, params = self._val_clause(threshold, 'p.')
        order = 'p.val DESC, p.tag' if self.has_val else 'p.tag'
        tids = [str(t) for t in tids]
        out = {t: [] for t in tids}
        rows = self._in_chunks('SELECT t.tid, g.tag FROM tid_tag p JOIN tids t ON t.rowid = p.tid '
                               'JOIN tags g ON g.rowid = p.tag WHERE t.tid', tids,
                               f'{clause} ORDER BY t.rowid, {order}', params)
        for tid, tag in rows:
            out[tid].append(tag)
        return out

    def with_tag(self, tag, threshold=None) -> list:
        """Track ids carrying ``tag`` (name), in track-number order."""
        clause, params = self._val_clause(threshold, 'p.')
        num = self.tag_to_tag_num(tag)
        sql = ('SELECT t.tid FROM tid_tag p JOIN tids t ON t.rowid = p.tid '
               f'WHERE p.tag = ?{clause} AND t.tid IS NOT NULL GROUP BY t.rowid ORDER BY t.rowid')
        return [r[0] for r in self._q(sql, (num,) + params)]

    def popularity(self, threshold=None) -> pd.DataFrame:
        """DataFrame[tag, tag_num, count]: distinct tracks per tag, most popular first (ties by
        tag number), index = rank starting at 1. Tags without tracks are omitted."""
        clause, params = self._val_clause(threshold, 'p.')
        sql = ('SELECT g.tag AS tag, p.tag AS tag_num, COUNT(DISTINCT p.tid) AS count FROM tid_tag p '
               f'JOIN tags g ON g.rowid = p.tag WHERE 1{clause} GROUP BY p.tag ORDER BY count DESC, p.tag')
        df = pd.read_sql_query(sql, self._conn, params=params)
        df.index = pd.RangeIndex(1, len(df) + 1)
        return df.astype({'tag_num': 'int64', 'count': 'int64'})

    def to_csv(self, output_dir) -> list:
        """Dump the tables to ``lastfm_tags.csv`` (tag_num, tag), ``lastfm_tids.csv`` (tid_num, tid)
        and ``lastfm_tid_tag.csv`` (tid, tag, val) in ``output_dir``; returns the paths.

        The rowids are written explicitly, so :meth:`LastFmPandas.from_csv` restores them exactly.
        """
        os.makedirs(output_dir, exist_ok=True)
        paths = []
        for name, sql in (('tags', 'SELECT rowid AS tag_num, tag FROM tags ORDER BY rowid'),
                          ('tids', 'SELECT rowid AS tid_num, tid FROM tids ORDER BY rowid'),
                          ('tid_tag', 'SELECT tid, tag, {} AS val FROM tid_tag'.format(
                              'val' if self.has_val else 'NULL'))):
            path = os.path.join(output_dir, f'lastfm_{name}.csv')
            pd.read_sql_query(sql, self._conn).to_csv(path, index=False)
            paths.append(path)
        return paths


class LastFmPandas(_DerivedQueries):
    """In-memory version of :class:`LastFm` with the same methods and results.

    Build it with ``LastFmPandas(db_path)``, :meth:`from_csv` (files of :meth:`LastFm.to_csv`) or
    :meth:`from_frames`. ``tags``/``tids`` are Series indexed by rowid; ``tid_tag`` a DataFrame
    [tid, tag, val].
    """

    def __init__(self, path=None, *, tags=None, tids=None, tid_tag=None):
        if path is not None:
            self.path = os.fspath(path)
            conn = connect_readonly(self.path)
            try:
                has_val = check_schema(conn, self.path)
                tags = pd.read_sql_query('SELECT rowid AS num, tag FROM tags', conn).set_index('num')['tag']
                tids = pd.read_sql_query('SELECT rowid AS num, tid FROM tids', conn).set_index('num')['tid']
                val = 'val' if has_val else 'NULL'
                tid_tag = pd.read_sql_query(f'SELECT tid, tag, {val} AS val FROM tid_tag', conn)
            finally:
                conn.close()
        else:
            self.path = '<frames>'
            if tags is None or tids is None or tid_tag is None:
                raise ValueError('give a DB path or all of tags, tids, tid_tag')
            has_val = 'val' in tid_tag.columns and tid_tag['val'].notna().any()
        self.has_val = bool(has_val)
        self.tags = tags.astype(object).where(tags.notna(), None)
        self.tags.index = self.tags.index.astype('int64')
        self.tids = tids.astype(object).where(tids.notna(), None)
        self.tids.index = self.tids.index.astype('int64')
        tt = tid_tag.copy()
        if 'val' not in tt.columns:
            tt['val'] = np.nan
        self.tid_tag = tt[['tid', 'tag', 'val']].astype({'tid': 'int64', 'tag': 'int64', 'val': 'float64'})
        self.tid_tag = self.tid_tag.sort_values(['tid', 'tag'], kind='stable').reset_index(drop=True)
        tag_names = self.tags.dropna()
        self._tag_num = pd.Series(tag_names.index, index=tag_names.values)
        self._tag_num = self._tag_num[~self._tag_num.index.duplicated(keep='first')]
        tid_names = self.tids.dropna()
        self._tid_num = pd.Series(tid_names.index, index=tid_names.values)
        self._tid_num = self._tid_num[~self._tid_num.index.duplicated(keep='first')]

    @classmethod
    def from_frames(cls, tags, tids, tid_tag):
        """From Series ``tags``/``tids`` indexed by rowid and a DataFrame ``tid_tag`` [tid, tag, val]."""
        return cls(tags=tags, tids=tids, tid_tag=tid_tag)

    @classmethod
    def from_csv(cls, directory):
        """From the three CSVs written by :meth:`LastFm.to_csv` (explicit rowid columns)."""
        def read(name):
            p = os.path.join(directory, f'lastfm_{name}.csv')
            if not os.path.isfile(p):
                raise MsdError(f'{p}: no such file (write it with LastFm.to_csv)')
            return pd.read_csv(p, keep_default_na=False, na_values={'tid': [''], 'tag': [''], 'val': ['']})
        tags = read('tags').set_index('tag_num')['tag']
        tids = read('tids').set_index('tid_num')['tid']
        obj = cls(tags=tags.astype(object).where(tags != '', None),
                  tids=tids.astype(object).where(tids != '', None), tid_tag=read('tid_tag'))
        obj.path = os.fspath(directory)
        return obj

    # -- helpers --------------------------------------------------------------------------------
    def _pairs(self, threshold=None):
        if threshold is None:
            return self.tid_tag
        if not self.has_val:
            raise MsdError(f'{self.path}: tid_tag has no val column; cannot filter by threshold')
        return self.tid_tag[self.tid_tag['val'] > float(threshold)]

    @staticmethod
    def _lookup(series, x, cast, what):
        if _is_seq(x):
            keys = [cast(v) for v in x]
            got = series.reindex(keys)
            if got.isna().any():
                raise KeyError(f'{[k for k, g in zip(keys, got) if pd.isna(g)][:5]} not in {what}')
            return got.tolist()
        key = cast(x)
        if key not in series.index or series[key] is None:
            raise KeyError(f'{x!r} not in {what}')
        value = series[key]
        return value.item() if isinstance(value, np.generic) else value

    def close(self):
        """No-op (symmetry with :class:`LastFm`)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def n_tags(self) -> int:
        return int(self.tags.notna().sum())

    @property
    def n_tids(self) -> int:
        return int(self.tids.notna().sum())

    @property
    def n_pairs(self) -> int:
        return len(self.tid_tag)

    # -- number <-> name ------------------------------------------------------------------------
    def tag_num_to_tag(self, tag_num):
        return self._lookup(self.tags, tag_num, int, 'tags')

    def tag_to_tag_num(self, tag):
        return self._lookup(self._tag_num, tag, str, 'tags')

    def tid_num_to_tid(self, tid_num):
        return self._lookup(self.tids, tid_num, int, 'tids')

    def tid_to_tid_num(self, tid):
        return self._lookup(self._tid_num, tid, str, 'tids')

    # -- listings -------------------------------------------------------------------------------
    def get_tags(self) -> list:
        return self.tags.dropna().sort_index().tolist()

    def get_tag_nums(self) -> list:
        return self.tags.dropna().sort_index().index.tolist()

    def get_tids(self) -> list:
        return self.tids.dropna().sort_index().tolist()

    def get_tid_nums(self) -> list:
        return self.tids.dropna().sort_index().index.tolist()

    def tagged_tids(self, threshold=None) -> list:
        nums = np.unique(self._pairs(threshold)['tid'].to_numpy())
        names = self.tids.reindex(nums)
        return names[names.notna()].tolist()

    def fetch_all_tids_tags(self, threshold=None) -> pd.DataFrame:
        return self._pairs(threshold).reset_index(drop=True).copy()

    def fetch_all_tids_tags_threshold(self, threshold) -> pd.DataFrame:
        return self.fetch_all_tids_tags(threshold)

    # -- queries --------------------------------------------------------------------------------
    def _ordered(self, pairs):
        if self.has_val:
            return pairs.sort_values(['tid', 'val', 'tag'], ascending=[True, False, True], kind='stable')
        return pairs.sort_values(['tid', 'tag'], kind='stable')

    def tid_num_to_tag_nums(self, tid_num, threshold=None) -> list:
        p = self._pairs(threshold)
        return self._ordered(p[p['tid'] == int(tid_num)])['tag'].tolist()

    def query_tags(self, tid, threshold=None) -> list:
        nums = self.tid_num_to_tag_nums(self.tid_to_tid_num(tid), threshold)
        return self.tags.reindex(nums).tolist()

    def query_tags_dict(self, tids, threshold=None) -> dict:
        tids = [str(t) for t in tids]
        out = {t: [] for t in tids}
        nums = self._tid_num.reindex(tids).dropna().astype('int64')
        p = self._pairs(threshold)
        p = self._ordered(p[p['tid'].isin(nums.to_numpy())])
        names = self.tids.reindex(p['tid'].to_numpy()).to_numpy()
        tags = self.tags.reindex(p['tag'].to_numpy()).to_numpy()
        for tid, tag in zip(names, tags):
            out[tid].append(tag)
        return out

    def with_tag(self, tag, threshold=None) -> list:
        num = self.tag_to_tag_num(tag)
        p = self._pairs(threshold)
        nums = np.unique(p.loc[p['tag'] == num, 'tid'].to_numpy())
        names = self.tids.reindex(nums)
        return names[names.notna()].tolist()

    def popularity(self, threshold=None) -> pd.DataFrame:
        p = self._pairs(threshold).drop_duplicates(['tid', 'tag'])
        counts = p.groupby('tag').size()
        df = pd.DataFrame({'tag': self.tags.reindex(counts.index).to_numpy(),
                           'tag_num': counts.index.to_numpy(dtype='int64'),
                           'count': counts.to_numpy(dtype='int64')})
        df = df[df['tag'].notna()]
        df = df.sort_values(['count', 'tag_num'], ascending=[False, True], kind='stable')
        df.index = pd.RangeIndex(1, len(df) + 1)
        return df
