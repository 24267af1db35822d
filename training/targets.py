"""Per-track values looked up by track id inside the input pipeline: latent targets and example weights.

Two tables keyed by the training data's track ids (TFRecord ``track_id``, i.e. master.csv's; for
image pairs, the pairs' ids):

- a **target table** (``task.targets``; ``latent.targets.read_targets``: ``targets.npz`` with
  ``track_ids`` str [n] and ``vectors`` float32 [n, d], plus ``targets.json``) gives each track the
  vector a latent model regresses; the TFRecords are not rewritten, a ``tf.lookup.StaticHashTable``
  maps id -> row and the row is gathered;
- a **weights CSV** (``dataset.weights``; header ``track_id,weight``, extra columns ignored, weight a
  finite number >= 0, tracks not listed weigh 1.0) multiplies each training example's loss.

Both are described in ``docs/training.md``.
"""
from __future__ import annotations

import logging
import numpy as np
import tensorflow as tf

from .config import ConfigError

__all__ = ['read_weights', 'load_target_table', 'IdTable', 'TargetLookup', 'WeightLookup', 'split_track_ids',
           'check_target_coverage']

log = logging.getLogger(__name__)


def read_weights(path: str) -> dict:
    """``latent.targets.read_weights(path)``; a bad file is a :class:`ConfigError` on ``dataset.weights``."""
    from latent.targets import WeightsError
    from latent.targets import read_weights as _read
    try:
        return _read(path)
    except WeightsError as exc:
        raise ConfigError('dataset.weights', str(exc)) from None


def load_target_table(path: str):
    """``latent.targets.read_targets(path)``; a bad folder is a :class:`ConfigError` on ``task.targets``."""
    from core.errors import MuseTagError
    from latent.targets import read_targets
    try:
        return read_targets(path)
    except (MuseTagError, OSError, ValueError) as exc:
        raise ConfigError('task.targets', str(exc)) from None


class IdTable:
    """A ``tf.lookup.StaticHashTable`` from track id (string) to an int64 row, -1 when absent."""

    def __init__(self, ids):
        ids = [str(t) for t in ids]
        self.size = len(ids)
        keys = tf.constant(ids or [''], tf.string)   # an empty table holds one key that maps to -1
        rows = tf.range(len(ids), dtype=tf.int64) if ids else tf.constant([-1], tf.int64)
        self.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, rows), default_value=-1)

    def rows(self, track_ids: tf.Tensor) -> tf.Tensor:
        """int64 rows of ``track_ids`` (any shape), -1 for unknown ids."""
        return self.table.lookup(track_ids)


class TargetLookup:
    """Target vectors by track id inside ``tf.data``.

    Parameters
    ----------
    track_ids : list of str [n]
    vectors : float32 [n, d]
    """

    def __init__(self, track_ids, vectors):
        self.ids = IdTable(track_ids)
        self.vectors = tf.constant(np.asarray(vectors, np.float32))
        self.dim = int(self.vectors.shape[-1])

    def __call__(self, track_ids: tf.Tensor):
        """``track_ids`` string [B] (or scalar) → (vectors float32 [B, d], found bool [B]); a missing
        track's vector is zeros."""
        rows = self.ids.rows(track_ids)
        found = rows >= 0
        return tf.gather(self.vectors, tf.maximum(rows, 0)) * tf.cast(found, tf.float32)[..., None], found


class WeightLookup:
    """Example weights by track id inside ``tf.data`` (1.0 for tracks the CSV does not list)."""

    def __init__(self, weights: dict):
        self.ids = IdTable(list(weights))
        self.values = tf.constant(np.asarray(list(weights.values()) or [1.0], np.float32))

    def __call__(self, track_ids: tf.Tensor) -> tf.Tensor:
        """``track_ids`` string [B] → float32 [B] weights."""
        rows = self.ids.rows(track_ids)
        return tf.where(rows >= 0, tf.gather(self.values, tf.maximum(rows, 0)), 1.0)


#: bytes read from the start of each record to find its track id (the writer puts the small fields
#: first and the audio last, so the id is within the first few hundred bytes)
_ID_PREFIX_BYTES = 4096


def split_track_ids(files, compression: str = '') -> list:
    """The ``track_id`` of every record of TFRecord shards ``files``, in file order.

    Uncompressed shards are not read whole: each record's first bytes hold MuseTag's small fields
    (the audio comes last, :mod:`preprocessing.records`), so the id is parsed from them and the rest
    of the record is skipped with a seek: a few hundred bytes per track instead of the whole track
    (a waveform clip is ~1 MB). A shard whose records are laid out otherwise, and compressed shards,
    are parsed whole by TensorFlow.
    """
    out = []
    for path in files:
        ids = None if compression else _ids_by_seeking(path)
        out.extend(ids if ids is not None else _ids_by_parsing([path], compression))
    return out


def _ids_by_parsing(files, compression: str) -> list:
    spec = {'track_id': tf.io.FixedLenFeature([], tf.string)}
    ds = tf.data.TFRecordDataset(files, compression_type=compression or None).batch(1024)
    out = []
    for batch in ds.map(lambda r: tf.io.parse_example(r, spec)['track_id']):
        out.extend(t.decode('utf-8') for t in batch.numpy())
    return out


def _ids_by_seeking(path) -> list | None:
    """Track ids from each record's leading fields, skipping the rest; None if a record's id is not
    among them (the caller then parses the file whole)."""
    import struct
    out = []
    with tf.io.gfile.GFile(path, 'rb') as f:
        while True:
            head = f.read(12)                      # uint64 length, masked CRC of the length
            if not head:
                return out
            if len(head) < 12:
                return None
            length = struct.unpack('<Q', head[:8])[0]
            prefix = f.read(min(length, _ID_PREFIX_BYTES))
            tid = _leading_track_id(prefix)
            if tid is None:
                return None
            out.append(tid)
            f.seek(length - len(prefix) + 4, whence=1)   # the rest of the record and its CRC


def _leading_track_id(prefix: bytes) -> str | None:
    """``track_id`` of the first complete ``features`` field of a serialized Example (the leading
    Example part MuseTag's writer emits), or None if it is not complete within ``prefix``."""
    if not prefix or prefix[0] != 0x0A:            # field 1 (features), length-delimited
        return None
    size, shift, pos = 0, 0, 1
    while pos < len(prefix):                       # varint length of the features message
        byte = prefix[pos]
        size |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            break
        shift += 7
    else:
        return None
    if pos + size > len(prefix):
        return None
    example = tf.train.Example.FromString(prefix[:pos + size])
    values = example.features.feature['track_id'].bytes_list.value if 'track_id' in example.features.feature else []
    return values[0].decode('utf-8') if values else None


def check_target_coverage(split: str, track_ids: list, table_index: dict, where: str,
                          min_share: float = 0.5) -> int:
    """Refuse a split most of whose tracks have no target; return how many tracks have one.

    Parameters
    ----------
    split : str
        Split name, for the messages.
    track_ids : list of str
        Track ids of the split.
    table_index : dict
        Track id -> row of the target table.
    where : str
        The target table folder, for the messages.
    min_share : float
        Smallest share of the split's tracks that must have a target.

    Raises
    ------
    ConfigError
        (``task.targets``) with the counts and an example id, when fewer than ``min_share`` of the
        tracks (or none) have a target.
    """
    missing = [t for t in track_ids if t not in table_index]
    have = len(track_ids) - len(missing)
    if track_ids and (have == 0 or have < min_share * len(track_ids)):
        raise ConfigError('task.targets', f'{where} has targets for only {have} of the {len(track_ids)} tracks of '
                                          f'split "{split}" (e.g. no target for {missing[0]}): is it the target '
                                          'table of this dataset (same track ids)?')
    if missing:
        log.info('split "%s": %d of %d tracks have no target and are left out (e.g. %s)', split, len(missing),
                 len(track_ids), missing[0])
    return have

