"""Audio scan: one row of header facts per audio file under a root (the Orpheus project's
``fetcher.py``, re-implemented and fixed; <https://github.com/pukkapies/urop2019>).

``python -m msd scan --root MP3_ROOT --out scan.csv [--workers N] [--ext mp3,wav,…]``

Walks any directory tree (the MSD 7digital layout ``<d1>/<d2>/<7digitalid>.clip.mp3`` or anything
else) and records, without decoding any audio (mutagen reads headers only):

=================  =============================================================================
column             meaning
=================  =============================================================================
track_7digitalid   int from a ``<digits>.clip.mp3`` file name; empty for other names
file_path          path relative to the root, ``/``-separated
file_size          bytes
duration           seconds, from the header (mutagen ``info.length``)
channels           from the header
sample_rate        Hz, from the header
bitrate            bits/s, from the header
status             ``ok`` | ``empty`` (0 bytes) | ``not-audio`` (no audio stream found) |
                   ``unreadable`` (I/O error, corrupt header, no duration)
reason             human-readable detail for a status other than ``ok``
=================  =============================================================================

Rows are in walk order, which is sorted by path components (each directory's entries sorted by
name), so the output is deterministic and independent of the number of workers. The tree is
walked lazily with :func:`os.scandir` and rows are streamed to ``scan.csv.partial`` (renamed to
``scan.csv`` at the end): memory does not grow with the number of files. An interrupted scan
(Ctrl-C, kill) leaves the partial file; running the same command again resumes it (see
:mod:`msd.parallel`). Directory symlinks are not followed (the walk stays inside the root); file
names that are not valid UTF-8 or contain line breaks are skipped with a warning.
"""
from __future__ import annotations

import collections
import functools
import logging
import math
import os
import re

from .common import MsdError, command_line
from .parallel import run_resumable

log = logging.getLogger(__name__)

COLUMNS = ('track_7digitalid', 'file_path', 'file_size', 'duration', 'channels', 'sample_rate',
           'bitrate', 'status', 'reason')
STATUSES = ('ok', 'empty', 'not-audio', 'unreadable')
DEFAULT_EXTENSIONS = ('mp3', 'wav', 'flac', 'ogg', 'oga', 'opus', 'm4a', 'mp4', 'aac', 'aif', 'aiff')

_ID_RE = re.compile(r'^(\d{1,18})\.clip\.mp3$')


def parse_7digitalid(name: str):
    """7digital id of a file named ``<digits>.clip.mp3`` (the MSD preview layout
    ``<d1>/<d2>/<7digitalid>.clip.mp3``), else None."""
    m = _ID_RE.match(os.path.basename(name))
    return int(m.group(1)) if m else None


class WalkStats:
    """Counters filled while walking: files ignored by extension, bad names, unreadable dirs."""

    def __init__(self):
        self.ignored = 0
        self.bad_names = 0
        self.bad_dirs = 0


def _entry_name(entry):
    return entry.name


def _bad_name(name):
    """True for a name that cannot go in a UTF-8 CSV row (undecodable bytes, line breaks)."""
    try:
        name.encode('utf-8')
    except UnicodeEncodeError:
        return True
    return '\n' in name or '\r' in name


def iter_files(root, extensions=DEFAULT_EXTENSIONS, stats: WalkStats | None = None):
    """Yield paths (relative to ``root``, ``/``-separated) of files with one of ``extensions``.

    Depth-first with each directory's entries sorted by name, i.e. sorted by path components.
    Lazy: only one directory listing per level is held in memory.
    """
    exts = tuple('.' + e.lower().lstrip('.') for e in extensions)
    stats = stats if stats is not None else WalkStats()

    def walk(directory, prefix):
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=_entry_name)
        except OSError as e:
            stats.bad_dirs += 1
            log.warning('cannot list %s: %s', directory, e)
            return
        for entry in entries:
            name = entry.name
            if name[0] == '.':
                continue  # hidden files, our own temp files
            # the common case (plain ASCII name) costs one C call; the full check only otherwise
            if not (name.isascii() and name.isprintable()) and _bad_name(name):
                stats.bad_names += 1
                log.warning('skipping a file name that is not valid UTF-8 or has a line break: %r',
                               os.path.join(directory, name))
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                yield from walk(entry.path, prefix + name + '/')
            elif name.lower().endswith(exts):
                yield prefix + name
            else:
                stats.ignored += 1

    if not os.path.isdir(root):
        raise MsdError(f'{root}: not a directory')
    yield from walk(root, '')


class _Info:
    """Minimal stand-in for a mutagen FileType: just ``.info``."""

    def __init__(self, info):
        self.info = info


def _mp3_info(path):
    """mutagen's MPEG stream info for an MP3, skipping the ID3v2 tag without parsing it.

    ``mutagen.mp3.MP3`` parses every ID3 frame first; the scan only needs the stream header, and
    computing the tag size from its 10-byte header halves the cost per file.
    """
    import mutagen.mp3
    with open(path, 'rb') as f:
        head = f.read(10)
        offset = 0
        if len(head) == 10 and head[:3] == b'ID3':
            size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
            offset = 10 + size + (10 if head[5] & 0x10 else 0)
        return _Info(mutagen.mp3.MPEGInfo(f, offset))


def _header(path):
    """Header facts of ``path`` via mutagen (MP3 stream parser first for .mp3, else sniffing)."""
    import mutagen
    if path.lower().endswith('.mp3'):
        try:
            return _mp3_info(path)
        except mutagen.MutagenError:
            pass  # maybe another format with a wrong extension: let mutagen sniff
    return mutagen.File(path)


def scan_file(root, rel):
    """One scan row (tuple in :data:`COLUMNS` order) for ``root/rel``; never raises for bad files."""
    import mutagen
    path = os.path.join(root, rel)
    tid7 = parse_7digitalid(rel)
    try:
        size = os.stat(path).st_size
    except OSError as e:
        return (tid7, rel, None, None, None, None, None, 'unreadable', f'stat failed: {e.strerror or e}')
    if size == 0:
        return (tid7, rel, 0, None, None, None, None, 'empty', '0 bytes')
    try:
        audio = _header(path)
    except mutagen.MutagenError as e:
        text = str(e)
        status = 'not-audio' if ('sync' in text or 'not a' in text.lower() or 'header' in text.lower()) \
            else 'unreadable'
        return (tid7, rel, size, None, None, None, None, status, f'{type(e).__name__}: {text}')
    except OSError as e:
        return (tid7, rel, size, None, None, None, None, 'unreadable', f'{type(e).__name__}: {e}')
    if audio is None or getattr(audio, 'info', None) is None:
        return (tid7, rel, size, None, None, None, None, 'not-audio', 'no known audio format')
    info = audio.info
    length = getattr(info, 'length', None)
    channels = getattr(info, 'channels', None)
    rate = getattr(info, 'sample_rate', None)
    bitrate = getattr(info, 'bitrate', None)
    if length is None or not math.isfinite(length) or length <= 0:
        return (tid7, rel, size, None, channels, rate, bitrate, 'unreadable', 'no duration in header')
    return (tid7, rel, size, round(float(length), 4), channels, rate, bitrate, 'ok', '')


def warm_up():
    """Import mutagen once in the parent: forked workers inherit it instead of each paying ~30 ms."""
    import mutagen.mp3  # noqa: F401


def _error_row(item, message):
    return (parse_7digitalid(item), item, None, None, None, None, None, 'unreadable', message)


def scan(root, out, *, workers=1, extensions=DEFAULT_EXTENSIONS, overwrite=False, restart=False,
         progress=True, command=None, chunk_size=512):
    """Scan ``root`` into the CSV ``out``; returns a :class:`msd.parallel.RunResult`.

    Adds ``walk`` (a :class:`WalkStats`) and ``summary`` (the one-line summary) to the result.
    See the module docstring for columns, order and resume behaviour.
    """
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise MsdError(f'--root {root}: not a directory')
    if workers < 1:
        raise MsdError(f'--workers must be >= 1, got {workers}')
    stats = WalkStats()
    result = run_resumable(
        out, COLUMNS, iter_files(root, extensions, stats), functools.partial(scan_file, root),
        key=lambda rel: rel, error_row=_error_row, command=command or command_line(),
        meta={'root': root}, workers=workers, chunk_size=chunk_size, overwrite=overwrite,
        restart=restart, progress=progress, desc='scan', initializer=warm_up)
    result.walk = stats
    counts = collections.Counter(result.statuses)
    parts = ', '.join(f'{s} {counts[s]}' for s in STATUSES if counts[s]) or 'none'
    rate = result.n_new / result.seconds if result.seconds > 0 else 0.0
    result.summary = (f'scan: {result.n_rows} audio files ({parts}); {stats.ignored} other files ignored'
                      + (f', {stats.bad_names} bad names skipped' if stats.bad_names else '')
                      + (f', {stats.bad_dirs} unreadable dirs' if stats.bad_dirs else '')
                      + (f'; resumed {result.n_resumed} rows' if result.n_resumed else '')
                      + f'; {result.n_new} scanned in {result.seconds:.1f} s ({rate:.0f} files/s) -> {out}')
    return result
