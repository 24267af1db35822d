"""``musetag dataset folder``: your own folder of audio (+ a CSV/TSV of tags) -> the MuseTag contract.

Two ways to give the tags (``docs/datasets.md`` has examples):

* ``--tags FILE``: a CSV or TSV (the delimiter, one of ``,`` tab ``;`` ``|``, is detected from the
  header line; a header without a path column under it is an error naming the delimiter found). A
  path column (``path``, ``file``, ``filename``, ``file_path``, … or ``--path-column``) gives each
  file relative to ``--audio``. The tags are either

  (a) one ``tags`` column, several tags separated by ``--tag-separator`` (``;``);
  (b) one ``tag`` column, one row per (file, tag): a file's rows are merged;
  (c) one-hot columns: every other column whose values are all 0/1 is a tag named by its header.

  Optional columns ``artist``, ``album``, ``title`` and ``split`` (``train`` / ``validation`` /
  ``test``; ``valid`` and ``val`` are read as validation).
* no ``--tags``: one folder per label (GTZAN: ``blues/blues.00000.wav``); the first folder of each
  file's path is its tag.

Tags are normalised (:func:`sources.contract.normalise_tag`: case-folded, trimmed, runs of spaces,
``_`` and ``-`` made one space); ``tag_map.csv`` keeps every original spelling.

Track id: the first 16 hex digits of the BLAKE2b hash of the file's path relative to ``--audio``
(``/``-separated), so the same file keeps its id when rows or other files change.

Protocols: ``given`` (the split column; rows without a split are not in it), ``artist``
(artist-disjoint hash split, when every track has an artist) and ``track`` (hash split per track),
both from :func:`preprocessing.splits.make_split`. The default is the first of these that exists.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os

from core.cli import existing_dir, existing_file, nonneg_int
from core.errors import MuseTagError

from .options import add_common, finish, non_negative_float, progress

log = logging.getLogger(__name__)

DESCRIPTION = 'your own folder of audio, tagged by a CSV/TSV or by one folder per label (GTZAN layout)'
PATH_COLUMNS = ('path', 'file', 'filename', 'file_name', 'file_path', 'filepath', 'audio', 'audio_path',
                'relpath', 'relative_path')
META_COLUMNS = {'artist': 'artist', 'artist_name': 'artist', 'album': 'album', 'release': 'album',
                'title': 'title', 'split': 'split'}
DELIMITERS = (',', '\t', ';', '|')
_SPLIT_NAMES = {'train': 'train', 'training': 'train', 'validation': 'validation', 'valid': 'validation',
                'val': 'validation', 'test': 'test'}
PROTOCOLS = ('given', 'artist', 'track')


def add_arguments(parser) -> None:
    parser.add_argument('--audio', required=True, type=existing_dir, help='the audio folder')
    parser.add_argument('--tags', type=existing_file, default=None,
                        help='CSV or TSV of (path relative to --audio, tags); without it: one folder per label')
    parser.add_argument('--path-column', default=None, help='the column holding the paths (default: the first '
                        f'of {", ".join(PATH_COLUMNS)})')
    parser.add_argument('--tag-separator', default=';', help='separator of several tags in one "tags" column')
    parser.add_argument('--protocol', choices=PROTOCOLS, default=None,
                        help='the protocol written as splits.csv (default: given if there is a split column, '
                        'else artist if every track has an artist, else track)')
    parser.add_argument('--ratios', type=non_negative_float, nargs=3, default=(0.8, 0.1, 0.1),
                        metavar=('TRAIN', 'VAL', 'TEST'), help='ratios of the hash splits')
    parser.add_argument('--seed', type=nonneg_int, default=0, help='seed of the hash splits')
    add_common(parser)


def track_id(rel: str) -> str:
    """The stable track id of a file: 16 hex digits of BLAKE2b over its ``/``-separated relative path."""
    return hashlib.blake2b(rel.replace(os.sep, '/').encode('utf-8', 'surrogateescape'), digest_size=8).hexdigest()


# ------------------------------------------------------------------------------------- the table
def _delimiter(header_line: str) -> str:
    """The delimiter that splits the header line most (outside quotes)."""
    counts = {d: len(next(csv.reader([header_line], delimiter=d))) for d in DELIMITERS}
    return max(DELIMITERS, key=lambda d: (counts[d], -DELIMITERS.index(d)))


def _name(d) -> str:
    return {'\t': 'tab', ',': 'comma', ';': 'semicolon', '|': 'pipe'}[d]


def read_table(path, path_column=None):
    """(header, rows as lists, line numbers, delimiter, path column index)."""
    with open(path, encoding='utf-8-sig', newline='') as f:
        text = f.read()
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip() and not ln.startswith('#')), None)
    if first is None:
        raise MuseTagError(f'{path}: no header line')
    delim = _delimiter(first)
    reader = csv.reader(lines, delimiter=delim)
    header, rows, numbers = None, [], []
    for r in reader:
        if header is None:
            if not r or not any(x.strip() for x in r) or r[0].startswith('#'):
                continue
            header = [h.strip() for h in r]
            continue
        if any(x.strip() for x in r):
            rows.append(r)
            numbers.append(reader.line_num)
    lower = [h.lower() for h in header]
    wanted = [path_column.lower()] if path_column else list(PATH_COLUMNS)
    col = next((lower.index(w) for w in wanted if w in lower), None)
    if col is None:
        raise MuseTagError(
            f'{path}: the header does not parse with the detected delimiter ({_name(delim)} {delim!r}): found '
            f'{len(header)} column(s) {header[:6]} and no path column ({", ".join(wanted)}). Fix the header, or '
            'name the column with --path-column')
    log.info('%s: %s-separated, path column %r', path, _name(delim), header[col])
    return header, rows, numbers, delim, col


def _layout(header, rows, path_col):
    """('tags' | 'tag' | 'onehot', tag columns, unknown columns, meta column -> index)."""
    lower = [h.lower() for h in header]
    meta = {META_COLUMNS[h]: i for i, h in enumerate(lower) if h in META_COLUMNS and i != path_col}
    if 'tags' in lower:
        return 'tags', [lower.index('tags')], [], meta
    if 'tag' in lower:
        return 'tag', [lower.index('tag')], [], meta
    onehot, unknown = [], []
    for i in range(len(header)):
        if i == path_col or i in meta.values():
            continue
        values = {r[i].strip() for r in rows if i < len(r)}
        (onehot if values <= {'0', '1', ''} else unknown).append(i)
    if not onehot:
        raise MuseTagError(f'no tag column: expected a "tags" column, a "tag" column or 0/1 columns '
                           f'(found {header})')
    return 'onehot', onehot, unknown, meta


def _from_table(args, collection):
    """Candidates from the tags file: list of Candidate(item, rel, dict(tags, artist, album, title, split))."""
    from .scan import Candidate
    header, rows, numbers, _, path_col = read_table(args.tags, args.path_column)
    kind, tag_cols, unknown, meta = _layout(header, rows, path_col)
    for i in unknown:
        collection.skip('unknown-column', header[i], args.tags, 'not a known column and not all 0/1: ignored')
    if kind == 'onehot':
        for i in tag_cols:
            if not any(i < len(r) and r[i].strip() == '1' for r in rows):
                collection.skip('empty-tag-column', header[i], args.tags, 'no row sets it')
    by_path, order = {}, []
    for line, r in zip(numbers, rows):
        if len(r) != len(header):
            collection.skip('bad-row', f'line {line}', args.tags, f'{len(r)} fields, expected {len(header)}')
            continue
        rel = r[path_col].strip()
        if not rel:
            collection.skip('bad-row', f'line {line}', args.tags, 'no path')
            continue
        if kind == 'tags':
            tags = [t.strip() for t in r[tag_cols[0]].split(args.tag_separator) if t.strip()]
        elif kind == 'tag':
            tags = [r[tag_cols[0]].strip()] if r[tag_cols[0]].strip() else []
        else:
            tags = [header[i] for i in tag_cols if r[i].strip() == '1']
        info = {k: r[i].strip() for k, i in meta.items()}
        split = info.get('split', '')
        if split and split.lower() not in _SPLIT_NAMES:
            collection.skip('bad-row', f'line {line}', args.tags, f'unknown split {split!r} (train, validation, test)')
            continue
        info['split'] = _SPLIT_NAMES.get(split.lower(), '')
        if rel in by_path:
            if kind != 'tag':
                collection.skip('duplicate-path', f'line {line}', rel, f'also on line {by_path[rel]["line"]}')
                continue
            by_path[rel]['tags'] += tags
            continue
        by_path[rel] = dict(info, tags=tags, line=line)
        order.append(rel)
    out = []
    for rel in order:
        d = by_path[rel]
        if not d['tags']:
            collection.skip('no-tag', f'line {d["line"]}', rel, 'the row has no tag')
            continue
        out.append(Candidate(f'line {d["line"]}', rel, d))
    return out


def _from_folders(args, collection):
    """Candidates of the folder-per-label layout."""
    from preprocessing.audio import collect_inputs
    from .scan import Candidate
    found = collect_inputs([args.audio])
    for path, reason, detail in found.skipped:
        collection.skip('unreadable-audio' if reason != 'missing' else 'missing-file', path, path, detail)
    out = []
    for f in found.files:
        rel = f.key.replace(os.sep, '/')
        if '/' not in rel:
            collection.skip('no-tag', rel, rel, 'a file outside a label folder')
            continue
        out.append(Candidate(rel, rel, dict(tags=[rel.split('/', 1)[0]], split='')))
    return out


def _protocols(master, args):
    import pandas as pd
    from preprocessing.splits import make_split
    protocols = {}
    given = master[['track_id', 'split']]
    if (given['split'].fillna('') != '').any():
        protocols['given'] = given[given['split'].fillna('') != ''].reset_index(drop=True)
    if master['artist_id'].notna().all() and (master['artist_id'].astype(str).str.strip() != '').all():
        protocols['artist'] = make_split(master, by='artist', ratios=args.ratios, seed=args.seed)[0]
    protocols['track'] = make_split(master, by='track', ratios=args.ratios, seed=args.seed)[0]
    default = args.protocol or next(iter(protocols))
    if default not in protocols:
        why = {'given': 'the tags file has no split column (or no row gives a split)',
               'artist': 'not every track has an artist'}[default]
        raise MuseTagError(f'--protocol {default}: {why}')
    return {k: pd.DataFrame(v) for k, v in protocols.items()}, default


def run(args) -> int:
    import pandas as pd

    from .contract import Collection, select_tags, write_dataset
    from .scan import check_files
    audio = os.path.abspath(args.audio)
    collection = Collection('folder', audio)
    candidates = _from_table(args, collection) if args.tags else _from_folders(args, collection)
    good = check_files(candidates, audio, collection, min_seconds=args.min_seconds, workers=args.workers,
                       progress=progress(args))
    for c, path, duration, sr, channels in good:
        rel = c.rel.replace(os.sep, '/')
        d = c.data
        collection.add(dict(track_id=track_id(rel), file_path=rel, audio_path=path,
                            artist_id=d.get('artist') or None, artist_name=d.get('artist') or None,
                            release=d.get('album') or None, title=d.get('title') or None, duration=duration,
                            clip_length=duration, sample_rate=sr, channels=channels, split=d.get('split') or None),
                       d['tags'])
    if not collection.rows:
        raise MuseTagError(f'no usable file under {audio} ({len(collection.skipped)} skipped)')
    selection = select_tags(collection.tags, normalise=True, min_count=args.min_count)
    master = pd.DataFrame(collection.rows)
    protocols, default = _protocols(master, args)
    collection.rows = master.drop(columns=['split']).to_dict('records')
    settings = dict(audio=audio, tags=os.path.abspath(args.tags) if args.tags else None,
                    layout='table' if args.tags else 'folders', min_count=args.min_count,
                    min_seconds=args.min_seconds, ratios=list(args.ratios), seed=args.seed)
    summary = write_dataset(collection, args.out, selection=selection, protocols=protocols, default=default,
                            command=args.command_line, settings=settings, overwrite=args.overwrite)
    return finish(summary, args.out)
