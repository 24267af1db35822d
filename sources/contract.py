"""The dataset contract every source writes, as ``musetag msd all`` does (``docs/datasets.md``).

An adapter collects its tracks in a :class:`Collection` (one row per usable file, its original tag
spellings, and every bad row or file with its reason) and hands it to :func:`write_dataset`, which
writes the output folder ``OUT`` as one unit (:func:`core.files.atomic_dir` under a
:class:`core.locks.OutputLock`):

``master.csv``
    :func:`msd.tables.write_master`; ``# audio_root=`` the audio folder; ``track_id``,
    ``file_path`` (relative to the root), ``audio_path`` (absolute), ``artist_id``,
    ``artist_name``, ``release`` (album), ``title``, ``duration`` and ``clip_length`` (seconds,
    from the file header) where known.
``clean_tags.db``
    :func:`msd.lastfm.write_tables` plus the ``meta`` table (``docs/clean-tag-db.md``): clean tag
    numbers ``1..K`` by the number of tracks carrying the tag, descending, ties by name; every
    pair has strength ``val = 100`` (the sources' labels are binary).
``splits.csv`` and ``splits/<protocol>.csv``
    :func:`msd.tables.write_table` (``track_id,split``); ``splits.csv`` is the default protocol.
``tag_map.csv``
    One row per original tag spelling: ``raw_tag``, ``raw_count`` (tracks), ``tag`` (its
    normalised name), ``clean_tag_num``, ``clean_count``, ``status`` (``kept`` / ``dropped``),
    ``rule`` (``normalised``, ``synonym:<group>``; for dropped tags why: ``min-count``, ``top``,
    ``empty-name``).
``skipped.csv``
    Every bad row or file: ``item``, ``file``, ``reason`` (one of :data:`REASONS`), ``detail``.
``summary.json``
    Counts: tracks, skipped per reason, tags kept, per protocol the tracks per split and the kept
    tags that have no track in a split.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import sqlite3

from core.files import atomic_dir, json_text, atomic_write_text
from core.locks import OutputLock

__all__ = ['REASONS', 'Collection', 'normalise_tag', 'select_tags', 'write_dataset', 'read_synonyms',
           'probe_audio', 'inside_root', 'NUMBERING_RULE']

log = logging.getLogger(__name__)

#: Why a row or file is left out (``skipped.csv``'s ``reason``).
REASONS = {
    'missing-file': 'the file named by a row does not exist',
    'zero-byte': 'the file has 0 bytes',
    'duplicate-path': 'a second row names a file an earlier row already named',
    'duplicate-id': 'a second row has the track id of an earlier row',
    'outside-root': 'the path leaves the audio folder (.., absolute path or a symlink pointing out)',
    'unknown-column': 'a column that is neither a known one nor a 0/1 tag column (ignored)',
    'empty-tag-column': 'a tag column that no row sets',
    'no-tag': 'a row without any tag',
    'too-short': 'the audio is shorter than --min-seconds',
    'unreadable-audio': 'the header does not read as audio (corrupt, not audio, unsupported format)',
    'unknown-split-id': 'a split file names a track the metadata does not have',
    'bad-row': 'a row that does not parse (wrong number of fields, no path, bad value)',
}
NUMBERING_RULE = ('clean popularity (distinct tracks carrying the tag) descending, ties by tag name ascending')
_SEPARATORS = re.compile(r'[\s_-]+')


def normalise_tag(raw: str) -> str:
    """A tag's normalised name: case-folded, trimmed, every run of spaces, underscores and hyphens
    made one space (``' Hip_Hop '``, ``'hip-hop'`` and ``'HIP  HOP'`` all give ``'hip hop'``)."""
    return _SEPARATORS.sub(' ', str(raw).casefold()).strip()


@dataclasses.dataclass
class Collection:
    """What an adapter found.

    Attributes
    ----------
    source : str
        ``folder``, ``mtat`` or ``jamendo``.
    audio_root : str
        Absolute audio folder (``file_path`` is relative to it).
    rows : list of dict
        Master rows (``track_id``, ``file_path``, … see the module docstring).
    tags : dict str -> list of str
        Track id -> the tags in their original spelling.
    skipped : list of dict
        ``item``, ``file``, ``reason``, ``detail``.
    """
    source: str
    audio_root: str
    rows: list = dataclasses.field(default_factory=list)
    tags: dict = dataclasses.field(default_factory=dict)
    skipped: list = dataclasses.field(default_factory=list)

    def skip(self, reason: str, item='', file='', detail='') -> None:
        if reason not in REASONS:
            raise ValueError(f'unknown skip reason {reason!r}')
        self.skipped.append(dict(item=str(item), file=str(file), reason=reason, detail=str(detail)))

    def add(self, row: dict, tags) -> None:
        self.rows.append(row)
        self.tags[row['track_id']] = list(tags)


def inside_root(root_real: str, rel: str):
    """``(absolute path, None)`` for ``rel`` inside ``root_real`` (a realpath), else ``(path, why)``.

    Symbolic links are resolved first, so a link pointing out of the folder is outside it."""
    if not rel or os.path.isabs(rel):
        return rel, 'an absolute path' if rel else 'an empty path'
    path = os.path.join(root_real, rel)
    real = os.path.realpath(path)
    if real != root_real and not real.startswith(root_real.rstrip(os.sep) + os.sep):
        return path, f'resolves to {real}, outside {root_real}'
    return path, None


def probe_audio(path):
    """Header facts of one file: ``(duration s, sample rate Hz, channels, None)`` or ``(None, None,
    None, (reason, detail))`` with a reason of :data:`REASONS`. Never decodes the samples."""
    from preprocessing.audio import AudioLoadError, audio_info
    try:
        info = audio_info(path)
    except AudioLoadError as e:
        reason = {'missing': 'missing-file', 'empty': 'zero-byte'}.get(e.reason, 'unreadable-audio')
        return None, None, None, (reason, e.detail or e.reason)
    if not info.frames:
        return None, None, None, ('unreadable-audio', 'the header gives 0 samples')
    return info.duration, info.samplerate, info.channels, None


def read_synonyms(path) -> dict:
    """A synonym list: one group per line, ``name: spelling, spelling, …`` (``#`` comments and
    blank lines ignored); returns normalised spelling -> normalised group name (the name maps to
    itself). A spelling in two groups is an error."""
    groups = {}
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            name, sep, rest = line.partition(':')
            if not sep or not name.strip():
                raise ValueError(f'{path}: line {number}: expected "name: spelling, spelling, ..."')
            target = normalise_tag(name)
            for spelling in [name, *rest.split(',')]:
                s = normalise_tag(spelling)
                if not s:
                    continue
                if groups.get(s, target) != target:
                    raise ValueError(f'{path}: line {number}: {s!r} is already in group {groups[s]!r}')
                groups[s] = target
    return groups


def select_tags(tags: dict, *, normalise=True, synonyms=None, min_count=1, top=None):
    """Original tags per track -> (clean tags per track, vocabulary in number order, tag map rows).

    Parameters
    ----------
    tags : dict track id -> list of original spellings.
    normalise : apply :func:`normalise_tag` (False keeps the spelling: MTG-Jamendo's ids).
    synonyms : dict normalised spelling -> group name (:func:`read_synonyms`), or None.
    min_count : a clean tag needs at least this many tracks.
    top : keep only the ``top`` most popular clean tags (None: all).

    Returns
    -------
    by_track : dict track id -> sorted list of clean tag numbers (tracks left without a tag absent)
    names : list of str, clean tag ``i + 1`` is ``names[i]``
    tag_map : list of dict (the ``tag_map.csv`` rows)
    """
    synonyms = synonyms or {}
    raw_tracks, clean_of, rule_of = {}, {}, {}
    for tid, spellings in tags.items():
        for raw in spellings:
            raw_tracks.setdefault(raw, set()).add(tid)
    for raw in raw_tracks:
        name = normalise_tag(raw) if normalise else str(raw).strip()
        rule = 'normalised' if name != raw else ''
        if name in synonyms and synonyms[name] != name:
            name, rule = synonyms[name], f'synonym:{synonyms[name]}'
        clean_of[raw], rule_of[raw] = name, rule
    clean_tracks = {}
    for raw, tids in raw_tracks.items():
        if clean_of[raw]:
            clean_tracks.setdefault(clean_of[raw], set()).update(tids)
    ranked = sorted(clean_tracks, key=lambda n: (-len(clean_tracks[n]), n))
    why_dropped = {}
    kept = []
    for n in ranked:
        if len(clean_tracks[n]) < min_count:
            why_dropped[n] = 'min-count'
        elif top is not None and len(kept) >= top:
            why_dropped[n] = 'top'
        else:
            kept.append(n)
    number = {n: i for i, n in enumerate(kept, 1)}
    by_track = {}
    for tid, spellings in tags.items():
        nums = sorted({number[clean_of[r]] for r in spellings if clean_of[r] in number})
        if nums:
            by_track[tid] = nums
    tag_map = []
    for raw in sorted(raw_tracks, key=lambda r: (number.get(clean_of[r], len(number) + 1),
                                                  -len(raw_tracks[r]), str(r))):
        name = clean_of[raw]
        status = 'kept' if name in number else 'dropped'
        rule = rule_of[raw] if status == 'kept' else ('empty-name' if not name else why_dropped[name])
        tag_map.append(dict(raw_tag=str(raw), raw_count=len(raw_tracks[raw]), tag=name,
                            clean_tag_num=number.get(name), clean_count=len(clean_tracks.get(name, ())),
                            status=status, rule=rule))
    return by_track, kept, tag_map


# ----------------------------------------------------------------------------------------- writing
def _write_tag_db(path, names, by_track, track_order, meta):
    """``clean_tags.db``: tags 1..K, tids 1..N (tracks with a tag, in master order), pairs val 100."""
    tids = [t for t in track_order if t in by_track]
    con = sqlite3.connect(path)
    try:
        from msd.lastfm import write_tables
        rowid = {t: i for i, t in enumerate(tids, 1)}
        write_tables(con, list(enumerate(names, 1)), list(enumerate(tids, 1)),
                     [(rowid[t], n, 100.0) for t in tids for n in by_track[t]])
        con.execute('CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)')
        con.executemany('INSERT INTO meta(key, value) VALUES (?, ?)',
                        [(k, v if isinstance(v, str) else json_text(v).strip()) for k, v in meta.items()])
        con.commit()
    finally:
        con.close()


def _absent_tags(protocol, by_track, names) -> dict:
    """split -> kept tag names that no track of that split carries."""
    out = {}
    for split in ('train', 'validation', 'test'):
        ids = protocol.loc[protocol['split'] == split, 'track_id']
        present = {n for t in ids for n in by_track.get(t, ())}
        missing = [names[i - 1] for i in range(1, len(names) + 1) if i not in present]
        if missing:
            out[split] = missing
    return out


def write_dataset(collection: Collection, out, *, selection, protocols: dict, default: str, command: str,
                  settings: dict, overwrite=False) -> dict:
    """Write the contract for ``collection`` to the folder ``out`` (see the module docstring).

    ``selection`` is :func:`select_tags`'s result for ``collection.tags``. ``protocols`` maps a
    protocol name to a DataFrame ``track_id, split`` (tracks of the master table; a protocol may
    leave tracks out); ``default`` names the one written as ``splits.csv``. ``settings`` (the
    adapter's options) go into ``summary.json`` and the DB's ``meta``. Returns the summary (also
    written as ``summary.json``).
    """
    import pandas as pd
    from msd.tables import write_master, write_table

    by_track, names, tag_map = selection
    master = pd.DataFrame(collection.rows)
    skipped = pd.DataFrame(collection.skipped, columns=['item', 'file', 'reason', 'detail'])
    counts = {r: int(n) for r, n in skipped['reason'].value_counts().sort_index().items()}
    summary = dict(source=collection.source, command=command, audio_root=collection.audio_root,
                   tracks=len(master), tracks_with_tag=len(by_track), tags=len(names),
                   skipped=len(skipped), skipped_by_reason=counts, default_protocol=default,
                   protocols={}, settings=settings)
    for name, frame in protocols.items():
        per = {s: int((frame['split'] == s).sum()) for s in ('train', 'validation', 'test')}
        summary['protocols'][name] = dict(per, tracks=len(frame), not_in_protocol=len(master) - len(frame),
                                          tags_absent=_absent_tags(frame, by_track, names))
        empty = [s for s, n in per.items() if not n]
        if empty:
            log.warning('protocol %s: no track in %s (training or evaluating on it needs one)', name,
                        ' or '.join(empty))
    meta = dict(command=command, source=collection.source, audio_root=collection.audio_root,
                numbering=NUMBERING_RULE, settings=settings)
    with OutputLock(out), atomic_dir(out, overwrite) as tmp:
        write_master(master, os.path.join(tmp, 'master.csv'), command=command,
                     meta={'audio_root': collection.audio_root, 'source': collection.source})
        _write_tag_db(os.path.join(tmp, 'clean_tags.db'), names, by_track, list(master.get('track_id', [])), meta)
        os.mkdir(os.path.join(tmp, 'splits'))
        for name, frame in protocols.items():
            write_table(frame[['track_id', 'split']], os.path.join(tmp, 'splits', f'{name}.csv'), command=command,
                        meta={'protocol': name})
        write_table(protocols[default][['track_id', 'split']], os.path.join(tmp, 'splits.csv'), command=command,
                    meta={'protocol': default})
        write_table(pd.DataFrame(tag_map, columns=['raw_tag', 'raw_count', 'tag', 'clean_tag_num', 'clean_count',
                                                   'status', 'rule']).astype({'clean_tag_num': 'Int64'}),
                    os.path.join(tmp, 'tag_map.csv'), command=command, key=None)
        write_table(skipped, os.path.join(tmp, 'skipped.csv'), command=command, key=None)
        atomic_write_text(os.path.join(tmp, 'summary.json'), json_text(summary))
    return summary
