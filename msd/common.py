"""Shared plumbing of the ``msd`` commands: errors, provenance lines, CSV writing and reading.

Every file a ``python -m msd`` command writes

* starts (CSV files) with a provenance comment ``# musetag <command line>`` and, where a later step
  needs it, ``# key=value`` metadata lines (e.g. ``# root=/abs/audio/root`` in ``scan.csv``);
  read them with :func:`read_csv` (which skips only the leading comment lines) or, for the tables
  later stages read, :func:`msd.tables.read_table` (bad lines reported and skipped). Never with
  ``pandas.read_csv(path, comment='#')``: it cuts a row at a ``#`` inside a quoted file name;
* is written by :func:`msd.tables.write_table` through :func:`core.files.atomic_path` (a
  temporary file in the same directory, renamed into place when complete, with the permissions a
  plain ``open()`` gives), so a reader never sees half a file;
* is never silently replaced: an existing output is an error
  (:class:`core.errors.OutputExistsError`) unless ``overwrite=True`` (``--overwrite``).
"""
from __future__ import annotations

import csv
import os
import shlex
import sys

from core.errors import MuseTagError, OutputExistsError

__all__ = ['CSV_QUOTING', 'MsdError', 'OutputExistsError', 'command_line', 'provenance_lines', 'read_comments',
           'read_csv', 'require_columns', 'write_csv']

#: CSV dialect of every msd output: text fields quoted.
CSV_QUOTING = csv.QUOTE_NONNUMERIC


class MsdError(MuseTagError):
    """A user-facing problem (bad argument, unreadable input).

    The CLI prints its message and exits with status 2 instead of a traceback.
    """


def command_line(argv=None) -> str:
    """The current command as a shell-quoted string, for provenance comments.

    ``python -m msd scan --root x`` gives ``'python -m msd scan --root x'``.
    """
    argv = sys.argv if argv is None else argv
    prog = os.path.basename(argv[0]) if argv else 'python'
    head = 'python -m msd' if prog in ('__main__.py', '-m', '-c') or prog.startswith('__main__') else prog
    return head + (' ' + shlex.join(argv[1:]) if len(argv) > 1 else '')


def provenance_lines(command: str | None, meta: dict | None = None) -> list[str]:
    """Comment lines heading an output CSV: ``# musetag <command>`` then ``# key=value`` lines."""
    lines = [f'# musetag {command or command_line()}']
    for key, value in (meta or {}).items():
        lines.append(f'# {key}={value}')
    return [ln.replace('\n', ' ').replace('\r', ' ') for ln in lines]


def read_comments(path) -> tuple[list[str], dict]:
    """Leading ``#`` lines of a text file: (all lines without ``# ``, ``{key: value}`` metadata)."""
    lines, meta = [], {}
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            if not line.startswith('#'):
                break
            text = line[1:].strip()
            lines.append(text)
            if '=' in text and not text.startswith('musetag '):
                key, value = text.split('=', 1)
                meta[key.strip()] = value.strip()
    return lines, meta


def read_csv(path, **kwargs):
    """Read an msd CSV, skipping its leading comment lines (not ``#`` inside quoted fields).

    Raises :class:`MsdError` naming the file if it is missing or not a CSV.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MsdError(f'{path}: no such file')
    import pandas as pd
    n_comments = len(read_comments(path)[0])
    try:
        return pd.read_csv(path, skiprows=n_comments, **kwargs)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise MsdError(f'{path}: not a readable CSV ({e})') from None


def require_columns(df, columns, what: str) -> None:
    """Raise :class:`MsdError` if any of ``columns`` is missing from ``df``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MsdError(f'{what}: missing column(s) {", ".join(missing)} '
                       f'(found: {", ".join(map(str, df.columns))})')


def write_csv(df, path, *, command=None, meta=None, overwrite=False) -> None:
    """Write ``df`` atomically with provenance comment lines, text fields quoted: an msd table
    without a key column (:func:`msd.tables.write_table`, the one writer of this format)."""
    from .tables import write_table
    write_table(df, path, command=command, meta=meta, overwrite=overwrite, key=None)
