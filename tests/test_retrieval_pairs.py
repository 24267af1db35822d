"""musetag index pairs: the pairs folder (pairs.csv, images/, targets/), splits by album, user CSV pairs."""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from latent.targets import read_targets
from retrieval import pairs as rp
from retrieval.cli import index_main
from retrieval.index import Index
from tests._pictures_fixtures import BLUE, build, make_picture_library, picture_bytes


@pytest.fixture()
def indexed(tmp_path):
    lib = make_picture_library(tmp_path / 'lib')
    build(tmp_path / 'idx', tmp_path / 'lib')
    return lib, tmp_path / 'idx'


def _rows(folder):
    with open(folder / 'pairs.csv', encoding='utf-8', newline='') as f:
        return list(csv.DictReader(f))


def test_pairs_from_the_index(tmp_path, indexed, capsys):
    lib, idx = indexed
    out = tmp_path / 'pairs'
    assert index_main(['pairs', '--index', str(idx), '--space', 'embedding', '--out', str(out)]) == 0
    assert '4 pairs' in capsys.readouterr().err
    rows = _rows(out)
    assert list(rows[0]) == list(rp.COLUMNS)
    with Index.open(idx) as index:
        ids = {index.find(lib[k]).id: k for k in ('red1', 'red2', 'blue1', 'blue2')}
        vectors, _ = index.stores['embedding'].get(sorted(ids))
    assert {r['track_id'] for r in rows} == set(ids)
    for r in rows:
        assert (out / r['image']).is_file() and r['image'].startswith('images/')
    red = [r for r in rows if ids[r['track_id']].startswith('red')]
    assert red[0]['image'] == red[1]['image'] and red[0]['split'] == red[1]['split']
    assert red[0]['group'] == 'album:["Ann", "Red"]'
    targets = read_targets(out / 'targets')
    assert targets.meta['key'] == 'index_id' and targets.meta['kind'] == 'index-space'
    assert targets.meta['params']['space'] == 'embedding' and targets.meta['params']['index'] == str(idx)
    got, missing = targets.lookup(sorted(ids))
    assert not missing
    np.testing.assert_allclose(got, vectors, rtol=1e-6)
    manifest = json.loads((out / 'pairs.json').read_text())
    assert manifest['counts']['pairs'] == 4 and manifest['counts']['images'] == 2
    assert sum(manifest['counts'][s] for s in rp.SPLITS) == 4
    skipped = list(csv.reader(open(out / 'skipped.csv', encoding='utf-8')))
    assert [s[1] for s in skipped[1:]] == ['corrupt'] and skipped[1][0] == lib['bad']


def test_tags_space_targets_are_the_tag_probabilities(tmp_path, indexed):
    lib, idx = indexed
    out = tmp_path / 'pairs'
    assert index_main(['pairs', '--index', str(idx), '--space', 'tags', '--out', str(out)]) == 0
    targets = read_targets(out / 'targets')
    with Index.open(idx) as index:
        t = index.find(lib['red1'])
        labels = index.labels
    np.testing.assert_allclose(targets.lookup([t.id])[0][0], t.probs)
    assert targets.meta['params']['labels'] == labels


def test_split_of_is_seeded_stable_and_follows_the_fractions():
    groups = [f'album:["a", "{i}"]' for i in range(3000)]
    splits = [rp.split_of(g, 0) for g in groups]
    share = {s: splits.count(s) / len(groups) for s in rp.SPLITS}
    assert share['train'] == pytest.approx(0.8, abs=0.03) and share['test'] == pytest.approx(0.1, abs=0.02)
    assert splits == [rp.split_of(g, 0) for g in groups]
    assert splits != [rp.split_of(g, 1) for g in groups]
    assert {rp.split_of(g, 0, (0, 0, 1)) for g in groups[:50]} == {'test'}


def test_albums_never_straddle_splits(tmp_path):
    """Many albums of three tracks each: every album's pairs share one split, and all splits occur."""
    from tests._pictures_fixtures import write_mp3
    for a in range(24):
        colour = (10 * a, 255 - 10 * a, 128)
        for k in range(3):
            write_mp3(tmp_path / 'lib' / f'al{a}' / f't{k}.mp3', artist=f'A{a % 5}', album=f'Album {a}',
                      title=f'T{k}', picture=picture_bytes(colour), seconds=0.2)
    build(tmp_path / 'idx', tmp_path / 'lib')
    assert index_main(['pairs', '--index', str(tmp_path / 'idx'), '--out', str(tmp_path / 'p'),
                       '--fractions', '0.5,0.25,0.25']) == 0
    rows = _rows(tmp_path / 'p')
    by_album = {}
    for r in rows:
        by_album.setdefault(r['album'], set()).add(r['split'])
    assert len(by_album) == 24 and all(len(s) == 1 for s in by_album.values())
    assert {r['split'] for r in rows} == set(rp.SPLITS)


def test_user_csv_pairs_skip_unknown_tracks_and_bad_pictures(tmp_path, indexed, capsys):
    lib, idx = indexed
    (tmp_path / 'photos').mkdir()
    (tmp_path / 'photos' / 'sea.png').write_bytes(picture_bytes(BLUE, (300, 200), 'PNG'))
    (tmp_path / 'photos' / 'broken.jpg').write_bytes(b'not a picture at all')
    with Index.open(idx) as index:
        none_id = index.find(lib['none']).id
    (tmp_path / 'pairs.csv').write_text(
        'image,track\n'
        f'photos/sea.png,{lib["none"]}\n'
        f'photos/sea.png,{none_id}\n'
        f'photos/broken.jpg,{lib["red1"]}\n'
        f'photos/sea.png,{tmp_path}/elsewhere.mp3\n'
        f'photos/missing.jpg,{lib["red2"]}\n', encoding='utf-8')
    out = tmp_path / 'out'
    assert index_main(['pairs', '--index', str(idx), '--pairs', str(tmp_path / 'pairs.csv'), '--out', str(out)]) == 1
    err = capsys.readouterr().err
    assert 'not-image' in err and 'unknown-track' in err and 'unreadable' in err
    rows = _rows(out)
    assert [r['track_id'] for r in rows] == [none_id, none_id]
    assert rows[0]['group'].startswith('image:')                   # no album tag: grouped by picture
    assert json.loads((out / 'pairs.json').read_text())['counts']['skipped'] == 3
    assert read_targets(out / 'targets').track_ids == [none_id]


def test_bad_arguments_are_exit_2_and_an_existing_out_is_kept(tmp_path, indexed, capsys):
    _, idx = indexed
    (tmp_path / 'bad.csv').write_text('picture,song\nx,y\n', encoding='utf-8')
    assert index_main(['pairs', '--index', str(idx), '--pairs', str(tmp_path / 'bad.csv'),
                       '--out', str(tmp_path / 'o')]) == 2
    assert 'image,track' in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        index_main(['pairs', '--index', str(idx), '--out', str(tmp_path / 'o'), '--fractions', '0.9,0.2,0'])
    assert e.value.code == 2
    (tmp_path / 'o').mkdir()
    (tmp_path / 'o' / 'keep').write_text('x')
    assert index_main(['pairs', '--index', str(idx), '--out', str(tmp_path / 'o')]) == 2
    assert os.listdir(tmp_path / 'o') == ['keep']
    assert index_main(['pairs', '--index', str(idx), '--out', str(tmp_path / 'o'), '--overwrite']) == 0
    assert (tmp_path / 'o' / 'pairs.csv').is_file()
