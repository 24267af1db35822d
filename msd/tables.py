"""The dataset tables: ``master.csv`` (one row per usable track) and ``splits.csv`` (track -> split).

One module owns their format (``docs/master-table.md``): :func:`write_master` / :func:`write_table`
write it and :func:`read_master` / :func:`read_table` read it, for ``msd build``, the preprocessing
stage and any dataset adapter that produces the same contract.

A table file is UTF-8 text:

* leading comment lines, before the header only: ``# musetag <command line>`` (provenance) and
  ``# key=value`` metadata, e.g. ``# audio_root=/abs/path/to/audio`` (the folder ``file_path`` is
  relative to);
* a CSV header line, then one record per line; text fields are quoted (``csv.QUOTE_NONNUMERIC``),
  so a ``#`` or a comma inside a title or a file name (``clip-005 #x.mp3``) is part of the field.
  A record never spans lines: the writer replaces line breaks inside text fields by spaces.

The reader never lets a bad line become a row: a line with the wrong number of fields, an
unterminated quote, no track id, a non-number in a numeric column, bytes that are not UTF-8, a
repeated track id, or a ``#`` line after the header is skipped and returned in
:attr:`Table.bad_lines` with its line number and reason, for the caller to report and count.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import os
import re

from core.files import atomic_path

__all__ = ['MASTER_COLUMNS', 'MASTER_TEXT_COLUMNS', 'SPLIT_COLUMNS', 'BadLine', 'Table', 'read_table', 'read_master',
           'write_table', 'write_master', 'report_bad_lines']

log = logging.getLogger(__name__)

#: Columns of ``master.csv`` as ``msd build`` writes them, in order (docs/master-table.md).
MASTER_COLUMNS = ('track_id', 'song_id', 'track_7digitalid', 'artist_id', 'artist_name', 'title', 'release',
                  'year', 'duration', 'file_path', 'audio_path', 'file_size', 'channels', 'sample_rate',
                  'bitrate', 'clip_length', 'effective_clip_length', 'audio_start', 'audio_end',
                  'mid_silence_length', 'non_silence_length', 'max_silence_length', 'silence_percentage')
#: Master columns read as text (every other column of MASTER_COLUMNS is a number).
MASTER_TEXT_COLUMNS = ('track_id', 'song_id', 'artist_id', 'artist_name', 'title', 'release', 'file_path',
                       'audio_path')
#: Columns of ``splits.csv``.
SPLIT_COLUMNS = ('track_id', 'split')

_KEY = re.compile(r'^[A-Za-z_][A-Za-z0-9_.-]*$')
_PROVENANCE = 'musetag '


@dataclasses.dataclass(frozen=True)
class BadLine:
    """A line of a table file that was skipped.

    Attributes
    ----------
    line : int
        1-based line number in the file.
    reason : str
        What is wrong with it (``2 fields, expected 23``, ``unterminated quote``, …).
    text : str
        The start of the line (up to 80 characters), for the report.
    """
    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f'line {self.line}: {self.reason}: {self.text!r}'


@dataclasses.dataclass
class Table:
    """A table file as read by :func:`read_table`.

    Attributes
    ----------
    frame : pandas.DataFrame
        The good rows in file order. Text columns hold ``str`` (``NaN`` where empty), numeric
        columns numbers.
    meta : dict str -> str
        The ``# key=value`` lines.
    provenance : str or None
        The command of the ``# musetag <command>`` line.
    bad_lines : list of BadLine
        Every line skipped, in file order.
    path : str
    lines : list of int
        The file line number of each row of ``frame``.
    """
    frame: object
    meta: dict
    provenance: str | None
    bad_lines: list
    path: str
    lines: list = dataclasses.field(default_factory=list)

    @property
    def audio_root(self) -> str | None:
        """The ``# audio_root=`` folder as an absolute path (relative values are relative to the
        table's own folder), or None if the table records none."""
        root = (self.meta.get('audio_root') or '').strip()
        if not root:
            return None
        return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(self.path)), os.path.expanduser(root)))


# ------------------------------------------------------------------------------------------ reading
def _parse_comment(text: str, meta: dict):
    """One leading ``#`` line -> provenance command or None (``key=value`` lines go into ``meta``)."""
    body = text[1:].strip()
    if body.startswith(_PROVENANCE) or body == _PROVENANCE.strip():
        return body[len(_PROVENANCE):].strip()
    key, sep, value = body.partition('=')
    if sep and _KEY.match(key.strip()):
        meta[key.strip()] = value.strip()
    return None


def _split_line(text: str):
    """One record line -> list of fields, or raise ``csv.Error`` (e.g. an unterminated quote)."""
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error as e:
        if 'unexpected end of data' in str(e):
            raise csv.Error('unterminated quote') from None
        raise


def _header(fields, path, what, required):
    if not fields or all(not f.strip() for f in fields):
        raise ValueError(f'{path}: {what} has no header line')
    names = [f.strip() for f in fields]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup or '' in names:
        problem = f'repeated column(s) {dup}' if dup else 'an empty column name'
        raise ValueError(f'{path}: {what} header has {problem}')
    missing = [c for c in required if c not in names]
    if missing:
        raise ValueError(f'{path}: {what} lacks column(s) {missing} (found: {", ".join(names)})')
    return names


def _read_lines(path, what, required, key):
    """Pass over the file: comments, header, records. Returns (names, rows, line numbers, meta,
    provenance, bad lines); rows are lists of str."""
    meta, provenance, bad = {}, None, []
    names, rows, numbers, first_line_of = None, [], [], {}
    with open(path, 'rb') as f:
        for number, raw in enumerate(f, 1):
            try:
                text = raw.decode('utf-8')
            except UnicodeDecodeError as e:
                bad.append(BadLine(number, f'not UTF-8 text ({e.reason} at byte {e.start})',
                                   raw[:80].decode('utf-8', 'replace')))
                continue
            if number == 1:
                text = text.lstrip('\ufeff')
            text = text.rstrip('\r\n')
            if names is None:
                if text.startswith('#'):
                    command = _parse_comment(text, meta)
                    provenance = provenance if command is None else command
                    continue
                if not text.strip():
                    continue
                try:
                    names = _header(_split_line(text), path, what, required)
                except csv.Error as e:
                    raise ValueError(f'{path}: {what} header line {number} is not CSV ({e})') from None
                k = names.index(key) if key in names else None
                continue
            if not text.strip():
                continue
            if text.startswith('#'):
                bad.append(BadLine(number, "'#' line after the header (comments go before it)", text[:80]))
                continue
            try:
                fields = _split_line(text)
            except csv.Error as e:
                bad.append(BadLine(number, str(e), text[:80]))
                continue
            if len(fields) != len(names):
                bad.append(BadLine(number, f'{len(fields)} field(s), expected {len(names)}', text[:80]))
                continue
            if k is not None:
                ident = fields[k].strip()
                if not ident:
                    bad.append(BadLine(number, f'no {key}', text[:80]))
                    continue
                if ident in first_line_of:
                    bad.append(BadLine(number, f'{key} {ident} repeats line {first_line_of[ident]}', text[:80]))
                    continue
                first_line_of[ident] = number
                fields[k] = ident
            rows.append(fields)
            numbers.append(number)
    if names is None:
        raise ValueError(f'{path}: {what} has no header line' + (' (only comments)' if meta or provenance else ''))
    return names, rows, numbers, meta, provenance, bad


def _to_frame(names, rows, numbers, text_columns, numeric_columns):
    """Rows of str -> (DataFrame, line numbers of its rows, bad lines).

    A non-number in a numeric column makes its line bad."""
    import pandas as pd

    def column(j, keep=None):
        values = [r[j] if r[j] != '' else None for r in rows]
        return pd.Series(values if keep is None else [values[i] for i in keep], dtype=object)

    bad_rows = {}
    for j, name in enumerate(names):
        if name in numeric_columns:
            raw = column(j)
            wrong = pd.to_numeric(raw, errors='coerce').isna() & raw.notna()
            for i in wrong.to_numpy().nonzero()[0]:
                bad_rows.setdefault(int(i), f'column {name}: {raw[i]!r} is not a number')
    keep = [i for i in range(len(rows)) if i not in bad_rows] if bad_rows else None
    columns = {}
    for j, name in enumerate(names):
        series = column(j, keep)
        if name in text_columns:
            columns[name] = series
        elif name in numeric_columns:
            columns[name] = pd.to_numeric(series)
        else:   # a column the contract does not know: numbers if every value is one, else text
            num = pd.to_numeric(series, errors='coerce')
            columns[name] = series if (num.isna() & series.notna()).any() else num
    bad = [BadLine(numbers[i], reason, ','.join(rows[i])[:80]) for i, reason in sorted(bad_rows.items())]
    lines = numbers if keep is None else [numbers[i] for i in keep]
    return pd.DataFrame(columns, columns=names), lines, bad


def read_table(path, *, what: str = 'table', required=('track_id',), key: str | None = 'track_id',
               text_columns=(), numeric_columns=()) -> Table:
    """Read a table file (see the module docstring; format in ``docs/master-table.md``).

    Parameters
    ----------
    path : local path.
    what : noun for messages (``'master CSV'``).
    required : columns the header must have.
    key : a column whose value must be present and unique (None: no check); later repeats are bad
        lines.
    text_columns : columns kept as text; ``key`` and ``required`` always are.
    numeric_columns : columns that must hold numbers (a line with anything else is bad); other
        columns become numbers when every value is one.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        No header, or the header lacks a required column (nothing usable in the file).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}' if not os.path.exists(path) else f'{path} is not a file')
    names, rows, numbers, meta, provenance, bad = _read_lines(path, what, required, key)
    text = set(text_columns) | set(required) | ({key} if key else set())
    frame, lines, bad_values = _to_frame(names, rows, numbers, text, set(numeric_columns) - text)
    bad = sorted(bad + bad_values, key=lambda b: b.line)
    return Table(frame, meta, provenance, bad, path, lines)


def read_master(path, *, required=('track_id',)) -> Table:
    """Read ``master.csv`` (``msd build``): :class:`Table` with the rows, the ``# key=value``
    metadata (``audio_root``) and the bad lines skipped (docs/master-table.md).

    ``track_id`` must be present and unique; the :data:`MASTER_TEXT_COLUMNS` are text, the other
    :data:`MASTER_COLUMNS` numbers.
    """
    numeric = [c for c in MASTER_COLUMNS if c not in MASTER_TEXT_COLUMNS]
    return read_table(path, what='master CSV', required=required, key='track_id',
                      text_columns=MASTER_TEXT_COLUMNS, numeric_columns=numeric)


def report_bad_lines(table: Table, what: str | None = None, limit: int = 10) -> None:
    """Log the bad lines of ``table`` as warnings: every one up to ``limit``, then a count."""
    if not table.bad_lines:
        return
    name = what or os.path.basename(table.path)
    log.warning('%s: %d bad line(s) skipped', table.path, len(table.bad_lines))
    for b in table.bad_lines[:limit]:
        log.warning('%s %s', name, b)
    if len(table.bad_lines) > limit:
        log.warning('%s: … and %d more bad line(s)', name, len(table.bad_lines) - limit)


# ------------------------------------------------------------------------------------------ writing
def _header_lines(command, meta) -> list:
    from .common import command_line, provenance_lines
    for key in meta or {}:
        if not _KEY.match(str(key)):
            raise ValueError(f'metadata key {key!r}: use letters, digits, _ . - (starting with a letter or _)')
    return provenance_lines(command or command_line(), meta)


def write_table(df, path, *, command: str | None = None, meta: dict | None = None, overwrite: bool = False,
                key: str | None = 'track_id') -> None:
    """Write ``df`` as a table file, atomically, with the permissions of a plain ``open()``.

    The file starts with ``# musetag <command>`` (default: this process's command line) and one
    ``# key=value`` line per ``meta`` item; text fields are quoted and line breaks inside them
    become spaces, so every record is one line (docs/master-table.md).

    Raises
    ------
    core.errors.OutputExistsError
        ``path`` exists and ``overwrite`` is false.
    ValueError
        ``key`` is missing, empty or repeated, or a metadata key is not a plain name.
    """
    if key is not None:
        if key not in df.columns:
            raise ValueError(f'cannot write {path}: no {key} column')
        ids = df[key].astype(str).str.strip()
        if df[key].isna().any() or (ids == '').any():
            raise ValueError(f'cannot write {path}: a row has no {key}')
        if ids.duplicated().any():
            raise ValueError(f'cannot write {path}: {key} {ids[ids.duplicated()].iloc[0]} appears twice')
    lines = _header_lines(command, meta)
    from pandas.api.types import is_numeric_dtype
    out = df.copy()
    for name in out.columns:
        if not is_numeric_dtype(out[name]):
            out[name] = out[name].map(lambda v: v.replace('\r\n', ' ').replace('\n', ' ').replace('\r', ' ')
                                      if isinstance(v, str) else v)
    with atomic_path(path, overwrite) as tmp:
        with open(tmp, 'w', encoding='utf-8', newline='') as f:
            f.write(''.join(line + '\n' for line in lines))
            out.to_csv(f, index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator='\n')


def write_master(df, path, *, command: str | None = None, meta: dict | None = None, overwrite: bool = False) -> None:
    """Write ``master.csv``: :func:`write_table` with the master's checks.

    ``df`` needs ``track_id`` (unique) and ``file_path`` (relative to ``meta['audio_root']``)
    and/or ``audio_path`` (absolute); ``msd build`` writes :data:`MASTER_COLUMNS` in that order and
    records ``audio_root`` in ``meta``.
    """
    if 'file_path' not in df.columns and 'audio_path' not in df.columns:
        raise ValueError(f'cannot write {path}: a master table needs a file_path or an audio_path column')
    write_table(df, path, command=command, meta=meta, overwrite=overwrite, key='track_id')
