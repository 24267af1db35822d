"""msd build: every purge step removes exactly its culprits, in the documented order; bad inputs."""
import json
import os

import pandas as pd
import pytest

from msd.build import MASTER_COLUMNS, build_master
from msd.common import MsdError, OutputExistsError, read_comments, read_csv
from msd.idlists import read_duplicates, read_mismatches
from msd.summary import MsdSummary, MsdSummaryError
from msd.tables import read_master
from tests._msd_fixtures import make_h5, make_raw_db, run_msd, tid

T = {i: tid(i) for i in range(1, 20)}
SEVEN = {i: 1000 + i for i in range(1, 20)}
SEVEN[4] = SEVEN[3]          # T3/T4 share a clip
SEVEN[18] = 1018             # T18 appears twice in the h5 with two clips (1018, 1019)

# (status, size) of scan rows by 7digital id; silence stats by id:
# (status, effective, mid_silence, max_gap)
SCAN = {i: ('ok', 300_000) for i in range(1, 20) if i not in (2, 4)}
SCAN[6] = ('empty', 0)
SCAN[7] = ('ok', 100)
SIL = {i: ('ok', 29.0, 0.5, 0.5) for i in SCAN}
SIL[8] = ('silent', 0.0, 0.0, 0.0)
del SIL[9]
SIL[10] = ('ok', 10.0, 0.0, 0.0)
SIL[11] = ('ok', 29.0, 5.0, 0.9)
SIL[12] = ('ok', 29.0, 2.0, 2.0)


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp('build')
    rows = [dict(track_id=T[i], track_7digitalid=SEVEN[i], song_id=f'SO{i:016d}', artist_id=f'AR{i % 3:016d}',
                 artist_name=f'Ärtist #{i % 3}', title=f'Song, "{i}"', release='Rel', year=1990 + i, duration=200.5)
            for i in range(1, 18)]
    rows.append(dict(track_id=T[18], track_7digitalid=1018))
    rows.append(dict(track_id=T[18], track_7digitalid=1019))
    make_h5(str(d / 'msd_summary_file.h5'), rows)
    root = d / 'audio'
    root.mkdir()
    lines = ['# musetag test', f'# root={root}',
             'track_7digitalid,file_path,file_size,duration,channels,sample_rate,bitrate,status,reason']
    for i, (st, size) in sorted(SCAN.items()):
        lines.append(f'{SEVEN[i]},"{i}/{SEVEN[i]}.clip.mp3",{size},30.0,2,44100,128000,"{st}",""')
    lines.append('"","x/no id.mp3",1000,30.0,2,44100,128000,"ok",""')
    lines.append('999,"9/999.clip.mp3",1000,30.0,2,44100,128000,"ok",""')  # orphan: id in no h5 row
    (d / 'scan.csv').write_text('\n'.join(lines) + '\n')
    lines = ['# musetag test', 'file_path,status,reason,sample_rate,channels,clip_length,audio_start,audio_end,'
             'effective_clip_length,mid_silence_length,non_silence_length,max_silence_length,silence_percentage,'
             'n_gaps,silence_detail']
    for i, (st, eff, mid, mx) in sorted(SIL.items()):
        lines.append(f'"{i}/{SEVEN[i]}.clip.mp3","{st}","",44100,2,30.0,0.5,{0.5 + eff},{eff},{mid},{eff - mid},'
                     f'{mx},{100 * mid / eff if eff else 100},1,"[]"')
    (d / 'silence.csv').write_text('\n'.join(lines) + '\n')
    (d / 'sid_mismatches.txt').write_text(
        f'ERROR: <SOAAAAAAAAAAAAAAAA {T[5]}> A  -  B  !=  C  -  D\n'
        'this line is garbage\n'
        f'ERROR: <SOBBBBBBBBBBBBBBBB TRNOTINTHEH5AAAAAA> A  -  B  !=  C  -  D\n')
    (d / 'msd_duplicates.txt').write_text(
        '# header\n# more header\n'
        f'stray line before any group {T[1]}\n'
        f'%1 Artist - Title\n{T[15]}\n{T[14]}\n{T[16]}\n'
        f'%2 Other - Thing\n{T[5]}\n{T[17]}\n'
        '%3 Broken - Group\nno id on this line\n')
    tagged = [i for i in range(1, 19) if i != 13]
    make_raw_db(str(d / 'lastfm_tags.db'), [T[i] for i in tagged] + ['TRDBONLYAAAAAAAAAA'], ['rock'],
                [(k, 1, 100.0) for k in range(1, len(tagged) + 2)])
    return d


EXPECTED = {
    'no-audio': {T[2]},
    'ambiguous-7digitalid': {T[3], T[4]},
    'ambiguous-track-id': {T[18]},
    'mismatch': {T[5]},
    'faulty-audio': {T[6], T[7], T[8], T[9]},
    'short': {T[10]},
    'total-silence': {T[11]},
    'max-gap': {T[12]},
    'untagged': {T[13]},
    'duplicate': {T[14], T[16]},
}
KEPT = {T[1], T[15], T[17]}


def _build(d, out, **kw):
    args = dict(h5=d / 'msd_summary_file.h5', scan=d / 'scan.csv', silence=d / 'silence.csv',
                lastfm=d / 'lastfm_tags.db', mismatches=d / 'sid_mismatches.txt',
                duplicates=d / 'msd_duplicates.txt', out=out, min_size=1000, command='python -m msd build test')
    args.update(kw)
    return build_master(**args)


def test_each_step_removes_exactly_its_culprits(inputs, tmp_path):
    master, rep = _build(inputs, tmp_path / 'master.csv')
    steps = {s['step']: s for s in rep['steps']}
    order = [s['step'] for s in rep['steps']]
    assert order == ['no-audio', 'unlinked-file', 'ambiguous-7digitalid', 'ambiguous-track-id', 'mismatch',
                     'faulty-audio', 'short', 'total-silence', 'max-gap', 'untagged', 'duplicate']
    for step, ids in EXPECTED.items():
        assert set(steps[step]['track_ids']) == ids, step
        assert steps[step]['removed'] == len(ids), step
    assert set(steps['unlinked-file']['files']) == {'x/no id.mp3', '9/999.clip.mp3'}
    assert set(master['track_id']) == KEPT and rep['kept'] == 3
    faulty = read_csv(tmp_path / 'master.purge.csv').query("step == 'faulty-audio'").set_index('track_id')
    assert faulty.loc[T[6], 'detail'] == 'scan:empty' and faulty.loc[T[7], 'detail'] == 'file_size<=1000'
    assert faulty.loc[T[8], 'detail'] == 'silence:silent' and faulty.loc[T[9], 'detail'] == 'silence:missing'


def test_master_csv_format(inputs, tmp_path):
    out = tmp_path / 'master.csv'
    _build(inputs, out)
    first = out.read_text(encoding='utf-8').splitlines()[0]
    assert first == '# musetag python -m msd build test'
    df = pd.read_csv(out, comment='#')  # what downstream readers do; '#' inside titles is quoted
    assert list(df.columns) == list(MASTER_COLUMNS)
    row = df.set_index('track_id').loc[T[1]]
    assert row['artist_name'] == 'Ärtist #1' and row['title'] == 'Song, "1"' and row['year'] == 1991
    assert row['file_path'] == f'1/{SEVEN[1]}.clip.mp3'
    root = read_comments(inputs / 'scan.csv')[1]['root']
    assert row['audio_path'] == os.path.join(root, row['file_path']) and os.path.isabs(row['audio_path'])
    assert row['effective_clip_length'] == 29.0 and row['clip_length'] == 30.0
    assert df['track_id'].tolist() == sorted(df['track_id'])
    rep = json.loads((tmp_path / 'master.purge.json').read_text())
    assert rep['settings']['min_size'] == 1000 and rep['kept'] == len(df)
    # the contract's own reader (msd.tables) takes every row, and the audio root
    table = read_master(out)
    assert table.bad_lines == [] and table.frame['track_id'].tolist() == df['track_id'].tolist()
    assert table.audio_root == root


def test_switches(inputs, tmp_path):
    master, rep = _build(inputs, tmp_path / 'a.csv', keep_duplicates=True, keep_untagged=True,
                         min_effective_length=0, max_total_silence=0, max_gap=0)
    assert {T[10], T[11], T[12], T[13], T[14], T[16]} <= set(master['track_id'])
    assert [s['step'] for s in rep['steps']][-1] == 'faulty-audio'
    master, rep = _build(inputs, tmp_path / 'b.csv', silence=None, min_size=0)
    # without silence.csv only the scan decides what is faulty
    steps = {s['step']: s for s in rep['steps']}
    assert set(steps['faulty-audio']['track_ids']) == {T[6]} and 'short' not in steps


def test_refuses_overwrite_and_bad_thresholds(inputs, tmp_path):
    _build(inputs, tmp_path / 'm.csv')
    with pytest.raises(OutputExistsError):
        _build(inputs, tmp_path / 'm.csv')
    _build(inputs, tmp_path / 'm.csv', overwrite=True)
    with pytest.raises(MsdError, match='--max-gap'):
        _build(inputs, tmp_path / 'n.csv', max_gap=-1)
    p = run_msd('build', '--h5', inputs / 'msd_summary_file.h5', '--scan', inputs / 'scan.csv', '--keep-untagged',
                '--out', tmp_path / 'c.csv', '--max-gap', 'abc', check=False)
    assert p.returncode == 2 and '--max-gap' in p.stderr


def test_list_parsers_tolerate_malformed_lines(inputs):
    ids, rep = read_mismatches(inputs / 'sid_mismatches.txt')
    assert ids == [T[5], 'TRNOTINTHEH5AAAAAA'] and rep.n_bad == 1 and rep.bad_lines == [2]
    groups, rep = read_duplicates(inputs / 'msd_duplicates.txt')
    assert groups == [[T[15], T[14], T[16]], [T[5], T[17]]] and rep.n_bad == 2


def test_summary_reader(inputs, tmp_path):
    with MsdSummary(inputs / 'msd_summary_file.h5') as h5:
        assert len(h5) == 19 and h5.table_of('year') == 'musicbrainz'
        assert h5[T[1]]['artist_name'] == 'Ärtist #1' and h5[T[1]]['year'] == 1991
        got = h5.get([T[2], 'TRNOSUCHTRACKAAAAA'], ['title', 'track_7digitalid'])
        assert got.loc[T[2], 'title'] == 'Song, "2"' and pd.isna(got.loc['TRNOSUCHTRACKAAAAA', 'title'])
        assert T[2] in h5 and 'TRNOSUCHTRACKAAAAA' not in h5
        with pytest.raises(MsdSummaryError, match="field 'tempo' not found"):
            h5.column('tempo')
    (tmp_path / 'x.h5').write_bytes(b'not hdf5' * 100)
    with pytest.raises(MsdSummaryError, match='HDF5'):
        MsdSummary(tmp_path / 'x.h5')


def test_h5_missing_fields(inputs, tmp_path, caplog):
    rows = [dict(track_id=T[1], track_7digitalid=SEVEN[1])]
    make_h5(str(tmp_path / 'noyear.h5'), rows, drop_fields=('year',))
    master, _ = _build(inputs, tmp_path / 'm.csv', h5=tmp_path / 'noyear.h5')
    assert master['year'].isna().all() and len(master) == 1
    assert any("'year' not found" in r.message for r in caplog.records)
    make_h5(str(tmp_path / 'noid.h5'), rows, drop_fields=('track_7digitalid',))
    p = run_msd('build', '--h5', tmp_path / 'noid.h5', '--scan', inputs / 'scan.csv', '--keep-untagged',
                '--out', tmp_path / 'x.csv', check=False)
    assert p.returncode == 2 and "'track_7digitalid' not found" in p.stderr and 'Traceback' not in p.stderr


def test_summary_file_without_artist_id_is_reported_loudly(inputs, tmp_path):
    """Failure 10 of issue 11: the build goes on, but says what a missing artist_id costs, on the
    terminal, in the summary line and in the purge report."""
    rows = [dict(track_id=T[i], track_7digitalid=SEVEN[i], artist_name='A') for i in (1, 15, 17)]
    make_h5(str(tmp_path / 'noartist.h5'), rows, drop_fields=('artist_id',))
    out = tmp_path / 'master.csv'
    p = run_msd('build', '--h5', tmp_path / 'noartist.h5', '--scan', inputs / 'scan.csv', '--silence',
                inputs / 'silence.csv', '--lastfm', inputs / 'lastfm_tags.db', '--out', out)
    assert 'WARNING' in p.stderr and 'no artist_id field' in p.stderr
    assert 'artist-disjoint splits are impossible' in p.stderr and 'split --by artist' in p.stderr
    assert 'WARNING: no artist_id' in p.stdout
    rep = json.loads((tmp_path / 'master.purge.json').read_text())
    assert rep['artist_ids'] is False and rep['h5_missing_fields'] == ['artist_id']
    assert len(rep['warnings']) == 1 and 'split --by artist' in rep['warnings'][0]
    master = read_csv(out)
    assert len(master) == 3 and master['artist_id'].isna().all()
    # with artist ids: no warning at all
    _, full = _build(inputs, tmp_path / 'full.csv')
    assert full['artist_ids'] is True and full['warnings'] == [] and 'WARNING' not in full['summary']


def test_outputs_are_not_private(inputs, tmp_path):
    _build(inputs, tmp_path / 'm.csv')
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ('m.csv', 'm.purge.json', 'm.purge.csv'):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
