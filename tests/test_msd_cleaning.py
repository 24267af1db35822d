"""Tag cleaning: normalisation rules, curated lists, combine/drop, numbering, no duplicate pairs, val filter."""
import shutil
import sqlite3

import numpy as np
import pandas as pd
import pytest

from msd.cleandb import clean_tags
from msd.common import MsdError, OutputExistsError, read_csv
from msd.lastfm import LastFm
from msd.tagclean import LISTS_DIR, CuratedLists, map_tags, norm, read_list, rule_keys
from tests._msd_fixtures import make_raw_db, run_msd, tid

# raw tag -> (number of tracks, expected clean tag or None, expected status)
DESIGN = {
    'rock': (12, 'rock', 'target'),
    'Rock': (7, 'rock', 'target'),           # listed (case-insensitive), less popular: same group
    'ROCK': (3, 'rock', 'variant'),          # punct
    'rocks': (2, 'rock', 'variant'),         # plural rule
    'Hip-Hop': (10, 'hip-hop', 'target'),
    'hip hop': (6, 'hip-hop', 'variant'),    # not listed but merged: not "unreviewed"
    'hiphop': (3, 'hip-hop', 'variant'),
    '80s': (9, '80s', 'target'),
    '1980s': (6, '80s', 'variant'),          # decade-19
    "80's": (3, '80s', 'variant'),           # punct
    '80': (2, None, 'dropped'),              # pulled in by the plural rule, removed by drop.txt
    '00s': (8, '00s', 'target'),
    '2000s': (5, '00s', 'variant'),          # decade-20
    'rnb': (9, 'rnb', 'target'),
    'R&B': (7, 'rnb', 'target'),             # amp-n: R&B -> rnb; listed, combined into the popular one
    'RnB': (2, 'rnb', 'variant'),
    'rhythm and blues': (6, 'rnb', 'combined'),   # combine.txt: rnb, rhythm and blues
    'rock n roll': (8, 'rock n roll', 'target'),
    'rock & roll': (6, 'rock n roll', 'variant'),  # amp-n (run for every target)
    'rock and roll': (5, 'rock n roll', 'variant'),  # and-n
    "Rock 'n' Roll": (2, 'rock n roll', 'variant'),
    'ballad': (6, 'ballad', 'target'),
    'ballads': (5, 'ballad', 'variant'),
    'female vocalists': (9, 'female', 'vocal'),
    'Female Vocalist': (2, 'female', 'vocal'),
    'male vocalists': (6, 'male', 'vocal'),
    'rap': (5, 'rap', 'vocal'),
    'Instrumental': (4, 'instrumental', 'vocal'),
    'favorites': (9, None, 'rejected'),
    'seen live': (7, None, 'rejected'),
    'wonky stuff': (6, None, 'unreviewed'),  # popular, in neither list, matches nothing
    'my favourite': (3, None, 'unmatched'),
    'one-off tag': (1, None, None),          # below pool_min_count: not even listed in tag_map
}
MIN_COUNT, POOL_MIN = 5, 2
N_TRACKS = 40


def _design_db(path, seed=0, low_val_pairs=True):
    """Raw DB where tag t is on exactly DESIGN[t][0] tracks (val 20..100), plus weak (val 3) pairs."""
    rng = np.random.default_rng(seed)
    tags = list(DESIGN) + ['jazz']  # 'jazz' only ever appears with val <= 5
    pairs = []
    for k, (_, (n, _, _)) in enumerate(DESIGN.items(), start=1):
        for i in rng.choice(N_TRACKS, size=n, replace=False):
            pairs.append((int(i) + 1, k, float(rng.integers(20, 101))))
    if low_val_pairs:
        for i in range(0, N_TRACKS, 4):
            pairs.append((i + 1, len(tags), 3.0))
    order = rng.permutation(len(pairs))
    return make_raw_db(path, [tid(i) for i in range(1, N_TRACKS + 3)], tags, [pairs[i] for i in order])


@pytest.fixture(scope='module')
def cleaned(tmp_path_factory):
    d = tmp_path_factory.mktemp('clean')
    raw = _design_db(str(d / 'raw.db'))
    res = clean_tags(raw, d / 'clean.db', min_count=MIN_COUNT, pool_min_count=POOL_MIN, val_threshold=10,
                     command='test')
    return raw, d / 'clean.db', res


def test_rule_keys():
    s = pd.Series(["rock & roll", "rock and roll", "rock n roll", "80's", "1980s", "hip-hop", "bass", "s"])
    assert rule_keys(s, 'punct').tolist() == ['rockroll', 'rockandroll', 'rocknroll', '80', '1980', 'hiphop',
                                              'bass', 's']
    assert rule_keys(s, 'amp-n')[0] == 'rocknroll'
    assert rule_keys(s, 'amp-and')[0] == 'rockandroll'
    assert rule_keys(s, 'and-n')[1] == 'rocknroll'
    assert rule_keys(s, 'decade-19')[3] == '1980s' and rule_keys(s, 'decade-19')[4] == '1980s'
    assert rule_keys(pd.Series(['00s', "00's"]), 'decade-20').tolist() == ['2000s', '2000s']


def test_every_raw_tag_lands_where_designed(cleaned):
    raw, clean, res = cleaned
    table = res.tag_map.set_index('raw_tag')
    for tag, (_, target, status) in DESIGN.items():
        if status is None:
            assert tag not in table.index
            continue
        row = table.loc[tag]
        assert row['status'] == status, (tag, row.to_dict())
        got = row['clean_tag'] if isinstance(row['clean_tag'], str) else None
        assert got == target, (tag, row.to_dict())
    assert table.loc['1980s', 'rule'] == 'decade-19' and table.loc['rocks', 'rule'] == 'punct'
    assert table.loc['rock and roll', 'rule'] in ('and-n', 'amp-and')
    # 'jazz' has only weak pairs: it is a clean tag candidate but ends with no track
    assert 'jazz' not in res.names


def test_numbering_is_clean_popularity_then_name(cleaned):
    raw, clean, res = cleaned
    with LastFm(clean) as lf:
        pop = lf.popularity()
        assert lf.get_tags() == res.names
    counts = dict(zip(res.names, res.counts.tolist()))
    expected = sorted(counts, key=lambda n: (-counts[n], n))
    assert res.names == expected
    assert pop['tag'].tolist() == res.names  # rowid order == popularity order
    assert pop['tag_num'].tolist() == list(range(1, len(res.names) + 1))
    assert pop['count'].tolist() == res.counts.tolist()


def test_no_duplicate_pairs_and_max_val(cleaned):
    raw, clean, res = cleaned
    con = sqlite3.connect(clean)
    dup = con.execute('SELECT COUNT(*) FROM (SELECT tid, tag FROM tid_tag GROUP BY tid, tag HAVING COUNT(*) > 1)')
    assert dup.fetchone()[0] == 0
    cols = [r[1] for r in con.execute('PRAGMA table_info(tid_tag)')]
    assert cols == ['tid', 'tag', 'val']
    clean_pairs = pd.read_sql_query('SELECT tid, tag, val FROM tid_tag', con)
    names = dict(con.execute('SELECT rowid, tag FROM tags').fetchall())
    con.close()
    # brute force: max raw val over the raw tags merged into each clean tag, val > 10 only
    rcon = sqlite3.connect(raw)
    raw_pairs = pd.read_sql_query('SELECT p.tid, t.tag AS raw, p.val FROM tid_tag p JOIN tags t ON t.rowid = p.tag',
                                  rcon)
    rcon.close()
    to_clean = {t: c for t, (_, c, _) in DESIGN.items() if c}
    raw_pairs['clean'] = raw_pairs['raw'].map(to_clean)
    raw_pairs = raw_pairs[raw_pairs['clean'].notna() & (raw_pairs['val'] > 10)]
    expect = raw_pairs.groupby(['tid', 'clean'])['val'].max().to_dict()
    got = {(t, names[g]): v for t, g, v in clean_pairs.itertuples(index=False)}
    assert got == expect


def test_tids_rowids_kept_and_null_without_clean_tag(cleaned):
    raw, clean, res = cleaned
    rows = sqlite3.connect(clean).execute('SELECT rowid, tid FROM tids ORDER BY rowid').fetchall()
    raw_rows = sqlite3.connect(raw).execute('SELECT rowid, tid FROM tids ORDER BY rowid').fetchall()
    assert [r[0] for r in rows] == [r[0] for r in raw_rows]
    tagged = {r[0] for r in sqlite3.connect(clean).execute('SELECT DISTINCT tid FROM tid_tag')}
    for (num, t), (_, rt) in zip(rows, raw_rows):
        assert t == (rt if num in tagged else None)
    assert rows[-1][1] is None  # the last two raw tracks have no tag at all


def test_val_threshold_really_filters(tmp_path):
    raw = _design_db(str(tmp_path / 'raw.db'))
    lo = clean_tags(raw, tmp_path / 'lo.db', min_count=MIN_COUNT, pool_min_count=POOL_MIN, val_threshold=-1)
    hi = clean_tags(raw, tmp_path / 'hi.db', tag_map=tmp_path / 'hi.csv', min_count=MIN_COUNT,
                    pool_min_count=POOL_MIN, val_threshold=60)
    # 'jazz' (a listed genre on 10 tracks) only has weak pairs (val 3): kept without a filter only
    assert 'jazz' in lo.names and 'jazz' not in hi.names
    with LastFm(tmp_path / 'hi.db') as lf:
        vals = lf.fetch_all_tids_tags()['val']
        assert (vals > 60).all()
    assert hi.n_pairs < lo.n_pairs
    assert hi.stats['below_val'] == int((sqlite3.connect(raw).execute(
        'SELECT COUNT(*) FROM tid_tag WHERE val <= 60').fetchone()[0]))


def test_tag_map_csv_and_meta(cleaned):
    raw, clean, res = cleaned
    tm = read_csv(res.tag_map_path)
    assert {'raw_tag', 'raw_tag_num', 'raw_count', 'clean_tag', 'clean_tag_num', 'status', 'rule'} <= set(tm.columns)
    mapped = tm[tm['clean_tag_num'].notna()]
    assert mapped['raw_tag'].is_unique
    # a clean tag left without tracks by the val filter is reported, not numbered
    assert tm.set_index('raw_tag').loc['jazz', 'status'] == 'empty'
    with LastFm(clean) as lf:
        for name, num in mapped[['clean_tag', 'clean_tag_num']].itertuples(index=False):
            assert lf.tag_num_to_tag(int(num)) == name
    meta = dict(sqlite3.connect(clean).execute('SELECT key, value FROM meta').fetchall())
    assert meta['min_count'] == str(MIN_COUNT) and 'popularity' in meta['numbering']


def test_round_trip_query_tags(cleaned):
    raw, clean, res = cleaned
    to_clean = {t: c for t, (_, c, _) in DESIGN.items() if c}
    with LastFm(raw) as r, LastFm(clean) as c:
        for t in r.get_tids():
            expect = {to_clean[x] for x in r.query_tags(t, threshold=10) if x in to_clean}
            if expect:
                assert set(c.query_tags(t)) == expect
                assert len(c.query_tags(t)) == len(expect)
            else:
                with pytest.raises(KeyError):  # NULL tid: the track has no clean tag
                    c.query_tags(t)


def test_deterministic(tmp_path, cleaned):
    raw, clean, res = cleaned
    again = clean_tags(raw, tmp_path / 'again.db', min_count=MIN_COUNT, pool_min_count=POOL_MIN, val_threshold=10)
    assert again.names == res.names
    a = sqlite3.connect(clean).execute('SELECT tid, tag, val FROM tid_tag').fetchall()
    b = sqlite3.connect(tmp_path / 'again.db').execute('SELECT tid, tag, val FROM tid_tag').fetchall()
    assert a == b


def test_cli_combine_drop_and_errors(tmp_path):
    raw = _design_db(str(tmp_path / 'raw.db'))
    out = tmp_path / 'c.db'
    p = run_msd('clean-tags', '--lastfm', raw, '--out', out, '--min-count', MIN_COUNT, '--pool-min-count', POOL_MIN,
                '--combine', 'oldies,80s,00s', '--drop', 'ballad', '--drop', 'ROCK')
    assert 'clean-tags:' in p.stdout
    tags = LastFm(out).get_tags()
    assert 'oldies' in tags and '80s' not in tags and '00s' not in tags and 'ballad' not in tags
    tm = read_csv(tmp_path / 'tag_map.csv').set_index('raw_tag')
    assert tm.loc['1980s', 'clean_tag'] == 'oldies' and tm.loc['ROCK', 'status'] == 'dropped'
    assert tm.loc['rocks', 'clean_tag'] == 'rock'
    # refuses to overwrite; bad args fail at once naming the option
    p = run_msd('clean-tags', '--lastfm', raw, '--out', out, check=False)
    assert p.returncode == 2 and 'exists' in p.stderr
    p = run_msd('clean-tags', '--lastfm', raw, '--out', tmp_path / 'x.db', '--combine', 'lonely', check=False)
    assert p.returncode == 2 and '--combine' in p.stderr
    p = run_msd('clean-tags', '--lastfm', raw, '--out', tmp_path / 'x.db', '--min-count', '0', check=False)
    assert p.returncode == 2 and '--min-count' in p.stderr
    (tmp_path / 'other').mkdir()
    bad = tmp_path / 'other' / 'bad.db'
    con = sqlite3.connect(bad)
    con.execute('CREATE TABLE tags(tag TEXT)')
    con.commit()
    con.close()
    p = run_msd('clean-tags', '--lastfm', bad, '--out', tmp_path / 'other' / 'y.db', check=False)
    assert p.returncode == 2 and "table 'tids' missing" in p.stderr and 'Traceback' not in p.stderr


def test_refuses_existing_output(cleaned, tmp_path):
    raw, clean, res = cleaned
    with pytest.raises(OutputExistsError):
        clean_tags(raw, clean, min_count=MIN_COUNT, pool_min_count=POOL_MIN)


def test_edited_lists_dir(tmp_path):
    """A user copies msd/lists, adds a vocal file and a genre, rejects one more tag."""
    lists = tmp_path / 'lists'
    shutil.copytree(LISTS_DIR, lists)
    (lists / 'vocal_choir.txt').write_text('# choirs\nrock and roll\n')  # any raw tag can be routed
    genres = (lists / 'genres.txt').read_text().replace('\nballad\n', '\n')  # moved to non_genres
    (lists / 'genres.txt').write_text(genres + 'Wonky Stuff\n')
    with open(lists / 'non_genres.txt', 'a') as f:
        f.write('ballad\n')
    cl = CuratedLists.load(lists)
    assert 'choir' in cl.vocals and norm('Wonky  Stuff') in cl.genres
    raw = _design_db(str(tmp_path / 'raw.db'))
    res = clean_tags(raw, tmp_path / 'c.db', lists=cl, min_count=MIN_COUNT, pool_min_count=POOL_MIN)
    table = res.tag_map.set_index('raw_tag')
    assert table.loc['rock and roll', 'clean_tag'] == 'choir'
    assert table.loc['wonky stuff', 'clean_tag'] == 'wonky stuff'
    assert table.loc['ballad', 'status'] == 'rejected' and table.loc['ballads', 'status'] == 'unreviewed'
    (lists / 'genres.txt').write_text('rock\n')
    (lists / 'non_genres.txt').write_text('Rock\n')
    with pytest.raises(MsdError, match='both as genres and non-genres'):
        CuratedLists.load(lists)


def test_shipped_lists_are_well_formed():
    genres = read_list(f'{LISTS_DIR}/genres.txt')
    assert len(genres) == len(set(map(norm, genres))) >= 151
    for name in ('hip-hop', 'rock n roll', '00s', 'alternative  punk', 'experimental rock'):
        assert norm(name) in map(norm, genres)
    cl = CuratedLists.load()
    assert set(cl.vocals) == {'female', 'male', 'rap', 'instrumental'}
    assert ['rnb', 'rhythm and blues'] in cl.combine and '00' in cl.drop
    assert not (cl.genres & cl.non_genres)


def test_map_tags_unlisted_keep():
    pop = pd.DataFrame({'tag_num': [1, 2, 3], 'tag': ['newgenre', 'NewGenre!', 'rare'], 'count': [50, 5, 1]})
    cl = CuratedLists.load()
    drop = map_tags(pop, cl, min_count=10, pool_min_count=2)
    assert drop.groups.get('newgenre') is None
    keep = map_tags(pop, cl, min_count=10, pool_min_count=2, unlisted='keep')
    assert set(keep.groups['newgenre']) == {1, 2}
