"""track2vec: word2vec over co-listening recovers the designed taste clusters; rare, held-out and
mismatched tracks are listed; deterministic for a seed with one worker (whatever PYTHONHASHSEED)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _latent_fixtures import listening_corpus, precision_at_10
from latent.targets import read_targets
from latent.track2vec import (HashHoldOut, ListeningSource, SetHoldOut, Track2VecParams, _Sentences,
                              train_track2vec)

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(dim=16, epochs=5)


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    return listening_corpus(tmp_path_factory.mktemp('listens'), n_tracks=200)


def _source(corpus, held_out=None, mismatches=True):
    return ListeningSource(triplets=corpus['triplets'], unique_tracks=corpus['unique_tracks'],
                           mismatches=corpus['mismatches'] if mismatches else None, held_out=held_out)


def test_learned_space_recovers_taste_clusters(corpus, tmp_path):
    s = train_track2vec(_source(corpus), tmp_path / 't', Track2VecParams(dim=16, epochs=8))
    t = read_targets(tmp_path / 't')
    assert t.meta['kind'] == 'track2vec' and t.dim == 16 and s['tracks'] == len(t)
    prec, chance = precision_at_10(t.track_ids, t.vectors, corpus['truth']['track_cluster'])
    assert chance < 0.15
    assert prec > 0.6, (prec, chance)


def test_mismatched_pairs_removed_and_listed(corpus, tmp_path):
    mism = {tr for _, tr, _ in corpus['truth']['mismatched']}
    assert mism
    s = train_track2vec(_source(corpus), tmp_path / 'with', Track2VecParams(**FAST))
    t = read_targets(tmp_path / 'with')
    assert not mism & set(t.track_ids)
    assert s['mismatched'] > 0
    with open(tmp_path / 'with' / 'rare.csv') as f:
        rare = {r['track_id']: r for r in csv.DictReader(f)}
    assert mism <= set(rare) and all('mismatched' in rare[m]['reason'] for m in mism)
    # without the mismatch list the wrong pairs are learned (in the wrong cluster's company)
    train_track2vec(_source(corpus, mismatches=False), tmp_path / 'without', Track2VecParams(**FAST))
    assert mism <= set(read_targets(tmp_path / 'without').track_ids)


def test_rare_tracks_listed_not_dropped(corpus, tmp_path):
    s = train_track2vec(_source(corpus), tmp_path / 't', Track2VecParams(min_count=40, **FAST))
    t = read_targets(tmp_path / 't')
    with open(tmp_path / 't' / 'rare.csv') as f:
        rows = list(csv.DictReader(f))
    heard = [r for r in rows if 'min-count 40' in r['reason']]
    assert heard and all(int(r['count']) < 40 for r in heard)
    assert not {r['track_id'] for r in rows} & set(t.track_ids)
    assert s['rare'] == len(rows) == t.meta['rare_count']


def test_held_out_tracks_absent_from_sentences_and_listed(corpus, tmp_path):
    held = HashHoldOut(0.2, seed=3)
    src = _source(corpus, held_out=held)
    s = train_track2vec(src, tmp_path / 't', Track2VecParams(**FAST))
    listed = (tmp_path / 't' / 'held_out.txt').read_text().split()
    assert len(listed) == s['held_out_tracks'] == read_targets(tmp_path / 't').meta['held_out_count'] > 10
    assert listed == sorted(held.seen)
    words = {w for sentence in _Sentences(src, set(listed) | {'x'}, Track2VecParams(), True) for w in sentence}
    assert not words & set(listed)
    assert not set(listed) & set(read_targets(tmp_path / 't').track_ids)
    # a file of ids holds out exactly those
    src = _source(corpus, held_out=SetHoldOut(listed[:5]))
    train_track2vec(src, tmp_path / 'f', Track2VecParams(**FAST))
    assert (tmp_path / 'f' / 'held_out.txt').read_text().split() == listed[:5]


def test_playlists(tmp_path):
    rng = np.random.default_rng(0)
    groups = [[f'TRG{g}X{i:02d}' for i in range(12)] for g in range(4)]
    lines = [' '.join(rng.choice(groups[g], size=6, replace=False)) for _ in range(60) for g in range(4)]
    (tmp_path / 'p.txt').write_text('\n'.join(lines) + '\n')
    train_track2vec(ListeningSource(playlists=tmp_path / 'p.txt'), tmp_path / 't', Track2VecParams(dim=8, epochs=10))
    t = read_targets(tmp_path / 't')
    prec, chance = precision_at_10(t.track_ids, t.vectors, {tr: g for g, tr_ in enumerate(groups) for tr in tr_})
    assert prec > 0.8 > chance + 0.5


_RUN = """
import sys
from latent.track2vec import ListeningSource, Track2VecParams, train_track2vec
src = ListeningSource(triplets=sys.argv[1], unique_tracks=sys.argv[2], mismatches=sys.argv[3])
params = Track2VecParams(dim=8, epochs=3, seed=int(sys.argv[5]), memory_tokens=int(sys.argv[6]))
train_track2vec(src, sys.argv[4], params)
"""


def test_deterministic_for_a_seed_with_one_worker_whatever_the_hash_seed(corpus, tmp_path):
    outs = []
    for hash_seed, seed, memory, name in ((1, 0, 10**9, 'a'), (2, 0, 0, 'b'), (1, 5, 10**9, 'c')):
        env = dict(os.environ, PYTHONHASHSEED=str(hash_seed), PYTHONPATH=str(ROOT))
        subprocess.run([sys.executable, '-c', _RUN, str(corpus['triplets']), str(corpus['unique_tracks']),
                        str(corpus['mismatches']), str(tmp_path / name), str(seed), str(memory)],
                       check=True, env=env, capture_output=True)
        outs.append(read_targets(tmp_path / name))
    a, b, c = outs
    assert a.track_ids == b.track_ids
    np.testing.assert_array_equal(a.vectors, b.vectors)     # other hash seed, streamed instead of in memory
    assert not np.allclose(a.vectors, c.vectors)            # another seed, another space
    assert json.loads((tmp_path / 'a' / 'targets.json').read_text())['params']['seed'] == 0
