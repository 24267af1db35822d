"""Embeddings files: track vectors (and optionally window vectors) in Parquet or NPZ, and track ids.

The format is described in ``docs/embeddings.md``; in short:

Parquet (``OUT.parquet``; pyarrow)
    One row per track: ``track_id`` (string), ``path`` (string), ``layer`` (string), ``pooling``
    (string), ``duration`` (float64, seconds), ``n_windows`` (int32), ``vector`` (list<float32>,
    the pooled track vector). With windows, a second file ``OUT.windows.parquet`` holds one row per
    window: ``track_id``, ``window`` (int32, 0-based index within the track), ``start`` (float64,
    seconds) and ``vector`` (list<float32>). Both files carry the same JSON under the schema
    metadata key ``musetag`` (:data:`FORMAT_VERSION`, run, model, layer, pooling, window and hop
    seconds, dimension, creation time). Rows are written in row groups as tracks arrive, so memory
    does not grow with the number of tracks.
NPZ (``OUT.npz``; ``numpy.load`` without pickle)
    ``ids`` (str [n]), ``paths`` (str [n]), ``vectors`` (float32 [n, d]), ``durations`` (float64
    [n]), ``n_windows`` (int32 [n]), ``meta`` (0-d str, the same JSON); with windows also
    ``windows`` (float32 [N, d_w]), ``window_track`` (int64 [N], the row in ``ids``),
    ``window_index`` (int32 [N]) and ``window_start`` (float64 [N], seconds). The NPZ writer holds
    everything in memory until it closes (use Parquet for large catalogues).

Each file is written under a temporary name and renamed into place when the writer closes without
error (:func:`core.files.atomic_path`, normal permissions); nothing is left on an error, and an
existing file is refused unless ``overwrite``.

Track ids (:func:`track_id_for`) are the first 16 hex digits of the SHA-1 of the path relative to
the folder argument it was found in (``/`` separators), or of the absolute path for a file given on
its own: the same file under the same folder argument gets the same id on every machine and after
the folder is moved. The vector index uses the same function.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from core import files
from core.errors import MuseTagError

__all__ = ['FORMAT_VERSION', 'FORMATS', 'track_id_for', 'embeddings_format', 'windows_path', 'EmbeddingWriter',
           'EmbeddingTable', 'read_embeddings', 'BadEmbeddingsFile']

#: Version of the file layout (in the ``musetag`` metadata).
FORMAT_VERSION = 1
#: File suffix -> format name.
FORMATS = {'.parquet': 'parquet', '.npz': 'npz'}
#: Tracks per Parquet row group.
_ROW_GROUP = 256


class BadEmbeddingsFile(MuseTagError, ValueError):
    """A file that is not an embeddings file of this format (the message says what is wrong)."""


def track_id_for(path, root=None) -> str:
    """Stable id of a track: 16 hex digits of the SHA-1 of its path.

    Parameters
    ----------
    path : path-like
        The audio file.
    root : path-like or None
        The folder argument ``path`` was found in: the id hashes the path relative to it (``/``
        separators), so it survives moving the folder. None, ``path`` itself or a folder not
        containing ``path``: the absolute, normalised path is hashed.

    Returns
    -------
    str of 16 lowercase hex digits
    """
    p = os.path.abspath(os.fspath(path))
    key = p
    if root is not None:
        r = os.path.abspath(os.fspath(root))
        if p != r and p.startswith(r.rstrip(os.sep) + os.sep):
            key = os.path.relpath(p, r).replace(os.sep, '/')
    return hashlib.sha1(key.encode('utf-8', 'surrogateescape')).hexdigest()[:16]


def embeddings_format(path) -> str:
    """``'parquet'`` or ``'npz'`` from the suffix of ``path``; MuseTagError otherwise."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in FORMATS:
        raise MuseTagError(f'{path}: an embeddings file ends in {" or ".join(FORMATS)}, not {ext or "nothing"}')
    return FORMATS[ext]


def windows_path(path) -> str:
    """The window file beside Parquet file ``path``: ``X.parquet`` -> ``X.windows.parquet``."""
    stem, ext = os.path.splitext(os.fspath(path))
    return f'{stem}.windows{ext}'


def _utf8(text: str) -> str:
    """``text`` as valid UTF-8 (bytes of a file name that are not UTF-8 become ``\\xNN``)."""
    return text.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')


class EmbeddingWriter:
    """Write an embeddings file track by track; use as a context manager.

    Parameters
    ----------
    path : path-like
        ``.parquet`` or ``.npz`` (:func:`embeddings_format`).
    windows : bool
        Also store every window vector (Parquet: the second file :func:`windows_path`).
    overwrite : bool
        Replace existing outputs (else :class:`core.errors.OutputExistsError` at once).
    meta : dict
        JSON-ready facts stored with the file (run, model, window and hop seconds, …); ``layer``,
        ``pooling``, ``dim`` and ``format_version`` are added from the embeddings.

    The file appears, complete, when the ``with`` block ends without error; on an error nothing is
    left (and with ``windows`` the two Parquet files appear together: the window file first).
    """

    def __init__(self, path, *, windows: bool = False, overwrite: bool = False, meta: dict | None = None):
        self.path = os.fspath(path)
        self.format = embeddings_format(self.path)
        self.windows = bool(windows)
        self.overwrite = overwrite
        self.meta = dict(meta or {})
        self.count = 0
        self._stack = None
        self._tracks, self._wins = [], []
        self._pq = {}                                  # 'tracks' / 'windows' -> ParquetWriter
        self._tmp = {}
        outputs = [self.path] + ([windows_path(self.path)] if self.windows and self.format == 'parquet' else [])
        for out in outputs:
            files.check_output(out, overwrite)
        self._outputs = outputs

    def __enter__(self) -> 'EmbeddingWriter':
        self._stack = contextlib.ExitStack()
        # LIFO: the window file (entered last) is renamed into place before the track file
        for key, out in zip(('tracks', 'windows'), self._outputs):
            self._tmp[key] = self._stack.enter_context(files.atomic_path(out, overwrite=self.overwrite))
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:                       # the caller failed: remove the temporary files
            self._close_parquet()
            return self._stack.__exit__(exc_type, exc, tb)
        try:
            self._finish()
        except BaseException:
            self._close_parquet()
            if not self._stack.__exit__(*sys.exc_info()):
                raise
            return False
        return self._stack.__exit__(None, None, None)   # rename into place

    # ---------------------------------------------------------------- adding tracks
    def add(self, track_id: str, path, emb) -> None:
        """Add one track.

        Parameters
        ----------
        track_id : str
            From :func:`track_id_for`.
        path : path-like
            Stored as given.
        emb : evaluation.tagger.Embedding
            Its ``vector`` (float32 [d]), ``windows`` ([n_windows, d_w]), ``starts``, ``duration``.
        """
        if not self._tmp:
            raise RuntimeError('EmbeddingWriter.add outside its with block')
        vector = np.asarray(emb.vector, dtype=np.float32)
        self._check_same(emb, vector)
        row = {'track_id': str(track_id), 'path': os.fspath(path), 'layer': emb.layer, 'pooling': emb.pooling,
               'duration': float(emb.duration), 'n_windows': int(emb.windows.shape[0]), 'vector': vector}
        self._tracks.append(row)
        if self.windows:
            self._wins.append((self.count, str(track_id), np.asarray(emb.windows, dtype=np.float32),
                               np.asarray(emb.starts, dtype=np.float64)))
        self.count += 1
        if self.format == 'parquet' and len(self._tracks) >= _ROW_GROUP:
            self._flush_parquet()

    def _check_same(self, emb, vector) -> None:
        """Every track of a file has the layer, pooling and dimension of the first."""
        first = {'layer': emb.layer, 'pooling': emb.pooling, 'dim': int(vector.shape[0]),
                 'window_dim': int(np.shape(emb.windows)[1])}
        for key, value in first.items():
            have = self.meta.setdefault(key, value)
            if have != value:
                raise ValueError(f'{self.path}: every track of an embeddings file has one {key}; '
                                 f'this one has {value!r}, the file {have!r}')

    def _meta_json(self) -> str:
        meta = {'format_version': FORMAT_VERSION,
                'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                'n_tracks': self.count, **self.meta}
        return json.dumps(meta, sort_keys=True, allow_nan=False)

    # ---------------------------------------------------------------- Parquet
    def _flush_parquet(self) -> None:
        import pyarrow as pa
        if not self._tracks:
            return
        vec = pa.list_(pa.float32())
        table = pa.table({
            'track_id': pa.array([r['track_id'] for r in self._tracks], pa.string()),
            'path': pa.array([_utf8(r['path']) for r in self._tracks], pa.string()),
            'layer': pa.array([r['layer'] for r in self._tracks], pa.string()),
            'pooling': pa.array([r['pooling'] for r in self._tracks], pa.string()),
            'duration': pa.array([r['duration'] for r in self._tracks], pa.float64()),
            'n_windows': pa.array([r['n_windows'] for r in self._tracks], pa.int32()),
            'vector': pa.array([r['vector'] for r in self._tracks], vec)})
        self._write_table('tracks', table)
        self._tracks = []
        if self.windows and self._wins:
            ids, index, starts, vectors = [], [], [], []
            for _, tid, win, st in self._wins:
                ids += [tid] * len(win)
                index.append(np.arange(len(win), dtype=np.int32))
                starts.append(st)
                vectors += list(win)
            table = pa.table({'track_id': pa.array(ids, pa.string()),
                              'window': pa.array(np.concatenate(index), pa.int32()),
                              'start': pa.array(np.concatenate(starts), pa.float64()),
                              'vector': pa.array(vectors, vec)})
            self._write_table('windows', table)
            self._wins = []

    def _write_table(self, key, table) -> None:
        import pyarrow.parquet as pq
        writer = self._pq.get(key)
        if writer is None:
            # row groups are streamed; the metadata JSON (final only at the end) goes into the footer
            writer = pq.ParquetWriter(self._tmp[key], table.schema)
            self._pq[key] = writer
        writer.write_table(table)

    def _close_parquet(self) -> None:
        for writer in self._pq.values():
            with contextlib.suppress(Exception):
                writer.close()
        self._pq = {}

    # ---------------------------------------------------------------- closing
    def _finish(self) -> None:
        if self.format == 'parquet':
            self._finish_parquet()
        else:
            self._finish_npz()

    def _finish_parquet(self) -> None:
        self._flush_parquet()
        meta = self._meta_json()
        for key in self._tmp:
            writer = self._pq.pop(key, None)
            if writer is None:                      # no track (or no window) at all: an empty table
                import pyarrow.parquet as pq
                table = _empty_table(key)
                pq.write_table(table.replace_schema_metadata({'musetag': meta}), self._tmp[key])
            else:
                writer.add_key_value_metadata({'musetag': meta})
                writer.close()

    def _finish_npz(self) -> None:
        d = int(self.meta.get('dim', 0))
        out = {'ids': np.array([r['track_id'] for r in self._tracks], dtype=str),
               'paths': np.array([r['path'] for r in self._tracks], dtype=str),
               'vectors': (np.stack([r['vector'] for r in self._tracks]) if self._tracks
                           else np.zeros((0, d), np.float32)),
               'durations': np.array([r['duration'] for r in self._tracks], dtype=np.float64),
               'n_windows': np.array([r['n_windows'] for r in self._tracks], dtype=np.int32),
               'meta': np.array(self._meta_json())}
        if self.windows:
            wins = [w for _, _, w, _ in self._wins]
            out['windows'] = np.concatenate(wins) if wins else np.zeros((0, d), np.float32)
            out['window_track'] = np.concatenate([np.full(len(w), row, np.int64) for row, _, w, _ in self._wins]
                                                 or [np.zeros(0, np.int64)])
            out['window_index'] = np.concatenate([np.arange(len(w), dtype=np.int32) for w in wins]
                                                 or [np.zeros(0, np.int32)])
            out['window_start'] = np.concatenate([st for _, _, _, st in self._wins] or [np.zeros(0)])
        with open(self._tmp['tracks'], 'wb') as f:
            np.savez(f, **out)


def _empty_table(key):
    import pyarrow as pa
    vec = pa.list_(pa.float32())
    if key == 'tracks':
        schema = pa.schema([('track_id', pa.string()), ('path', pa.string()), ('layer', pa.string()),
                            ('pooling', pa.string()), ('duration', pa.float64()), ('n_windows', pa.int32()),
                            ('vector', vec)])
    else:
        schema = pa.schema([('track_id', pa.string()), ('window', pa.int32()), ('start', pa.float64()),
                            ('vector', vec)])
    return schema.empty_table()


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------
@dataclass
class EmbeddingTable:
    """An embeddings file in memory (either format).

    Attributes
    ----------
    ids, paths : list of str, length n
    vectors : float32 [n, d]
    durations : float64 [n], seconds
    n_windows : int32 [n]
    meta : dict
        ``format_version``, ``layer``, ``pooling``, ``dim`` (of a track vector), ``window_dim`` (of a
        window vector), ``n_tracks``, ``created`` and what the writer was given (run, model, window and hop seconds).
    windows : float32 [N, d_w] or None
        Window vectors, when the file has them.
    window_track : int64 [N] or None
        Row in ``ids`` of each window.
    window_index : int32 [N] or None
        Index of each window within its track.
    window_start : float64 [N] or None
        Start of each window, seconds.
    """
    ids: list
    paths: list
    vectors: np.ndarray
    durations: np.ndarray
    n_windows: np.ndarray
    meta: dict = field(default_factory=dict)
    windows: np.ndarray | None = None
    window_track: np.ndarray | None = None
    window_index: np.ndarray | None = None
    window_start: np.ndarray | None = None

    @property
    def layer(self) -> str | None:
        return self.meta.get('layer')

    @property
    def pooling(self) -> str | None:
        return self.meta.get('pooling')

    def track_windows(self, i: int) -> np.ndarray:
        """Window vectors of track row ``i``, float32 [n_windows[i], d_w] (needs a file with windows)."""
        if self.windows is None:
            raise ValueError('this embeddings file has no window vectors (written without --windows)')
        return self.windows[self.window_track == i]


def read_embeddings(path, *, windows: bool = True) -> EmbeddingTable:
    """Read an embeddings file written by :class:`EmbeddingWriter` (either format).

    ``windows=False`` skips the window vectors even when the file has them.

    Raises
    ------
    FileNotFoundError
    BadEmbeddingsFile
        Not an embeddings file of this layout.
    """
    path = os.fspath(path)
    fmt = embeddings_format(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f'no embeddings file {path}')
    try:
        return _read_parquet(path, windows) if fmt == 'parquet' else _read_npz(path, windows)
    except (KeyError, ValueError, OSError) as e:
        if isinstance(e, (BadEmbeddingsFile, FileNotFoundError)):
            raise
        raise BadEmbeddingsFile(f'{path} is not a MuseTag embeddings file ({type(e).__name__}: {e})') from None


def _vectors(column, dim: int) -> np.ndarray:
    """float32 [n, dim] from a list<float32> column."""
    flat = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(-1, dim)


def _read_parquet(path, windows) -> EmbeddingTable:
    import pyarrow.parquet as pq
    pf = pq.ParquetFile(path)
    raw = (pf.metadata.metadata or {}).get(b'musetag')
    if raw is None:
        raise BadEmbeddingsFile(f'{path} has no "musetag" metadata: not a MuseTag embeddings file')
    meta = json.loads(raw)
    t = pf.read()
    dim = int(meta.get('dim', 0))
    table = EmbeddingTable(ids=t.column('track_id').to_pylist(), paths=t.column('path').to_pylist(),
                           vectors=_vectors(t.column('vector'), dim),
                           durations=t.column('duration').to_numpy().astype(np.float64),
                           n_windows=t.column('n_windows').to_numpy().astype(np.int32), meta=meta)
    wpath = windows_path(path)
    if windows and os.path.exists(wpath):
        w = pq.read_table(wpath)
        row = {tid: i for i, tid in enumerate(table.ids)}
        table.window_track = np.array([row[tid] for tid in w.column('track_id').to_pylist()], np.int64)
        table.window_index = w.column('window').to_numpy().astype(np.int32)
        table.window_start = w.column('start').to_numpy().astype(np.float64)
        table.windows = _vectors(w.column('vector'), int(meta.get('window_dim', 0)))
    return table


def _read_npz(path, windows) -> EmbeddingTable:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z['meta']))
        table = EmbeddingTable(ids=[str(x) for x in z['ids']], paths=[str(x) for x in z['paths']],
                               vectors=z['vectors'].astype(np.float32), durations=z['durations'].astype(np.float64),
                               n_windows=z['n_windows'].astype(np.int32), meta=meta)
        if windows and 'windows' in z.files:
            table.windows = z['windows'].astype(np.float32)
            table.window_track = z['window_track'].astype(np.int64)
            table.window_index = z['window_index'].astype(np.int32)
            table.window_start = z['window_start'].astype(np.float64)
    return table
