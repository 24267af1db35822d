"""CoOccurrence: counts equal brute-force set counts; correlations, equivalents, subsets, heat-map."""
import itertools
import os

import numpy as np
import pytest

from msd.common import read_csv
from msd.cooccurrence import CoOccurrence
from msd.lastfm import LastFm, LastFmPandas
from tests._msd_fixtures import make_raw_db, run_msd, tid

TAGS = ['a', 'b', 'c', 'd', 'e', 'f']


@pytest.fixture(scope='module')
def db(tmp_path_factory):
    rng = np.random.default_rng(3)
    pairs = []
    for t in range(1, 121):
        chosen = set(np.flatnonzero(rng.random(len(TAGS)) < [0.6, 0.4, 0.3, 0.2, 0.1, 0.05]))
        if 0 in chosen:
            chosen.add(4) if rng.random() < 0.1 else None
        if 3 in chosen:  # make d mostly a subset of a
            chosen.add(0)
        for k in chosen:
            pairs.append((t, int(k) + 1, float(rng.integers(0, 101))))
    # an exact twin of tag 'e': tag 'f2' on the same tracks
    e_tracks = [p[0] for p in pairs if p[1] == 5]
    pairs += [(t, 7, 50.0) for t in e_tracks]
    return make_raw_db(str(tmp_path_factory.mktemp('co') / 'db.db'), [tid(i) for i in range(1, 121)],
                       TAGS + ['f2'], pairs)


def _sets(db, threshold=None):
    lf = LastFmPandas(db)
    return {t: set(lf.with_tag(t, threshold)) for t in lf.get_tags()}


@pytest.mark.parametrize('cls', [LastFm, LastFmPandas])
def test_counts_equal_brute_force(db, cls):
    sets = _sets(db)
    names = list(sets)
    co = CoOccurrence(cls(db))
    assert co.tags == names
    n2 = co.pairwise()
    for x, y in itertools.product(names, repeat=2):
        assert n2.loc[x, y] == len(sets[x] & sets[y])
    n3 = co.triple()
    for i, j, k in itertools.product(range(len(names)), repeat=3):
        assert n3[i, j, k] == len(sets[names[i]] & sets[names[j]] & sets[names[k]])
    for combo in itertools.chain(itertools.combinations(names, 2), itertools.combinations(names, 3)):
        assert co.tags_and(combo) == len(set.intersection(*(sets[t] for t in combo)))
        assert co.tags_or(combo) == len(set.union(*(sets[t] for t in combo)))
    assert co.with_one_without_many('a', ['b', 'c']) == len(sets['a'] - sets['b'] - sets['c'])
    assert co.with_many_without_one(['a', 'b'], 'c') == len((sets['a'] & sets['b']) - sets['c'])
    assert co.counts().tolist() == [len(sets[t]) for t in names]


def test_threshold_and_subset_of_tags(db):
    sets = _sets(db, threshold=50)
    co = CoOccurrence(LastFm(db), tags=['c', 'a', 'zzz'], threshold=50)  # unknown tag dropped
    assert co.tags == ['c', 'a']
    assert co.pairwise().loc['c', 'a'] == len(sets['c'] & sets['a'])


def test_correlations_and_relations(db):
    sets = _sets(db)
    co = CoOccurrence(LastFmPandas(db))
    c = co.correlation_matrix()
    assert c.loc['d', 'a'] == pytest.approx(1.0)
    assert c.loc['a', 'b'] == pytest.approx(len(sets['a'] & sets['b']) / len(sets['a']))
    c3 = co.correlation_matrix_3d()
    i, j, k = co.tags.index('c'), co.tags.index('a'), co.tags.index('b')
    assert c3[i, j, k] == pytest.approx(len(sets['c'] & (sets['a'] | sets['b'])) / len(sets['c']))
    assert ('e', 'f2', 1.0, 1.0) in co.are_equivalent(0.8)
    subset = co.all_tag_is(0.99)
    assert ('d', 'a', 1.0) in subset and all(x != y for x, y, _ in subset)
    either = co.all_tag_is_either(0.99)
    assert any(x == 'd' and 'a' in (y, z) for x, y, z, _ in either)
    assert all(x not in (y, z) and co.tags.index(y) < co.tags.index(z) for x, y, z, _ in either)


def test_heatmap_png(db, tmp_path):
    co = CoOccurrence(LastFmPandas(db))
    path = co.heatmap(tmp_path / 'h.png')
    assert open(path, 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
    co.heatmap(tmp_path / 'n.png', which='counts')
    assert (tmp_path / 'n.png').stat().st_size > 1000


def test_cli(db, tmp_path):
    p = run_msd('cooccurrence', '--tags', db, '--out', tmp_path / 'h.png', '--top', '7', '--csv', tmp_path / 'c.csv')
    assert 'equivalent: e ~ f2' in p.stdout or 'equivalent: f2 ~ e' in p.stdout
    assert (tmp_path / 'h.png').exists() and (tmp_path / 'c.csv').exists()
    assert oct((tmp_path / 'h.png').stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    # an existing output is refused without --overwrite, before any work
    again = run_msd('cooccurrence', '--tags', db, '--out', tmp_path / 'h.png', check=False)
    assert again.returncode == 2 and '--overwrite' in again.stderr and 'Traceback' not in again.stderr


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _analysed_tags(csv_path):
    return read_csv(csv_path)['tag'].tolist()


def test_cli_select_and_the_older_spelling(db, tmp_path):
    """``--tags DB --select a,b`` is the unified spelling; ``--db DB --tags a,b`` still works."""
    run_msd('cooccurrence', '--tags', db, '--select', 'a,b,e', '--out', tmp_path / 'new.png',
            '--csv', tmp_path / 'new.csv')
    assert _analysed_tags(tmp_path / 'new.csv') == ['a', 'b', 'e']
    run_msd('cooccurrence', '--db', db, '--tags', 'a,b,e', '--out', tmp_path / 'old.png', '--csv', tmp_path / 'old.csv')
    assert _analysed_tags(tmp_path / 'old.csv') == ['a', 'b', 'e']
    run_msd('cooccurrence', '--db', db, '--out', tmp_path / 'db.png', '--top', '3', '--csv', tmp_path / 'db.csv')
    assert len(_analysed_tags(tmp_path / 'db.csv')) == 3
    p = run_msd('cooccurrence', '--out', tmp_path / 'x.png', check=False)
    assert p.returncode == 2 and '--tags DB is required' in p.stderr
    p = run_msd('cooccurrence', '--tags', tmp_path / 'missing.db', '--out', tmp_path / 'x.png', check=False)
    assert p.returncode == 2 and 'missing.db: no such file' in p.stderr and not (tmp_path / 'x.png').exists()
