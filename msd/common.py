"""Shared plumbing of the ``msd`` commands: errors, provenance lines, safe output files, CSV reading.

Every file a ``python -m msd`` command writes

* starts (CSV files) with a provenance comment ``# musetag <command line>`` and, where a later step
  needs it, ``# key=value`` metadata lines (e.g. ``# root=/abs/audio/root`` in ``scan.csv``);
  read them with :func:`read_csv` (or ``pandas.read_csv(path, comment='#')``: every text field is
  quoted, so a ``#`` inside a title never truncates a row);
* is written to a temporary file in the same directory and renamed into place when complete, so a
  reader never sees half a file;
* is never silently replaced: an existing output is an error unless ``overwrite=True``
  (``--overwrite``).
"""
from __future__ import annotations

import contextlib
import csv
import logging
import os
import shlex
import sys
import tempfile

logger = logging.getLogger('msd')

#: CSV dialect of every msd output: text fields quoted (so ``comment='#'`` readers are safe).
CSV_QUOTING = csv.QUOTE_NONNUMERIC


class MsdError(Exception):
    """A user-facing problem (bad argument, unreadable input, existing output).

    The CLI prints its message and exits with status 2 instead of a traceback.
    """


class OutputExistsError(MsdError):
    """An output file exists and ``overwrite`` was not requested."""


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


def check_output(path, overwrite: bool) -> None:
    """Raise :class:`OutputExistsError` if ``path`` exists and ``overwrite`` is false.

    Also checks that the parent directory exists or can be created.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise MsdError(f'{path} is a directory; give a file name for the output')
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(f'{path} exists; pass --overwrite to replace it')
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise MsdError(f'cannot create the output directory {parent}: {e}') from None


@contextlib.contextmanager
def atomic_path(path, overwrite: bool = False):
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file is removed if the block raises. ``overwrite`` is checked before and again
    at rename time (another process may have written the file in the meantime).
    """
    path = os.fspath(path)
    check_output(path, overwrite)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=directory)
    os.close(fd)
    try:
        yield tmp
        if os.path.exists(path) and not overwrite:
            raise OutputExistsError(f'{path} appeared while writing; pass --overwrite to replace it')
        # mkstemp makes the file private (0600); give it the permissions a plain open() would
        umask = os.umask(0o022)
        os.umask(umask)
        if os.path.exists(tmp):
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    """Write ``df`` atomically with provenance comment lines, text fields quoted."""
    with atomic_path(path, overwrite) as tmp:
        with open(tmp, 'w', encoding='utf-8', newline='') as f:
            for line in provenance_lines(command, meta):
                f.write(line + '\n')
            df.to_csv(f, index=False, quoting=CSV_QUOTING, lineterminator='\n')


def setup_logging(verbosity: int = 0) -> None:
    """Plain ``logging`` to stderr: INFO by default, DEBUG with ``-v``, WARNING with ``-q``."""
    level = logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter('msd %(levelname)s: %(message)s'))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
