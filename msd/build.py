"""Merge MSD metadata with the audio scan and purge unusable tracks -> ``master.csv``.

A re-implementation, with fixes, of the Orpheus project's ``wrangler.py`` and ``wrangler_silence.py``
(<https://github.com/pukkapies/urop2019>). The ``master.csv`` format is ``docs/master-table.md``
(written through :mod:`msd.tables`).

``python -m msd build --h5 msd_summary_file.h5 --lastfm lastfm_tags.db --scan scan.csv
--silence silence.csv --mismatches sid_mismatches.txt --duplicates msd_duplicates.txt --out master.csv
[--min-size 0] [--min-effective-length 15] [--max-total-silence 3] [--max-gap 1]
[--keep-duplicates] [--keep-untagged]``

Purge order (each step sees only the rows the previous steps kept)
------------------------------------------------------------------
1. ``no-audio``: h5 tracks whose ``track_7digitalid`` has no scanned file (inner join of the h5
   fields with ``scan.csv`` on track_7digitalid). Scanned files without a 7digital id or whose id
   is in no h5 row are reported as ``unlinked-file`` (no track id).
2. ``ambiguous-7digitalid``: **all** rows whose track_7digitalid occurs more than once (two h5
   tracks or two files claim the same clip: the link is untrustworthy, so none is kept);
   ``ambiguous-track-id``: then all rows whose track_id occurs more than once.
3. ``mismatch``: track ids listed in ``sid_mismatches.txt``.
4. ``faulty-audio``: scan status not ``ok``, ``file_size <= --min-size``, no silence row, or a
   silence status other than ``ok`` (decode failure, a silent clip, a truncated MP3).
5. Silence filters, each disabled by 0: ``short`` (effective_clip_length < --min-effective-length),
   ``total-silence`` (mid_silence_length > --max-total-silence), ``max-gap`` (max_silence_length >
   --max-gap).
6. ``untagged``: tracks with no tag in the raw Last.fm DB (unless ``--keep-untagged``).
7. ``duplicate``: per group of ``msd_duplicates.txt``, among the members still present keep the
   first one in the file's order and drop the others (unless ``--keep-duplicates``). Running this
   last means the kept member is one that passed every quality filter (the original deduplicated
   before the silence filters and could lose a whole group).

Outputs: ``master.csv`` (one row per usable track, sorted by track_id; first line ``# musetag
<command>``, then ``# audio_root=<abs>``; columns :data:`MASTER_COLUMNS`) and the purge report
next to it: ``master.purge.json`` (per step: description, count removed, rows left, the removed
track ids; ``warnings``; ``h5_missing_fields``; ``artist_ids``) and ``master.purge.csv`` (one row
per removed track: step, track_id, detail).

A summary file without ``artist_id`` is accepted, but said loudly (log, summary line and the report's
``warnings``): master.csv then has no artist ids, so no artist-disjoint split can be made from it
(``preprocessing split --by artist`` refuses it).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np
import pandas as pd

from core.files import atomic_path, check_output, json_text

from .common import MsdError, command_line, read_comments, read_csv, require_columns, write_csv
from .idlists import read_duplicates, read_mismatches
from .lastfm import LastFm
from .summary import MsdSummary
from .tables import MASTER_COLUMNS, write_master

log = logging.getLogger(__name__)

H5_REQUIRED = ('track_id', 'track_7digitalid')
H5_OPTIONAL = ('song_id', 'artist_id', 'artist_name', 'title', 'release', 'year', 'duration')
SILENCE_FIELDS = ('effective_clip_length', 'audio_start', 'audio_end', 'mid_silence_length',
                  'non_silence_length', 'max_silence_length', 'silence_percentage')


def report_paths(out):
    """``(json, csv)`` paths of the purge report written next to ``out``."""
    stem = out[:-4] if out.lower().endswith('.csv') else out
    return stem + '.purge.json', stem + '.purge.csv'


class PurgeReport:
    """Per-step bookkeeping of removed tracks."""

    def __init__(self):
        self.steps = []
        self.rows = []

    def add(self, step, description, removed, remaining, detail=None, ids=True):
        """Record ``removed`` (track ids, or file paths when ``ids=False``) for ``step``."""
        removed = list(removed)
        entry = {'step': step, 'description': description, 'removed': len(removed),
                 'remaining': int(remaining)}
        entry['track_ids' if ids else 'files'] = removed
        self.steps.append(entry)
        for i, key in enumerate(removed):
            d = '' if detail is None else detail[i] if isinstance(detail, list) else detail
            self.rows.append((step, key if ids else '', d if ids else key))
        log.info('%-22s removed %6d  -> %d left', step, len(removed), remaining)

    def frame(self):
        return pd.DataFrame(self.rows, columns=['step', 'track_id', 'detail'])


def no_artist_id_warning(h5_path) -> str:
    """What a summary file without ``artist_id`` means downstream (logged and kept in the report)."""
    return (f'{h5_path} has no artist_id field: master.csv will have no artist ids, so artist-disjoint '
            'splits are impossible and `preprocessing split --by artist` will refuse it. Use a summary file '
            'with artist_id, or split by track (tracks of one artist may then land in train and test).')


def _load_h5(path):
    """The h5 fields master.csv needs, one row per h5 track; ``(frame, missing optional fields)``.

    A missing optional field becomes an empty column with a warning; a missing ``artist_id`` gets
    a louder one stating its consequence (:func:`no_artist_id_warning`).
    """
    with MsdSummary(path) as h5:
        missing = [f for f in H5_REQUIRED if not h5.has_field(f)]
        if missing:
            h5.table_of(missing[0])  # raises with the list of available fields
        data = {f: h5.column(f) for f in H5_REQUIRED}
        absent = [f for f in H5_OPTIONAL if not h5.has_field(f)]
        for f in H5_OPTIONAL:
            data[f] = h5.column(f) if f not in absent else np.full(len(h5), None, dtype=object)
    for f in absent:
        if f == 'artist_id':
            log.warning('%s', no_artist_id_warning(path))
        else:
            log.warning('%s: field %r not found; the column is left empty', path, f)
    df = pd.DataFrame(data)
    df['track_7digitalid'] = pd.to_numeric(df['track_7digitalid'], errors='coerce').astype('Int64')
    return df, absent


def _load_scan(path):
    scan = read_csv(path, dtype={'file_path': str, 'status': str, 'reason': str}, keep_default_na=False,
                    na_values={c: [''] for c in ('track_7digitalid', 'file_size', 'duration', 'channels',
                                                'sample_rate', 'bitrate')})
    require_columns(scan, ('track_7digitalid', 'file_path', 'file_size', 'status'), f'--scan {path}')
    for c in ('track_7digitalid', 'file_size', 'channels', 'sample_rate', 'bitrate'):
        if c in scan:
            scan[c] = pd.to_numeric(scan[c], errors='coerce').astype('Int64')
    if 'duration' in scan:
        scan['duration'] = pd.to_numeric(scan['duration'], errors='coerce')
    return scan


def _load_silence(path):
    sil = read_csv(path, dtype={'file_path': str, 'status': str, 'reason': str}, keep_default_na=False,
                   na_values={c: [''] for c in SILENCE_FIELDS + ('clip_length', 'sample_rate', 'channels',
                                                                'n_gaps')})
    require_columns(sil, ('file_path', 'status') + SILENCE_FIELDS, f'--silence {path}')
    for c in SILENCE_FIELDS + ('clip_length',):
        sil[c] = pd.to_numeric(sil[c], errors='coerce')
    if sil['file_path'].duplicated().any():
        raise MsdError(f'--silence {path}: file_path values repeat; is it a silence.csv?')
    return sil


@dataclasses.dataclass
class _Inputs:
    """Everything ``build`` reads, loaded and checked before any purge."""
    scan: pd.DataFrame
    root: str                       # absolute audio root (file_path is relative to it)
    silence: pd.DataFrame | None
    mismatches: list | None         # track ids
    dup_groups: list | None         # lists of track ids
    tagged: set | None              # track ids with a raw Last.fm tag (None: no untagged purge)
    h5: pd.DataFrame
    h5_absent: list                 # optional h5 fields the summary file lacks


def _check_settings(min_size, min_effective_length, max_total_silence, max_gap, lastfm, keep_untagged):
    for name, value in (('--min-size', min_size), ('--min-effective-length', min_effective_length),
                        ('--max-total-silence', max_total_silence), ('--max-gap', max_gap)):
        if value is None or not np.isfinite(value) or value < 0:
            raise MsdError(f'{name} must be a number >= 0 (0 disables), got {value}')
    if lastfm is None and not keep_untagged:
        raise MsdError('--lastfm is needed to purge untagged tracks (or pass --keep-untagged)')


def _read_inputs(*, h5, scan, lastfm, silence, mismatches, duplicates, audio_root, keep_untagged) -> _Inputs:
    scan_df = _load_scan(scan)
    root = audio_root or read_comments(scan)[1].get('root')
    if root is None:
        raise MsdError(f'{scan} records no audio root (# root=… line); pass --audio-root')
    sil_df = _load_silence(silence) if silence else None
    if sil_df is None:
        log.warning('no --silence: silence checks and filters are skipped')
    tagged = None
    if lastfm is not None and not keep_untagged:
        with LastFm(lastfm) as lf:
            tagged = set(lf.tagged_tids())
    h5_df, h5_absent = _load_h5(h5)
    return _Inputs(scan=scan_df, root=os.path.abspath(root), silence=sil_df,
                   mismatches=read_mismatches(mismatches)[0] if mismatches else None,
                   dup_groups=read_duplicates(duplicates)[0] if duplicates else None,
                   tagged=tagged, h5=h5_df, h5_absent=h5_absent)


def _link(inp: _Inputs, report: PurgeReport) -> pd.DataFrame:
    """Step 1: h5 rows joined with their scanned file on track_7digitalid."""
    scan_df, h5_df = inp.scan, inp.h5
    no_id = scan_df['track_7digitalid'].isna()
    in_h5 = scan_df['track_7digitalid'].isin(h5_df['track_7digitalid'].dropna())
    unlinked = scan_df.loc[no_id | ~in_h5, 'file_path'].tolist()
    df = h5_df.merge(scan_df.drop(columns=['duration'], errors='ignore')
                     .rename(columns={'status': 'scan_status', 'reason': 'scan_reason'}),
                     on='track_7digitalid', how='inner')
    has_audio = h5_df['track_7digitalid'].isin(scan_df['track_7digitalid'].dropna())
    report.add('no-audio', 'h5 tracks whose track_7digitalid has no scanned audio file',
               h5_df.loc[~has_audio, 'track_id'].tolist(), len(df))
    report.add('unlinked-file', 'scanned files without a 7digital id or with an id in no h5 row '
               '(not tracks; listed by file path)', unlinked, len(df), ids=False)
    if inp.tagged is not None:
        extra = len(inp.tagged - set(h5_df['track_id']))
        if extra:
            log.info('%d tagged tracks of the Last.fm DB are not in the h5 (ignored)', extra)
    return df


def _drop_ambiguous(df, report: PurgeReport) -> pd.DataFrame:
    """Step 2: every row of a repeated track_7digitalid, then of a repeated track_id."""
    amb7 = df['track_7digitalid'].duplicated(keep=False)
    report.add('ambiguous-7digitalid', 'rows sharing a track_7digitalid with another row (all dropped)',
               df.loc[amb7, 'track_id'].tolist(), int((~amb7).sum()),
               detail=[f'track_7digitalid={v}' for v in df.loc[amb7, 'track_7digitalid']])
    df = df[~amb7]
    ambt = df['track_id'].duplicated(keep=False)
    report.add('ambiguous-track-id', 'rows sharing a track_id with another row (all dropped)',
               sorted(set(df.loc[ambt, 'track_id'])), int((~ambt).sum()))
    return df[~ambt]


def _drop_mismatches(df, mismatches, report: PurgeReport) -> pd.DataFrame:
    """Step 3: track ids of the mismatch list."""
    if mismatches is None:
        log.warning('no --mismatches: mismatch purge skipped')
        return df
    bad = df['track_id'].isin(set(mismatches))
    report.add('mismatch', 'track ids listed in the mismatch list', df.loc[bad, 'track_id'].tolist(),
               int((~bad).sum()))
    return df[~bad]


def _drop_faulty(df, sil_df, min_size, report: PurgeReport) -> pd.DataFrame:
    """Step 4: scan status not ok, too small, no silence row or a silence status other than ok.

    Joins the silence statistics to ``df`` (when there are any).
    """
    why = pd.Series('', index=df.index, dtype=object)
    not_ok = df['scan_status'] != 'ok'
    why[not_ok] = 'scan:' + df.loc[not_ok, 'scan_status'].astype(str)
    small = ~not_ok & ~(df['file_size'].fillna(0) > min_size)
    why[small] = f'file_size<={min_size}'
    if sil_df is not None:
        df = df.merge(sil_df.drop(columns=['sample_rate', 'channels'], errors='ignore')
                      .rename(columns={'status': 'silence_status', 'reason': 'silence_reason'}),
                      on='file_path', how='left')
        why.index = df.index
        rest = why == ''
        missing = rest & df['silence_status'].isna()
        why[missing] = 'silence:missing'
        bad_sil = rest & ~missing & (df['silence_status'] != 'ok')
        why[bad_sil] = 'silence:' + df.loc[bad_sil, 'silence_status'].astype(str)
    faulty = why != ''
    report.add('faulty-audio', 'scan status not ok, file_size <= --min-size, or not decodable / silent',
               df.loc[faulty, 'track_id'].tolist(), int((~faulty).sum()), detail=why[faulty].tolist())
    return df[~faulty]


def _drop_by_silence(df, min_effective_length, max_total_silence, max_gap, report: PurgeReport) -> pd.DataFrame:
    """Step 5: the three silence filters, each off when its limit is 0."""
    for step, col, op, limit, desc in (
            ('short', 'effective_clip_length', 'lt', min_effective_length,
             f'effective_clip_length < {min_effective_length:g} s'),
            ('total-silence', 'mid_silence_length', 'gt', max_total_silence,
             f'mid_silence_length > {max_total_silence:g} s'),
            ('max-gap', 'max_silence_length', 'gt', max_gap, f'max_silence_length > {max_gap:g} s')):
        if not limit:
            log.info('%-22s off', step)
            continue
        v = df[col]
        bad = (v < limit) if op == 'lt' else (v > limit)
        bad = bad.fillna(False)
        report.add(step, desc, df.loc[bad, 'track_id'].tolist(), int((~bad).sum()),
                   detail=[f'{col}={x:.3f}' for x in df.loc[bad, col]])
        df = df[~bad]
    return df


def _drop_untagged(df, tagged, report: PurgeReport) -> pd.DataFrame:
    """Step 6: tracks without a raw Last.fm tag."""
    bad = ~df['track_id'].isin(tagged)
    report.add('untagged', 'no tag in the raw Last.fm DB', df.loc[bad, 'track_id'].tolist(), int((~bad).sum()))
    return df[~bad]


def _drop_duplicates(df, dup_groups, report: PurgeReport) -> pd.DataFrame:
    """Step 7: per duplicate group, every member still present but the first."""
    present = set(df['track_id'])
    drop, detail = [], []
    handled = set()
    for g in dup_groups:
        members = [t for t in g if t in present and t not in handled]
        if len(members) > 1:
            drop += members[1:]
            detail += [f'duplicate of {members[0]}'] * (len(members) - 1)
        handled.update(members)
    bad = df['track_id'].isin(set(drop))
    order = {t: i for i, t in enumerate(drop)}
    removed = sorted(set(drop) & present, key=order.get)
    report.add('duplicate', 'duplicate-group members other than the first one still present',
               removed, int((~bad).sum()), detail=[detail[order[t]] for t in removed])
    return df[~bad]


def _master_frame(df, inp: _Inputs) -> pd.DataFrame:
    """The kept rows as :data:`MASTER_COLUMNS`, sorted by track_id."""
    df = df.copy()
    df['audio_path'] = [os.path.join(inp.root, p) for p in df['file_path']]
    if inp.silence is None:
        for c in SILENCE_FIELDS + ('clip_length',):
            df[c] = np.nan
    # clip_length: decoded length from the silence analysis; header duration where there is none
    if 'duration' in inp.scan:
        header = inp.scan.drop_duplicates('file_path').set_index('file_path')['duration']
        df['clip_length'] = df['clip_length'].fillna(df['file_path'].map(header))
    for c in MASTER_COLUMNS:
        if c not in df:
            df[c] = np.nan
    return df[list(MASTER_COLUMNS)].sort_values('track_id', kind='stable').reset_index(drop=True)


def build_master(*, h5, scan, out, lastfm=None, silence=None, mismatches=None, duplicates=None,
                 audio_root=None, min_size=0, min_effective_length=15.0, max_total_silence=3.0,
                 max_gap=1.0, keep_untagged=False, keep_duplicates=False, overwrite=False, command=None):
    """Run the merge and purges (see module docstring) and write ``out`` + its purge report.

    Returns
    -------
    master : pandas.DataFrame
        The rows written.
    report : dict
        The JSON purge report (``steps`` list, ``kept``, ``warnings``, ``summary``).
    """
    t0 = time.perf_counter()
    out = os.fspath(out)
    rep_json, rep_csv = report_paths(out)
    for p in (out, rep_json, rep_csv):
        check_output(p, overwrite)
    _check_settings(min_size, min_effective_length, max_total_silence, max_gap, lastfm, keep_untagged)
    command = command or command_line()
    inp = _read_inputs(h5=h5, scan=scan, lastfm=lastfm, silence=silence, mismatches=mismatches,
                       duplicates=duplicates, audio_root=audio_root, keep_untagged=keep_untagged)

    report = PurgeReport()
    df = _link(inp, report)
    df = _drop_ambiguous(df, report)
    df = _drop_mismatches(df, inp.mismatches, report)
    df = _drop_faulty(df, inp.silence, min_size, report)
    if inp.silence is not None:
        df = _drop_by_silence(df, min_effective_length, max_total_silence, max_gap, report)
    if inp.tagged is not None:
        df = _drop_untagged(df, inp.tagged, report)
    if inp.dup_groups is not None and not keep_duplicates:
        df = _drop_duplicates(df, inp.dup_groups, report)
    master = _master_frame(df, inp)
    write_master(master, out, command=command, meta={'audio_root': inp.root}, overwrite=overwrite)

    warnings = [no_artist_id_warning(h5)] if 'artist_id' in inp.h5_absent else []
    summary = (f'build: {len(inp.h5)} h5 tracks, {len(inp.scan)} scanned files -> {len(master)} tracks kept ('
               + ', '.join(f'{s["step"]} {s["removed"]}' for s in report.steps if s['removed'])
               + f') in {time.perf_counter() - t0:.1f} s -> {out}'
               + ('; WARNING: no artist_id in the summary file, so no artist-disjoint splits' if warnings else ''))
    rep = {'command': command, 'inputs': {'h5': os.path.abspath(h5), 'scan': os.path.abspath(scan),
                                          'silence': silence and os.path.abspath(silence),
                                          'lastfm': lastfm and os.path.abspath(lastfm),
                                          'mismatches': mismatches and os.path.abspath(mismatches),
                                          'duplicates': duplicates and os.path.abspath(duplicates),
                                          'audio_root': inp.root},
           'settings': {'min_size': min_size, 'min_effective_length': min_effective_length,
                        'max_total_silence': max_total_silence, 'max_gap': max_gap,
                        'keep_untagged': keep_untagged, 'keep_duplicates': keep_duplicates},
           'h5_tracks': len(inp.h5), 'h5_missing_fields': inp.h5_absent, 'artist_ids': not warnings,
           'warnings': warnings, 'scanned_files': len(inp.scan), 'kept': len(master),
           'steps': report.steps, 'summary': summary}
    with atomic_path(rep_json, overwrite) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(json_text(rep))
    write_csv(report.frame(), rep_csv, command=command, overwrite=overwrite)
    return master, rep
