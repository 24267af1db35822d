"""Image -> music: encoding speed, training speed, query latency and retrieval quality, in one run.

A pairs folder is drawn from the synthetic corpus's cover designer (``msd.synthetic.covers``: one
cover per album whose colours, brightness and texture follow its genre, ballad-ness, decade and
tempo, with per-album randomness); each track's "music space" vector is its design's tag vector
(genre, ballad, decade) as an audio tagger would predict it (0.85 for a true tag, noise elsewhere),
held in an audio-free index. An image run is trained on the training albums with the trainer, then:

* ``encode_images_per_s``: pictures encoded per second (batches of 64), against the colour-histogram
  baseline's speed on the same pictures (ratio);
* ``train_examples_per_s``: training examples per second of the image run (augmentation included);
  ratio: the input pipeline alone (examples per second it can feed);
* ``query_latency_ms``: picture bytes -> a 12-track playlist (check, decode, encode, search, continue)
  median; ratio: the search and continuation alone;
* ``recall_at_10`` and ``precision_at_10`` of the held-out albums' pictures for the image run, the
  colour histogram and random answers (``retrieval.evaluate_image``), true tags = the design's.

``--tiny`` runs in well under a minute (for tests); the default is the demo's size.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from _common import emit, machine, median_time

BENCH = 'image'
DECADES = ('60s', '70s', '80s', '90s', '00s')


def album_design(genre: str, album: int, seed: int) -> dict:
    """The labels of one album (its tracks share them and its cover)."""
    rng = np.random.default_rng([seed, album, len(genre)])
    return {'genre': genre, 'ballad': bool(rng.random() < 0.3), 'decade': str(rng.choice(DECADES)),
            'tempo': float(rng.uniform(70, 170))}


def design_tags(labels: dict) -> set:
    return {labels['genre'], labels['decade']} | ({'ballad'} if labels['ballad'] else set())


def split_of(album: str, seed: int) -> str:
    """train / validation / test (0.7 / 0.15 / 0.15) by a seeded hash of the album."""
    x = int.from_bytes(hashlib.sha256(f'{seed}:{album}'.encode()).digest()[:8], 'big') / 2 ** 64
    return 'train' if x < 0.7 else 'validation' if x < 0.85 else 'test'


def write_pairs(out: str, albums_per_genre: int, tracks_per_album: int, seed: int) -> dict:
    """The pairs folder (docs/images.md) and what the index needs: ids, vectors, tags, labels."""
    import csv

    from latent.targets import write_targets
    from msd.synthetic.covers import GENRE_STYLES, cover_jpeg
    vocab = sorted(set(GENRE_STYLES) | set(DECADES) | {'ballad'})
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out, 'images'))
    rows, ids, vectors, tags = [], [], [], {}
    for genre in GENRE_STYLES:
        for a in range(albums_per_genre):
            labels = album_design(genre, a, seed)
            album = f'{genre}-{a}'
            name = f'images/{album}.jpg'
            with open(os.path.join(out, name), 'wb') as fh:
                fh.write(cover_jpeg(labels, seed * 100003 + a * 101 + len(genre), size=96))
            for t in range(tracks_per_album):
                tid = f'{album}-{t}'
                truth = design_tags(labels)
                vec = np.where([v in truth for v in vocab], 0.85, 0.0) + rng.uniform(0, 0.1, len(vocab))
                rows.append({'image': name, 'track_id': tid, 'split': split_of(album, seed), 'group': f'album:{album}'})
                ids.append(tid)
                vectors.append(vec)
                tags[tid] = truth
    with open(os.path.join(out, 'pairs.csv'), 'w', encoding='utf-8', newline='') as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    vectors = np.asarray(vectors, np.float32)
    write_targets(os.path.join(out, 'targets'), ids, vectors,
                  {'kind': 'index-space', 'key': 'index_id', 'params': {'space': 'tags', 'labels': vocab},
                   'source': {'bench': BENCH}})
    return {'ids': ids, 'vectors': vectors, 'tags': tags, 'labels': vocab, 'rows': rows}


def write_index(index_dir: str, data: dict, library: str):
    """An audio-free index whose tags space holds the design vectors (embedding: the same vectors)."""
    from retrieval.index import Index, Track
    tracks = [Track(id=t, path=os.path.join(library, f'{t}.mp3'), size=1, mtime_ns=0, duration=30.0,
                    artist=t.rsplit('-', 2)[0], album=t.rsplit('-', 1)[0], title=t, tags=sorted(data['tags'][t]),
                    probs=v, picture=None) for t, v in zip(data['ids'], data['vectors'])]
    manifest = {'run': {'path': '/synthetic', 'sha256': '0'}, 'model': None, 'layer': 'design', 'pooling': 'mean',
                'backend': 'numpy', 'store_options': {}, 'labels': data['labels'], 'roots': [library]}
    index = Index.create(index_dir, manifest)
    index.commit(tracks, data['vectors'])
    index.close()


def train_run(pairs_dir: str, run_dir: str, args) -> tuple:
    """Train the image run; returns (result, config)."""
    from training.config import parse_config
    from training.trainer import train
    cfg = parse_config({
        'dataset': {'kind': 'images', 'dir': pairs_dir},
        'task': {'kind': 'latent', 'loss': 'cosine'},
        'input': {'batch_size': args.batch},
        'model': {'name': args.model, 'hparams': {}},
        'optimization': {'optimizer': {'name': 'Adam', 'kwargs': {'learning_rate': 0.003}}, 'epochs': args.epochs},
        'callbacks': {'early_stopping': {'patience': None}},
        'distribution': {'strategy': 'one_device'},
        'logging': {'tensorboard': False, 'progress': False},
        'seed': args.seed})
    return train(cfg, run_dir=run_dir, overwrite=True), cfg


def pipeline_rate(cfg, seconds_cap: float = 5.0) -> float:
    """Examples per second the input pipeline alone yields (one epoch, or ``seconds_cap``)."""
    from imagemusic.data import ImageSource
    src = ImageSource(cfg)
    n, t0 = 0, time.perf_counter()
    for x, _ in src.train_dataset(seed=1, repeat=False):
        n += int(x.shape[0])
        if time.perf_counter() - t0 > seconds_cap:
            break
    return n / (time.perf_counter() - t0)


def bench_speed(encoder, pictures, index_dir, query_bytes, args) -> None:
    from imagemusic.histogram import hsv_histograms
    from retrieval import playlist as rp
    from retrieval import query as rq
    from retrieval.index import Index
    encoder.encode_arrays(pictures[:2])
    t_enc = median_time(lambda: encoder.encode_arrays(pictures), repeat=args.rounds)
    t_hist = median_time(lambda: hsv_histograms(pictures), repeat=args.rounds)
    emit(BENCH, 'encode_images_per_s', len(pictures) / t_enc, 'images/s', baseline='colour histogram',
         ratio=round(t_hist / t_enc, 3), images=len(pictures), image_size=encoder.image_size)
    index = Index.open(index_dir)
    try:
        def search_and_continue(vector):
            hits = rq.search(index, rq.Query(vector, space=encoder.space), k=1)
            space = rp.StoreSpace(index.stores[encoder.space])
            return rp.continue_from(space, hits[0].id, args.length)
        vector = encoder.encode(query_bytes)
        t_query = median_time(lambda: search_and_continue(encoder.encode(query_bytes)), repeat=args.rounds * 3)
        t_search = median_time(lambda: search_and_continue(vector), repeat=args.rounds * 3)
    finally:
        index.close()
    emit(BENCH, 'query_latency_ms', 1000 * t_query, 'ms', baseline='search and continuation alone',
         ratio=round(t_query / t_search, 3), length=args.length)


def bench_quality(encoder, pairs_dir, data, args) -> None:
    from retrieval.evaluate_image import Catalogue, evaluate_pairs
    catalogue = Catalogue(data['ids'], data['vectors'], data['tags'], 'the synthetic design (genre, decade, ballad)')
    report = evaluate_pairs(encoder, pairs_dir, catalogue, split='test', k=10, seed=args.seed)
    s = report['systems']
    for metric in ('recall_at_k', 'precision_at_k'):
        name = metric.replace('_k', '_10')
        value = s['image_run'][metric]
        for base in ('colour_histogram', 'random'):
            other = s[base][metric]
            ratio = None if not other else round(value / other, 3)
            emit(BENCH, f'{name}_vs_{base}', value, 'share', baseline=base, baseline_value=round(other, 4),
                 ratio=ratio, queries=report['n_queries'], catalogue=report['n_catalogue'])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--albums', type=int, default=12, help='albums per genre (10 genres)')
    ap.add_argument('--tracks', type=int, default=3, help='tracks per album (they share its cover)')
    ap.add_argument('--epochs', type=int, default=10, help='training epochs')
    ap.add_argument('--batch', type=int, default=32, help='training batch size')
    ap.add_argument('--model', default='image_stats', help='image encoder (modeling image_cnn or image_stats)')
    ap.add_argument('--length', type=int, default=12, help='playlist length of the query latency')
    ap.add_argument('--rounds', type=int, default=3, help='timing repetitions (median)')
    ap.add_argument('--seed', type=int, default=0, help='seed of the data and the training')
    ap.add_argument('--tiny', action='store_true', help='a few albums, 2 epochs: runs in well under a minute')
    args = ap.parse_args(argv)
    if args.tiny:
        args.albums, args.tracks, args.epochs, args.rounds = 4, 2, 2, 1
    from core.logs import setup_logging
    setup_logging(-1)
    tmp = tempfile.mkdtemp(prefix='bench_image_')
    t0 = time.time()
    try:
        pairs_dir = os.path.join(tmp, 'pairs')
        data = write_pairs(pairs_dir, args.albums, args.tracks, args.seed)
        write_index(os.path.join(tmp, 'index'), data, os.path.join(tmp, 'library'))
        from core.logs import import_tensorflow
        import_tensorflow()
        result, cfg = train_run(pairs_dir, os.path.join(tmp, 'run'), args)
        from imagemusic.data import ImageSource
        examples = ImageSource(cfg).steps_hint() * result.epochs_completed * args.batch   # one pass per epoch
        emit(BENCH, 'train_examples_per_s', examples / result.seconds, 'examples/s',
             baseline='input pipeline alone', ratio=round((examples / result.seconds) / pipeline_rate(cfg), 3),
             model=args.model, epochs=result.epochs_completed, **machine())
        from imagemusic.encode import load_image_encoder
        encoder = load_image_encoder(os.path.join(tmp, 'run'))
        covers = sorted({r['image'] for r in data['rows']})
        with open(os.path.join(pairs_dir, covers[0]), 'rb') as fh:
            query = fh.read()
        pictures = []
        for name in covers:
            with open(os.path.join(pairs_dir, name), 'rb') as fh:
                pictures.append(encoder.prepare(fh.read()))
        pictures = np.stack((pictures * (1 + 256 // len(pictures)))[:256])
        bench_speed(encoder, pictures, os.path.join(tmp, 'index'), query, args)
        bench_quality(encoder, pairs_dir, data, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f'bench_image: {time.time() - t0:.0f} s', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
