"""The synthetic corpus's Taste-Profile listening data: formats, designed clusters, culprits."""
import json
import re
from collections import Counter, defaultdict

import pytest

from msd.synthetic import generate
from msd.synthetic.listens import listening_data, taste_cluster
from msd.synthetic.plan import plan_corpus


@pytest.fixture(scope='module')
def data():
    plan = plan_corpus(200, 30.0, 0)
    return plan, listening_data(plan, 0)


def test_formats(data):
    plan, d = data
    lines = d['triplets'].splitlines()
    assert len(lines) == d['truth']['triplets'] > 1000
    users = []
    for line in lines:
        user, song, count = line.split('\t')
        assert re.fullmatch(r'[0-9a-f]{40}', user) and song.startswith('SO') and int(count) >= 1
        if not users or users[-1] != user:
            users.append(user)
    assert users == sorted(users) and len(users) == len(set(users)) == d['truth']['users']   # sorted by user
    unique = [line.split('<SEP>') for line in d['unique_tracks'].splitlines()]
    assert len(unique) == len(plan['tracks']) and all(len(f) == 4 for f in unique)
    assert {f[0] for f in unique} == {t['track_id'] for t in plan['tracks']}


def test_designed_clusters_and_culprits(data):
    plan, d = data
    truth = d['truth']
    song_track = {f.split('<SEP>')[1]: f.split('<SEP>')[0] for f in d['unique_tracks'].splitlines()}
    # the mismatched tracks are listed with their sid_mismatches.txt song, as in the real data
    pairs = {re.search(r'<(SO\w+) (TR\w+)>', line).groups() for line in plan['mism_lines']}
    assert {(so, tr) for so, tr, _ in truth['mismatched']} == pairs
    assert all(song_track[so] == tr for so, tr in pairs)
    # users love clusters: most of a user's known plays fall in one cluster
    by_user = defaultdict(list)
    unknown = 0
    for line in d['triplets'].splitlines():
        user, song, _ = line.split('\t')
        if song not in song_track:
            unknown += 1
            assert song in truth['unknown_songs']
            continue
        by_user[user].append(truth['track_cluster'][song_track[song]])
    assert unknown > 0
    top_share = [Counter(c).most_common(1)[0][1] / len(c) for c in by_user.values() if len(c) >= 5]
    assert sum(top_share) / len(top_share) > 0.6
    assert truth['single_song_users'] > 0
    assert sum(len(v) for v in truth['clusters'].values()) == len(plan['tracks'])
    assert all(truth['track_cluster'][t['track_id']] == taste_cluster(t['labels']) for t in plan['tracks'])


def test_deterministic(data):
    plan, d = data
    assert listening_data(plan, 0) == d
    assert listening_data(plan, 1)['triplets'] != d['triplets']


def test_synth_writes_the_listening_data(tmp_path):
    truth = generate(tmp_path / 'mini', tracks=24, seconds=2.0, seed=0, workers=1, progress=False)
    folder = tmp_path / 'mini' / 'taste_profile'
    assert sorted(p.name for p in folder.iterdir()) == ['clusters.json', 'train_triplets.txt', 'unique_tracks.txt']
    clusters = json.loads((folder / 'clusters.json').read_text())
    assert set(clusters['track_cluster']) == {t['track_id'] for t in truth['tracks']}
    assert (folder / 'train_triplets.txt').read_text().count('\n') == clusters['triplets']
