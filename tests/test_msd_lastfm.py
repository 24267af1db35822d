"""LastFm (SQL) and LastFmPandas (in memory): same answers, bound parameters, schema errors, CSV round trip."""
import sqlite3

import pandas as pd
import pytest

from msd.common import MsdError
from msd.lastfm import LastFm, LastFmPandas, LastFmSchemaError, TagDB, load_clean_tags
from tests._msd_fixtures import make_raw_db, tid

TAGS = ['rock', 'pop', "rock'n'roll", 'jazz', 'Robert"); DROP TABLE tags;--', 'unused']
TIDS = [tid(i) for i in range(1, 7)]
PAIRS = [(1, 1, 100.0), (1, 2, 40.0), (1, 3, 5.0),
         (2, 1, 80.0), (2, 4, 100.0),
         (3, 3, 100.0), (3, 5, 0.0),
         (4, 2, 60.0), (4, 1, 60.0),
         (5, 4, 10.0)]  # track 6 has no tag


@pytest.fixture(scope='module')
def db(tmp_path_factory):
    return make_raw_db(str(tmp_path_factory.mktemp('lf') / 'lastfm.db'), TIDS, TAGS, PAIRS)


@pytest.fixture(scope='module', params=['sql', 'pandas', 'csv'])
def lf(request, db, tmp_path_factory):
    if request.param == 'sql':
        obj = LastFm(db)
    elif request.param == 'pandas':
        obj = LastFmPandas(db)
    else:
        d = tmp_path_factory.mktemp('csv')
        with LastFm(db) as sql:
            sql.to_csv(d)
        obj = LastFmPandas.from_csv(d)
    yield obj
    obj.close()


def test_number_name_maps(lf):
    assert lf.tag_num_to_tag(3) == "rock'n'roll"
    assert lf.tag_to_tag_num("rock'n'roll") == 3
    assert lf.tag_to_tag_num(['jazz', 'rock']) == [4, 1]
    assert lf.tag_num_to_tag([2, 1]) == ['pop', 'rock']
    assert lf.tid_to_tid_num(TIDS[4]) == 5
    assert lf.tid_num_to_tid([6, 1]) == [TIDS[5], TIDS[0]]
    with pytest.raises(KeyError):
        lf.tag_to_tag_num('ROCK')  # case-sensitive raw strings
    with pytest.raises(KeyError):
        lf.tid_num_to_tid(99)
    # a hostile tag name is just data (bound parameters)
    assert lf.tag_to_tag_num('Robert"); DROP TABLE tags;--') == 5


def test_listings(lf):
    assert lf.get_tags() == TAGS
    assert lf.get_tag_nums() == [1, 2, 3, 4, 5, 6]
    assert lf.get_tids() == TIDS
    assert lf.tagged_tids() == TIDS[:5]
    assert lf.tagged_tids(threshold=50) == [TIDS[0], TIDS[1], TIDS[2], TIDS[3]]
    assert lf.n_tags == 6 and lf.n_tids == 6 and lf.n_pairs == len(PAIRS)


def test_queries(lf):
    assert lf.query_tags(TIDS[0]) == ['rock', 'pop', "rock'n'roll"]  # strongest first
    assert lf.query_tags(TIDS[0], threshold=10) == ['rock', 'pop']
    assert lf.query_tags(TIDS[3]) == ['rock', 'pop']  # tie on val: tag number order
    assert lf.query_tags(TIDS[5]) == []
    with pytest.raises(KeyError):
        lf.query_tags('TRNOTATRACKATALL00')
    assert lf.tid_num_to_tag_nums(2) == [4, 1]
    d = lf.query_tags_dict([TIDS[1], TIDS[5], 'TRUNKNOWN'])
    assert d == {TIDS[1]: ['jazz', 'rock'], TIDS[5]: [], 'TRUNKNOWN': []}
    assert lf.tid_tag_count(TIDS[:3]) == {TIDS[0]: 3, TIDS[1]: 2, TIDS[2]: 2}
    assert lf.tid_tag_count_filter(TIDS, 2) == TIDS[:4]
    assert lf.with_tag('rock') == [TIDS[0], TIDS[1], TIDS[3]]
    assert lf.with_tag('jazz', threshold=50) == [TIDS[1]]
    pairs = lf.fetch_all_tids_tags()
    assert list(pairs.columns) == ['tid', 'tag', 'val'] and len(pairs) == len(PAIRS)
    assert len(lf.fetch_all_tids_tags_threshold(50)) == sum(v > 50 for _, _, v in PAIRS)


def test_popularity(lf):
    pop = lf.popularity()
    assert list(pop.columns) == ['tag', 'tag_num', 'count']
    assert pop.index[0] == 1
    assert pop['tag'].tolist() == ['rock', 'pop', "rock'n'roll", 'jazz', 'Robert"); DROP TABLE tags;--']
    assert pop['count'].tolist() == [3, 2, 2, 2, 1]
    assert lf.popularity(threshold=50)['tag'].tolist() == ['rock', 'pop', "rock'n'roll", 'jazz']


def test_sql_and_pandas_agree_everywhere(db):
    a, b = LastFm(db), LastFmPandas(db)
    pd.testing.assert_frame_equal(a.popularity(), b.popularity())
    pd.testing.assert_frame_equal(a.fetch_all_tids_tags(5), b.fetch_all_tids_tags(5))
    for t in TIDS:
        assert a.query_tags(t) == b.query_tags(t)
    for tag in TAGS:
        assert a.with_tag(tag) == b.with_tag(tag)


def test_rowids_with_gaps_survive_csv(tmp_path):
    path = make_raw_db(str(tmp_path / 'g.db'), TIDS, TAGS, PAIRS)
    con = sqlite3.connect(path)
    con.execute('DELETE FROM tags WHERE rowid = 2')  # a gap: rowids 1,3,4,...
    con.execute('UPDATE tids SET tid = NULL WHERE rowid = 6')
    con.commit()
    con.close()
    LastFm(path).to_csv(tmp_path / 'csv')
    p = LastFmPandas.from_csv(tmp_path / 'csv')
    assert p.tag_to_tag_num('jazz') == 4 and p.tag_num_to_tag(3) == "rock'n'roll"
    assert p.get_tids() == TIDS[:5]
    with pytest.raises(KeyError):
        p.tid_num_to_tid(6)


def test_schema_errors(tmp_path):
    con = sqlite3.connect(tmp_path / 'bad.db')
    con.execute('CREATE TABLE tags(name TEXT)')
    con.execute('CREATE TABLE tids(tid TEXT)')
    con.execute('CREATE TABLE tid_tag(tid INTEGER, tag INTEGER)')
    con.commit()
    con.close()
    with pytest.raises(LastFmSchemaError, match="table 'tags'.*missing"):
        LastFm(tmp_path / 'bad.db')
    (tmp_path / 'text.db').write_text('not sqlite at all' * 100)
    with pytest.raises(MsdError):
        LastFm(tmp_path / 'text.db')
    with pytest.raises(MsdError, match='no such file'):
        LastFmPandas(tmp_path / 'missing.db')


def test_db_without_val(tmp_path):
    path = make_raw_db(str(tmp_path / 'nv.db'), TIDS, TAGS, PAIRS, with_val=False)
    for obj in (LastFm(path), LastFmPandas(path)):
        assert not obj.has_val
        assert obj.query_tags(TIDS[0]) == ['rock', 'pop', "rock'n'roll"]
        with pytest.raises(MsdError, match='no val'):
            obj.with_tag('rock', threshold=5)


def test_load_clean_tags_reads_vocabulary_and_tracks(tmp_path):
    path = make_raw_db(str(tmp_path / 'clean.db'), TIDS, TAGS, PAIRS + [(1, 1, 50.0), (2, 9, 10.0)])
    con = sqlite3.connect(path)
    con.execute('UPDATE tids SET tid = NULL WHERE rowid = 5')  # a track without clean tags
    con.commit()
    con.close()
    db = load_clean_tags(path)
    assert isinstance(db, TagDB)
    assert db.vocabulary == dict(enumerate(TAGS, 1))
    # duplicates collapse, unknown tag numbers (9) and NULL tids are left out; numbers sorted
    assert db.by_track == {TIDS[0]: [1, 2, 3], TIDS[1]: [1, 4], TIDS[2]: [3, 5], TIDS[3]: [1, 2]}


def test_load_clean_tags_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.db'):
        load_clean_tags(tmp_path / 'missing.db')
    (tmp_path / 'text.db').write_text('not sqlite at all' * 100)
    with pytest.raises(ValueError, match=r'text\.db: not a readable SQLite'):
        load_clean_tags(tmp_path / 'text.db')
    con = sqlite3.connect(tmp_path / 'bad.db')
    con.execute('CREATE TABLE tags(tag TEXT)')
    con.execute('CREATE TABLE tids(tid TEXT)')
    con.commit()
    con.close()
    with pytest.raises(ValueError, match=r"bad\.db: clean tag DB has no table 'tid_tag'"):
        load_clean_tags(tmp_path / 'bad.db')
    con = sqlite3.connect(tmp_path / 'bad2.db')
    con.execute('CREATE TABLE tags(tag TEXT)')
    con.execute('CREATE TABLE tids(name TEXT)')
    con.execute('CREATE TABLE tid_tag(tid INTEGER, tag INTEGER)')
    con.commit()
    con.close()
    with pytest.raises(ValueError, match=r"bad2\.db: table tids lacks column\(s\) \['tid'\]"):
        load_clean_tags(tmp_path / 'bad2.db')
