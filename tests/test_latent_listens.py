"""Streaming parsers of the Taste Profile files and playlists: bad input counted, never fatal."""
import pytest

from core.errors import MuseTagError
from latent.listens import iter_playlists, iter_user_listens, read_mismatch_pairs, read_unique_tracks

SONGS = {'SOA': ['TRA'], 'SOB': ['TRB'], 'SOC': ['TRC', 'TRC2'], 'SOM': ['TRM']}


def _write(path, lines):
    path.write_text(''.join(line + '\n' for line in lines))
    return path


def test_unique_tracks_and_mismatches(tmp_path):
    ut = _write(tmp_path / 'u.txt', ['TRA<SEP>SOA<SEP>Art<SEP>Title', 'TRA2<SEP>SOA<SEP>Art<SEP>Title (live)',
                                     'garbage line', 'TRB<SEP>SOB<SEP>only three', '', 'XX<SEP>SOB<SEP>a<SEP>b'])
    songs, report = read_unique_tracks(ut)
    assert songs == {'SOA': ['TRA', 'TRA2']}
    assert report.malformed == 3 and report.bad_lines['malformed'] == [3, 4, 6]
    mm = _write(tmp_path / 'm.txt', ['ERROR: <SOM TRM> Some One  -  A Song  !=  Other  -  Other Song',
                                     'no pair here', '# comment'])
    pairs, report = read_mismatch_pairs(mm)
    assert pairs == {('SOM', 'TRM')} and report.malformed == 1
    with pytest.raises(MuseTagError, match='not found'):
        read_unique_tracks(tmp_path / 'absent.txt')


def test_triplets_grouped_by_user_with_every_problem_counted(tmp_path):
    tri = _write(tmp_path / 't.txt', [
        'u1\tSOA\t3', 'u1\tSOB\t1', 'u1\tSOX\t2',          # SOX unknown
        'u2\tSOA\t1',                                      # single song
        'u3\tSOC\t2', 'u3\tSOM\t5', 'u3\tSOA\tmany',       # mismatched, malformed count
        'u3\tSOB\t0', 'broken', 'u3\tSOB\t4',              # count 0 and a broken line: malformed
        'u4\tSOA\t1', 'u4\tSOB\t1', 'u4\tSOC\t1',          # TRB held out below
        'u1\tSOA\t1', 'u1\tSOC\t1',                        # u1 again: not sorted
    ])
    from latent.listens import ListenReport
    report = ListenReport()
    got = list(iter_user_listens(tri, SONGS, mismatches={('SOM', 'TRM')}, held_out={'TRB'}, report=report))
    users = [u for u, _ in got]
    assert users == ['u3', 'u4', 'u1']       # u1 first run is left with TRA only once TRB is held out
    assert dict(got[0][1]) == {'TRC': 2, 'TRC2': 2}
    assert dict(got[1][1]) == {'TRA': 1, 'TRC': 1, 'TRC2': 1}
    assert report.unknown_song == 1 and report.bad_lines['unknown_song'] == [3]
    assert report.mismatched == 1 and report.malformed == 3
    assert report.bad_lines['malformed'] == [7, 8, 9]
    assert report.held_out == 3                # u1, u3 and u4 each heard TRB
    assert report.single_song_users == 2       # u1's first run (TRA only) and u2
    assert report.unsorted_users == 1 and report.bad_lines['unsorted_users'] == [14]
    assert report.users == 3 and report.lines == 15
    assert 'malformed line(s)' in report.summary() and 'unsorted' in report.summary()


def test_playlists(tmp_path):
    pl = _write(tmp_path / 'p.txt', ['TRA TRB,TRC', '# comment', '', 'TRA', 'TRA, TRA', 'TRA "bad" TRB',
                                     'TRB TRM TRH'])
    from latent.listens import ListenReport
    report = ListenReport()
    got = list(iter_playlists(pl, held_out={'TRH'}, report=report, mismatched_tracks={'TRM'}))
    assert got == [('line1', [('TRA', 1), ('TRB', 1), ('TRC', 1)]), ('line6', [('TRA', 1), ('TRB', 1)])]
    assert report.single_song_users == 3       # 'TRA', 'TRA, TRA' (one distinct track) and line 7 (TRB only left)
    assert report.malformed == 1 and report.bad_lines['malformed'] == [6]
    assert report.held_out == 1 and report.mismatched == 1 and report.users == 2
