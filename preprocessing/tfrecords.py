"""Write compact, sharded, resumable TFRecords of waveforms or log-mel spectrograms.

Layout of an output directory ``DIR`` (local path or any ``tf.io.gfile`` URL, e.g. ``s3://``)::

    DIR/train-00000-of-00008.tfrecord …  validation-… test-…   the shards
    DIR/manifest.json    feature parameters, tag vocabulary with per-split counts, split sizes,
                         per-shard example counts and SHA-256, the command line
    DIR/skipped.csv      track_id, split, file, reason for every track not written
    DIR/_shards/         plan.json + one JSON per finished shard (resume bookkeeping)

Each ``tf.train.Example`` holds one whole track:

===========  =========  ==============================================================
key          type       content
===========  =========  ==============================================================
track_id     bytes      MSD track id, e.g. ``TRMMMYQ128F932D901``
artist_id    bytes      MSD artist id (may be empty)
tags         int64[]    every clean tag number of the track (selection happens at read time)
audio        bytes      little-endian int16 PCM (waveform, scale 1/32767) or float16 log-mel;
                        zlib-compressed when the manifest says ``audio_encoding: zlib``
shape        int64[]    ``[n_samples]`` or ``[n_frames, n_mels]`` (time-major)
duration     float      seconds of audio
===========  =========  ==============================================================

``audio`` is always the last field of a record (manifest ``layout: audio-last``; see
:func:`serialize_example`), so the reader cuts a window straight out of the serialized record.

Stored compactly: int16 / float16 bytes rather than float32 ``FloatList`` (half the bytes, about
half the CPU per window to read). ``audio_encoding='zlib'`` trades read speed for a further ~25% (log-mel) / ~12% (PCM);
see ``benchmarks/bench_pipeline.py`` for sizes and read speeds against Orpheus-style records.

Determinism and resumability: tracks are assigned to shards by a hash of their track id, so the
same inputs always give the same shards, byte for byte. Each shard is written to a temporary
name and renamed when complete, then recorded in ``_shards/``; re-running skips complete shards.
``num_hosts``/``host_index`` split the shard list between machines (shard ``g`` of the global
list goes to host ``g % num_hosts``); whichever host finds every shard complete writes the
manifest (any host can be re-run to do it).
"""
from __future__ import annotations

import collections
import csv
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import sys
import time
from collections import Counter

import numpy as np

from msd.lastfm import TagDB, load_clean_tags
from preprocessing import io as pio
from preprocessing.encode import encode_item, encode_track, init_worker  # noqa: F401  (encode_track: public API)
from preprocessing.features import FeatureParams, frames_per_second, get_params
from preprocessing.splits import SPLITS, hash_unit, read_splits

__all__ = ['FORMATS', 'FORMAT_VERSION', 'plan_shards', 'shard_name',
           'write_tfrecords', 'encode_track', 'serialize_example']

FORMATS = ('waveform', 'log-mel')
#: 2: records end with the audio bytes (features.layout 'audio-last'); version-1 datasets still read.
FORMAT_VERSION = 2
_STATE = '_shards'


def shard_name(split, index, count) -> str:
    """``split-NNNNN-of-MMMMM.tfrecord``."""
    return f'{split}-{index:05d}-of-{count:05d}.tfrecord'


# ------------------------------------------------------------------------------------ encoding

#: Record layout written by :func:`serialize_example`: the audio bytes end every record.
LAYOUT = 'audio-last'


def feature_spec(fmt, sr=16000, preset=None, params=None, audio_encoding='raw') -> dict:
    """The ``features`` block of a manifest for a format/preset (validated)."""
    if fmt not in FORMATS:
        raise ValueError(f'unknown format {fmt!r}; choose from {FORMATS}')
    if audio_encoding not in ('zlib', 'raw'):
        raise ValueError(f"audio encoding must be 'zlib' or 'raw', got {audio_encoding!r}")
    if fmt == 'waveform':
        return {'format': 'waveform', 'sr': int(sr), 'dtype': 'int16', 'scale': 1 / 32767,
                'audio_encoding': audio_encoding, 'layout': LAYOUT, 'params': None, 'frames_per_second': None}
    if params is None:
        params = get_params(preset or 'orpheus', sr=int(sr))
    elif isinstance(params, dict):
        params = FeatureParams.from_dict(params)
    return {'format': 'log-mel', 'sr': params.sr, 'dtype': 'float16', 'scale': 1.0,
            'audio_encoding': audio_encoding, 'layout': LAYOUT, 'params': params.to_dict(),
            'frames_per_second': frames_per_second(params)}


def serialize_example(track_id, artist_id, tags, audio_bytes, shape, duration) -> bytes:
    """Serialise one track as a ``tf.train.Example`` (see the module docstring for keys).

    The record is two serialized Examples back to back: the metadata, then one holding only
    ``audio``. Protobuf parsers merge concatenated messages, so this *is* one Example with all six
    keys to any reader (``tf.io.parse_example``, ``tf.train.Example.FromString``); what it adds is
    a guaranteed layout: the record ends with the audio bytes. ``make_dataset`` relies on that
    (manifest ``layout: audio-last``) to cut a window straight out of the record instead of parsing
    the whole track's bytes.
    """
    import tensorflow as tf
    feat = tf.train.Feature
    meta = tf.train.Example(features=tf.train.Features(feature={
        'track_id': feat(bytes_list=tf.train.BytesList(value=[str(track_id).encode()])),
        'artist_id': feat(bytes_list=tf.train.BytesList(value=[str(artist_id or '').encode()])),
        'tags': feat(int64_list=tf.train.Int64List(value=[int(t) for t in tags])),
        'shape': feat(int64_list=tf.train.Int64List(value=list(shape))),
        'duration': feat(float_list=tf.train.FloatList(value=[float(duration)])),
    }))
    audio = tf.train.Example(features=tf.train.Features(feature={
        'audio': feat(bytes_list=tf.train.BytesList(value=[audio_bytes]))}))
    record = meta.SerializeToString(deterministic=True) + audio.SerializeToString()
    if not record.endswith(audio_bytes):  # cannot happen with a conforming protobuf encoder
        raise AssertionError('serialized record does not end with the audio bytes')
    return record


# ------------------------------------------------------------------------------------ planning

def _resolve_path(row, audio_root):
    if audio_root:
        return os.path.join(audio_root, str(row['file_path']))
    if 'audio_path' in row and isinstance(row['audio_path'], str) and row['audio_path']:
        return row['audio_path']
    if 'file_path' in row and isinstance(row['file_path'], str):
        return row['file_path']
    raise ValueError('master CSV needs an audio_path column (or file_path with --audio-root)')


def plan_shards(master, splits, tagdb: TagDB, shards_per_split, audio_root=None):
    """Assign tracks to shards deterministically.

    Returns
    -------
    shards : list of dict(name, split, index, count, tracks=[(track_id, artist_id, path, tags)])
    excluded : list of (track_id, split, path, reason) for tracks not planned (no split, no clean tag)
    """
    split_of = dict(zip(splits['track_id'], splits['split']))
    rows = {s: [] for s in SPLITS}
    excluded = []
    for row in master.to_dict('records'):
        tid = str(row['track_id'])
        path = _resolve_path(row, audio_root)
        split = split_of.get(tid)
        if split is None:
            excluded.append((tid, '', path, 'no-split'))
            continue
        tags = tagdb.by_track.get(tid)
        if not tags:
            excluded.append((tid, split, path, 'no-clean-tag'))
            continue
        artist = row.get('artist_id')
        artist = '' if not isinstance(artist, str) else artist
        rows[split].append((tid, artist, path, tags))
    if isinstance(shards_per_split, int):
        shards_per_split = {s: shards_per_split for s in SPLITS}
    shards = []
    for split in SPLITS:
        items = rows[split]
        if not items:
            continue
        # hash order mixes artists/years across shards, and does not depend on master order
        order = np.argsort(hash_unit([t[0] for t in items], seed='shard'), kind='stable')
        items = [items[i] for i in order]
        n = max(1, min(int(shards_per_split[split]), len(items)))
        for k, part in enumerate(np.array_split(np.arange(len(items)), n)):
            shards.append({'name': shard_name(split, k, n), 'split': split, 'index': k, 'count': n,
                           'tracks': [items[i] for i in part]})
    return shards, excluded


def _plan_digest(shards, features):
    h = hashlib.sha256(json.dumps(features, sort_keys=True).encode())
    for s in shards:
        h.update(s['name'].encode())
        for tid, artist, path, tags in s['tracks']:
            h.update(f'{tid}\t{artist}\t{path}\t{tags}\n'.encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------------ writing

def _sha256_of(path):
    h = hashlib.sha256()
    if pio.is_url(path):
        with pio.gfile().GFile(path, 'rb') as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    else:
        with open(path, 'rb') as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _shard_done(out, name):
    return pio.exists(pio.join(out, name)) and pio.exists(pio.join(out, _STATE, name + '.json'))


def _results(todo, features, pool):
    """:func:`encode_item` results for every track of the shards ``todo``, in order.

    With a pool, the next shard's tracks are queued as soon as a shard starts being written, so
    the workers go straight on to them instead of idling at each shard's end, while at most two
    shards' tasks are ever queued (memory stays flat however many shards a run writes).
    """
    def items(shard):
        return [(tid, path, features) for tid, _, path, _ in shard['tracks']]
    if pool is None:
        # as in the workers (preprocessing.encode.init_worker): one BLAS thread, the same speed here
        # without a second core kept spinning
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=1, user_api='blas'):
            for shard in todo:
                yield from map(encode_item, items(shard))
        return
    queued = collections.deque()
    rest = iter(todo)
    for shard in itertools.islice(rest, 1):
        queued.append(pool.imap(encode_item, items(shard), chunksize=1))
    while queued:
        for shard in itertools.islice(rest, 1):
            queued.append(pool.imap(encode_item, items(shard), chunksize=1))
        yield from queued.popleft()


def _write_shard(shard, out, results, progress, compression):
    """Write one shard from ``results`` (an iterator of :func:`encode_item` results in track order)."""
    import tensorflow as tf
    tmp = pio.join(out, _STATE, shard['name'] + '.partial')
    tag_counts, skipped, n_ok, seconds, min_length = Counter(), [], 0, 0.0, None
    options = tf.io.TFRecordOptions(compression_type=compression, compression_level=1) if compression else None
    with tf.io.TFRecordWriter(tmp, options=options) as writer:
        for (tid, artist, path, tags) in shard['tracks']:
            res = next(results)
            if res[0] == 'ok':
                _, audio, shape, duration = res
                writer.write(serialize_example(tid, artist, tags, audio, shape, duration))
                tag_counts.update(tags)
                n_ok += 1
                seconds += duration
                min_length = shape[0] if min_length is None else min(min_length, shape[0])
            else:
                skipped.append({'track_id': tid, 'split': shard['split'], 'file': path,
                                'reason': res[1], 'detail': res[2]})
            progress.update(1)
    info = {'name': shard['name'], 'split': shard['split'], 'examples': n_ok, 'seconds': round(seconds, 3),
            'min_length': min_length, 'sha256': _sha256_of(tmp), 'tag_counts': {str(k): v for k, v in sorted(tag_counts.items())},
            'skipped': skipped}
    pio.rename(tmp, pio.join(out, shard['name']))
    pio.write_json(pio.join(out, _STATE, shard['name'] + '.json'), info)
    return info


def _assemble_manifest(out, plan, tagdb_vocab, excluded):
    """Write manifest.json + skipped.csv if every planned shard is complete; return the manifest or None."""
    infos = []
    for name in plan['shards']:
        path = pio.join(out, _STATE, name + '.json')
        if not pio.exists(path) or not pio.exists(pio.join(out, name)):
            return None
        infos.append(pio.read_json(path))
    splits = {s: {'tracks': 0, 'seconds': 0.0, 'shards': []} for s in SPLITS}
    counts = {s: Counter() for s in SPLITS}
    skipped = [dict(zip(('track_id', 'split', 'file', 'reason'), e), detail='') for e in excluded]
    for info in infos:
        sp = splits[info['split']]
        sp['tracks'] += info['examples']
        sp['seconds'] = round(sp['seconds'] + info['seconds'], 3)
        sp['shards'].append({'file': info['name'], 'examples': info['examples'], 'sha256': info['sha256']})
        if info.get('min_length') is not None:  # shortest track (samples or frames): lets the reader
            # skip its padding branch when every track is at least one window long
            sp['min_length'] = min(sp.get('min_length', info['min_length']), info['min_length'])
        counts[info['split']].update({int(k): v for k, v in info['tag_counts'].items()})
        skipped.extend(info['skipped'])
    reasons = Counter(s['reason'] for s in skipped)
    vocabulary = [{'num': num, 'tag': tag, 'counts': {s: counts[s].get(num, 0) for s in SPLITS}}
                  for num, tag in sorted(tagdb_vocab.items())]
    manifest = {
        'format_version': FORMAT_VERSION,
        'features': plan['features'],
        'compression': plan['compression'],
        'example_keys': {'track_id': 'bytes', 'artist_id': 'bytes', 'tags': 'int64[]', 'audio': 'bytes',
                         'shape': 'int64[]', 'duration': 'float'},
        'splits': splits,
        'tags': {'source': plan['inputs']['tags'], 'vocabulary': vocabulary},
        'skipped': dict(sorted(reasons.items())),
        'inputs': plan['inputs'],
        'command': plan['command'],
        'plan_digest': plan['digest'],
    }
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=['track_id', 'split', 'file', 'reason', 'detail'])
    w.writeheader()
    w.writerows(sorted(skipped, key=lambda s: (s['split'], s['track_id'])))
    pio.atomic_write_text(pio.join(out, 'skipped.csv'), buf.getvalue())
    pio.write_json(pio.join(out, 'manifest.json'), manifest)
    return manifest


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def write_tfrecords(master_csv, tags_db, splits_csv, out, *, format='log-mel', preset='orpheus', sr=16000,
                    params=None, shards_per_split=8, workers=1, num_hosts=1, host_index=0, audio_root=None,
                    audio_encoding='raw', compression='', overwrite=False, progress=True, command=None):
    """Write the TFRecord dataset (see the module docstring). Returns a summary dict.

    Parameters
    ----------
    master_csv, tags_db, splits_csv : local paths written by ``msd build``, ``msd clean-tags`` and
        ``preprocessing split``.
    out : output directory (local or ``tf.io.gfile`` URL).
    format : ``'waveform'`` or ``'log-mel'``; ``preset``/``params`` choose the log-mel parameters.
    shards_per_split : int, or dict split -> int.
    workers : processes decoding audio in parallel (1 = in this process).
    num_hosts, host_index : write only shards ``g`` with ``g % num_hosts == host_index``.
    audio_encoding : ``'raw'`` (default: the int16/float16 bytes as they are; a training window is
        cut straight out of the record, about half the read cost of Orpheus-style records) or
        ``'zlib'`` (each example's audio zlib-compressed, level 1, by the worker processes: ~25%
        smaller log-mel, ~12% smaller PCM, but the reader must inflate the whole track for every
        window, ~3× slower reading; for storage-bound datasets).
    compression : whole-file TFRecord compression, ``''`` (default), ``'ZLIB'`` or ``'GZIP'``: a
        little smaller still, but inflated by one thread per file when read (≈3× slower input).
    """
    from preprocessing.io import read_master
    if not 0 <= host_index < num_hosts:
        raise ValueError(f'--host-index must be in [0, {num_hosts}), got {host_index}')
    if workers < 1:
        raise ValueError(f'--workers must be >= 1, got {workers}')
    features = feature_spec(format, sr=sr, preset=preset, params=params, audio_encoding=audio_encoding)
    compression = (compression or '').upper()
    if compression not in ('', 'ZLIB', 'GZIP'):
        raise ValueError(f"--compression must be ZLIB, GZIP or none, got {compression!r}")
    t0 = time.perf_counter()
    # the worker processes start first, so their start-up (imports) overlaps with the planning below
    # spawn: workers import NumPy/soundfile only (preprocessing.encode), never a forked TensorFlow runtime
    pool = multiprocessing.get_context('spawn').Pool(workers, initializer=init_worker) if workers > 1 else None
    try:
        master = read_master(master_csv)
        splits = read_splits(splits_csv)
        tagdb = load_clean_tags(tags_db)
        shards, excluded = plan_shards(master, splits, tagdb, shards_per_split, audio_root)
        if not shards:
            raise ValueError('nothing to write: no track of the master CSV has both a split and a clean tag')
        digest = _plan_digest(shards, {**features, 'compression': compression})
        plan = {'features': features, 'compression': compression, 'digest': digest, 'shards': [s['name'] for s in shards],
                'inputs': {'master': os.path.abspath(master_csv), 'tags': os.path.abspath(tags_db),
                           'splits': os.path.abspath(splits_csv)},
                'command': command or ' '.join(sys.argv)}
        pio.makedirs(pio.join(out, _STATE))
        plan_path = pio.join(out, _STATE, 'plan.json')
        if pio.exists(plan_path):
            old = pio.read_json(plan_path)
            if old.get('digest') != digest:
                if not overwrite:
                    diff = [k for k in ('format', 'sr', 'params', 'audio_encoding', 'layout') if old['features'].get(k) != features.get(k)]
                    what = f'feature settings differ ({", ".join(diff)})' if diff else 'inputs or sharding differ'
                    raise FileExistsError(f'{out} holds a different dataset: {what}; pass --overwrite to replace it '
                                          'or choose another --out')
                for name in pio.listdir(out):
                    if name.endswith('.tfrecord') or name in ('manifest.json', 'skipped.csv'):
                        pio.remove(pio.join(out, name))
                for name in pio.listdir(pio.join(out, _STATE)):
                    pio.remove(pio.join(out, _STATE, name))
        pio.write_json(plan_path, plan)

        mine = [s for g, s in enumerate(shards) if g % num_hosts == host_index]
        todo = [s for s in mine if not _shard_done(out, s['name'])]
        n_tracks = sum(len(s['tracks']) for s in todo)
        bar = _NoBar()
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=n_tracks, unit='track', desc=f'write {format}', dynamic_ncols=True)
        infos = []
        results = _results(todo, features, pool)
        try:
            for shard in todo:
                infos.append(_write_shard(shard, out, results, bar, compression))
        finally:
            results.close()  # ends the serial path's BLAS thread limit now, even after an error
            bar.close()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    elapsed = time.perf_counter() - t0
    manifest = _assemble_manifest(out, plan, tagdb.vocabulary, excluded)
    written = sum(i['examples'] for i in infos)
    bad = Counter(s['reason'] for i in infos for s in i['skipped'])
    summary = {'out': str(out), 'shards_total': len(shards), 'shards_this_host': len(mine),
               'shards_written': len(infos), 'shards_already_done': len(mine) - len(todo),
               'tracks_written': written, 'tracks_skipped': dict(bad), 'excluded': dict(Counter(e[3] for e in excluded)),
               'seconds': round(elapsed, 2), 'tracks_per_s': round(n_tracks / elapsed, 2) if elapsed > 0 and n_tracks else None,
               'manifest': manifest is not None}
    return summary
