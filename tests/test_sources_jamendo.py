"""`musetag dataset jamendo` on a format-faithful MTG-Jamendo tree (sources.synthetic.make_jamendo):
TSV layout, tracks missing on disk, the five published splits, subsets, unknown split ids, the
``.low.mp3`` release, durations from the headers."""
import os
import shutil

import pytest

from sources.__main__ import main
from sources.jamendo import read_tsv
from sources.synthetic import make_jamendo
from tests._sources_fixtures import read_out

MINUTES = (0.05, 0.1)


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp('jamendo') / 'jam'
    truth = make_jamendo(root, 24, seed=2, minutes=MINUTES, workers=2)
    return root, truth


def _run(root, out, *extra, audio=None):
    return main(['jamendo', '--root', str(root), '--audio', str(audio or root / 'audio'), '--out', str(out),
                 '--workers', '1', '-q', *map(str, extra)])


def test_tree_has_the_published_layout(tree):
    root, truth = tree
    data = root / 'data'
    for stem in ('autotagging', 'autotagging_top50tags', 'autotagging_genre', 'autotagging_instrument',
                 'autotagging_moodtheme'):
        lines = (data / f'{stem}.tsv').read_text().splitlines()
        assert lines[0] == 'TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS'
        assert len(lines) - 1 == truth['subsets'][stem]
        for n in range(5):
            for split in ('train', 'validation', 'test'):
                assert (data / 'splits' / f'split-{n}' / f'{stem}-{split}.tsv').is_file()
    rows = read_tsv(data / 'autotagging_genre.tsv')
    assert rows and all(t.startswith('genre---') for r in rows for t in r['tags'])
    for r in read_tsv(data / 'autotagging.tsv'):
        assert (root / 'audio' / r['path']).exists() == (r['track_id'] not in truth['missing'])


def test_adapter_finds_missing_tracks_and_keeps_the_published_splits(tree, tmp_path):
    root, truth = tree
    assert _run(root, tmp_path / 'out', '--subset', 'all') == 1
    c = read_out(tmp_path / 'out')
    s = c['skipped']
    assert set(s['reason']) == {'missing-file'} and sorted(s['item']) == sorted(truth['missing'])
    master = c['master'].frame.set_index('track_id')
    assert len(master) == truth['tracks'] - len(truth['missing'])
    rows = {r['track_id']: r for r in read_tsv(root / 'data' / 'autotagging.tsv')}
    for tid, m in master.iterrows():
        assert m['duration'] == pytest.approx(rows[tid]['duration'], abs=0.2)     # header agrees with the TSV
        assert m['artist_id'] == rows[tid]['artist_id'] and m['release'] == rows[tid]['album_id']
    vocab = c['tagdb'].vocabulary
    for tid, nums in c['tagdb'].by_track.items():
        assert sorted(vocab[n] for n in nums) == sorted(rows[tid]['tags'])
    assert list(c['protocols']) == [f'split-{n}' for n in range(5)] and c['summary']['default_protocol'] == 'split-0'
    for n in range(5):
        got = c['protocols'][f'split-{n}']
        for split in ('train', 'validation', 'test'):
            listed = {r['track_id'] for r in read_tsv(root / 'data' / 'splits' / f'split-{n}' /
                                                      f'autotagging-{split}.tsv')}
            assert set(got.loc[got['split'] == split, 'track_id']) == listed - set(truth['missing'])
        artists = {}
        for tid, split in zip(got['track_id'], got['split']):
            artists.setdefault(master.loc[tid, 'artist_id'], set()).add(split)
        assert all(len(v) == 1 for v in artists.values())            # the published splits are artist-disjoint


def test_subset_and_split_choice(tree, tmp_path):
    root, truth = tree
    assert _run(root / 'data', tmp_path / 'out', '--subset', 'moodtheme', '--split', '3', audio=root / 'audio') == 1
    c = read_out(tmp_path / 'out')
    assert all(t.startswith('mood/theme---') for t in c['tagdb'].vocabulary.values())
    assert c['summary']['default_protocol'] == 'split-3'
    listed = {r['track_id'] for r in read_tsv(root / 'data' / 'autotagging_moodtheme.tsv')}
    assert set(c['master'].frame['track_id']) == listed - set(truth['missing'])


def test_unknown_split_ids_low_release_and_bad_rows(tree, tmp_path):
    root, truth = tree
    copy = tmp_path / 'jam'
    shutil.copytree(root / 'data', copy / 'data')
    audio = tmp_path / 'audio'
    shutil.copytree(root / 'audio', audio)
    rows = read_tsv(copy / 'data' / 'autotagging_top50tags.tsv')
    present = [r for r in rows if r['track_id'] not in truth['missing']]
    low = present[0]
    os.rename(audio / low['path'], audio / (low['path'][:-4] + '.low.mp3'))   # only the low-quality release
    val = copy / 'data' / 'splits' / 'split-0' / 'autotagging_top50tags-validation.tsv'
    with open(val, 'a') as f:
        f.write('track_9999999\tartist_1\talbum_1\t99/9999999.mp3\t100.0\tgenre---rock\n')
    with open(copy / 'data' / 'autotagging_top50tags.tsv', 'a') as f:
        f.write(f'{present[1]["track_id"]}\tartist_x\talbum_x\t{present[1]["path"]}\t60.0\tgenre---rock\n')
        f.write('track_0000007\tartist_x\talbum_x\t07/7.mp3\tlong\tgenre---rock\n')
        f.write('track_0000008\tartist_x\talbum_x\t08/8.mp3\t60.0\n')
    assert _run(copy, tmp_path / 'out', audio=audio) == 1
    c = read_out(tmp_path / 'out')
    got = sorted(zip(c['skipped']['reason'], c['skipped']['item']))
    assert got == sorted([('missing-file', t) for t in truth['missing']] +
                         [('unknown-split-id', 'track_9999999'), ('duplicate-id', present[1]['track_id']),
                          ('bad-row', 'track_0000007'), ('no-tag', 'track_0000008')])
    m = c['master'].frame.set_index('track_id')
    assert m.loc[low['track_id'], 'file_path'].endswith('.low.mp3')


def test_wrong_root_and_missing_split(tree, tmp_path, capsys):
    root, _ = tree
    assert _run(tmp_path, tmp_path / 'out', audio=root / 'audio') == 2
    assert "MTG-Jamendo repository's data/ folder" in capsys.readouterr().err
    copy = tmp_path / 'jam'
    shutil.copytree(root / 'data', copy / 'data')
    shutil.rmtree(copy / 'data' / 'splits' / 'split-2')
    assert _run(copy, tmp_path / 'out', '--split', '2', audio=root / 'audio') == 2
    assert 'no published split 2' in capsys.readouterr().err and not (tmp_path / 'out').exists()


def test_long_tracks_decode_whole_and_match_their_tsv_duration(tmp_path):
    """Tracks longer than two render periods are an encoded loop repeated: still one valid stream, and
    the TSV's DURATION is the header's; the same seed gives the same bytes for any worker count."""
    import soundfile as sf
    a = make_jamendo(tmp_path / 'a', 3, seed=7, minutes=(0.45, 0.6), workers=1)
    b = make_jamendo(tmp_path / 'b', 3, seed=7, minutes=(0.45, 0.6), workers=2)
    assert a == b
    for r in read_tsv(tmp_path / 'a' / 'data' / 'autotagging.tsv'):
        if r['track_id'] in a['missing']:
            continue
        path = tmp_path / 'a' / 'audio' / r['path']
        assert path.read_bytes() == (tmp_path / 'b' / 'audio' / r['path']).read_bytes()
        assert r['duration'] > 25
        assert sf.info(str(path)).duration == pytest.approx(r['duration'], abs=0.06)
        y, sr = sf.read(str(path))
        assert len(y) / sr == pytest.approx(r['duration'], abs=0.06) and abs(y).max() > 0.1
