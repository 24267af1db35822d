"""doc2vec over clean tags: the designed neighbourhoods come out, strengths weigh, untagged tracks
are listed, deterministic for a seed with one worker (whatever PYTHONHASHSEED)."""
import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _latent_fixtures import clean_tag_db, precision_at_10
from core.errors import MuseTagError
from latent.doc2vec import Doc2VecParams, read_tag_documents, tag_copies, train_doc2vec
from latent.targets import read_targets

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def tag_db(tmp_path_factory):
    path = tmp_path_factory.mktemp('tags') / 'clean_tags.db'
    clusters = clean_tag_db(path, n_tracks=120)
    untagged = sorted(clusters)[:2]
    path2 = path.with_name('clean_untagged.db')
    clean_tag_db(path2, n_tracks=120, untagged=untagged)
    return {'db': path, 'clusters': clusters, 'untagged_db': path2, 'untagged': untagged}


def test_tag_copies_follow_strength():
    assert [tag_copies(v) for v in (0, 4, 5.1, 50, 100, 250, None)] == [1, 1, 2, 6, 11, 11, 1]


def test_read_tag_documents(tag_db):
    docs = read_tag_documents(tag_db['db'])
    assert len(docs) == 120
    tags = dict(docs[sorted(docs)[0]])
    assert max(tags.values()) == 100.0 and any(t.startswith('junk') for t in tags)
    with pytest.raises(MuseTagError, match='not an SQLite database'):
        (tag_db['db'].parent / 'bad.db').write_bytes(b'not sqlite at all' * 100)
        read_tag_documents(tag_db['db'].parent / 'bad.db')


def test_space_recovers_designed_neighbourhoods(tag_db, tmp_path):
    s = train_doc2vec(tag_db['db'], tmp_path / 't', Doc2VecParams(dim=16, epochs=30))
    t = read_targets(tmp_path / 't')
    assert t.meta['kind'] == 'doc2vec' and t.dim == 16 and len(t) == 120 == s['tracks']
    prec, chance = precision_at_10(t.track_ids, t.vectors, tag_db['clusters'])
    assert chance < 0.15 and prec > 0.6, (prec, chance)


def test_untagged_and_unknown_tracks_listed(tag_db, tmp_path):
    wanted = sorted(tag_db['clusters']) + ['TRNOTINTHEDB00000']
    s = train_doc2vec(tag_db['untagged_db'], tmp_path / 't', Doc2VecParams(dim=8, epochs=3), track_ids=wanted)
    t = read_targets(tmp_path / 't')
    with open(tmp_path / 't' / 'rare.csv') as f:
        rare = {r['track_id']: r['reason'] for r in csv.DictReader(f)}
    assert set(rare) == set(tag_db['untagged']) | {'TRNOTINTHEDB00000'}
    assert set(rare.values()) == {'no clean tag'}
    assert len(t) == 118 == s['tracks'] and not set(rare) & set(t.track_ids)


def test_min_count_drops_rare_tags(tag_db, tmp_path):
    # every junk tag has 1 copy per track (val 5): a min-count above their totals drops them all
    s_all = train_doc2vec(tag_db['db'], tmp_path / 'a', Doc2VecParams(dim=4, epochs=1, min_count=1))
    s_few = train_doc2vec(tag_db['db'], tmp_path / 'b', Doc2VecParams(dim=4, epochs=1, min_count=40))
    assert s_few['tags'] < s_all['tags']
    with pytest.raises(MuseTagError, match='nothing to learn'):
        train_doc2vec(tag_db['db'], tmp_path / 'c', Doc2VecParams(dim=4, epochs=1, min_count=10**6))


_RUN = """
import sys
from latent.doc2vec import Doc2VecParams, train_doc2vec
train_doc2vec(sys.argv[1], sys.argv[2], Doc2VecParams(dim=8, epochs=3, seed=int(sys.argv[3])))
"""


def test_deterministic_for_a_seed_whatever_the_hash_seed(tag_db, tmp_path):
    outs = []
    for hash_seed, seed, name in ((1, 0, 'a'), (2, 0, 'b'), (1, 7, 'c')):
        env = dict(os.environ, PYTHONHASHSEED=str(hash_seed), PYTHONPATH=str(ROOT))
        subprocess.run([sys.executable, '-c', _RUN, str(tag_db['db']), str(tmp_path / name), str(seed)],
                       check=True, env=env, capture_output=True)
        outs.append(read_targets(tmp_path / name))
    a, b, c = outs
    assert a.track_ids == b.track_ids
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert not np.allclose(a.vectors, c.vectors)


def test_db_without_strengths(tmp_path):
    conn = sqlite3.connect(tmp_path / 'noval.db')
    conn.executescript('CREATE TABLE tids (tid TEXT); CREATE TABLE tags (tag TEXT); '
                       'CREATE TABLE tid_tag (tid INTEGER, tag INTEGER);'
                       "INSERT INTO tids(rowid, tid) VALUES (1, 'TRA'), (2, 'TRB');"
                       "INSERT INTO tags(rowid, tag) VALUES (1, 'rock'), (2, 'pop');"
                       'INSERT INTO tid_tag VALUES (1, 1), (1, 2), (2, 1);')
    conn.commit()
    conn.close()
    assert read_tag_documents(tmp_path / 'noval.db') == {'TRA': [('pop', None), ('rock', None)],
                                                          'TRB': [('rock', None)]}
    s = train_doc2vec(tmp_path / 'noval.db', tmp_path / 't', Doc2VecParams(dim=4, epochs=1, min_count=1))
    assert s['tracks'] == 2
