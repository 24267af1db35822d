"""(image, track) pairs for image runs: from an index's pictures or a CSV, split by album, with targets.

``musetag index pairs`` writes a pairs folder (format in ``docs/images.md``)::

    PAIRS/pairs.json   what was written: index, run, space, seed, fractions, counts, source
    PAIRS/pairs.csv    image,track_id,split,group,artist,album,title (image relative to the folder)
    PAIRS/images/      <sha256>.jpg: the normalised pictures, one file per distinct picture
    PAIRS/targets/     a target table (latent.targets): key index_id, kind index-space
    PAIRS/skipped.csv  source,reason,detail: the pairs left out

Pairs come from the index (every track whose picture was recorded by ``index build``) or from a
user's CSV of (picture file, track) rows. Every pair's split is drawn for its group — the track's
album (artist + album tags), else the picture — by a seeded hash (:func:`split_of`), so tracks
sharing an album cover never straddle splits.

The targets are the tracks' vectors in the chosen space of the index: ``embedding`` (the unit-length
vectors of the index's embedding store) or ``tags`` (the tag probabilities of the track table).
"""
from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass, field

import numpy as np

from core import files
from core.errors import MuseTagError
from core.locks import OutputLock

__all__ = ['PairRow', 'PairsSummary', 'split_of', 'pairs_from_index', 'pairs_from_csv', 'write_pairs',
           'FRACTIONS', 'SPLITS', 'PAIRS_CSV', 'PAIRS_JSON', 'SKIPPED_CSV', 'IMAGES_DIR', 'TARGETS_DIR',
           'COLUMNS', 'FORMAT']

log = logging.getLogger(__name__)

FORMAT = 1
PAIRS_CSV = 'pairs.csv'
PAIRS_JSON = 'pairs.json'
SKIPPED_CSV = 'skipped.csv'
IMAGES_DIR = 'images'
TARGETS_DIR = 'targets'
SPLITS = ('train', 'validation', 'test')
#: Default share of the groups in each split (train, validation, test).
FRACTIONS = (0.8, 0.1, 0.1)
COLUMNS = ('image', 'track_id', 'split', 'group', 'artist', 'album', 'title')


@dataclass
class PairRow:
    """One pair: the normalised picture (``data``, JPEG bytes; ``sha256``), the index track, its split group."""
    sha256: str
    data: bytes = field(repr=False)
    track_id: str
    group: str
    artist: str | None = None
    album: str | None = None
    title: str | None = None


@dataclass
class PairsSummary:
    """What :func:`write_pairs` wrote: counts per split, pictures, and the pairs left out."""
    out: str
    pairs: int
    images: int
    splits: dict
    skipped: list

    def line(self) -> str:
        per = ', '.join(f'{self.splits.get(s, 0)} {s}' for s in SPLITS)
        return (f'{self.out}: {self.pairs} pairs ({per}) of {self.images} pictures'
                + (f'; {len(self.skipped)} left out' if self.skipped else ''))


def split_of(group: str, seed: int = 0, fractions=FRACTIONS) -> str:
    """The split of ``group``: ``sha256(f"{seed}:{group}")``'s first 8 bytes as a fraction of 2**64,
    against the cumulative ``fractions`` (train, validation, test)."""
    x = int.from_bytes(hashlib.sha256(f'{seed}:{group}'.encode('utf-8')).digest()[:8], 'big') / 2.0 ** 64
    edge = 0.0
    for name, share in zip(SPLITS, fractions):
        edge += share
        if x < edge:
            return name
    return SPLITS[-1]


def _group(track, sha: str) -> str:
    """``album:["<artist>", "<album>"]`` (JSON) when the track has an album tag, else ``image:<sha256>``."""
    if track.album:
        return 'album:' + json.dumps([track.artist or '', track.album], ensure_ascii=False)
    return f'image:{sha}'


def pairs_from_index(index) -> tuple:
    """``(rows [PairRow], skipped [(source, reason, detail)])``: every track of ``index`` with a recorded
    picture; tracks whose picture was bad are listed in ``skipped``, tracks without one are not."""
    rows, skipped, cache = [], [], {}
    for t in index.tracks():
        rec = t.picture or {}
        if rec.get('error'):
            skipped.append((t.path, rec['error'], rec.get('detail') or ''))
            continue
        path = index.picture_path(t)
        if path is None:
            continue
        if path not in cache:
            try:
                with open(path, 'rb') as f:
                    cache[path] = f.read()
            except OSError as e:
                skipped.append((t.path, 'unreadable', f'{path}: {e.strerror or e} (build the index again)'))
                continue
        rows.append(PairRow(rec['sha256'], cache[path], t.id, _group(t, rec['sha256']), t.artist, t.album, t.title))
    return rows, skipped


def pairs_from_csv(index, csv_path) -> tuple:
    """``(rows, skipped)`` from a CSV with the columns ``image`` (a picture file, absolute or relative to
    the CSV's folder) and ``track`` (an indexed track's path or id); bad pictures and unknown tracks are
    left out with their reason."""
    from imagemusic.pictures import PictureError, read_image_file
    from retrieval.index import BadIndexError
    csv_path = os.fspath(csv_path)
    base = os.path.dirname(os.path.abspath(csv_path))
    try:
        with open(csv_path, encoding='utf-8-sig', newline='') as f:
            table = list(csv.DictReader(f))
            header = set(table[0]) if table else set()
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise MuseTagError(f'--pairs {csv_path}: cannot read it as a UTF-8 CSV ({e})') from e
    if not table or not {'image', 'track'} <= header:
        raise MuseTagError(f'--pairs {csv_path}: needs a header with the columns image,track and at least one '
                           f'row (found {sorted(c for c in header if c)})')
    rows, skipped, pictures = [], [], {}
    for n, row in enumerate(table, start=2):
        image, ref = (row.get('image') or '').strip(), (row.get('track') or '').strip()
        where = f'{csv_path}:{n}'
        if not image or not ref:
            skipped.append((where, 'empty', 'the image or the track is empty'))
            continue
        try:
            track = index.find(ref)
        except BadIndexError:
            skipped.append((where, 'unknown-track', f'{ref} is not in the index {index.path}'))
            continue
        path = image if os.path.isabs(image) else os.path.join(base, image)
        if path not in pictures:
            try:
                pictures[path] = read_image_file(path)
            except PictureError as e:
                pictures[path] = e
        pic = pictures[path]
        if isinstance(pic, PictureError):
            skipped.append((where, pic.reason, f'{image}: {pic.detail}'))
            continue
        rows.append(PairRow(pic.sha256, pic.data, track.id, _group(track, pic.sha256), track.artist, track.album,
                            track.title))
    return rows, skipped


def _targets(index, ids: list, space: str) -> np.ndarray:
    """float32 [n, d]: the vectors of ``ids`` in ``space`` (module docstring)."""
    if space == 'tags':
        return np.stack([index.track(i).probs for i in ids]).astype(np.float32)
    vectors, _ = index.stores['embedding'].get(ids)
    return np.asarray(vectors, dtype=np.float32)


def _csv_text(header, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def write_pairs(out, index, rows: list, *, space: str = 'embedding', seed: int = 0, fractions=FRACTIONS,
                skipped=(), source: str = 'index', overwrite: bool = False) -> PairsSummary:
    """Write the pairs folder ``out`` (module docstring) for ``rows`` of ``index``; atomic, under a lock.

    Raises :class:`core.errors.MuseTagError` when no pair is left, ``OutputExistsError`` when ``out``
    exists without ``overwrite``, ``LockedError`` (exit 3) when another job writes it.
    """
    from latent.targets import write_targets
    if space not in ('embedding', 'tags'):
        raise MuseTagError(f'--space {space!r}: choose embedding or tags')
    if not rows:
        raise MuseTagError(f'no (image, track) pair to write: the index {index.path} records no picture '
                           '(build it again with this version, or give --pairs CSV)')
    fractions = tuple(float(x) for x in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise MuseTagError(f'split fractions {fractions} must be three numbers >= 0 summing to 1')
    out = os.fspath(out)
    ids = list(dict.fromkeys(r.track_id for r in rows))
    vectors = _targets(index, ids, space)
    splits = {}
    table = []
    for r in rows:
        split = split_of(r.group, seed, fractions)
        splits[split] = splits.get(split, 0) + 1
        table.append((f'{IMAGES_DIR}/{r.sha256}.jpg', r.track_id, split, r.group, r.artist or '', r.album or '',
                      r.title or ''))
    for name in SPLITS:
        if fractions[SPLITS.index(name)] > 0 and not splits.get(name):
            log.warning('the %s split holds no pair (%d groups in all): use more albums or other fractions', name,
                        len({r.group for r in rows}))
    m = index.manifest
    meta = {'kind': 'index-space', 'key': 'index_id',
            'params': {'index': os.path.abspath(index.path), 'run': m['run'], 'space': space, 'layer': m['layer'],
                       'labels': list(m['labels']) if space == 'tags' else None},
            'source': {'pairs': os.path.abspath(out)}}
    pictures = {r.sha256: r.data for r in rows}
    manifest = {'format': FORMAT, 'index': os.path.abspath(index.path), 'run': m['run'], 'space': space,
                'seed': int(seed), 'fractions': dict(zip(SPLITS, fractions)), 'source': source,
                'counts': dict({s: splits.get(s, 0) for s in SPLITS}, pairs=len(rows), images=len(pictures),
                               tracks=len(ids), skipped=len(skipped)),
                'created': datetime.datetime.now().astimezone().isoformat(timespec='seconds')}
    with OutputLock(out), files.atomic_dir(out, overwrite=overwrite) as tmp:
        os.mkdir(os.path.join(tmp, IMAGES_DIR))
        for sha, data in pictures.items():
            with open(os.path.join(tmp, IMAGES_DIR, f'{sha}.jpg'), 'wb') as f:
                f.write(data)
        with open(os.path.join(tmp, PAIRS_CSV), 'w', encoding='utf-8', newline='') as f:
            f.write(_csv_text(COLUMNS, table))
        with open(os.path.join(tmp, SKIPPED_CSV), 'w', encoding='utf-8', newline='') as f:
            f.write(_csv_text(('source', 'reason', 'detail'), skipped))
        files.write_json(os.path.join(tmp, PAIRS_JSON), manifest)
        write_targets(os.path.join(tmp, TARGETS_DIR), ids, vectors, meta)
    return PairsSummary(out=out, pairs=len(rows), images=len(pictures), splits=splits, skipped=list(skipped))

