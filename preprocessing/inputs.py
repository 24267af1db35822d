"""The inputs of ``preprocessing write``: master table + split manifest + clean tag DB -> the tracks to write.

:func:`read_inputs` reads the three files, reports every problem and returns, per split, the
tracks to write and, for ``skipped.csv``, every track or line left out with its reason:

==================  ==============================================================================
reason              meaning
==================  ==============================================================================
``bad-line``        a line of ``master.csv`` or ``splits.csv`` that is not a valid row (wrong
                    field count, unterminated quote, repeated track id, …; ``docs/master-table.md``)
``not-in-master``   a ``splits.csv`` row naming a track that ``master.csv`` does not have
``outside-root``    the track's file resolves outside the audio root
``no-file``         the row has neither ``file_path`` nor ``audio_path``
``no-split``        the track is in no split (e.g. not in an imported list)
``no-clean-tag``    the track has no clean tag
==================  ==============================================================================

The first four are problems of the inputs (logged as warnings, and ``write`` exits with 1); the
last two are the ordinary selection of tracks.

**Audio root.** Every file read must lie inside the audio root: ``--audio-root``, else the
``# audio_root=`` line ``msd build`` records in ``master.csv``; with neither, ``write`` stops with a
clear error. A track's file is ``file_path`` joined to the root, else ``audio_path``. The file
is confined after resolving symbolic links (``os.path.realpath``): ``..`` components, absolute
paths and symlinks whose target is outside the root are all refused as ``outside-root``. Links
are followed for the check, not ignored, because what matters is which file is opened: a master
table handed on by someone else must not make the writer read (and store in shareable
TFRecords) a file outside the folder the user named. The root itself may be a symlink.
"""
from __future__ import annotations

import dataclasses
import logging
import os

from core.errors import MuseTagError
from msd.lastfm import TagDB, load_clean_tags
from msd.tables import read_master, report_bad_lines
from preprocessing.splits import SPLITS, read_splits

__all__ = ['Inputs', 'AudioPaths', 'resolve_audio_root', 'read_inputs', 'INPUT_PROBLEMS']

log = logging.getLogger(__name__)

#: skipped.csv reasons that are problems of the inputs (the others are the selection of tracks)
INPUT_PROBLEMS = ('bad-line', 'not-in-master', 'outside-root', 'no-file')
#: ids named in a warning about split rows for unknown tracks
_EXAMPLES = 5


@dataclasses.dataclass
class Inputs:
    """What :func:`read_inputs` found.

    Attributes
    ----------
    tracks : dict split -> list of (track_id, artist_id, path, tag numbers)
        The tracks to write, in master order; ``path`` is the file to decode (inside the root).
    excluded : list of dict(track_id, split, file, reason, detail)
        Rows of ``skipped.csv`` for everything not planned (see the module docstring).
    audio_root : str
        The absolute audio root.
    tagdb : msd.lastfm.TagDB
    """
    tracks: dict
    excluded: list
    audio_root: str
    tagdb: TagDB

    def problems(self) -> dict:
        """Counts of the input problems among :attr:`excluded`, by reason."""
        out = {}
        for e in self.excluded:
            if e['reason'] in INPUT_PROBLEMS:
                out[e['reason']] = out.get(e['reason'], 0) + 1
        return out


def resolve_audio_root(table, override=None) -> str:
    """The absolute audio root: ``override`` (``--audio-root``) else the table's ``# audio_root=``.

    Raises
    ------
    core.errors.MuseTagError
        Neither is known, or the folder does not exist.
    """
    root = os.path.abspath(os.path.expanduser(override)) if override else table.audio_root
    if root is None:
        raise MuseTagError(f"{table.path} records no audio root (no '# audio_root=' line, which msd build writes) "
                           'and no --audio-root was given: pass --audio-root DIR, the folder that holds the audio '
                           'files (file_path is relative to it, every audio_path must lie inside it)')
    if not os.path.isdir(root):
        raise MuseTagError(f'audio root {root} is not a directory' + ('' if override else
                           f" (recorded in {table.path}; pass --audio-root if the audio moved)"))
    return root


class AudioPaths:
    """Resolve and confine the audio files of master rows to one root (see the module docstring).

    Real paths of folders are cached, so a million files under a few thousand folders cost one
    ``lstat`` each.
    """

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.real_root = os.path.realpath(self.root)
        self._prefix = self.real_root.rstrip(os.sep) + os.sep
        self._dirs = {}

    def real(self, path) -> str:
        """``os.path.realpath(path)`` with the folder part cached."""
        folder, name = os.path.split(path)
        real_dir = self._dirs.get(folder)
        if real_dir is None:
            real_dir = self._dirs[folder] = os.path.realpath(folder)
        full = os.path.join(real_dir, name)
        return os.path.realpath(full) if os.path.islink(full) else full

    def resolve(self, file_path, audio_path):
        """``(path, reason, detail)`` for one row: ``reason`` is None when the file may be read.

        ``path`` is ``file_path`` joined to the root when the row has one, else ``audio_path``
        (relative values are taken relative to the root), lexically normalised.
        """
        given = file_path if _text(file_path) else audio_path if _text(audio_path) else None
        if given is None:
            return '', 'no-file', 'no file_path or audio_path'
        path = os.path.normpath(os.path.join(self.root, os.path.expanduser(given.strip())))
        real = self.real(path)
        if real != self.real_root and not real.startswith(self._prefix):
            via = '' if real == path else f' (resolves to {real})'
            return path, 'outside-root', f'{given}{via} is outside the audio root {self.root}'
        return path, None, ''


def _text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _bad_line_rows(table, what):
    return [{'track_id': '', 'split': '', 'file': table.path, 'reason': 'bad-line', 'detail': f'{what} {b}'}
            for b in table.bad_lines]


def _unknown_split_rows(split_of, master_ids, splits_path):
    unknown = [tid for tid in split_of if tid not in master_ids]
    if unknown:
        log.warning('%s: %d row(s) name tracks that are not in the master table, ignored (e.g. %s)',
                    splits_path, len(unknown), ', '.join(unknown[:_EXAMPLES]))
    return [{'track_id': tid, 'split': split_of[tid], 'file': '', 'reason': 'not-in-master',
             'detail': f'{splits_path} names it; the master table does not'} for tid in unknown]


def read_inputs(master_csv, splits_csv, tags_db, audio_root=None) -> Inputs:
    """Read and check the inputs of ``write`` (see the module docstring).

    Raises
    ------
    core.errors.MuseTagError
        No audio root known, or it is not a folder.
    FileNotFoundError, ValueError
        A missing or unusable input file (no header, missing columns, not a tag DB).
    """
    master = read_master(master_csv)
    root = resolve_audio_root(master, audio_root)
    splits = read_splits(splits_csv)
    tagdb = load_clean_tags(tags_db)
    report_bad_lines(master, 'master CSV')
    report_bad_lines(splits, 'split manifest')
    excluded = _bad_line_rows(master, 'master CSV') + _bad_line_rows(splits, 'split manifest')
    split_of = dict(zip(splits.frame['track_id'], splits.frame['split']))
    frame = master.frame
    excluded += _unknown_split_rows(split_of, set(frame['track_id']), splits_csv)
    paths = AudioPaths(root)
    tracks = {s: [] for s in SPLITS}
    columns = [c if c in frame.columns else None for c in ('track_id', 'artist_id', 'file_path', 'audio_path')]
    values = [frame[c].tolist() if c else [None] * len(frame) for c in columns]
    outside = 0
    for tid, artist, file_path, audio_path in zip(*values):
        split = split_of.get(tid)
        path, problem, detail = paths.resolve(file_path, audio_path)
        if problem is None and split is None:
            problem, detail = 'no-split', ''
        if problem is None and not tagdb.by_track.get(tid):
            problem, detail = 'no-clean-tag', ''
        if problem is not None:
            outside += problem == 'outside-root'
            excluded.append({'track_id': tid, 'split': split or '', 'file': path, 'reason': problem, 'detail': detail})
            continue
        tracks[split].append((tid, artist if _text(artist) else '', path, tagdb.by_track[tid]))
    if outside:
        log.warning('%d track(s) of %s have files outside the audio root %s, skipped (listed in skipped.csv)',
                    outside, master_csv, root)
    return Inputs(tracks, excluded, root, tagdb)
