"""Parsers for the MSD track-id lists: ``sid_mismatches.txt`` and ``msd_duplicates.txt``.

Both are published with the Million Song Dataset (<http://millionsongdataset.com>): the first lists
Taste-Profile song/track matching errors, the second groups tracks that are the same song.

Both parsers are tolerant: a line they cannot use is counted and reported (the first few line numbers
in the log), never an exception, so one corrupt line does not stop a build.

* Mismatches: every line should be ``ERROR: <SO… TR…> Artist - Title != Artist - Title``; the track
  id is the first ``TR`` + 16 upper-case letters/digits on the line.
* Duplicates: ``#`` lines are comments; a line starting with ``%`` opens a group; each following
  line names a member by its first ``TR…`` id. Member lines before any ``%`` line and lines
  without a track id are malformed.
"""
from __future__ import annotations

import logging
import os
import re

from .common import MsdError

log = logging.getLogger(__name__)

TRACK_ID_RE = re.compile(r'\bTR[A-Z0-9]{16}\b')


class ListReport:
    """Malformed-line bookkeeping of a list parser: ``n_bad`` and the first line numbers."""

    def __init__(self, path):
        self.path = path
        self.n_lines = 0
        self.bad_lines = []
        self.n_bad = 0

    def bad(self, lineno):
        self.n_bad += 1
        if len(self.bad_lines) < 10:
            self.bad_lines.append(lineno)

    def log(self):
        if self.n_bad:
            log.warning('%s: %d malformed line(s) ignored (first at line(s) %s)', self.path,
                           self.n_bad, ', '.join(map(str, self.bad_lines)))


def _lines(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MsdError(f'{path}: no such file')
    with open(path, encoding='utf-8', errors='replace') as f:
        yield from enumerate(f, 1)


def read_mismatches(path):
    """Track ids listed in a ``sid_mismatches.txt``-style file.

    Returns
    -------
    ids : list of str
        In file order, without repeats.
    report : ListReport
    """
    report = ListReport(os.fspath(path))
    ids, seen = [], set()
    for lineno, line in _lines(path):
        report.n_lines += 1
        if not line.strip() or line.startswith('#'):
            continue
        m = TRACK_ID_RE.search(line)
        if m is None:
            report.bad(lineno)
            continue
        if m.group(0) not in seen:
            seen.add(m.group(0))
            ids.append(m.group(0))
    report.log()
    return ids, report


def read_duplicates(path):
    """Duplicate groups of an ``msd_duplicates.txt``-style file.

    Returns
    -------
    groups : list of list of str
        Member track ids per group, in file order (groups with one member are kept).
    report : ListReport
    """
    report = ListReport(os.fspath(path))
    groups, current = [], None
    for lineno, line in _lines(path):
        report.n_lines += 1
        if line.startswith('#') or not line.strip():
            continue
        if line.startswith('%'):
            current = []
            groups.append(current)
            continue
        m = TRACK_ID_RE.search(line)
        if m is None or current is None:
            report.bad(lineno)
            continue
        if m.group(0) not in current:
            current.append(m.group(0))
    report.log()
    return [g for g in groups if g], report
