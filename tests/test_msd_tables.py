"""The dataset-table contract (msd.tables): master.csv / splits.csv writing and reading, bad lines."""
import os
import stat

import pandas as pd
import pytest

from core.errors import OutputExistsError
from msd.tables import MASTER_COLUMNS, read_master, read_table, write_master, write_table
from preprocessing.splits import read_splits

HEADER = '"track_id","artist_id","title","year","file_path"\n'


def _master(tmp_path, body, comments='# musetag msd build --out master.csv\n# audio_root=/data/audio\n'):
    path = tmp_path / 'master.csv'
    path.write_bytes((comments + HEADER + body).encode('utf-8') if isinstance(body, str) else
                     (comments + HEADER).encode() + body)
    return str(path)


def test_round_trip_keeps_hash_commas_quotes_and_metadata(tmp_path):
    df = pd.DataFrame({'track_id': ['TR1', 'TR2', 'TR3'], 'artist_id': ['AR1', None, 'AR3'],
                       'title': ['a # title, with "quotes"', 'two\nlines', '#starts with hash'],
                       'year': [1999, None, 2001], 'file_path': ['a/clip-005 #x.mp3', 'b.mp3', 'c,d.mp3']})
    path = tmp_path / 'm.csv'
    write_master(df, path, command='msd build --out m.csv', meta={'audio_root': '/abs/audio', 'note': 'x=y'})
    t = read_master(path)
    assert t.bad_lines == []
    assert t.provenance == 'msd build --out m.csv'
    assert t.meta == {'audio_root': '/abs/audio', 'note': 'x=y'}
    assert t.audio_root == '/abs/audio'
    assert list(t.frame['file_path']) == ['a/clip-005 #x.mp3', 'b.mp3', 'c,d.mp3']
    assert list(t.frame['title']) == ['a # title, with "quotes"', 'two lines', '#starts with hash']
    assert pd.isna(t.frame['artist_id'][1]) and pd.isna(t.frame['year'][1])
    assert t.frame['year'][0] == 1999
    assert t.lines == [5, 6, 7]   # after 2 comment lines and the header


def test_junk_lines_are_reported_skipped_and_never_tracks(tmp_path):
    body = ('"TR1","AR1","ok",1999,"a/clip-005 #x.mp3"\n'
            'garbage line here\n'
            '"TR2","AR2","no end,2000,x.mp3\n'
            '"TR3","AR3","bad year",abc,"c.mp3"\n'
            '# a comment after the header\n'
            '"TR1","AR9","again",2001,"d.mp3"\n'
            ',"AR4","no id",2002,"e.mp3"\n'
            '\n'
            '"TR5","AR5","last",2003,"f.mp3"\n')
    t = read_master(_master(tmp_path, body))
    assert list(t.frame['track_id']) == ['TR1', 'TR5']
    assert t.frame['file_path'][0] == 'a/clip-005 #x.mp3'          # '#' inside a quoted field kept
    reasons = {b.line: b.reason for b in t.bad_lines}
    assert sorted(reasons) == [5, 6, 7, 8, 9, 10]
    assert reasons[5] == '1 field(s), expected 5'
    assert reasons[6] == 'unterminated quote'
    assert 'column year' in reasons[7] and 'not a number' in reasons[7]
    assert 'comments go before it' in reasons[8]
    assert reasons[9] == 'track_id TR1 repeats line 4'
    assert reasons[10] == 'no track_id'
    assert 'garbage line here' in str(t.bad_lines[0]) and 'line 5' in str(t.bad_lines[0])


def test_not_utf8_line_is_a_bad_line(tmp_path):
    t = read_master(_master(tmp_path, b'"TR1","AR1","caf\xe9",1999,"a.mp3"\n"TR2","AR2","ok",2000,"b.mp3"\n'))
    assert list(t.frame['track_id']) == ['TR2']
    assert t.bad_lines[0].line == 4 and 'not UTF-8' in t.bad_lines[0].reason


def test_unquoted_hash_in_a_field_is_kept(tmp_path):
    # a table written without quotes (pandas' default writer does not quote '#'): pandas'
    # comment='#' cuts '#x.mp3' off the file name; only the leading lines are comments
    path = _master(tmp_path, 'TR1,AR1,t,1999,a/clip-005 #x.mp3\n')
    assert pd.read_csv(path, comment='#')['file_path'][0] != 'a/clip-005 #x.mp3'
    assert read_master(path).frame['file_path'][0] == 'a/clip-005 #x.mp3'


def test_structural_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='master CSV not found'):
        read_master(tmp_path / 'missing.csv')
    p = tmp_path / 'only-comments.csv'
    p.write_text('# musetag x\n')
    with pytest.raises(ValueError, match='no header'):
        read_master(p)
    p.write_text('a,b\n1,2\n')
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['track_id'\]"):
        read_master(p)
    p.write_text('track_id,x,x\n1,2,3\n')
    with pytest.raises(ValueError, match='repeated column'):
        read_master(p)


def test_relative_audio_root_is_relative_to_the_table(tmp_path):
    p = tmp_path / 'sub' / 'master.csv'
    write_master(pd.DataFrame({'track_id': ['TR1'], 'file_path': ['a.mp3']}), p, meta={'audio_root': '../audio'})
    assert read_master(p).audio_root == str(tmp_path / 'audio')


def test_writer_refuses_bad_tables_and_existing_output(tmp_path):
    p = tmp_path / 'm.csv'
    with pytest.raises(ValueError, match='appears twice'):
        write_master(pd.DataFrame({'track_id': ['a', 'a'], 'file_path': ['x', 'y']}), p)
    with pytest.raises(ValueError, match='no track_id'):
        write_master(pd.DataFrame({'track_id': ['a', None], 'file_path': ['x', 'y']}), p)
    with pytest.raises(ValueError, match='file_path or an audio_path'):
        write_master(pd.DataFrame({'track_id': ['a']}), p)
    with pytest.raises(ValueError, match='metadata key'):
        write_master(pd.DataFrame({'track_id': ['a'], 'file_path': ['x']}), p, meta={'bad key': 1})
    assert not p.exists()
    write_master(pd.DataFrame({'track_id': ['a'], 'file_path': ['x']}), p)
    with pytest.raises(OutputExistsError):
        write_master(pd.DataFrame({'track_id': ['b'], 'file_path': ['y']}), p)
    assert list(read_master(p).frame['track_id']) == ['a']


def test_written_tables_have_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_master(pd.DataFrame({'track_id': ['a'], 'file_path': ['x']}), tmp_path / 'm.csv')
        write_table(pd.DataFrame({'track_id': ['a'], 'split': ['train']}), tmp_path / 's.csv')
    finally:
        os.umask(old)
    for name in ('m.csv', 's.csv'):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.')]


def test_master_columns_read_with_their_types(tmp_path):
    row = {c: 1 for c in MASTER_COLUMNS}
    row.update({c: f'{c}-text' for c in ('track_id', 'song_id', 'artist_id', 'artist_name', 'title', 'release',
                                         'file_path', 'audio_path')})
    row['artist_name'] = '123'   # text columns stay text even when they look like numbers
    write_master(pd.DataFrame([row]), tmp_path / 'm.csv')
    f = read_master(tmp_path / 'm.csv').frame
    assert list(f.columns) == list(MASTER_COLUMNS)
    assert f['artist_name'][0] == '123' and f['year'][0] == 1 and f['duration'].dtype.kind in 'if'


def test_splits_use_the_same_rules(tmp_path):
    p = tmp_path / 'splits.csv'
    p.write_text('# musetag preprocessing split\n"track_id","split"\n"TR1","train"\ngarbage\n"TR2","training"\n'
                 '"TR #3","test"\n"TR1","test"\n"TR4","validation"\n')
    t = read_splits(p)
    assert dict(zip(t.frame.track_id, t.frame.split)) == {'TR1': 'train', 'TR #3': 'test', 'TR4': 'validation'}
    assert [(b.line, b.reason.split(' (')[0]) for b in t.bad_lines] == [
        (4, '1 field(s), expected 2'), (5, "unknown split 'training'"), (7, 'track_id TR1 repeats line 3')]
    assert t.lines == [3, 6, 8]
    p.write_text('track_id,split\nTR1,training\n')
    with pytest.raises(ValueError, match='unknown split'):
        read_splits(p)


def test_reader_keeps_unknown_columns_numbers_or_text(tmp_path):
    p = tmp_path / 't.csv'
    p.write_text('track_id,n,s\nTR1,1,a\nTR2,2,3\n')
    t = read_table(p)
    assert t.frame['n'].tolist() == [1, 2] and t.frame['s'].tolist() == ['a', '3']
