"""``musetag dataset mtat``: MagnaTagATune as distributed -> the MuseTag contract (``docs/datasets.md``).

Inputs (``--root``): ``annotations_final.csv`` (tab-separated, quoted: ``clip_id``, 188 tag columns of
0/1, ``mp3_path``), ``clip_info_final.csv`` (tab-separated, quoted: ``clip_id``, ``track_number``,
``title``, ``artist``, ``album``, ``url``, ``segmentStart``, ``segmentEnd``, ``original_url``,
``mp3_path``) and the ``0/`` … ``f/`` folders of 16 kHz mono MP3s named by ``mp3_path``.

Track id: the ``clip_id``. Tags: the tag columns set to 1, kept as spelled (optionally merged by a
synonym list), the ``--top`` most frequent over all clips.

Protocols (``splits/<name>.csv``):

``choi`` (default, ``splits.csv``)
    Folders ``0``-``b`` train, ``c`` validation, ``d``-``f`` test; every usable clip (the split of
    Choi et al. 2016 and Pons et al., used by musicnn's MTT models).
``clean``
    The same folders, only clips with at least one kept (top-50) tag and at least
    ``--clean-min-seconds`` (29.1) of audio by the header: the rule of Lee et al. 2017
    (<https://github.com/jongpillee/music_dataset_split>, "MTAT_split"), whose lists Won et al. 2020
    (<https://github.com/minzwon/sota-music-tagging-models>, ``split/mtat``) reuse.
``artist``
    Artist-disjoint hash split of ``clip_info``'s artists (``preprocessing.splits``, ratios
    ``--ratios``); clips without a ``clip_info`` row are not in it.
"""
from __future__ import annotations

import csv
import logging
import os

from core.cli import existing_dir, existing_file, nonneg_int, positive_int
from core.errors import MuseTagError

from .options import add_common, finish, non_negative_float, progress

log = logging.getLogger(__name__)

DESCRIPTION = 'MagnaTagATune as distributed (annotations_final.csv, clip_info_final.csv, 0/ … f/)'
ANNOTATIONS = 'annotations_final.csv'
CLIP_INFO = 'clip_info_final.csv'
#: folder -> split of the choi protocol
CHOI_FOLDERS = {**{f: 'train' for f in '0123456789ab'}, 'c': 'validation', **{f: 'test' for f in 'def'}}
SYNONYMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'lists', 'mtat_synonyms.txt')
PROTOCOLS = ('choi', 'clean', 'artist')
_INFO_COLUMNS = ('clip_id', 'track_number', 'title', 'artist', 'album', 'url', 'segmentStart', 'segmentEnd',
                 'original_url', 'mp3_path')


def add_arguments(parser) -> None:
    parser.add_argument('--root', required=True, type=existing_dir,
                        help=f'the MagnaTagATune folder: {ANNOTATIONS}, {CLIP_INFO} and the 0/ … f/ MP3 folders')
    parser.add_argument('--audio', type=existing_dir, default=None,
                        help='folder holding 0/ … f/ when it is not --root')
    parser.add_argument('--top', type=positive_int, default=50, help='keep the N most frequent tags')
    syn = parser.add_mutually_exclusive_group()
    syn.add_argument('--merge-synonyms', action='store_true',
                     help=f'merge synonym tags with the shipped list ({os.path.relpath(SYNONYMS)})')
    syn.add_argument('--synonyms', type=existing_file, default=None,
                     help='merge synonym tags with this list (one group per line: "name: spelling, spelling")')
    parser.add_argument('--protocol', choices=PROTOCOLS, default='choi', help='the protocol written as splits.csv')
    parser.add_argument('--clean-min-seconds', type=non_negative_float, default=29.1,
                        help='the clean protocol keeps clips with at least this much audio (s, by the header)')
    parser.add_argument('--ratios', type=non_negative_float, nargs=3, default=(0.8, 0.1, 0.1),
                        metavar=('TRAIN', 'VAL', 'TEST'), help='ratios of the artist protocol')
    parser.add_argument('--seed', type=nonneg_int, default=0, help='seed of the artist protocol hash')
    add_common(parser)


def _read_tsv(path, what, first, last=None):
    """(header, [(line number, fields)]) of a tab-separated, quoted file; the header must start with
    ``first`` (and end with ``last``)."""
    with open(path, encoding='utf-8', newline='') as f:
        reader = csv.reader(f, delimiter='\t')
        try:
            header = next(reader)
        except StopIteration:
            raise MuseTagError(f'{path}: {what} is empty') from None
        header = [h.strip() for h in header]
        if not header or header[0] != first or (last and header[-1] != last):
            found = 'commas' if len(header) == 1 and header[0].count(',') > 0 else 'tabs'
            raise MuseTagError(f'{path}: {what} header should start with {first!r}'
                               + (f' and end with {last!r}' if last else '')
                               + f'; found {header[:3]}… (split on {found}; the file must be tab-separated)')
        rows = [(reader.line_num, r) for r in reader if any(x.strip() for x in r)]
    return header, rows


def _annotations(path, collection):
    """clip id -> (mp3_path, set of tags); bad rows and repeated ids skipped."""
    header, rows = _read_tsv(path, 'annotations', 'clip_id', 'mp3_path')
    tags = header[1:-1]
    clips = {}
    for line, r in rows:
        item = r[0].strip() if r else ''
        if len(r) != len(header):
            collection.skip('bad-row', item or f'line {line}', path,
                            f'line {line}: {len(r)} fields, expected {len(header)}')
            continue
        values = [v.strip() for v in r[1:-1]]
        if not item or any(v not in ('0', '1') for v in values) or not r[-1].strip():
            why = 'no clip_id' if not item else ('no mp3_path' if not r[-1].strip() else 'a tag value is not 0 or 1')
            collection.skip('bad-row', item or f'line {line}', path, f'line {line}: {why}')
            continue
        if item in clips:
            collection.skip('duplicate-id', item, path, f'line {line} repeats clip_id {item}')
            continue
        clips[item] = (r[-1].strip(), {t for t, v in zip(tags, values) if v == '1'})
    return tags, clips


def _clip_info(path, collection):
    """clip id -> info dict (artist, album, title, track_number, segment start/end)."""
    if not os.path.exists(path):
        log.warning('%s not found: no artist, album or title; the artist protocol is empty', path)
        return {}
    header, rows = _read_tsv(path, 'clip info', 'clip_id')
    missing = [c for c in ('artist', 'album', 'title') if c not in header]
    if missing:
        raise MuseTagError(f'{path}: clip info lacks column(s) {missing} (found {header})')
    info = {}
    for line, r in rows:
        if len(r) != len(header):
            collection.skip('bad-row', f'line {line}', path, f'line {line}: {len(r)} fields, expected {len(header)}')
            continue
        d = dict(zip(header, (x.strip() for x in r)))
        info.setdefault(d['clip_id'], d)
    return info


def _protocols(master, by_track, args):
    """name -> DataFrame(track_id, split) for choi, clean and artist."""
    import pandas as pd
    from preprocessing.splits import make_split
    folder = master['file_path'].str.split('/', n=1).str[0].map(CHOI_FOLDERS)
    choi = pd.DataFrame({'track_id': master['track_id'], 'split': folder}).dropna().reset_index(drop=True)
    clean_ok = master['track_id'].map(lambda t: t in by_track) & (master['duration'] >= args.clean_min_seconds)
    clean = choi[choi['track_id'].isin(set(master.loc[clean_ok, 'track_id']))].reset_index(drop=True)
    with_artist = master[master['artist_id'].fillna('').astype(str).str.strip() != '']
    artist = (make_split(with_artist, by='artist', ratios=args.ratios, seed=args.seed)[0] if len(with_artist)
              else pd.DataFrame({'track_id': [], 'split': []}))
    return {'choi': choi, 'clean': clean, 'artist': artist}


def run(args) -> int:
    import pandas as pd

    from .contract import Collection, read_synonyms, select_tags, write_dataset
    from .scan import Candidate, check_files
    audio = os.path.abspath(args.audio or args.root)
    annotations = os.path.join(args.root, ANNOTATIONS)
    if not os.path.isfile(annotations):
        raise MuseTagError(f'{annotations} not found: --root must be the MagnaTagATune folder holding {ANNOTATIONS}')
    collection = Collection('mtat', audio)
    columns, clips = _annotations(annotations, collection)
    info = _clip_info(os.path.join(args.root, CLIP_INFO), collection)
    candidates = [Candidate(cid, rel, tags) for cid, (rel, tags) in clips.items()]
    good = check_files(candidates, audio, collection, min_seconds=args.min_seconds, workers=args.workers,
                       progress=progress(args))
    for c, path, duration, sr, channels in good:
        d = info.get(c.item, {})
        collection.add(dict(track_id=c.item, file_path=c.rel, audio_path=path, artist_id=d.get('artist') or None,
                            artist_name=d.get('artist') or None, release=d.get('album') or None,
                            title=d.get('title') or None, duration=duration, clip_length=duration,
                            sample_rate=sr, channels=channels), sorted(c.data))
    if not collection.rows:
        raise MuseTagError(f'no usable clip under {audio} ({len(collection.skipped)} skipped)')
    synonyms = read_synonyms(SYNONYMS if args.merge_synonyms else args.synonyms) \
        if (args.merge_synonyms or args.synonyms) else None
    selection = select_tags(collection.tags, normalise=False, synonyms=synonyms, min_count=args.min_count,
                            top=args.top)
    master = pd.DataFrame(collection.rows)
    protocols = _protocols(master, selection[0], args)
    used = {t for tags in collection.tags.values() for t in tags}
    settings = dict(root=os.path.abspath(args.root), top=args.top, min_count=args.min_count,
                    min_seconds=args.min_seconds, clean_min_seconds=args.clean_min_seconds,
                    synonyms=(SYNONYMS if args.merge_synonyms else args.synonyms), ratios=list(args.ratios),
                    seed=args.seed, tag_columns=len(columns), empty_tag_columns=[t for t in columns if t not in used])
    summary = write_dataset(collection, args.out, selection=selection, protocols=protocols, default=args.protocol,
                            command=args.command_line, settings=settings, overwrite=args.overwrite)
    return finish(summary, args.out)
