"""Streaming parsers of listening data: the Taste Profile files and plain playlists.

Formats (the MSD's Taste Profile subset, <http://millionsongdataset.com/tasteprofile/>):

``train_triplets.txt``
    ``user_id<TAB>song_id<TAB>play_count`` per line, sorted by user (48M lines, 3 GB for the real
    file: it is read line by line and grouped by user as it goes, never loaded whole).
``unique_tracks.txt``
    ``track_id<SEP>song_id<SEP>artist<SEP>title`` per line (the separator is the literal ``<SEP>``).
    A song may have several tracks (duplicates); its plays go to each of them.
``sid_mismatches.txt``
    ``ERROR: <SOXXX TRYYY> artist  -  title  !=  artist  -  title``: the song/track pairs of
    ``unique_tracks.txt`` that are wrong matches; their plays are not given to that track.
playlists
    One playlist per line: track ids separated by whitespace and/or commas; empty lines and lines
    starting with ``#`` are skipped.

Bad input never stops a run: each kind is counted in a :class:`ListenReport` (with the first line
numbers) and summarised by :meth:`ListenReport.summary`. See ``docs/latent.md``.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

from core.errors import MuseTagError

__all__ = ['ListenReport', 'read_unique_tracks', 'read_mismatch_pairs', 'iter_user_listens', 'iter_playlists',
           'SEP', 'PAIR_RE']

log = logging.getLogger(__name__)

SEP = '<SEP>'
#: The ``<SOxxx TRyyy>`` pair of a mismatch line.
PAIR_RE = re.compile(r'<\s*(SO[A-Z0-9]+)\s+(TR[A-Z0-9]+)\s*>')
_PLAYLIST_SPLIT = re.compile(r'[\s,]+')
_TRACK_TOKEN = re.compile(r'^[\w.:/-]+$')
_KEEP_LINES = 5
_LABELS = {'malformed': 'malformed line(s)', 'unknown_song': 'listen(s) of unknown songs',
           'mismatched': 'listen(s) of mismatched song/track pairs', 'held_out': 'listen(s) of held-out tracks',
           'single_song_users': 'user(s) with a single song', 'unsorted_users': 'user(s) met again (unsorted)'}


@dataclass
class ListenReport:
    """What reading listening data counted. ``bad_lines`` maps a problem to its first line numbers."""

    path: str = ''
    lines: int = 0
    listens: int = 0            # triplet lines (or playlist entries) kept
    plays: int = 0              # sum of their play counts
    users: int = 0              # users (or playlists) yielded
    malformed: int = 0
    unknown_song: int = 0       # triplets whose song id is not in unique_tracks.txt
    mismatched: int = 0         # triplets (or playlist entries) of a mismatched song/track pair
    held_out: int = 0           # entries of held-out tracks removed
    single_song_users: int = 0  # users (playlists) left with fewer than two distinct tracks: skipped
    unsorted_users: int = 0     # users met again after other users (the file is not sorted by user)
    bad_lines: dict = field(default_factory=dict)

    def bad(self, kind: str, lineno: int) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        first = self.bad_lines.setdefault(kind, [])
        if len(first) < _KEEP_LINES:
            first.append(lineno)

    def summary(self) -> str:
        """One line: what was kept and every problem counted."""
        parts = [f'{self.lines} line(s)', f'{self.users} user(s)/playlist(s) kept',
                 f'{self.listens} listen(s) ({self.plays} play(s))']
        for kind in ('malformed', 'unknown_song', 'mismatched', 'held_out', 'single_song_users', 'unsorted_users'):
            n = getattr(self, kind)
            if n:
                where = self.bad_lines.get(kind)
                parts.append(f'{n} {_LABELS[kind]}' + (f' (first at line(s) {", ".join(map(str, where))})'
                                                                 if where else ''))
        return f'{self.path}: ' + ', '.join(parts)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ('lines', 'listens', 'plays', 'users', 'malformed', 'unknown_song',
                                             'mismatched', 'held_out', 'single_song_users', 'unsorted_users')}


def _open_lines(path, what):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MuseTagError(f'{what} not found: {path}')
    with open(path, encoding='utf-8', errors='replace') as f:
        yield from enumerate(f, 1)


def read_unique_tracks(path) -> tuple:
    """Read ``unique_tracks.txt``.

    Returns
    -------
    (song_tracks, report)
        ``song_tracks``: dict song id -> list of track ids (file order); ``report``: a
        :class:`ListenReport` counting malformed lines (not four ``<SEP>`` fields, ids not
        ``TR…``/``SO…``).
    """
    report = ListenReport(os.fspath(path))
    song_tracks = {}
    for lineno, line in _open_lines(path, 'unique tracks file'):
        report.lines += 1
        line = line.rstrip('\r\n')
        if not line.strip():
            continue
        fields = line.split(SEP)
        if len(fields) != 4 or not fields[0].startswith('TR') or not fields[1].startswith('SO'):
            report.bad('malformed', lineno)
            continue
        song_tracks.setdefault(fields[1].strip(), []).append(fields[0].strip())
    if report.malformed:
        log.warning('%s', report.summary())
    return song_tracks, report


def read_mismatch_pairs(path) -> tuple:
    """Read ``sid_mismatches.txt``: ``(set of (song_id, track_id) pairs, report)``; lines without a
    ``<SO… TR…>`` pair are counted as malformed."""
    report = ListenReport(os.fspath(path))
    pairs = set()
    for lineno, line in _open_lines(path, 'mismatches file'):
        report.lines += 1
        if not line.strip() or line.startswith('#'):
            continue
        m = PAIR_RE.search(line)
        if m is None:
            report.bad('malformed', lineno)
            continue
        pairs.add((m.group(1), m.group(2)))
    if report.malformed:
        log.warning('%s', report.summary())
    return pairs, report


def _parse_triplet(line):
    """(user, song, count) of a triplet line, or None if malformed (count must be an integer >= 1)."""
    fields = line.rstrip('\r\n').split('\t')
    if len(fields) != 3 or not fields[0] or not fields[1].startswith('SO'):
        return None
    try:
        count = int(fields[2])
    except ValueError:
        return None
    return (fields[0], fields[1], count) if count >= 1 else None


class _UserGrouper:
    """Accumulates one user's listens and decides whether the user is kept."""

    def __init__(self, report, min_tracks):
        self.report = report
        self.min_tracks = min_tracks
        self.seen_users = set()
        self.user = None
        self.counts = {}
        self.first_line = 0

    def start(self, user, lineno):
        if user in self.seen_users:
            if not self.report.unsorted_users:
                log.warning('%s is not sorted by user (user %s again at line %d): each run of a user\'s lines '
                            'is treated as its own listening session', self.report.path, user, lineno)
            self.report.bad('unsorted_users', lineno)
        self.seen_users.add(user)
        self.user, self.counts, self.first_line = user, {}, lineno

    def finish(self):
        """The finished user as ``(user, [(track_id, play_count), …])`` or None (skipped)."""
        if self.user is None:
            return None
        user, counts = self.user, self.counts
        self.user, self.counts = None, {}
        if len(counts) < self.min_tracks:
            self.report.bad('single_song_users', self.first_line)
            return None
        self.report.users += 1
        return user, list(counts.items())


def iter_user_listens(triplets, song_tracks: dict, mismatches=frozenset(), held_out=frozenset(),
                      report: ListenReport | None = None, min_tracks: int = 2):
    """Stream a ``train_triplets.txt`` grouped by user.

    Parameters
    ----------
    triplets : path of the triplets file.
    song_tracks : dict song id -> track ids (:func:`read_unique_tracks`).
    mismatches : set of (song_id, track_id) pairs whose plays are dropped.
    held_out : track ids removed on purpose (cold start): counted, never yielded.
    report : ListenReport to fill (a new one if None; read it after the iteration ends).
    min_tracks : users with fewer distinct tracks left are skipped (counted as single-song users).

    Yields
    ------
    (user_id, [(track_id, play_count), …])
        One item per run of consecutive lines of one user, tracks in first-heard order; a track
        reached through two songs adds their counts.
    """
    report = report if report is not None else ListenReport(os.fspath(triplets))
    report.path = report.path or os.fspath(triplets)
    group = _UserGrouper(report, min_tracks)
    for lineno, line in _open_lines(triplets, 'triplets file'):
        report.lines += 1
        if not line.strip():
            continue
        parsed = _parse_triplet(line)
        if parsed is None:
            report.bad('malformed', lineno)
            continue
        user, song, count = parsed
        if user != group.user:
            done = group.finish()
            if done is not None:
                yield done
            group.start(user, lineno)
        tracks = song_tracks.get(song)
        if tracks is None:
            report.bad('unknown_song', lineno)
            continue
        kept = False
        for track in tracks:
            if (song, track) in mismatches:
                report.bad('mismatched', lineno)
            elif track in held_out:
                report.held_out += 1
            else:
                group.counts[track] = group.counts.get(track, 0) + count
                kept = True
        if kept:
            report.listens += 1
            report.plays += count
    done = group.finish()
    if done is not None:
        yield done


def iter_playlists(path, held_out=frozenset(), report: ListenReport | None = None, min_tracks: int = 2,
                   mismatched_tracks=frozenset()):
    """Stream a playlist file (one playlist per line).

    Yields
    ------
    (name, [(track_id, 1), …])
        ``name`` is ``'line<N>'``; tracks in playlist order (a repeat within a playlist is kept once).
        Tokens that cannot be ids (anything but letters, digits and ``_.:/-``) are malformed; held-out
        and mismatched tracks are removed and counted; playlists left with fewer than ``min_tracks``
        distinct tracks are skipped and counted.
    """
    report = report if report is not None else ListenReport(os.fspath(path))
    report.path = report.path or os.fspath(path)
    for lineno, line in _open_lines(path, 'playlist file'):
        report.lines += 1
        text = line.strip()
        if not text or text.startswith('#'):
            continue
        tracks = {}
        for token in _PLAYLIST_SPLIT.split(text):
            if not token:
                continue
            if not _TRACK_TOKEN.match(token):
                report.bad('malformed', lineno)
            elif token in held_out:
                report.held_out += 1
            elif token in mismatched_tracks:
                report.bad('mismatched', lineno)
            else:
                tracks[token] = 1
                report.listens += 1
                report.plays += 1
        if len(tracks) < min_tracks:
            report.bad('single_song_users', lineno)
            continue
        report.users += 1
        yield f'line{lineno}', list(tracks.items())
