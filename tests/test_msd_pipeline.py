"""`python -m msd all` on a generated mini corpus: every stage checked against the generator's truth."""
import json
import sqlite3

import pytest

from msd.common import read_csv
from msd.cooccurrence import CoOccurrence
from msd.lastfm import LastFm, LastFmPandas
from tests._msd_fixtures import run_msd

pytestmark = pytest.mark.slow  # generates a corpus and runs the whole chain (~30-60 s on 2 busy cores)

SECONDS = 5.0
MIN_EFFECTIVE = 4.0  # good clips are 5 s, 'short' ones 2.5 s


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    from msd.synthetic import generate
    base = tmp_path_factory.mktemp('pipe')
    truth = generate(base / 'data', tracks=30, seconds=SECONDS, seed=1, workers=2, progress=False)
    rec = truth['recommended_clean_args']
    out = base / 'out'
    p = run_msd('all', '--data', base / 'data', '--out', out, '--no-progress', '--workers', '2',
                '--min-count', rec['min_count'], '--pool-min-count', rec['pool_min_count'],
                '--val-threshold', rec['val_threshold'], '--min-effective-length', MIN_EFFECTIVE, timeout=900)
    return base, truth, out, p


def _steps(out):
    return {s['step']: s for s in json.loads((out / 'master.purge.json').read_text())['steps']}


def test_all_writes_everything(corpus):
    base, truth, out, p = corpus
    assert p.stdout.startswith('all: done')
    for name in ('scan.csv', 'silence.csv', 'master.csv', 'master.purge.json', 'master.purge.csv',
                 'clean_tags.db', 'tag_map.csv'):
        assert (out / name).exists(), name
    # re-running refuses, --resume keeps finished steps
    again = run_msd('all', '--data', base / 'data', '--out', out, check=False)
    assert again.returncode == 2 and '--resume' in again.stderr
    resumed = run_msd('all', '--data', base / 'data', '--out', out, '--resume', '-q')
    assert resumed.stdout.startswith('all: done')


def test_scan_statuses_match_bad_files(corpus):
    base, truth, out, _ = corpus
    scan = read_csv(out / 'scan.csv', keep_default_na=False).set_index('file_path')
    expect = {'zero-byte': 'empty', 'not-audio': 'not-audio'}
    for path, kind in truth['bad_files'].items():
        assert scan.loc[path, 'status'] == expect.get(kind, 'ok'), (path, kind)
    good = [t for t in truth['tracks'] if t['audio_kind'] == 'ok']
    for t in good:
        row = scan.loc[t['audio_path']]
        assert int(row['sample_rate']) == t['sample_rate'] and int(row['channels']) == t['channels']
        assert int(row['track_7digitalid']) == t['track_7digitalid']


def test_silence_of_constructed_bad_clips(corpus):
    base, truth, out, _ = corpus
    sil = read_csv(out / 'silence.csv', keep_default_na=False).set_index('file_path')
    by_kind = {k: p for p, k in truth['bad_files'].items()}
    assert sil.loc[by_kind['silent'], 'status'] == 'silent'
    assert sil.loc[by_kind['truncated'], 'status'] == 'truncated'
    assert (sil.drop(index=[by_kind['silent'], by_kind['truncated']])['status'] == 'ok').all()
    gappy = sil.loc[by_kind['gappy']]
    # the generator zeroes [4/30, 12/30) and [15/30, 26/30) of the clip: two gaps of 1.33 and 1.83 s;
    # the detector sees each gap 3 hops (plus decaying reverb) shorter
    gaps = sorted(b - a for a, b in json.loads(gappy['silence_detail']))
    assert int(gappy['n_gaps']) == 2
    for got, true in zip(gaps, sorted([8 / 30 * SECONDS, 11 / 30 * SECONDS])):
        assert true - 0.3 < got <= true
    assert float(sil.loc[by_kind['short'], 'effective_clip_length']) < MIN_EFFECTIVE


def test_each_purge_step_removes_exactly_the_culprits(corpus):
    base, truth, out, _ = corpus
    steps = _steps(out)
    tracks = {t['track_id']: t for t in truth['tracks']}
    kind = {tid: t['audio_kind'] for tid, t in tracks.items()}

    def ids(step):
        return set(steps[step]['track_ids'])

    assert ids('no-audio') == set(truth['no_audio'])
    assert set(steps['unlinked-file']['files']) == {o['audio_path'] for o in truth['orphan_audio']}
    amb = {tid for tid, t in tracks.items() if t['track_7digitalid'] in truth['ambiguous_7digitalid']}
    assert len(amb) == 2 and ids('ambiguous-7digitalid') == amb
    assert ids('mismatch') == set(truth['mismatched'])
    assert ids('faulty-audio') == {tid for tid, k in kind.items()
                                   if k in ('zero-byte', 'not-audio', 'silent', 'truncated')}
    silence_steps = ids('short') | ids('total-silence') | ids('max-gap')
    assert silence_steps == {tid for tid, k in kind.items() if k in ('short', 'gappy')}
    assert ids('untagged') == set(truth['untagged'])
    assert ids('duplicate') == {t for g in truth['duplicate_groups'] for t in g[1:]}
    removed = set().union(*(ids(s) for s in steps if s != 'unlinked-file'))
    master = read_csv(out / 'master.csv')
    assert set(master['track_id']) == set(tracks) - removed
    assert all(kind[t] == 'ok' for t in master['track_id'])


def test_clean_tags_match_truth(corpus):
    base, truth, out, _ = corpus
    tm = read_csv(out / 'tag_map.csv').set_index('raw_tag')
    with LastFm(out / 'clean_tags.db') as lf:
        names = lf.get_tags()
        pop = lf.popularity()
    assert set(names) == set(truth['clean_tags'])
    for clean, variants in truth['tag_variants'].items():
        for raw in variants:
            assert tm.loc[raw, 'clean_tag'] == clean, (raw, clean, tm.loc[raw].to_dict())
    for junk in truth['junk_tags']:
        assert junk not in names
        assert junk not in tm.index or not isinstance(tm.loc[junk, 'clean_tag'], str)
    # numbering: clean popularity descending, ties by name
    assert pop['tag_num'].tolist() == list(range(1, len(names) + 1))
    assert pop['tag'].tolist() == sorted(names, key=lambda n: (-int(pop.set_index('tag').loc[n, 'count']), n))
    con = sqlite3.connect(out / 'clean_tags.db')
    assert con.execute('SELECT COUNT(*) FROM (SELECT 1 FROM tid_tag GROUP BY tid, tag HAVING COUNT(*) > 1)'
                       ).fetchone()[0] == 0


def _expected_clean(truth):
    to_clean = {raw: clean for clean, vs in truth['tag_variants'].items() for raw in vs}
    thr = truth['recommended_clean_args']['val_threshold']
    out = {}
    for t in truth['tracks'] + truth['db_only_tracks']:
        tags = {to_clean[r] for r, v in t['raw_tags'] if r in to_clean and v > thr}
        if tags:
            out[t['track_id']] = tags
    return out


def test_clean_db_round_trips_through_lastfm(corpus):
    base, truth, out, _ = corpus
    expect = _expected_clean(truth)
    with LastFm(out / 'clean_tags.db') as lf:
        assert set(lf.get_tids()) == set(expect)
        for tid, tags in expect.items():
            got = lf.query_tags(tid)
            assert len(got) == len(set(got)) and set(got) == tags, tid
        # the weak wrong-genre tags (val <= 6) are gone
        for tid, tag, _ in truth['low_val_tags']:
            if tid in expect:
                assert tag.lower() not in lf.query_tags(tid) or tag.lower() in expect[tid]


def test_cooccurrence_matches_brute_force(corpus):
    base, truth, out, _ = corpus
    expect = _expected_clean(truth)
    co = CoOccurrence(LastFmPandas(out / 'clean_tags.db'))
    sets = {t: {tid for tid, tags in expect.items() if t in tags} for t in co.tags}
    n2 = co.pairwise()
    for a in co.tags:
        for b in co.tags:
            assert n2.loc[a, b] == len(sets[a] & sets[b])
