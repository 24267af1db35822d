"""Benchmark latent targets and cold start (issue 14). Prints one JSON line per figure.

Throughput (synthetic listening data and tags of ``--listen-tracks`` planned tracks, no audio):

* ``doc2vec_tracks_per_s``: ``latent.doc2vec.train_doc2vec`` end to end (reading the tag DB,
  building the documents, training, writing the table): tracks x epochs per second; baseline in the
  same run: gensim's Doc2Vec alone on the same documents already in memory (``ratio_vs_gensim``).
* ``word2vec_listens_per_s``: ``latent.track2vec.train_track2vec`` (listens = kept triplet lines)
  x epochs per second of training, streamed from the files on every pass and kept in memory;
  baseline: gensim's Word2Vec alone on the same sentences pre-tokenised (``ratio_vs_gensim``).

Cold start, for each corpus of ``--sizes`` (``TRACKS:SECONDS``; default the mini corpus 300:30 and a
2,000-track set), on the synthetic corpus and its Taste Profile listening data, with the ``musetag``
commands run in this process: ``synth``, ``msd all``, ``preprocess split/write`` (log-mel),
``latent track2vec`` (``--hold-out-fraction`` of the tracks held out), ``train`` twice (the latent
config regressing the track2vec vectors, and the tagger of configs/demo.json, same steps), ``index
build`` for both runs over the audio, and ``index evaluate --held-out … --compare-index``:
``cold_start_p_at_10`` for ``space`` = predicted-latent, tag-probability and random (precision@10
of the held-out tracks against their true co-listening neighbours, docs/latent.md), plus the
seconds of each step.

    python benchmarks/bench_latent.py [--sizes 300:30 2000:16] [--listen-tracks 2000] [--epochs E]
                                      [--steps S] [--workdir DIR] [--tiny]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

from _common import ROOT, emit, machine  # (sets paths/env first)

BENCH = 'latent'


# ------------------------------------------------------------------------------------ throughput
def throughput(work, n_tracks, epochs):
    """doc2vec and word2vec figures on planned (audio-free) synthetic data."""
    from gensim.models import Word2Vec
    from gensim.models.doc2vec import Doc2Vec, TaggedDocument

    from latent.doc2vec import Doc2VecParams, read_tag_documents, tag_copies, train_doc2vec
    from latent.track2vec import ListeningSource, Track2VecParams, train_track2vec
    from msd.synthetic.lastfm_db import write_lastfm_db
    from msd.synthetic.listens import write_listens
    from msd.synthetic.plan import plan_corpus

    plan = plan_corpus(n_tracks, 30.0, 0)
    write_listens(os.path.join(work, 'tp'), plan, 0)
    db = os.path.join(work, 'tags.db')
    write_lastfm_db(db, plan)
    extra = {'tracks_planned': n_tracks, 'epochs': epochs, **machine()}

    p = Doc2VecParams(dim=40, epochs=epochs, min_count=2)
    t0 = time.perf_counter()
    s = train_doc2vec(db, os.path.join(work, 'd2v'), p)
    ours = s['tracks'] * epochs / (time.perf_counter() - t0)
    docs = [TaggedDocument([w for tag, val in tags for w in [tag] * tag_copies(val)], [tid])
            for tid, tags in read_tag_documents(db).items()]
    t0 = time.perf_counter()
    Doc2Vec(docs, vector_size=40, dm=0, min_count=2, epochs=epochs, workers=1, seed=0, sample=0.0)
    base = len(docs) * epochs / (time.perf_counter() - t0)
    emit(BENCH, 'doc2vec_tracks_per_s', ours, 'tracks/s', baseline=round(base, 1),
         ratio_vs_gensim=round(ours / base, 3), tracks=s['tracks'], **extra)

    tp = os.path.join(work, 'tp')
    rates = {}
    for mode, memory in (('streamed', 0), ('in_memory', 10**9)):
        src = ListeningSource(triplets=os.path.join(tp, 'train_triplets.txt'),
                              unique_tracks=os.path.join(tp, 'unique_tracks.txt'))
        params = Track2VecParams(epochs=epochs, memory_tokens=memory)
        s = train_track2vec(src, os.path.join(work, f'w2v-{mode}'), params)
        rates[mode] = s['listens_per_s']
    src = ListeningSource(triplets=os.path.join(tp, 'train_triplets.txt'),
                          unique_tracks=os.path.join(tp, 'unique_tracks.txt'))
    sentences = [[t for t, c in tracks for _ in range(min(c, 5))] for _, tracks in src]
    listens = src.report.listens
    t0 = time.perf_counter()
    Word2Vec(sentences, vector_size=32, window=10, min_count=2, sg=1, epochs=epochs, workers=1, seed=0, sample=0.0)
    base = listens * epochs / (time.perf_counter() - t0)
    for mode, rate in rates.items():
        emit(BENCH, 'word2vec_listens_per_s', rate, 'listens/s', mode=mode, baseline=round(base, 1),
             ratio_vs_gensim=round(rate / base, 3), listens=listens, **extra)


# ------------------------------------------------------------------------------------ cold start
def _musetag(*args):
    """Run one ``musetag`` command in this process; exit codes 0 and 1 (some inputs skipped) pass."""
    from musetag.cli import main
    code = main([str(a) for a in args])
    if code not in (0, 1):
        raise SystemExit(f'musetag {" ".join(map(str, args[:2]))} failed with exit code {code}')


def _timed(times, name, *args):
    t0 = time.perf_counter()
    _musetag(*args)
    times[name] = round(time.perf_counter() - t0, 2)


def cold_start(work, tracks, seconds, *, epochs, steps, batch, hold_out, workers):
    """The pipeline of the module docstring on one synthetic corpus; emits its figures."""
    d = os.path.join(work, f'c{tracks}')
    data, out, runs = os.path.join(d, 'data'), os.path.join(d, 'out'), os.path.join(d, 'runs')
    tp = os.path.join(data, 'taste_profile')
    times = {}
    q = ['--no-progress', '-q']
    _timed(times, 'synth', 'synth', '--out', data, '--tracks', tracks, '--seconds', seconds, '--seed', 0,
           '--workers', workers, '--overwrite', '--quiet')
    min_count = json.load(open(os.path.join(data, 'truth.json')))['recommended_clean_args']
    _timed(times, 'msd', 'msd', 'all', '--data', data, '--out', os.path.join(out, 'msd'), '--min-count',
           min_count['min_count'], '--pool-min-count', min_count['pool_min_count'], '--val-threshold', 10,
           '--overwrite', *q)
    master, tags = os.path.join(out, 'msd', 'master.csv'), os.path.join(out, 'msd', 'clean_tags.db')
    splits, records = os.path.join(out, 'splits.csv'), os.path.join(out, 'tfrecords')
    _musetag('preprocess', 'split', '--master', master, '--out', splits, '--by', 'artist', '--ratios', 0.6, 0.2, 0.2,
             '--seed', 0, '--overwrite', '-q')
    _timed(times, 'preprocess', 'preprocess', 'write', '--master', master, '--tags', tags, '--splits', splits,
           '--format', 'log-mel', '--preset', 'musicnn', '--shards-per-split', 2, 1, 1, '--out', records,
           '--workers', workers, '--overwrite', *q)
    targets = os.path.join(out, 'track2vec')
    listening = ['--listens', os.path.join(tp, 'train_triplets.txt'), '--unique-tracks',
                 os.path.join(tp, 'unique_tracks.txt'), '--mismatches', os.path.join(data, 'sid_mismatches.txt')]
    _timed(times, 'track2vec', 'latent', 'track2vec', *listening, '--hold-out-fraction', hold_out, '--out', targets,
           '--overwrite', *q)
    schedule = ['--set', f'optimization.epochs={epochs}', '--set', f'optimization.steps_per_epoch={steps}',
                '--set', f'dataset.dir={records}', '--set', f'input.batch_size={batch}']
    _timed(times, 'train_latent', 'train', '--config', os.path.join(ROOT, 'configs', 'latent_demo.json'), *schedule,
           '--set', f'task.targets={targets}', '--run', os.path.join(runs, 'latent'), '--overwrite', *q)
    _timed(times, 'train_tagger', 'train', '--config', os.path.join(ROOT, 'configs', 'demo.json'), *schedule,
           '--run', os.path.join(runs, 'tagger'), '--overwrite', *q)
    for name in ('latent', 'tagger'):
        _timed(times, f'index_{name}', 'index', 'build', '--run', os.path.join(runs, name), os.path.join(data, 'audio'),
               '--index', os.path.join(runs, f'index-{name}'), '--overwrite', *q)
    report_path = os.path.join(d, 'cold_start.json')
    _timed(times, 'evaluate', 'index', 'evaluate', '--index', os.path.join(runs, 'index-latent'), '--master', master,
           '--held-out', targets, *listening, '--compare-index', os.path.join(runs, 'index-tagger'),
           '--json', report_path, '--overwrite', '-q')
    report = json.load(open(report_path))
    extra = {'tracks': tracks, 'seconds': seconds, 'queries': report['n_queries'], 'candidates': report['n_candidates'],
             'epochs': epochs, 'steps_per_epoch': steps, 'batch': batch, 'times_s': times, **machine()}
    rows = {'predicted-latent': 'predicted-latent (index-latent)', 'tag-probability': 'tag-probability (index-tagger)',
            'random': 'random'}
    for space, key in rows.items():
        emit(BENCH, 'cold_start_p_at_10', report['spaces'][key]['precision_at_k'], 'precision', space=space, **extra)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--sizes', nargs='+', default=['300:30', '2000:16'], help='cold-start corpora TRACKS:SECONDS')
    ap.add_argument('--listen-tracks', type=int, default=2000, help='planned tracks of the throughput figures')
    ap.add_argument('--throughput-epochs', type=int, default=10, help='epochs of the throughput figures')
    ap.add_argument('--epochs', type=int, default=4, help='training epochs of both cold-start runs')
    ap.add_argument('--steps', type=int, default=12, help='steps per epoch of both cold-start runs')
    ap.add_argument('--batch', type=int, default=16, help='batch size of both cold-start runs')
    ap.add_argument('--hold-out', type=float, default=0.2, help='fraction of tracks held out of the targets')
    ap.add_argument('--workers', type=int, default=os.cpu_count() or 1, help='worker processes (synth, preprocess)')
    ap.add_argument('--workdir', default=None, help='keep the work here (default: a temporary folder, removed)')
    ap.add_argument('--tiny', action='store_true', help='tiny sizes for the tests (under a minute)')
    args = ap.parse_args()
    if args.tiny:
        args.sizes, args.listen_tracks, args.throughput_epochs = ['30:16'], 100, 2
        args.epochs, args.steps, args.batch, args.hold_out, args.workers = 1, 2, 4, 0.3, 2
    work = args.workdir or tempfile.mkdtemp(prefix='bench-latent-')
    os.makedirs(work, exist_ok=True)
    try:
        throughput(work, args.listen_tracks, args.throughput_epochs)
        for size in args.sizes:
            tracks, seconds = (int(x) for x in size.split(':'))
            cold_start(work, tracks, seconds, epochs=args.epochs, steps=args.steps, batch=args.batch,
                       hold_out=args.hold_out, workers=args.workers)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
