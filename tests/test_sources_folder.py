"""`musetag dataset folder`: every tags layout, the folder-per-label layout, normalisation, protocols
and every bad-input reason, read back through the contract's own readers."""
import os
import sqlite3

import pytest

from sources.__main__ import main
from sources.contract import normalise_tag
from sources.folder import track_id
from tests._audio_fixtures import music_like, write_wav
from tests._sources_fixtures import FOLDER_FILES, make_audio_folder, read_out, write_tags


@pytest.fixture(scope='module')
def audio(tmp_path_factory):
    return make_audio_folder(tmp_path_factory.mktemp('folder'))


def _run(audio, out, *extra):
    return main(['folder', '--audio', str(audio), '--out', str(out), '--workers', '1', '-q', *map(str, extra)])


def _tags_by_file(c):
    names = c['tagdb'].vocabulary
    by_id = {t: sorted(names[n] for n in nums) for t, nums in c['tagdb'].by_track.items()}
    master = c['master'].frame
    return {p: by_id.get(t, []) for t, p in zip(master['track_id'], master['file_path'])}


EXPECTED = {rel: sorted({normalise_tag(t) for t in tags}) for rel, (tags, _, _) in FOLDER_FILES.items()}


@pytest.mark.parametrize('layout, delimiter', [('tags', ','), ('rows', ','), ('onehot', ','), ('tags', '\t'),
                                               ('onehot', ';'), ('rows', '\t')])
def test_every_tag_layout_gives_the_same_contract(audio, tmp_path, layout, delimiter):
    tags = write_tags(tmp_path / 'tags.txt', layout, delimiter=delimiter)
    assert _run(audio, tmp_path / 'out', '--tags', tags) == 0
    c = read_out(tmp_path / 'out')
    assert _tags_by_file(c) == EXPECTED
    master = c['master'].frame
    assert c['master'].audio_root == str(audio) and not c['master'].bad_lines
    assert set(master['track_id']) == {track_id(rel) for rel in FOLDER_FILES}
    for rel, path, dur in zip(master['file_path'], master['audio_path'], master['duration']):
        assert os.path.samefile(path, audio / rel)
        assert dur == pytest.approx(1.5 + 0.25 * list(FOLDER_FILES).index(rel), abs=0.1)   # from the header
    # clean tag numbers 1..K by popularity, ties by name; every pair has val 100
    counts = {}
    for tags in EXPECTED.values():
        for t in tags:
            counts[t] = counts.get(t, 0) + 1
    assert list(c['tagdb'].vocabulary.values()) == sorted(counts, key=lambda t: (-counts[t], t))
    con = sqlite3.connect(tmp_path / 'out' / 'clean_tags.db')
    assert {v for (v,) in con.execute('SELECT DISTINCT val FROM tid_tag')} == {100.0}
    assert dict(con.execute('SELECT key, value FROM meta'))['source'] == 'folder'
    con.close()
    # the given split column is the default protocol
    assert c['summary']['default_protocol'] == 'given'
    split_of = dict(zip(c['splits']['track_id'], c['splits']['split']))
    assert split_of == {track_id(rel): s for rel, (_, _, s) in FOLDER_FILES.items()}


def test_normalisation_keeps_every_spelling_in_the_tag_map(audio, tmp_path):
    assert _run(audio, tmp_path / 'out', '--tags', write_tags(tmp_path / 't.csv', 'tags'), '--min-count', 2) == 0
    c = read_out(tmp_path / 'out')
    m = c['tag_map'].set_index('raw_tag')
    assert m.loc['Female-Vocal', 'tag'] == m.loc['female_vocal', 'tag'] == m.loc['Female  Vocal', 'tag'] \
        == 'female vocal'
    assert m.loc['Female-Vocal', 'rule'] == 'normalised' and m.loc['rock', 'rule'] == ''
    assert m.loc['ROCK', 'clean_count'] == 3      # the cell's spaces are trimmed when read
    # 'piano' (2 tracks) stays; every tag has >= 2 tracks, so nothing is dropped at 2 ...
    assert set(m['status']) == {'kept'}
    assert _run(audio, tmp_path / 'out3', '--tags', write_tags(tmp_path / 't.csv', 'tags'), '--min-count', 3) == 0
    m3 = read_out(tmp_path / 'out3')['tag_map'].set_index('raw_tag')
    # ... at 3 only rock, jazz and female vocal remain; the others are dropped with the reason
    assert set(m3.loc[m3['status'] == 'kept', 'tag']) == {'rock', 'jazz', 'female vocal'}
    assert set(m3.loc[m3['status'] == 'dropped', 'rule']) == {'min-count'}


def test_folder_per_label_layout(tmp_path):
    audio = tmp_path / 'gtzan'
    for genre in ('blues', 'metal'):
        for i in range(3):
            (audio / genre).mkdir(parents=True, exist_ok=True)
            write_wav(audio / genre / f'{genre}.{i:05d}.wav', music_like(1.0, 8000, seed=i), 8000)
    write_wav(audio / 'loose.wav', music_like(1.0, 8000), 8000)       # in no label folder
    assert _run(audio, tmp_path / 'out') == 1
    c = read_out(tmp_path / 'out')
    assert _tags_by_file(c) == {f'{g}/{g}.{i:05d}.wav': [g] for g in ('blues', 'metal') for i in range(3)}
    assert c['skipped'][['item', 'reason']].values.tolist() == [['loose.wav', 'no-tag']]
    # no artists and no split column: the track hash split is the default
    assert c['summary']['default_protocol'] == 'track' and list(c['protocols']) == ['track']


def test_artist_protocol_keeps_artists_apart(audio, tmp_path):
    files = {rel: (t, a, '') for rel, (t, a, _) in FOLDER_FILES.items()}
    assert _run(audio, tmp_path / 'out', '--tags', write_tags(tmp_path / 't.csv', 'tags', files)) == 0
    c = read_out(tmp_path / 'out')
    assert c['summary']['default_protocol'] == 'artist' and 'given' not in c['protocols']
    master = c['master'].frame.set_index('track_id')
    split_of_artist = {}
    for tid, split in zip(c['splits']['track_id'], c['splits']['split']):
        split_of_artist.setdefault(master.loc[tid, 'artist_id'], set()).add(split)
    assert all(len(s) == 1 for s in split_of_artist.values())
    assert len(c['splits']) == len(FOLDER_FILES)


def test_bad_inputs_are_reported_with_their_reasons(audio, tmp_path):
    (audio / 'empty.wav').write_bytes(b'')
    (audio / 'text.wav').write_text('not audio\n' * 40)
    outside = tmp_path / 'outside.wav'
    write_wav(outside, music_like(1.0, 8000), 8000)
    os.symlink(outside, audio / 'link.wav')
    files = dict(FOLDER_FILES)
    files.update({'missing.wav': (['rock'], 'X', 'train'), 'empty.wav': (['rock'], 'X', 'train'),
                  'text.wav': (['rock'], 'X', 'train'), '../outside.wav': (['rock'], 'X', 'train'),
                  'link.wav': (['rock'], 'X', 'train'), 'rock/a.wav': (['Rock', 'Guitar'], 'Ann', 'train')})
    tags = write_tags(tmp_path / 't.csv', 'onehot', files, extra_columns={'comment': ['ok'] * len(files)})
    lines = tags.read_text().splitlines()
    lines.append(lines[1])                                  # rock/a.wav again: a duplicate path
    lines.append('jazz/e.wav,Dee,nowhere' + ',0' * (len(lines[0].split(',')) - 3))   # unknown split name
    lines.append('jazz/d.wav,Cid')                          # too few fields
    lines.append('rock/z.wav,Ann,train' + ',0' * (len(lines[0].split(',')) - 4) + ',x')   # no tag at all
    tags.write_text('\n'.join(lines) + '\n')
    try:
        assert _run(audio, tmp_path / 'out', '--tags', tags, '--min-seconds', 1.6) == 1
        c = read_out(tmp_path / 'out')
    finally:
        for name in ('empty.wav', 'text.wav', 'link.wav'):
            (audio / name).unlink()
    got = {(r.item if r.reason.endswith('column') else r.file, r.reason) for r in c['skipped'].itertuples()}
    assert got == {('missing.wav', 'missing-file'), ('empty.wav', 'zero-byte'), ('text.wav', 'unreadable-audio'),
                   ('../outside.wav', 'outside-root'), ('link.wav', 'outside-root'),
                   ('rock/a.wav', 'duplicate-path'), ('comment', 'unknown-column'), ('rock/a.wav', 'too-short'),
                   (str(tags), 'bad-row'), ('rock/z.wav', 'no-tag')}
    assert sorted(c['skipped']['reason']).count('bad-row') == 2      # unknown split name, too few fields
    assert c['summary']['skipped_by_reason']['outside-root'] == 2
    assert 'rock/a.wav' not in set(c['master'].frame['file_path'])     # 1.5 s < --min-seconds 1.6


def test_empty_tag_column_is_reported(audio, tmp_path):
    tags = write_tags(tmp_path / 't.csv', 'onehot', extra_columns={'ukulele': ['0'] * len(FOLDER_FILES)})
    assert _run(audio, tmp_path / 'out', '--tags', tags) == 1
    c = read_out(tmp_path / 'out')
    assert c['skipped'][['item', 'reason']].values.tolist() == [['ukulele', 'empty-tag-column']]


def test_wrong_delimiter_is_named(audio, tmp_path, capsys):
    tags = tmp_path / 't.csv'
    tags.write_text('path:tags\nrock/a.wav:rock\n')
    assert _run(audio, tmp_path / 'out', '--tags', tags) == 2
    err = capsys.readouterr().err
    assert 'detected delimiter (comma' in err and "'path:tags'" in err
    assert not (tmp_path / 'out').exists()
    # a semicolon file is detected as such and works
    write_tags(tags, 'tags', delimiter=';')
    assert _run(audio, tmp_path / 'out', '--tags', tags) == 0


def test_existing_output_is_kept_without_overwrite(audio, tmp_path, capsys):
    tags = write_tags(tmp_path / 't.csv', 'tags')
    assert _run(audio, tmp_path / 'out', '--tags', tags) == 0
    before = (tmp_path / 'out' / 'master.csv').read_bytes()
    assert _run(audio, tmp_path / 'out', '--tags', tags, '--min-count', 3) == 2
    assert '--overwrite' in capsys.readouterr().err
    assert (tmp_path / 'out' / 'master.csv').read_bytes() == before
    assert _run(audio, tmp_path / 'out', '--tags', tags, '--overwrite') == 0
    assert sorted(os.listdir(tmp_path)) == ['out', 't.csv']          # no temporary folder or lock left behind


def test_track_id_depends_only_on_the_relative_path():
    assert track_id('rock/a.wav') == track_id('rock/a.wav') != track_id('rock/b.wav')
    assert len(track_id('x')) == 16 and int(track_id('x'), 16) >= 0


def test_an_empty_split_is_named(audio, tmp_path, caplog):
    files = {rel: (t, a, 'validation' if s == 'test' else s) for rel, (t, a, s) in FOLDER_FILES.items()}
    assert _run(audio, tmp_path / 'out', '--tags', write_tags(tmp_path / 't.csv', 'tags', files)) == 0
    assert 'protocol given: no track in test' in caplog.text
    assert read_out(tmp_path / 'out')['summary']['protocols']['given']['test'] == 0
