"""A synthetic pairs folder whose pictures follow a class (colour, brightness, texture), for the image tests.

Layout as written by ``musetag index pairs`` (``docs/images.md``): ``pairs.csv`` (image, track_id,
split, group), ``images/<name>.jpg`` and ``targets/`` (a target table keyed by the pairs' track ids,
``kind: index-space``, ``params.space``). Each class has a target prototype; a track's target is its
class prototype plus noise, its tags are its class's tag plus one shared "mood" tag of two classes.
Import-light (numpy, Pillow; TF only inside functions).
"""
from __future__ import annotations

import csv
import io
import json
import os

import numpy as np

#: class -> (hue in [0, 1), saturation, value, stripe period in px or 0, tags)
CLASSES = {
    'metal': (0.0, 0.9, 0.25, 4, ('metal', 'dark')),
    'ambient': (0.55, 0.25, 0.95, 0, ('ambient', 'calm')),
    'pop': (0.85, 0.8, 0.9, 12, ('pop', 'happy')),
    'folk': (0.3, 0.6, 0.6, 0, ('folk', 'calm')),
}


def cover(cls: str, rng, size: int = 64) -> bytes:
    """A JPEG cover of class ``cls`` with per-picture randomness."""
    from PIL import Image
    hue, sat, val, period, _ = CLASSES[cls]
    h = (hue + rng.normal(0, 0.03)) % 1.0
    s = float(np.clip(sat + rng.normal(0, 0.08), 0, 1))
    v = float(np.clip(val + rng.normal(0, 0.08), 0, 1))
    hsv = np.empty((size, size, 3), np.float32)
    hsv[..., 0], hsv[..., 1] = h, s
    ramp = np.linspace(-0.15, 0.15, size)[None, :] * rng.choice([-1, 1])
    hsv[..., 2] = np.clip(v + ramp + rng.normal(0, 0.04, (size, size)), 0, 1)
    if period:
        phase = rng.integers(period)
        stripes = ((np.arange(size) + phase) // (period // 2)) % 2
        hsv[..., 2] *= np.where(stripes[None, :] == 1, 0.55, 1.0)
    im = Image.frombytes('HSV', (size, size), (hsv * 255).astype(np.uint8).tobytes()).convert('RGB')
    buf = io.BytesIO()
    im.save(buf, format='JPEG', quality=90)
    return buf.getvalue()


#: class -> the synthetic corpus's genre whose covers stand for it (``designer='corpus'``)
CORPUS_GENRES = {'metal': 'metal', 'ambient': 'ambient', 'pop': 'pop', 'folk': 'reggae'}


def corpus_cover(cls: str, rng) -> bytes:
    """A cover drawn by the synthetic corpus's designer (msd.synthetic.covers) for class ``cls``."""
    from msd.synthetic.covers import cover_jpeg
    labels = {'genre': CORPUS_GENRES[cls], 'ballad': bool(rng.random() < 0.2), 'decade': '90s',
              'tempo': float(rng.uniform(80, 160))}
    return cover_jpeg(labels, int(rng.integers(2 ** 31)), size=96)


def make_pairs(root, *, per_class: int = 12, dim: int = 8, seed: int = 0, size: int = 64,
               splits=(('train', 0.6), ('validation', 0.2), ('test', 0.2)), space: str = 'embedding',
               designer: str = 'fixture') -> dict:
    """Write a pairs folder under ``root``; returns ``{"dir", "ids", "classes", "tags", "vectors"}``.

    ``per_class`` tracks per class, each with its own cover (drawn by :func:`cover`, or by the
    synthetic corpus's designer with ``designer='corpus'``); the first ``share`` of each class's
    tracks go to the first split, etc.
    """
    rng = np.random.default_rng(seed)
    root = os.fspath(root)
    os.makedirs(os.path.join(root, 'images'), exist_ok=True)
    protos = {c: rng.normal(size=dim) for c in CLASSES}
    rows, ids, vectors, classes, tags = [], [], [], {}, {}
    for cls in CLASSES:
        bounds = np.cumsum([share for _, share in splits]) * per_class
        for i in range(per_class):
            tid = f'{cls}{i:03d}'
            split = splits[int(np.searchsorted(bounds, i, side='right'))][0]
            name = f'images/{tid}.jpg'
            with open(os.path.join(root, name), 'wb') as fh:
                fh.write(cover(cls, rng, size) if designer == 'fixture' else corpus_cover(cls, rng))
            rows.append({'image': name, 'track_id': tid, 'split': split, 'group': f'image:{tid}',
                         'artist': '', 'album': '', 'title': tid})
            ids.append(tid)
            vectors.append(protos[cls] + 0.3 * rng.normal(size=dim))
            classes[tid] = cls
            tags[tid] = set(CLASSES[cls][4])
    with open(os.path.join(root, 'pairs.csv'), 'w', encoding='utf-8', newline='') as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    vectors = np.asarray(vectors, np.float32)
    write_target_table(os.path.join(root, 'targets'), ids, vectors, space=space)
    return {'dir': root, 'ids': ids, 'classes': classes, 'tags': tags, 'vectors': vectors}


def write_target_table(out, ids, vectors, *, space='embedding'):
    """A target table folder (targets.npz + targets.json) keyed by index id."""
    os.makedirs(out, exist_ok=True)
    np.savez(os.path.join(out, 'targets.npz'), track_ids=np.asarray(ids, dtype=str), vectors=vectors)
    meta = {'kind': 'index-space', 'dim': int(vectors.shape[1]), 'count': len(ids), 'key': 'index_id',
            'params': {'index': '/nowhere', 'run': None, 'space': space, 'layer': 'penultimate', 'labels': None},
            'created': '2026-01-01T00:00:00+00:00', 'source': {}}
    with open(os.path.join(out, 'targets.json'), 'w', encoding='utf-8') as fh:
        json.dump(meta, fh)


def image_config(pairs_dir, *, batch_size: int = 16, epochs: int = 3, seed: int = 0, weights=None, **dataset):
    """A minimal config-like object for ImageSource (the attributes it reads)."""
    from types import SimpleNamespace as NS
    return NS(dataset=NS(dir=str(pairs_dir), train_split='train', validation_split='validation', weights=weights,
                         **dataset),
              input=NS(batch_size=batch_size, validation_batch_size=None, shuffle=True),
              task=NS(kind='latent', targets=None), seed=seed, epochs=epochs)


def make_index(index_dir, pairs: dict, root) -> list:
    """An index (numpy stores) of the pairs' tracks, without audio: embedding = the pairs' target
    vectors, tag probabilities high (0.9) for a track's class tags; track files ``root/<id>.mp3`` (not
    written). Returns the labels."""
    from retrieval.index import Index, Track
    labels = sorted({t for tags in pairs['tags'].values() for t in tags})
    rng = np.random.default_rng(1)
    tracks = []
    for tid in pairs['ids']:
        probs = np.where([lab in pairs['tags'][tid] for lab in labels], 0.9, 0.05) + rng.uniform(0, 0.02, len(labels))
        top = [labels[i] for i in np.argsort(-probs)[:5]]
        tracks.append(Track(id=tid, path=os.path.join(os.fspath(root), f'{tid}.mp3'), size=1, mtime_ns=0, duration=30.0,
                            artist=f'artist of {tid}', album=f'album of {tid}', title=tid, tags=top,
                            probs=probs.astype(np.float32), picture=None))
    manifest = {'run': {'path': '/nowhere', 'sha256': '0'}, 'model': None, 'layer': 'penultimate', 'pooling': 'mean',
                'backend': 'numpy', 'store_options': {}, 'labels': labels, 'roots': [os.fspath(root)]}
    index = Index.create(os.fspath(index_dir), manifest)
    try:
        index.commit(tracks, pairs['vectors'])
    finally:
        index.close()
    return labels


def make_image_run(run_dir, pairs_dir, *, dim: int = 8, size: int = 32, seed: int = 0):
    """An untrained image run directory (image_stats, linear output) whose config names ``pairs_dir``:
    enough for the encoder, the evaluation command and the web route (their plumbing, not quality)."""
    import keras

    from modeling import InputSpec, build_model
    keras.utils.set_random_seed(seed)
    os.makedirs(run_dir, exist_ok=True)
    model = build_model('image_stats', dim, InputSpec(kind='image', image_size=(size, size)),
                        output_activation='linear', hidden=16)
    model.save(os.path.join(run_dir, 'model.keras'))
    files = {'config.json': {'dataset': {'kind': 'images', 'dir': os.path.abspath(pairs_dir)},
                             'task': {'kind': 'latent', 'loss': 'cosine', 'targets': None},
                             'model': {'name': 'image_stats', 'hparams': {'hidden': 16}}},
             'labels.json': [f'dim_{i:03d}' for i in range(dim)],
             'features.json': {'input': 'image', 'kind': 'image', 'image_size': [size, size]}}
    for name, content in files.items():
        with open(os.path.join(run_dir, name), 'w', encoding='utf-8') as fh:
            json.dump(content, fh)
    return run_dir
