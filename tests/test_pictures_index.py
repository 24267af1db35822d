"""Pictures in the index: recorded per track, stored once per distinct picture, bad ones counted (the
track indexed all the same), filled in for older indexes, pruned, shown by `index info`."""
from __future__ import annotations

import io
import json
import os
import sqlite3

from PIL import Image

from retrieval.index import Index
from tests._pictures_fixtures import BLUE, RED, FakeTagger, build, make_picture_library


def _colour(path):
    return Image.open(path).convert('RGB').getpixel((30, 5))


def test_build_records_each_tracks_picture(tmp_path):
    lib = make_picture_library(tmp_path / 'lib')
    summary = build(tmp_path / 'idx', tmp_path / 'lib')
    assert summary.tracks == len(lib) and not summary.skipped          # Cover.JPG is no skipped "audio"
    assert summary.picture_files == 1
    assert summary.pictures == 4 and [(os.path.basename(p), r) for p, r, _ in summary.bad_pictures] == \
        [('bad.mp3', 'corrupt')]
    assert '4 pictures recorded (1 bad, skipped)' in summary.line()
    with Index.open(tmp_path / 'idx') as index:
        red1, red2 = index.find(lib['red1']), index.find(lib['red2'])
        assert red1.picture['source'] == 'embedded' and red1.picture['origin'] == 'APIC:3'
        assert red1.picture['sha256'] == red2.picture['sha256']
        blue = index.find(lib['blue1'])
        assert blue.picture['source'] == 'file' and blue.picture['origin'] == 'Cover.JPG'
        assert index.find(lib['bad']).picture['error'] == 'corrupt'
        assert index.find(lib['none']).picture == {'none': True}
        r, g, b = _colour(index.picture_path(red1))
        assert r > 150 and g < 80 and b < 80
        r, g, b = _colour(index.picture_path(blue))
        assert b > 150 and r < 80
        assert index.picture_path(index.find(lib['none'])) is None
        info = index.info()
    assert (info['tracks_with_picture'], info['pictures'], info['bad_pictures']) == (4, 2, 1)
    assert sorted(os.listdir(tmp_path / 'idx' / 'pictures')) == sorted(
        {f'{red1.picture["sha256"]}.jpg', f'{blue.picture["sha256"]}.jpg'})
    assert RED != BLUE


def test_an_index_without_pictures_gets_them_without_embedding_again(tmp_path):
    lib = make_picture_library(tmp_path / 'lib')
    build(tmp_path / 'idx', tmp_path / 'lib')
    con = sqlite3.connect(tmp_path / 'idx' / 'tracks.sqlite')        # as built before pictures were recorded
    con.execute('ALTER TABLE tracks DROP COLUMN picture')
    con.commit()
    con.close()
    with Index.open(tmp_path / 'idx') as index:                      # read-only: the column is absent
        assert index.find(lib['red1']).picture is None
        assert index.info()['tracks_with_picture'] == 0
    tagger = FakeTagger()
    summary = build(tmp_path / 'idx', tmp_path / 'lib', tagger=tagger)
    assert tagger.calls == [] and summary.unchanged == len(lib)
    assert summary.pictures == 4 and len(summary.bad_pictures) == 1
    with Index.open(tmp_path / 'idx') as index:
        assert index.find(lib['red1']).picture['source'] == 'embedded'
    again = build(tmp_path / 'idx', tmp_path / 'lib')                # recorded now: not read again
    assert again.pictures == 0 and not again.bad_pictures


def test_pictures_nobody_refers_to_are_pruned(tmp_path):
    lib = make_picture_library(tmp_path / 'lib')
    build(tmp_path / 'idx', tmp_path / 'lib')
    os.unlink(lib['blue1'])
    os.unlink(lib['blue2'])
    build(tmp_path / 'idx', tmp_path / 'lib')
    with Index.open(tmp_path / 'idx') as index:
        sha = index.find(lib['red1']).picture['sha256']
    assert os.listdir(tmp_path / 'idx' / 'pictures') == [f'{sha}.jpg']


def test_a_changed_file_gets_its_new_picture(tmp_path):
    from tests._pictures_fixtures import GREEN, picture_bytes, write_mp3
    lib = make_picture_library(tmp_path / 'lib')
    build(tmp_path / 'idx', tmp_path / 'lib')
    write_mp3(lib['none'], artist='Dee', title='None', picture=picture_bytes(GREEN, fmt='PNG'), seconds=0.6)
    summary = build(tmp_path / 'idx', tmp_path / 'lib')
    assert summary.updated == 1 and summary.pictures == 1
    with Index.open(tmp_path / 'idx') as index:
        t = index.find(lib['none'])
        r, g, b = _colour(index.picture_path(t))
    assert g > 120 and r < 80


def test_index_info_shows_the_pictures(tmp_path, capsys):
    from retrieval.cli import index_main
    make_picture_library(tmp_path / 'lib')
    build(tmp_path / 'idx', tmp_path / 'lib')
    assert index_main(['info', '--index', str(tmp_path / 'idx')]) == 0
    out = capsys.readouterr().out
    assert 'pictures 4 tracks with a picture (2 distinct), 1 bad' in out
    assert index_main(['info', '--index', str(tmp_path / 'idx'), '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['pictures'] == 2


def test_stored_pictures_are_normalised_jpegs_with_normal_permissions(tmp_path):
    make_picture_library(tmp_path / 'lib')
    build(tmp_path / 'idx', tmp_path / 'lib')
    for name in os.listdir(tmp_path / 'idx' / 'pictures'):
        path = tmp_path / 'idx' / 'pictures' / name
        assert Image.open(io.BytesIO(path.read_bytes())).format == 'JPEG'
        assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    old = os.umask(0)
    os.umask(old)
    return old


def test_index_build_command_reports_bad_pictures_and_counts_them(tmp_path, monkeypatch, capsys):
    """`musetag index build` prints each bad picture and the count; bad pictures alone keep exit 0."""
    import functools

    import retrieval.index as ri
    from retrieval.cli import index_main
    lib = make_picture_library(tmp_path / 'lib')
    (tmp_path / 'run').mkdir()
    monkeypatch.setattr('modeling.rundir.check_run_dir', lambda run: None)
    monkeypatch.setattr('core.logs.import_tensorflow', lambda: None)
    monkeypatch.setattr(ri, 'build_index', functools.partial(ri.build_index, tagger=FakeTagger()))
    code = index_main(['build', '--run', str(tmp_path / 'run'), str(tmp_path / 'lib'), '--index', str(tmp_path / 'idx'),
                       '--backend', 'numpy', '--no-progress'])
    err = capsys.readouterr().err
    assert code == 0
    assert f'picture skipped {lib["bad"]}: corrupt' in err
    assert '4 pictures recorded (1 bad, skipped)' in err and '0 skipped' in err
