"""musetag similar / playlist / index evaluate on a small built index; text to tags; output formats."""
from __future__ import annotations

import csv
import io
import json
import os
import sqlite3

import numpy as np
import pytest

from tests._retrieval_index_fixtures import LIBRARY, make_library, make_run


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """(run dir, library {rel: abs}, index dir) built with the default backend through the CLI."""
    from retrieval.cli import index_main
    base = tmp_path_factory.mktemp('q')
    run = str(make_run(base / 'run'))
    lib = make_library(base / 'lib')
    index = str(base / 'idx')
    assert index_main(['build', '--run', run, str(base / 'lib'), '--index', index, '-q']) == 0
    return run, lib, index


def _similar(capsys, *args):
    from retrieval.cli import similar_main
    code = similar_main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _json_results(capsys, *args):
    code, out, err = _similar(capsys, *args, '--format', 'json')
    assert code == 0, err
    return json.loads(out)


def test_similar_track_by_path_and_id_excludes_itself(built, capsys):
    _, lib, index = built
    res = _json_results(capsys, '--index', index, '--track', lib['a/one.mp3'], '-k', '3')
    assert len(res['results']) == 3
    assert lib['a/one.mp3'] not in [r['path'] for r in res['results']]
    scores = [r['score'] for r in res['results']]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    track_id = res['query']['track']
    by_id = _json_results(capsys, '--index', index, '--track', track_id, '-k', '3')
    assert by_id['results'] == res['results']
    everything = _json_results(capsys, '--index', index, '--track', track_id, '-k', '100')
    assert len(everything['results']) == len(LIBRARY) - 1


def test_unknown_track_is_exit_2_naming_it(built, capsys):
    _, _, index = built
    code, out, err = _similar(capsys, '--index', index, '--track', '/no/such/song.mp3')
    assert code == 2 and '/no/such/song.mp3' in err and 'no such track' in err


def test_missing_index_is_exit_2(tmp_path, capsys):
    code, _, err = _similar(capsys, '--index', tmp_path / 'nope', '--tags', 'rock')
    assert code == 2 and 'does not exist' in err


def test_filters_artist_album_and_tags(built, capsys):
    _, lib, index = built
    q = ['--index', index, '--track', lib['a/one.mp3'], '-k', '10']
    plain = _json_results(capsys, *q)['results']
    assert 'Ann' in [r['artist'] for r in plain]
    no_artist = _json_results(capsys, *q, '--exclude-same-artist')['results']
    assert no_artist and 'Ann' not in [r['artist'] for r in no_artist]
    no_album = _json_results(capsys, *q, '--exclude-same-album')['results']
    assert 'First' not in [r['album'] for r in no_album] and 'Second' in [r['album'] for r in no_album]
    tag = plain[0]['tags'][0]
    required = _json_results(capsys, *q, '--require-tag', tag)['results']
    assert required and all(tag in r['tags'] for r in required)
    two = plain[0]['tags'][:2]
    both = _json_results(capsys, *q, '--require-tag', two[0], '--require-tag', two[1])['results']
    assert both and all(set(two) <= set(r['tags']) for r in both)
    forbidden = _json_results(capsys, *q, '--forbid-tag', tag)['results']
    assert all(tag not in r['tags'] for r in forbidden)
    assert len(forbidden) + len(required) == len(plain)


def test_output_formats(built, capsys, tmp_path):
    _, lib, index = built
    q = ['--index', index, '--track', lib['b/four.mp3'], '-k', '4']
    code, out, _ = _similar(capsys, *q, '--format', 'csv')
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 4 and rows[0]['rank'] == '1'
    assert set(rows[0]) == {'rank', 'id', 'score', 'path', 'duration', 'artist', 'album', 'title', 'tags'}
    code, out, _ = _similar(capsys, *q, '--format', 'm3u')
    lines = out.splitlines()
    assert lines[0] == '#EXTM3U' and len(lines) == 9
    assert all(line.startswith('#EXTINF:4,') for line in lines[1::2])
    assert all(os.path.isabs(p) and p in lib.values() for p in lines[2::2])
    assert any(' - ' in line for line in lines[1::2])
    code, out, _ = _similar(capsys, *q)
    assert code == 0 and out.splitlines()[0].startswith('#') and len(out.splitlines()) == 5
    dest = tmp_path / 'out.m3u'
    assert _similar(capsys, *q, '--format', 'm3u', '--out', dest)[0] == 0
    assert dest.read_text().startswith('#EXTM3U') and oct(dest.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    code, _, err = _similar(capsys, *q, '--out', dest)
    assert code == 2 and 'exists' in err


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_tags_query_ranks_by_the_tag_probability(built, capsys):
    from retrieval.index import Index
    _, _, index = built
    with Index.open(index) as idx:
        labels = idx.labels
        probs = {t.path: t.probs for t in idx.tracks()}
    tag = labels[0]
    res = _json_results(capsys, '--index', index, '--tags', tag.upper(), '-k', '3')['results']
    col = labels.index(tag)
    unit = {p: v[col] / np.linalg.norm(v) for p, v in probs.items()}
    assert [r['path'] for r in res] == sorted(unit, key=unit.get, reverse=True)[:3]
    code, _, err = _similar(capsys, '--index', index, '--tags', 'no-such-tag')
    assert code == 2 and 'no tag' in err


def test_text_maps_obvious_queries_to_obvious_tags():
    from retrieval.text import parse_tag_list, tags_to_target, text_to_tags
    labels = ['rock', 'pop', 'jazz', 'female vocalists', 'ambient', 'punk', 'piano', 'sad', 'hip-hop', 'classical']
    assert text_to_tags('a woman singing', labels)[0] == ('female vocalists', 1.0)
    assert text_to_tags('slow sad piano', labels)[0][0] in ('sad', 'piano')
    assert {t for t, _ in text_to_tags('slow sad piano', labels)} >= {'sad', 'piano'}
    assert text_to_tags('musique classique', labels)[0][0] == 'classical'
    assert {t for t, _ in text_to_tags('jazz, punk', labels)} >= {'jazz', 'punk'}
    assert text_to_tags('Hip Hop', labels) == [('hip-hop', 1.0)]
    # the mini corpus's vocabulary: some short tags (rock n roll) are near any text by raw cosine
    mini = ['male', '00s', 'female', 'instrumental', '80s', '70s', '90s', 'reggae', 'electronic', 'ballad', 'metal',
            'rock', 'pop', 'hip-hop', 'rap', 'rnb', 'jazz', 'rock n roll', '50s', '60s', 'ambient']
    for text, tag in (('rapping over beats', 'rap'), ('reggae from jamaica', 'reggae'), ('a woman singing', 'female'),
                      ('old rock and roll from the fifties', '50s'), ('calm relaxing', 'ambient')):
        assert text_to_tags(text, mini)[0][0] == tag, text
    target = tags_to_target(parse_tag_list('Hip Hop, rock', labels), labels)
    assert target[labels.index('hip-hop')] == 1.0 and target[labels.index('rock')] == 1.0 and target.sum() == 2.0


def test_text_query_says_which_tags_it_chose(built, capsys):
    _, _, index = built
    code, out, err = _similar(capsys, '--index', index, '--text', 'a woman singing', '--format', 'json')
    assert code == 0
    res = json.loads(out)
    assert res['query']['tags'][0][0] == 'female vocalists' and 'female vocalists' in err
    assert len(res['results']) == min(len(LIBRARY), 10)


def test_audio_query_embeds_the_clip_with_the_index_run(built, capsys, tmp_path):
    import shutil
    _, lib, index = built
    clip = tmp_path / 'clip.mp3'
    shutil.copy(lib['b/four.mp3'], clip)
    res = _json_results(capsys, '--index', index, '--audio', clip, '-k', '2')['results']
    assert res[0]['path'] == lib['b/four.mp3'] and res[0]['score'] > 0.9999
    bob = _json_results(capsys, '--index', index, '--audio', clip, '-k', '3', '--exclude-same-artist')['results']
    assert 'Bob' not in [r['artist'] for r in bob]


def test_audio_query_with_a_changed_run_is_refused(built, capsys, tmp_path):
    import shutil
    run, lib, index = built
    copy = tmp_path / 'idx'
    shutil.copytree(index, copy)
    manifest = json.loads((copy / 'index.json').read_text())
    manifest['run']['sha256'] = '0' * 64
    (copy / 'index.json').write_text(json.dumps(manifest))
    code, _, err = _similar(capsys, '--index', copy, '--audio', lib['a/one.mp3'])
    assert code == 2 and 'different model' in err


def test_results_outside_the_roots_are_left_out(built, capsys, tmp_path):
    import shutil
    _, lib, index = built
    copy = tmp_path / 'idx'
    shutil.copytree(index, copy)
    manifest = json.loads((copy / 'index.json').read_text())
    manifest['roots'] = [os.path.dirname(lib['b/four.mp3'])]          # only lib/b is "indexed"
    (copy / 'index.json').write_text(json.dumps(manifest))
    res = _json_results(capsys, '--index', copy, '--track', lib['b/four.mp3'], '-k', '10')['results']
    assert res and all(r['path'].startswith(manifest['roots'][0] + os.sep) for r in res)
    assert len(res) == 2


def _playlist(capsys, *args):
    from retrieval.cli import playlist_main
    code = playlist_main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_playlist_join_the_dots_m3u_json_and_map(built, capsys, tmp_path):
    _, lib, index = built
    a, b = lib['a/one.mp3'], lib['b/deep/six.mp3']
    code, out, err = _playlist(capsys, '--index', index, '--from', a, '--to', b, '--length', '5',
                               '--map', tmp_path / 'map.png')
    assert code == 0, err
    paths = [line for line in out.splitlines() if not line.startswith('#')]
    assert paths[0] == a and paths[-1] == b and len(set(paths)) == 5
    assert (tmp_path / 'map.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    code, out, _ = _playlist(capsys, '--index', index, '--from', a, '--via', lib['seven.mp3'], '--to', b,
                             '--length', '6', '--format', 'json', '--artist-spread', '2')
    res = json.loads(out)
    assert code == 0 and [r['rank'] for r in res['results']] == list(range(1, 7))
    assert lib['seven.mp3'] in [r['path'] for r in res['results']]
    assert res['query']['from'] == a


def test_playlist_seed_and_errors(built, capsys, tmp_path):
    _, lib, index = built
    code, out, _ = _playlist(capsys, '--index', index, '--seed', lib['a/two.mp3'], '--length', '4',
                             '--temperature', '0.5', '--format', 'json', '--map', tmp_path / 'm.png',
                             '--map-method', 'tsne')
    res = json.loads(out)['results']
    assert code == 0 and res[0]['path'] == lib['a/two.mp3'] and len({r['id'] for r in res}) == 4
    assert (tmp_path / 'm.png').exists()
    assert _playlist(capsys, '--index', index, '--from', lib['a/two.mp3'], '--length', '4')[0] == 2
    code, _, err = _playlist(capsys, '--index', index, '--from', lib['a/two.mp3'], '--to', 'nope', '--length', '4')
    assert code == 2 and 'nope' in err
    code, _, err = _playlist(capsys, '--index', index, '--seed', lib['a/two.mp3'], '--length', '99')
    assert code == 2 and 'longer than the index' in err


def _labelled(tmp_path, lib):
    """master.csv and a clean tag DB for the library: Ann's tracks 'x', Bob's 'y', the rest 'z'."""
    import pandas as pd
    from msd.lastfm import write_tables
    from msd.tables import write_master
    rows, pairs = [], []
    tag_of = {'Ann': 1, 'Bob': 2}
    for i, (rel, artist, album, *_rest) in enumerate(LIBRARY):
        tid = f'TR{i:04d}'
        rows.append({'track_id': tid, 'artist_id': artist or f'AR{i}', 'artist_name': artist or '', 'release':
                     album or '', 'file_path': rel})
        pairs.append((i + 1, tag_of.get(artist, 3), 100.0))
    write_master(pd.DataFrame(rows), tmp_path / 'master.csv', meta={'audio_root': os.path.dirname(lib['seven.mp3'])})
    con = sqlite3.connect(tmp_path / 'tags.db')
    write_tables(con, [(1, 'x'), (2, 'y'), (3, 'z')], [(i + 1, f'TR{i:04d}') for i in range(len(LIBRARY))], pairs)
    con.commit()
    con.close()
    return tmp_path / 'master.csv', tmp_path / 'tags.db'


def test_index_evaluate_reports_every_space(built, capsys, tmp_path):
    from retrieval.cli import index_main
    _, lib, index = built
    master, tags = _labelled(tmp_path, lib)
    code = index_main(['evaluate', '--index', index, '--master', str(master), '--tags', str(tags), '-k', '2',
                       '--json', str(tmp_path / 'e.json')])
    out = capsys.readouterr().out
    assert code == 0 and 'embedding' in out and 'random' in out
    report = json.loads((tmp_path / 'e.json').read_text())
    assert report['n_queries'] == len(LIBRARY) and report['k'] == 2 and report['n_unmatched'] == 0
    assert set(report['spaces']) == {'embedding', 'tags', 'random'}
    for m in report['spaces'].values():
        assert 0 <= m['precision_at_k'] <= 1 and 0 <= m['jaccard_at_k'] <= m['precision_at_k']


def test_ranking_metrics_by_hand():
    from retrieval.evaluate import ranking_metrics
    labels = [({1}, 'A', 'x'), ({1, 2}, 'A', 'x'), ({3}, 'B', 'y'), ({2}, 'B', None)]
    nb = np.array([[1, 2], [0, 3], [3, 0], [2, 1]])
    m = ranking_metrics(nb, labels)
    # shares a tag: q0 [T, F], q1 [T, T], q2 [F, F], q3 [F, T] -> 4/8
    assert m['precision_at_k'] == pytest.approx(0.5)
    # jaccard: q0 [1/2, 0], q1 [1/2, 1/2], q2 [0, 0], q3 [0, 1/2] -> 2/8
    assert m['jaccard_at_k'] == pytest.approx(0.25)
    # same artist: q0 [T, F], q1 [T, F], q2 [T, F], q3 [T, F] -> 0.5; every query has a same-artist track: hit 1
    assert m['same_artist_at_k'] == pytest.approx(0.5) and m['artist_hit_rate'] == 1.0
    # same album (artist, release): q0, q1 find each other; q2's album is alone; q3 has none
    assert m['same_album_at_k'] == pytest.approx(0.25) and m['album_queries'] == 2 and m['album_hit_rate'] == 1.0


def test_playlists_stay_inside_the_roots(built, capsys, tmp_path):
    import shutil
    _, lib, index = built
    copy = tmp_path / 'idx'
    shutil.copytree(index, copy)
    manifest = json.loads((copy / 'index.json').read_text())
    manifest['roots'] = [os.path.dirname(lib['b/four.mp3'])]          # only lib/b is "indexed"
    (copy / 'index.json').write_text(json.dumps(manifest))
    code, out, err = _playlist(capsys, '--index', copy, '--from', lib['b/four.mp3'], '--to', lib['b/deep/six.mp3'],
                               '--length', '3')
    assert code == 0, err
    assert [line for line in out.splitlines() if not line.startswith('#')] == [
        lib['b/four.mp3'], lib['b/five.mp3'], lib['b/deep/six.mp3']]
    code, out, _ = _playlist(capsys, '--index', copy, '--seed', lib['b/four.mp3'], '--length', '3')
    assert code == 0 and sorted(line for line in out.splitlines() if not line.startswith('#')) == sorted(
        [lib['b/four.mp3'], lib['b/five.mp3'], lib['b/deep/six.mp3']])
    code, _, err = _playlist(capsys, '--index', copy, '--seed', lib['a/one.mp3'], '--length', '3')
    assert code == 2 and 'inside the indexed roots' in err


def test_track_query_in_the_tags_space(built, capsys):
    from retrieval.index import Index
    _, lib, index = built
    res = _json_results(capsys, '--index', index, '--track', lib['a/one.mp3'], '--space', 'tags', '-k', '3')
    with Index.open(index) as idx:
        probs = {t.path: t.probs / np.linalg.norm(t.probs) for t in idx.tracks()}
    q = probs.pop(lib['a/one.mp3'])
    expected = sorted(probs, key=lambda p: -float(probs[p] @ q))[:3]
    assert res['query']['space'] == 'tags' and [r['path'] for r in res['results']] == expected


def test_python_m_retrieval_dispatches(capsys):
    from retrieval.__main__ import main
    with pytest.raises(SystemExit) as info:
        main(['similar', '--help'])
    assert info.value.code == 0 and 'usage: python -m retrieval similar' in capsys.readouterr().out
    assert main(['nope']) == 2
