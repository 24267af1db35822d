"""The track index: a folder of audio embedded once, searchable by sound and by tags.

Layout of an index directory (``docs/retrieval.md``)::

    INDEX/
      index.json      which run built it (path + identity), layer, pooling, dims, backend, roots,
                      created / updated, counts
      tracks.sqlite   table ``tracks``: id, path, size, mtime_ns, duration, artist, album, title,
                      top tags (JSON), tag probabilities (float32 blob, the run's label order)
      embedding/      vector store of the chosen layer's pooled track vectors
      tags/           vector store of the tag-probability vectors
      pictures/       <sha256>.jpg: the tracks' pictures (cover art), normalised, one file per distinct picture

Both stores hold the same ids with the same payload (``path``, ``duration``, ``tags`` (the top
predicted tags), ``artist``, ``album``, ``title``): queries and ``index evaluate`` can use either
space.

Building (:func:`build_index`) is incremental and resumable:

* a file whose size and modification time (ns) are the ones recorded is never embedded again; a
  changed file is embedded again under the same id; a recorded file that is gone (or no longer under
  a folder searched by this build) is dropped;
* tracks are committed in batches (every :data:`COMMIT_EVERY` tracks, at most every
  :data:`COMMIT_SECONDS`: a flush rewrites the stores' files): both stores are flushed, then the
  table commits. A kill leaves
  at most one batch in the stores that the table does not know (or, after deletions, table rows the
  stores lack); the next build removes such ids before it starts, so the index never holds a track
  twice and the killed batch is simply embedded again;
* each embedded track's picture (:mod:`imagemusic.pictures`: embedded cover art or a ``cover.jpg``
  beside it) is recorded in the table's ``picture`` column (JSON) and stored in ``pictures/``; a bad
  picture is recorded with its reason and counted (the track is indexed all the same); tracks of an
  index built before pictures were recorded get theirs at the next build; pictures no track refers
  to are deleted at the end of a build (``docs/images.md``);
* one build at a time (:class:`core.locks.OutputLock` beside the index: exit 3);
* a build with another run (its files changed) or another layer/pooling than the index records is
  refused (exit 2): ``--overwrite`` starts the index again.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import sqlite3
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from core import files
from core.errors import MuseTagError
from core.locks import OutputLock

__all__ = ['Index', 'BadIndexError', 'Track', 'BuildSummary', 'build_index', 'run_identity', 'read_file_tags',
           'MANIFEST', 'TABLE', 'SPACES', 'FORMAT', 'TOP_TAGS', 'COMMIT_EVERY', 'PICTURES']

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = 'index.json'
TABLE = 'tracks.sqlite'
SPACES = ('embedding', 'tags')
#: Predicted tags kept in a track's payload (filters and playlists read them).
TOP_TAGS = 5
#: A track's tags in the payload: the top ``TOP_TAGS`` with probability at least this.
TAG_MIN_PROBABILITY = 0.0
#: A commit happens once at least this many tracks were embedded since the last one …
COMMIT_EVERY = 32
#: … and at least this many seconds passed (a flush rewrites a store's files: O(index size)).
COMMIT_SECONDS = 30.0
#: Test hook: ``embedded:N`` or ``flushed:N`` with ``MUSETAG_TEST_INDEX_MARKER=PATH`` makes the build,
#: after embedding its N-th track (or after the stores of a commit that reaches N tracks were
#: flushed, before the table commits), create PATH and wait until ``PATH.release`` exists.
HOOK_ENV = 'MUSETAG_TEST_INDEX_BLOCK'
HOOK_MARKER_ENV = 'MUSETAG_TEST_INDEX_MARKER'

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tracks (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    duration REAL,
    artist TEXT,
    album TEXT,
    title TEXT,
    tags TEXT NOT NULL,
    probs BLOB NOT NULL,
    picture TEXT
)
"""
#: Folder of an index holding the tracks' pictures (``<sha256>.jpg``).
PICTURES = 'pictures'



class BadIndexError(MuseTagError):
    """An index directory that is missing, damaged, or built by another run/layer (exit 2)."""


@dataclass
class Track:
    """One row of the track table: ``probs`` float32 [K] in the run's label order; ``picture``: the
    picture record (``docs/images.md``: ``{"sha256", …}``, ``{"none": true}``, ``{"error", "detail"}``)
    or None when never looked for."""
    id: str
    path: str
    size: int
    mtime_ns: int
    duration: float
    artist: str | None
    album: str | None
    title: str | None
    tags: list
    probs: np.ndarray
    picture: dict | None = None

    def payload(self) -> dict:
        """The payload both stores hold for this track."""
        return {'path': self.path, 'duration': self.duration, 'tags': list(self.tags), 'artist': self.artist,
                'album': self.album, 'title': self.title}


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec='seconds')


# --------------------------------------------------------------------------------------------------
# the run's identity
# --------------------------------------------------------------------------------------------------
def run_identity(run_dir) -> dict:
    """What identifies a run's model without loading it: SHA-256 of ``config.json``, ``labels.json``,
    ``features.json`` and ``model.keras`` (each absent file hashed as empty), and the path."""
    from modeling.rundir import RunPaths
    paths = RunPaths(run_dir)
    h = hashlib.sha256()
    for name in (paths.config, paths.labels, paths.features, paths.model_keras):
        h.update(os.path.basename(name).encode() + b'\0')
        try:
            with open(name, 'rb') as f:
                for chunk in iter(lambda: f.read(1 << 20), b''):
                    h.update(chunk)
        except FileNotFoundError:
            pass
        h.update(b'\0')
    return {'path': os.path.abspath(os.fspath(run_dir)), 'sha256': h.hexdigest()}


# --------------------------------------------------------------------------------------------------
# the file's own tags
# --------------------------------------------------------------------------------------------------
def read_file_tags(path) -> dict:
    """``{'artist', 'album', 'title'}`` from the file's own tags (ID3, Vorbis comments, …) with mutagen;
    None for each one the file lacks or when its tags cannot be read."""
    out = {'artist': None, 'album': None, 'title': None}
    try:
        import mutagen
        f = mutagen.File(os.fspath(path), easy=True)
    except Exception as e:  # noqa: BLE001 - mutagen raises many kinds; the tags are optional
        log.debug('%s: no readable tags (%s)', path, e)
        return out
    if f is None or not f.tags:
        return out
    for key in out:
        try:
            values = f.tags.get(key)
        except (KeyError, ValueError):
            values = None
        if values:
            text = str(values[0]).strip() if isinstance(values, list) else str(values).strip()
            out[key] = text or None
    return out


# --------------------------------------------------------------------------------------------------
# the index
# --------------------------------------------------------------------------------------------------
class Index:
    """An index directory opened for reading (``write=False``) or writing.

    Attributes
    ----------
    path : str
    manifest : dict
        ``index.json``.
    db : sqlite3.Connection
    stores : dict
        ``{'embedding': VectorStore, 'tags': VectorStore}`` (empty until the first commit of a new index).
    """

    def __init__(self, path, manifest: dict, db, stores: dict):
        self.path, self.manifest, self.db, self.stores = os.fspath(path), manifest, db, stores
        self._select = _select_list(db)

    # -------------------------------------------------------------------------------- opening
    @staticmethod
    def exists(path) -> bool:
        return os.path.isfile(os.path.join(os.fspath(path), MANIFEST))

    @classmethod
    def open(cls, path, *, write: bool = False) -> 'Index':
        """Open an existing index (``BadIndexError`` when ``path`` holds none)."""
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise BadIndexError(f'index {path} does not exist; build it with `musetag index build`')
        if not cls.exists(path):
            raise BadIndexError(f'{path} is not an index ({MANIFEST} missing); build it with `musetag index build`')
        manifest = files.read_json(os.path.join(path, MANIFEST), 'index manifest')
        if manifest.get('format') != FORMAT:
            raise BadIndexError(f'{path}: index format {manifest.get("format")!r} is not {FORMAT}; build it again')
        db = _connect(os.path.join(path, TABLE), read_only=not write)
        index = cls(path, manifest, db, {})
        if manifest.get('dim'):
            index._open_stores(create=False, read_only=not write)
        if write:
            index.reconcile()
        return index

    @classmethod
    def create(cls, path, manifest: dict) -> 'Index':
        """A new, empty index at ``path`` with ``manifest`` (its stores open at the first commit)."""
        files.make_dir(path)
        manifest = dict(manifest, format=FORMAT, created=_now(), updated=None, dim=None, counts={'tracks': 0})
        files.write_json(os.path.join(path, MANIFEST), manifest)
        return cls(path, manifest, _connect(os.path.join(path, TABLE)), {})

    def _open_stores(self, create: bool, read_only: bool = False) -> None:
        from retrieval.store import open_store
        m = self.manifest
        dims = {'embedding': m['dim'], 'tags': len(m['labels'])}
        for space in SPACES:
            options = dict(m.get('store_options') or {})
            if options.get('collection'):
                options['collection'] = f'{options["collection"]}-{space}'
            self.stores[space] = open_store(os.path.join(self.path, space), backend=m['backend'], dim=dims[space],
                                            create=create, read_only=read_only, **options)

    def close(self) -> None:
        for store in self.stores.values():
            store.close()
        self.stores = {}
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -------------------------------------------------------------------------------- reading
    @property
    def labels(self) -> list:
        return list(self.manifest['labels'])

    @property
    def roots(self) -> list:
        return list(self.manifest.get('roots') or [])

    def __len__(self) -> int:
        return self.db.execute('SELECT COUNT(*) FROM tracks').fetchone()[0]

    def tracks(self) -> list:
        """Every track, in id order."""
        return [_track(r) for r in self.db.execute(f'SELECT {self._select} FROM tracks ORDER BY id')]

    def track(self, track_id: str) -> Track | None:
        row = self.db.execute(f'SELECT {self._select} FROM tracks WHERE id = ?', (track_id,)).fetchone()
        return _track(row) if row else None

    def find(self, ref: str) -> Track:
        """The track named by ``ref``: an id, or a path (as given, absolute, or resolved)."""
        t = self.track(ref)
        if t is not None:
            return t
        for candidate in dict.fromkeys([os.path.abspath(ref), os.path.realpath(ref)]):
            row = self.db.execute(f'SELECT {self._select} FROM tracks WHERE path = ?', (candidate,)).fetchone()
            if row:
                return _track(row)
        real = os.path.realpath(ref)
        for t in self.tracks() if os.path.exists(ref) else ():
            if os.path.realpath(t.path) == real:
                return t
        raise BadIndexError(f'{ref}: no such track in the index {self.path} (give a track id or the path of an '
                          'indexed file; `musetag index info` lists the roots)')

    def picture_path(self, track: Track) -> str | None:
        """The stored picture file of ``track`` (``pictures/<sha256>.jpg``), or None when it has none."""
        sha = (track.picture or {}).get('sha256')
        return os.path.join(self.path, PICTURES, f'{sha}.jpg') if sha else None

    def inside_roots(self, path: str) -> bool:
        """True when ``path`` lies inside one of the indexed roots (both resolved)."""
        real = os.path.realpath(path)
        for root in self.roots:
            r = os.path.realpath(root)
            if real == r or real.startswith(r.rstrip(os.sep) + os.sep):
                return True
        return False

    def check_run(self, run_dir) -> None:
        """Refuse ``run_dir`` unless it is the run (same files) that built the index."""
        ident = run_identity(run_dir)
        built = self.manifest['run']
        if ident['sha256'] != built['sha256']:
            raise BadIndexError(f'{self.path} was built by run {built["path"]} (sha256 {built["sha256"][:12]}); '
                              f'{run_dir} is a different model (sha256 {ident["sha256"][:12]}): use that run, '
                              'or build a new index')

    # -------------------------------------------------------------------------------- writing
    def reconcile(self) -> dict:
        """Make the table and both stores hold the same ids after a kill between their commits.

        Returns ``{'store_only': n, 'table_only': n}``: ids removed from the stores (a batch
        flushed but not committed) and rows removed from the table (tracks deleted from the stores
        before the table committed); both are embedded again by the next build if their file is there.
        """
        table = {r[0] for r in self.db.execute('SELECT id FROM tracks')}
        store_only, table_only = set(), set()
        for store in self.stores.values():
            ids = set(store.ids())
            store_only |= ids - table
            table_only |= table - ids
        if store_only:
            for store in self.stores.values():
                store.delete(sorted(store_only))
                store.flush()
        if table_only:
            self.db.executemany('DELETE FROM tracks WHERE id = ?', [(i,) for i in sorted(table_only)])
            self.db.commit()
        if store_only or table_only:
            log.warning('%s: an interrupted build left %d uncommitted and %d half-deleted tracks: removed '
                        '(they are embedded again if their files are there)', self.path, len(store_only),
                        len(table_only))
        return {'store_only': len(store_only), 'table_only': len(table_only)}

    def commit(self, tracks: list, vectors: np.ndarray, *, hook: Callable | None = None) -> None:
        """Store ``tracks`` (their embedding ``vectors`` float32 [n, d]) in both stores and the table."""
        if not tracks:
            return
        if not self.stores:
            self.manifest['dim'] = int(vectors.shape[1])
            self._open_stores(create=True)
        ids = [t.id for t in tracks]
        payloads = [t.payload() for t in tracks]
        self.stores['embedding'].upsert(ids, np.asarray(vectors, dtype=np.float32), payloads)
        self.stores['tags'].upsert(ids, np.stack([t.probs for t in tracks]).astype(np.float32), payloads)
        for store in self.stores.values():
            store.flush()
        if hook:
            hook('flushed')
        self.db.executemany(f'INSERT OR REPLACE INTO tracks ({_COLUMNS}) VALUES ({", ".join("?" * 11)})',
                            [_row(t) for t in tracks])
        self.db.commit()
        self.write_manifest()

    def remove(self, ids: list) -> None:
        """Drop ``ids`` from both stores, then from the table."""
        if not ids:
            return
        for store in self.stores.values():
            store.delete(ids)
            store.flush()
        self.db.executemany('DELETE FROM tracks WHERE id = ?', [(i,) for i in ids])
        self.db.commit()
        self.write_manifest()

    def write_manifest(self) -> None:
        self.manifest['updated'] = _now()
        self.manifest['counts'] = dict(self.manifest.get('counts') or {}, tracks=len(self))
        files.write_json(os.path.join(self.path, MANIFEST), self.manifest)

    def info(self) -> dict:
        """What ``musetag index info`` shows (JSON-ready)."""
        m = self.manifest
        seconds, with_artist, artists = self.db.execute(
            'SELECT COALESCE(SUM(duration), 0), COUNT(artist), COUNT(DISTINCT artist) FROM tracks').fetchone()
        pictures, distinct, bad = self.picture_counts()
        return {'index': os.path.abspath(self.path), 'tracks': len(self), 'audio_seconds': round(float(seconds), 3),
                'tracks_with_artist': with_artist, 'artists': artists, 'tracks_with_picture': pictures,
                'pictures': distinct, 'bad_pictures': bad, 'run': m['run'], 'model': m.get('model'),
                'layer': m['layer'], 'pooling': m['pooling'], 'dim': m.get('dim'), 'tags_dim': len(m['labels']),
                'backend': m['backend'], 'roots': m.get('roots', []), 'created': m.get('created'),
                'updated': m.get('updated'), 'counts': m.get('counts', {}), 'spaces': list(SPACES)}


    def picture_counts(self) -> tuple:
        """``(tracks with a picture, distinct pictures, tracks with a bad picture)``."""
        if 'NULL AS picture' in self._select:
            return 0, 0, 0
        with_picture, distinct, bad = self.db.execute(
            "SELECT COUNT(json_extract(picture, '$.sha256')), COUNT(DISTINCT json_extract(picture, '$.sha256')), "
            "COUNT(json_extract(picture, '$.error')) FROM tracks").fetchone()
        return with_picture, distinct, bad

    def set_pictures(self, records: dict) -> None:
        """Record ``{track id: picture record}`` in the table (tracks already there)."""
        self.db.executemany('UPDATE tracks SET picture = ? WHERE id = ?',
                            [(json.dumps(r), i) for i, r in records.items()])
        self.db.commit()

    def prune_pictures(self) -> int:
        """Delete the files of ``pictures/`` that no track refers to; returns how many."""
        folder = os.path.join(self.path, PICTURES)
        if not os.path.isdir(folder):
            return 0
        used = {r[0] for r in self.db.execute("SELECT DISTINCT json_extract(picture, '$.sha256') FROM tracks")}
        gone = [n for n in os.listdir(folder) if n.endswith('.jpg') and n[:-4] not in used]
        for name in gone:
            files.remove(os.path.join(folder, name))
        return len(gone)


_COLUMNS = 'id, path, size, mtime_ns, duration, artist, album, title, tags, probs, picture'


def _connect(path, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        if not os.path.isfile(path):
            raise BadIndexError(f'{path} is missing: the index is damaged; build it again')
        return sqlite3.connect(f'file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro', uri=True)
    db = sqlite3.connect(path)
    db.execute('PRAGMA journal_mode=DELETE')
    db.execute(_SCHEMA)
    if 'picture' not in _table_columns(db):          # an index built before pictures were recorded
        db.execute('ALTER TABLE tracks ADD COLUMN picture TEXT')
    db.commit()
    return db


def _table_columns(db) -> set:
    return {r[1] for r in db.execute('PRAGMA table_info(tracks)')}


def _select_list(db) -> str:
    """The columns to select (``picture`` read as NULL from a read-only index that predates it)."""
    return _COLUMNS if 'picture' in _table_columns(db) else _COLUMNS.replace('picture', 'NULL AS picture')


def _row(t: Track) -> tuple:
    return (t.id, t.path, int(t.size), int(t.mtime_ns), t.duration, t.artist, t.album, t.title, json.dumps(t.tags),
            np.asarray(t.probs, dtype='<f4').tobytes(), None if t.picture is None else json.dumps(t.picture))


def _track(row) -> Track:
    return Track(id=row[0], path=row[1], size=row[2], mtime_ns=row[3], duration=row[4], artist=row[5], album=row[6],
                 title=row[7], tags=json.loads(row[8]), probs=np.frombuffer(row[9], dtype='<f4').copy(),
                 picture=json.loads(row[10]) if row[10] else None)


def record_picture(index_dir, path, summary=None) -> dict:
    """Read the picture of the track at ``path`` (:func:`imagemusic.pictures.read_picture`), store its
    normalised JPEG in ``index_dir/pictures/<sha256>.jpg`` (once per distinct picture) and return its
    record for the table; a bad picture gives ``{"error": reason, "detail": …}`` and is appended to
    ``summary.bad_pictures`` as ``(path, reason, detail)``."""
    from imagemusic.pictures import PictureError, read_picture
    try:
        pic = read_picture(path)
    except PictureError as e:
        if summary is not None:
            summary.bad_pictures.append((path, e.reason, e.detail))
        log.info('picture skipped %s: %s (%s)', path, e.reason, e.detail)
        return {'error': e.reason, 'detail': e.detail}
    if pic is None:
        return {'none': True}
    target = os.path.join(os.fspath(index_dir), PICTURES, f'{pic.sha256}.jpg')
    if not os.path.exists(target):
        files.make_dir(os.path.dirname(target))
        files.atomic_write_bytes(target, pic.data)
    if summary is not None:
        summary.pictures += 1
    return pic.record()


# --------------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------------
@dataclass
class BuildSummary:
    """What one build did: counts, the skipped files ``[(path, reason, detail)]``, the pictures recorded
    (``pictures``: good ones; ``bad_pictures``: ``[(path, reason, detail)]``, their tracks indexed all
    the same; ``picture_files``: folder pictures such as ``cover.jpg`` met by the walk, not audio) and
    timings."""
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list = field(default_factory=list)
    pictures: int = 0
    bad_pictures: list = field(default_factory=list)
    picture_files: int = 0
    hidden: int = 0
    tracks: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.audio_seconds / self.seconds if self.seconds > 0 else 0.0
        return (f'{self.tracks} tracks in the index: {self.added} added, {self.updated} embedded again (changed), '
                f'{self.unchanged} unchanged, {self.removed} removed, {len(self.skipped)} skipped'
                + (f', {self.hidden} hidden names not searched' if self.hidden else '')
                + (f'; {self.pictures} pictures recorded ({len(self.bad_pictures)} bad, skipped)'
                   if self.pictures or self.bad_pictures else '')
                + f'; {self.audio_seconds:.0f} s of audio in {self.seconds:.1f} s ({rate:.1f}× real time)')


class _Hook:
    """The test hook of :data:`HOOK_ENV` (inactive unless the variable is set)."""

    def __init__(self):
        spec = os.environ.get(HOOK_ENV, '')
        self.point, _, n = spec.partition(':')
        self.n = int(n) if n else 0
        self.marker = os.environ.get(HOOK_MARKER_ENV)
        self.count = 0

    def __call__(self, point: str, count: int | None = None) -> None:
        if not self.marker or point != self.point:
            return
        if count is not None:
            self.count = count
        if self.count >= self.n:
            files.atomic_write_text(self.marker, point)
            while not os.path.exists(self.marker + '.release'):
                time.sleep(0.05)
            self.marker = None


def _plan(index: Index, inputs, roots: list, summary: BuildSummary) -> tuple:
    """``(to_embed [(InputFile, path, stat, Track|None)], removed ids, unchanged tracks whose picture was
    never looked for [Track])`` from the walk and the table."""
    from imagemusic.pictures import is_folder_picture
    known = {t.path: t for t in index.tracks()}
    found, to_embed, no_picture = set(), [], []
    for item in inputs.files:
        path = os.path.abspath(item.path)
        if is_folder_picture(path) and path not in known:       # a folder's cover art, not a track
            summary.picture_files += 1
            continue
        try:
            path.encode('utf-8')
        except UnicodeEncodeError:
            shown = path.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
            summary.skipped.append((shown, 'error', 'the file name is not valid UTF-8 (the index stores text): '
                                    'rename it'))
            continue
        try:
            st = os.stat(path)
        except OSError as e:
            summary.skipped.append((path, 'missing' if isinstance(e, FileNotFoundError) else 'unreadable', str(e)))
            continue
        found.add(path)
        old = known.get(path)
        if old is not None and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
            summary.unchanged += 1
            if old.picture is None:
                no_picture.append(old)
            continue
        to_embed.append((item, path, st, old))
    walked = [r.rstrip(os.sep) + os.sep for r in roots]
    removed = [t.id for p, t in known.items()
               if p not in found and (any(p.startswith(r) for r in walked) or not os.path.exists(p))]
    return to_embed, removed, no_picture


def _root_of(path: str, roots: list):
    for r in roots:
        if path == r or path.startswith(r.rstrip(os.sep) + os.sep):
            return r
    return None


def _embed_one(tagger, item, path, st, *, roots, layer, pooling, batch_size, summary, taken):
    """``(Track, vector)`` of one file, or None (skipped, reason recorded)."""
    from preprocessing.audio import AudioLoadError
    from retrieval.embeddings import track_id_for
    try:
        emb = tagger.embed_file(path, layer=layer, pooling=pooling, batch_size=batch_size)
    except AudioLoadError as e:
        summary.skipped.append((path, e.reason, e.detail))
        return None
    except (ValueError, OSError, MemoryError) as e:        # anything else this one file triggers
        summary.skipped.append((path, 'error', f'{type(e).__name__}: {e}'))
        return None
    probs = np.asarray(emb.tags.mean, dtype=np.float32)
    vector = np.asarray(emb.vector, dtype=np.float32)
    for name, v in (('embedding', vector), ('tag probabilities', probs)):
        if not np.isfinite(v).all() or not np.any(v):
            what = 'is all zeros' if np.isfinite(v).all() else 'holds NaN or infinity'
            summary.skipped.append((path, 'error', f'its {name} vector {what}: it has no direction to compare '
                                    f'(layer {layer}{", a silent file" if "silent" in emb.tags.warnings else ""})'))
            return None
    top = [t for t, p in emb.tags.top(TOP_TAGS) if p >= TAG_MIN_PROBABILITY]
    meta = read_file_tags(path)
    track_id = track_id_for(path, root=_root_of(path, roots))
    if taken.get(track_id, path) != path:           # the same relative path under two roots
        track_id = track_id_for(path)
    taken[track_id] = path
    track = Track(id=track_id, path=path, size=st.st_size,
                  mtime_ns=st.st_mtime_ns, duration=round(float(emb.duration), 3), tags=top, probs=probs, **meta)
    return track, vector


def _open_for_build(index_dir, run, *, model, layer, pooling, backend, store_options, labels, overwrite):
    """Open the existing index (checking run, layer, pooling and backend) or create a new one."""
    if overwrite and os.path.exists(index_dir):
        files.replace_dir(_empty_dir(index_dir), index_dir)
    if Index.exists(index_dir):
        index = Index.open(index_dir, write=True)
        m = index.manifest
        index.check_run(run)
        for name, asked, have in (('layer', layer, m['layer']), ('pooling', pooling, m['pooling']),
                                  ('backend', backend, m['backend'])):
            if asked is not None and asked != have:
                index.close()
                raise BadIndexError(f'{index_dir} was built with {name} {have!r}, not {asked!r}: build another index '
                                  'or pass --overwrite to rebuild this one')
        return index
    if os.path.exists(index_dir) and os.listdir(index_dir):
        raise BadIndexError(f'{index_dir} exists and is not an index: choose another --index or empty it')
    from retrieval.store import DEFAULT_BACKEND
    manifest = {'run': run_identity(run), 'model': model, 'layer': layer, 'pooling': pooling or 'mean',
                'backend': backend or DEFAULT_BACKEND, 'store_options': store_options or {}, 'labels': list(labels),
                'roots': []}
    return Index.create(index_dir, manifest)


def _empty_dir(index_dir) -> str:
    tmp = files.temp_name(os.path.abspath(index_dir))
    files.make_dir(tmp)
    return tmp


def build_index(index_dir, run, paths: Iterable, *, model: str | None = None, layer: str | None = None,
                pooling: str | None = None, backend: str | None = None, store_options: dict | None = None,
                batch_size: int = 8, commit_every: int = COMMIT_EVERY, commit_seconds: float = COMMIT_SECONDS,
                overwrite: bool = False,
                progress: bool = False, tagger=None) -> BuildSummary:
    """Build or update the index at ``index_dir`` from the audio under ``paths`` (module docstring).

    ``tagger`` (default: ``Tagger.from_run(run)``) must offer ``embed_file``; ``layer`` defaults to the
    index's (or the tagger's default layer), ``pooling`` to the index's (or ``mean``).
    Raises ``LockedError`` (exit 3) when another build holds the index, :class:`BadIndexError` on a
    run/layer mismatch.
    """
    from preprocessing.audio import collect_inputs
    t0 = time.perf_counter()
    summary = BuildSummary()
    with OutputLock(index_dir):
        if tagger is None:
            from evaluation.tagger import Tagger
            tagger = Tagger.from_run(run)
        if layer is None and (overwrite or not Index.exists(index_dir)):
            layer = tagger.embedding_layers()[0]
        index = _open_for_build(index_dir, run, model=model, layer=layer, pooling=pooling, backend=backend,
                                store_options=store_options, labels=tagger.info.labels, overwrite=overwrite)
        try:
            m = index.manifest
            roots = [os.path.abspath(p) for p in paths]
            m['roots'] = sorted(set(m.get('roots') or []) | {r for r in roots if os.path.isdir(r)}
                                | {os.path.dirname(r) for r in roots if not os.path.isdir(r)})
            inputs = collect_inputs(roots)
            summary.skipped.extend(inputs.skipped)
            summary.hidden = len(inputs.hidden)
            to_embed, removed, no_picture = _plan(index, inputs, roots, summary)
            index.remove(removed)
            summary.removed = len(removed)
            _embed_all(index, tagger, to_embed, roots=m['roots'], layer=m['layer'], pooling=m['pooling'],
                       batch_size=batch_size, commit_every=commit_every, commit_seconds=commit_seconds,
                       progress=progress, summary=summary)
            index.set_pictures({t.id: record_picture(index.path, t.path, summary) for t in no_picture})
            index.prune_pictures()
            m['counts'] = {'skipped_last_build': len(summary.skipped)}
            index.write_manifest()
            summary.tracks = len(index)
        finally:
            index.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def _embed_all(index, tagger, to_embed, *, roots, layer, pooling, batch_size, commit_every, commit_seconds, progress,
               summary):
    """Embed ``to_embed``, committing every ``commit_every`` tracks (at most every ``commit_seconds``)."""
    from tqdm import tqdm
    hook = _Hook()
    taken = {t.id: t.path for t in index.tracks()}
    batch, vectors = [], []
    done, last = 0, time.monotonic()
    for item, path, st, old in tqdm(to_embed, disable=not progress, unit='track', desc='embedding'):
        got = _embed_one(tagger, item, path, st, roots=roots, layer=layer, pooling=pooling, batch_size=batch_size,
                         summary=summary, taken=taken)
        if got is None:
            log.warning('skipped %s: %s (%s)', *summary.skipped[-1])
            continue
        track, vector = got
        track.picture = record_picture(index.path, path, summary)
        if old is not None and old.id != track.id:
            index.remove([old.id])
        batch.append(track)
        vectors.append(vector)
        summary.audio_seconds += track.duration or 0.0
        if old is None:
            summary.added += 1
        else:
            summary.updated += 1
        done += 1
        hook('embedded', done)
        if len(batch) >= commit_every and time.monotonic() - last >= commit_seconds:
            index.commit(batch, np.stack(vectors), hook=lambda p, n=done: hook(p, n))
            batch, vectors, last = [], [], time.monotonic()
    if batch:
        index.commit(batch, np.stack(vectors), hook=lambda p, n=done: hook(p, n))
