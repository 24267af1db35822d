"""``musetag dataset jamendo``: MTG-Jamendo autotagging -> the MuseTag contract (``docs/datasets.md``).

Inputs: ``--root``, the MTG-Jamendo repository's ``data/`` folder (or the repository itself) as
published at <https://github.com/MTG/mtg-jamendo-dataset>:

* ``autotagging.tsv`` (every tag) and ``autotagging_{top50tags,genre,instrument,moodtheme}.tsv``:
  header ``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS``, tab-separated; a row's tags are the
  fields after ``DURATION`` (``genre---rock``, ``instrument---piano``, ``mood/theme---sad``);
* ``splits/split-{0..4}/<subset>-{train,validation,test}.tsv``: the five published splits
  (artist-disjoint), in the same format;

and ``--audio``, the folder the ``PATH`` column is relative to (``38/917538.mp3``; the low-quality
release's ``38/917538.low.mp3`` is used when only it is there).

Track id: ``TRACK_ID``; artist id ``ARTIST_ID``, release ``ALBUM_ID``. Tags are kept as spelled
(``genre---rock``). Durations come from the MP3 headers (never a decode; the TSV's ``DURATION`` is
only compared). Protocols: ``split-0`` … ``split-4`` (those present), ``--split N`` (0) the default.
"""
from __future__ import annotations

import logging
import os

from core.cli import existing_dir
from core.errors import MuseTagError

from .options import add_common, finish, progress

log = logging.getLogger(__name__)

DESCRIPTION = 'MTG-Jamendo autotagging: the published TSVs, their five splits and the full-length MP3s'
SUBSETS = {'top50': 'autotagging_top50tags', 'genre': 'autotagging_genre', 'instrument': 'autotagging_instrument',
           'moodtheme': 'autotagging_moodtheme', 'all': 'autotagging'}
HEADER = ('TRACK_ID', 'ARTIST_ID', 'ALBUM_ID', 'PATH', 'DURATION')
SPLITS = ('train', 'validation', 'test')


def add_arguments(parser) -> None:
    parser.add_argument('--root', required=True, type=existing_dir,
                        help='the MTG-Jamendo data/ folder (autotagging*.tsv and splits/) or the repository holding it')
    parser.add_argument('--audio', required=True, type=existing_dir, help='the audio folder PATH is relative to')
    parser.add_argument('--subset', choices=list(SUBSETS), default='top50', help='which autotagging TSV')
    parser.add_argument('--split', type=int, choices=range(5), default=0, metavar='0..4',
                        help='the published split written as splits.csv')
    add_common(parser)


def data_folder(root) -> str:
    """``root`` if it holds ``autotagging.tsv`` or a subset TSV, else ``root/data``."""
    for folder in (root, os.path.join(root, 'data')):
        if any(os.path.isfile(os.path.join(folder, f'{s}.tsv')) for s in SUBSETS.values()):
            return folder
    raise MuseTagError(f'{root}: no autotagging*.tsv here or in {os.path.join(root, "data")}; --root must be '
                       "the MTG-Jamendo repository's data/ folder")


def read_tsv(path, collection=None):
    """Rows of an MTG-Jamendo TSV as dicts (track_id, artist_id, album_id, path, duration, tags);
    bad rows go to ``collection.skip`` (when given)."""
    def skip(reason, item, detail):
        if collection is not None:
            collection.skip(reason, item, path, detail)
    rows = []
    with open(path, encoding='utf-8') as f:
        first = f.readline().rstrip('\r\n').split('\t')
        if tuple(h.strip() for h in first[:5]) != HEADER:
            found = 'commas' if '\t' not in first[0] and ',' in first[0] else 'tabs'
            raise MuseTagError(f'{path}: header should start with {" ".join(HEADER)} (tab-separated); '
                               f'found {first[:5]} (split on {found})')
        for number, line in enumerate(f, 2):
            fields = line.rstrip('\r\n').split('\t')
            if not any(x.strip() for x in fields):
                continue
            item = fields[0].strip() or f'line {number}'
            if len(fields) < 5 or not all(x.strip() for x in fields[:4]):
                skip('bad-row', item, f'line {number}: {len(fields)} field(s), expected at least 6')
                continue
            try:
                duration = float(fields[4])
            except ValueError:
                skip('bad-row', item, f'line {number}: DURATION {fields[4]!r} is not a number')
                continue
            tags = [t.strip() for t in fields[5:] if t.strip()]
            rows.append(dict(track_id=fields[0].strip(), artist_id=fields[1].strip(), album_id=fields[2].strip(),
                             path=fields[3].strip(), duration=duration, tags=tags, line=number))
    return rows


def _low(rel):
    return rel[:-4] + '.low.mp3' if rel.endswith('.mp3') else None


def _protocols(data, stem, master_ids, known_ids, collection):
    """split-N -> DataFrame(track_id, split) for the published splits present."""
    import pandas as pd
    out = {}
    for n in range(5):
        folder = os.path.join(data, 'splits', f'split-{n}')
        files = {s: os.path.join(folder, f'{stem}-{s}.tsv') for s in SPLITS}
        if not all(os.path.isfile(p) for p in files.values()):
            continue
        ids, splits = [], []
        for split, path in files.items():
            for r in read_tsv(path):
                if r['track_id'] not in known_ids:
                    collection.skip('unknown-split-id', r['track_id'], path, f'split-{n} {split} names it; '
                                    f'{stem}.tsv does not')
                elif r['track_id'] in master_ids:
                    ids.append(r['track_id'])
                    splits.append(split)
        out[f'split-{n}'] = pd.DataFrame({'track_id': ids, 'split': splits}).drop_duplicates('track_id')
    return out


def run(args) -> int:
    from .contract import Collection, select_tags, write_dataset
    from .scan import Candidate, check_files
    data = data_folder(args.root)
    stem = SUBSETS[args.subset]
    tsv = os.path.join(data, f'{stem}.tsv')
    if not os.path.isfile(tsv):
        raise MuseTagError(f'{tsv} not found (--subset {args.subset})')
    audio = os.path.abspath(args.audio)
    collection = Collection('jamendo', audio)
    rows, seen = [], set()
    for r in read_tsv(tsv, collection):
        if r['track_id'] in seen:
            collection.skip('duplicate-id', r['track_id'], tsv, f'line {r["line"]} repeats it')
        elif not r['tags']:
            collection.skip('no-tag', r['track_id'], tsv, f'line {r["line"]} has no tag')
        else:
            seen.add(r['track_id'])
            rows.append(r)
    good = check_files([Candidate(r['track_id'], r['path'], r) for r in rows], audio, collection,
                       min_seconds=args.min_seconds, workers=args.workers, progress=progress(args), lookup=_low)
    for c, path, duration, sr, channels in good:
        r = c.data
        if abs(duration - r['duration']) > 1.0:
            log.debug('%s: header duration %.1f s, TSV %.1f s', r['track_id'], duration, r['duration'])
        collection.add(dict(track_id=r['track_id'], file_path=os.path.relpath(path, os.path.realpath(audio)),
                            audio_path=path, artist_id=r['artist_id'], release=r['album_id'], duration=duration,
                            clip_length=duration, sample_rate=sr, channels=channels), r['tags'])
    if not collection.rows:
        raise MuseTagError(f'no usable track under {audio} ({len(collection.skipped)} skipped)')
    selection = select_tags(collection.tags, normalise=False, min_count=args.min_count)
    protocols = _protocols(data, stem, set(collection.tags), {r['track_id'] for r in rows}, collection)
    default = f'split-{args.split}'
    if default not in protocols:
        raise MuseTagError(f'no published split {args.split} for {stem} under {os.path.join(data, "splits")} '
                           f'(found: {", ".join(protocols) or "none"})')
    settings = dict(root=os.path.abspath(args.root), data=os.path.abspath(data), subset=args.subset,
                    split=args.split, min_count=args.min_count, min_seconds=args.min_seconds)
    summary = write_dataset(collection, args.out, selection=selection, protocols=protocols, default=default,
                            command=args.command_line, settings=settings, overwrite=args.overwrite)
    return finish(summary, args.out)
