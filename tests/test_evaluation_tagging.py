"""evaluation.tagging: which files a folder gives, what is reported, and every output (JSON, CSV, taggrams)."""
import csv
import io
import json
import os
import stat

import numpy as np
import pytest

from core.errors import MuseTagError, OutputExistsError
from evaluation import plots
from evaluation.tagger import Tagger
from evaluation.tagging import escape, tag_paths, taggram_paths
from preprocessing.audio import InputFile, collect_inputs

from _audio_fixtures import music_like, write_mp3, write_wav
from _evaluation_fixtures import LABELS, deny_read, make_run_dir

PNG = b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 4
M4A = b'\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom' + b'\x00' * 600


@pytest.fixture(scope='module')
def tagger(tmp_path_factory):
    return Tagger.from_run(make_run_dir(tmp_path_factory.mktemp('tg') / 'run'))


@pytest.fixture(scope='module')
def audio_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp('audio')
    (d / 'sub' / 'deeper').mkdir(parents=True)
    write_mp3(d / 'a.mp3', music_like(8.0, 44100, seed=1, channels=2), 44100)
    write_wav(d / 'sub' / 'b.wav', music_like(5.0, 16000, seed=2), 16000)
    write_mp3(d / 'sub' / 'deeper' / 'short.mp3', music_like(0.7, 16000, seed=3), 16000)
    (d / 'sub' / 'empty.mp3').write_bytes(b'')
    (d / 'sub' / 'cut.wav').write_bytes((d / 'sub' / 'b.wav').read_bytes()[:30])     # header cut in half
    (d / 'sub' / 'junk.flac').write_text('plain text with an audio extension\n' * 30)
    (d / 'notes.txt').write_text('not audio: reported, not silently left out')
    (d / 'cover.png').write_bytes(PNG)
    (d / 'song.m4a').write_bytes(M4A)
    (d / '.hidden.mp3').write_bytes((d / 'a.mp3').read_bytes())
    (d / '.git').mkdir()
    (d / '.git' / 'x.mp3').write_bytes(b'')
    return d


EXPECTED = {'a.mp3': 'tagged', 'sub/b.wav': 'tagged', 'sub/deeper/short.mp3': 'tagged', 'sub/empty.mp3': 'empty',
            'sub/cut.wav': 'unreadable', 'sub/junk.flac': 'not-audio', 'notes.txt': 'not-audio',
            'cover.png': 'not-audio', 'song.m4a': 'unsupported'}


def _lines(text):
    return [line for line in text.splitlines() if line]


def test_folder_search_tries_every_file_and_skips_only_hidden_names(audio_folder):
    inputs = collect_inputs([audio_folder])
    keys = [f.key for f in inputs.files]
    # a folder's files before its subfolders, sorted; hidden names not searched but counted
    assert keys == ['a.mp3', 'cover.png', 'notes.txt', 'song.m4a', 'sub/b.wav', 'sub/cut.wav', 'sub/empty.mp3',
                    'sub/junk.flac', 'sub/deeper/short.mp3']
    assert sorted(os.path.basename(h) for h in inputs.hidden) == ['.git', '.hidden.mp3']
    assert all(f.path == str(audio_folder / f.key) for f in inputs.files)
    # a file argument is taken as given (even a hidden one), a missing one is reported
    direct = collect_inputs([audio_folder / '.hidden.mp3', audio_folder / 'nope.mp3'])
    assert [f.key for f in direct.files] == ['.hidden.mp3']
    assert direct.skipped == [(str(audio_folder / 'nope.mp3'), 'missing', 'no such file or folder')]


def test_folder_links_are_followed_once(tmp_path):
    (tmp_path / 'music' / 'x').mkdir(parents=True)
    write_wav(tmp_path / 'music' / 'x' / 'a.wav', music_like(1.0, 16000), 16000)
    os.symlink(tmp_path / 'music', tmp_path / 'music' / 'x' / 'loop')       # a link back up
    os.symlink(tmp_path / 'music' / 'x', tmp_path / 'elsewhere')
    inputs = collect_inputs([tmp_path / 'music', tmp_path / 'elsewhere'])
    assert [f.key for f in inputs.files] == ['x/a.wav'] and not inputs.skipped


def test_tag_paths_reports_every_file_it_cannot_tag(tagger, audio_folder, tmp_path, capsys):
    jsonl, table = tmp_path / 'out.jsonl', tmp_path / 'out.csv'
    s = tag_paths(tagger, [audio_folder, tmp_path / 'nope.mp3'], top=3, json_out=str(jsonl), csv_out=str(table),
                  json_taggram=True, taggram=str(tmp_path / 'grams'), progress=False)
    cap = capsys.readouterr()
    skipped = {k: v for k, v in EXPECTED.items() if v != 'tagged'}
    assert s['tagged'] == 3 and s['skipped'] == len(skipped) + 1
    assert s['reasons'] == {'empty': 1, 'unreadable': 1, 'not-audio': 3, 'unsupported': 1, 'missing': 1}
    for key, reason in skipped.items():
        assert f'skipped {audio_folder / key}: {reason} (' in cap.err
    assert 'cover.png: not-audio (not an audio file: a PNG image)' in cap.err
    assert 'junk.flac: not-audio (not an audio file: text)' in cap.err
    assert 'song.m4a: unsupported (MPEG-4' in cap.err and 'does not exist' not in cap.err
    assert 'nope.mp3: missing' in cap.err and '.hidden' not in cap.err
    assert 'tagged 3 file(s)' in cap.err
    assert 'skipped 7 (empty 1, missing 1, not-audio 3, unreadable 1, unsupported 1)' in cap.err
    assert "2 hidden name(s) (starting with '.') not searched" in cap.err
    assert f'warning: {audio_folder / "sub/deeper/short.mp3"}: short: 0.7' in cap.err
    assert 'with warnings short 1' in cap.err
    out_lines = _lines(cap.out)
    assert [line.split('\t')[0] for line in out_lines] == [str(audio_folder / k) for k in
                                                          ('a.mp3', 'sub/b.wav', 'sub/deeper/short.mp3')]
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line['file'] for line in lines] == [line.split('\t')[0] for line in out_lines]
    assert all(len(line['tags']) == 3 and line['tags'][0][0] in LABELS for line in lines)
    assert lines[0]['duration_s'] == pytest.approx(8.0, abs=0.2) and lines[0]['n_windows'] == 3
    assert np.array(lines[0]['taggram']['probabilities']).shape == (3, len(LABELS))
    assert lines[2]['n_windows'] == 1 and lines[2]['warnings'] == ['short'] and lines[0]['warnings'] == []
    # the taggrams mirror the folder structure below the folder argument
    grams = sorted(p.relative_to(tmp_path / 'grams').as_posix() for p in (tmp_path / 'grams').rglob('*.png'))
    assert grams == ['a.mp3.taggram.png', 'sub/b.wav.taggram.png', 'sub/deeper/short.mp3.taggram.png']
    assert lines[1]['taggram_png'] == str(tmp_path / 'grams' / 'sub' / 'b.wav.taggram.png')
    # the CSV: a row per tagged file, a column per tag, the track probabilities
    rows = list(csv.reader(table.open()))
    assert rows[0] == ['file'] + LABELS and [r[0] for r in rows[1:]] == [line['file'] for line in lines]
    for row, line in zip(rows[1:], lines):
        probs = dict(zip(LABELS, map(float, row[1:])))
        for tag, p in line['tags']:
            assert probs[tag] == pytest.approx(p, abs=1e-6)


def test_json_all_holds_every_tag_and_threshold_filters(tagger, audio_folder, tmp_path, capsys):
    f = audio_folder / 'a.mp3'
    s = tag_paths(tagger, [f], top=2, json_all=True, json_out=str(tmp_path / 'all.jsonl'), progress=False)
    doc = json.loads((tmp_path / 'all.jsonl').read_text())
    assert len(doc['tags']) == len(LABELS) and {t for t, _ in doc['tags']} == set(LABELS)
    probs = [p for _, p in doc['tags']]
    assert probs == sorted(probs, reverse=True)
    assert len(_lines(capsys.readouterr().out)[0].split('\t')[1].split('  ')) == 2     # printed: the top 2
    assert s['results'][0] == doc
    s = tag_paths(tagger, [f], threshold=0.0, progress=False)
    assert len(s['results'][0]['tags']) == len(LABELS)
    s = tag_paths(tagger, [f], threshold=1.01, progress=False)
    assert s['results'][0]['tags'] == [] and '(no tag above threshold)' in capsys.readouterr().out


def test_unreadable_file_and_folder_are_reported_as_permission_denied(tagger, tmp_path, capsys, monkeypatch,
                                                                      request):
    d = tmp_path / 'music'
    (d / 'locked_dir').mkdir(parents=True)
    write_wav(d / 'ok.wav', music_like(4.0, 16000), 16000)
    write_wav(d / 'locked.wav', music_like(4.0, 16000), 16000)
    write_wav(d / 'locked_dir' / 'inside.wav', music_like(4.0, 16000), 16000)
    deny_read(d / 'locked.wav', monkeypatch, request)
    deny_read(d / 'locked_dir', monkeypatch, request)
    s = tag_paths(tagger, [d], progress=False)
    err = capsys.readouterr().err
    assert s['tagged'] == 1 and s['reasons'] == {'permission-denied': 2}
    assert f'skipped {d / "locked.wav"}: permission-denied (this user may not read the file' in err
    assert f'skipped {d / "locked_dir"}: permission-denied (this user may not list this folder)' in err


def test_file_names_with_newlines_tabs_and_foreign_bytes_stay_one_line(tagger, tmp_path, capsys):
    d = tmp_path / 'names'
    d.mkdir()
    clip = music_like(3.5, 16000, seed=5)
    names = ['new\nline.wav', 'tab\there.wav', 'back\\slash.wav']
    for name in names:
        write_wav(d / name, clip, 16000)
    raw = os.path.join(os.fsencode(d), b'caf\xe9.wav')          # not UTF-8 (Latin-1 'café')
    os.rename(write_wav(tmp_path / 'cafe.wav', clip, 16000), raw)
    s = tag_paths(tagger, [d], csv_out=str(tmp_path / 't.csv'), json_out=str(tmp_path / 't.jsonl'), progress=False)
    out = capsys.readouterr().out
    assert s['tagged'] == 4 and len(out.splitlines()) == 4
    shown = sorted(line.split('\t')[0][len(str(d)) + 1:] for line in out.splitlines())
    assert shown == ['back\\\\slash.wav', 'caf\\xe9.wav', 'new\\nline.wav', 'tab\\there.wav']
    # the JSON and CSV keep the exact names
    assert {json.loads(line)['file'] for line in (tmp_path / 't.jsonl').read_text().splitlines()} == \
        {str(d / n) for n in names} | {os.fsdecode(raw)}
    with open(tmp_path / 't.csv', encoding='utf-8', errors='surrogateescape', newline='') as f:
        assert {r[0] for r in list(csv.reader(f))[1:]} == {str(d / n) for n in names} | {os.fsdecode(raw)}


def test_escape_is_unambiguous():
    assert escape('plain name.mp3') == 'plain name.mp3'
    assert escape('a\nb\tc\rd\\e\x1bf\u2028g') == 'a\\nb\\tc\\rd\\\\e\\x1bf\\u2028g'
    assert escape('a\\nb') != escape('a\nb')


def test_taggram_names_keep_the_folder_path_and_never_collide(tmp_path):
    files_ = [InputFile('x/a.mp3', 'a.mp3'), InputFile('x/sub/a.mp3', 'sub/a.mp3'), InputFile('y/a.mp3', 'a.mp3'),
              InputFile('y/A.mp3', 'A.mp3'), InputFile('z/a.mp3-2', 'a.mp3-2'), InputFile('w/a.wav', 'a.wav')]
    in_dir = taggram_paths(files_, str(tmp_path / 'grams'))
    assert [os.path.relpath(p, tmp_path / 'grams') for p in in_dir] == [
        'a.mp3.taggram.png', 'sub/a.mp3.taggram.png', 'a.mp3-2.taggram.png', 'A.mp3-3.taggram.png',
        'a.mp3-2-2.taggram.png', 'a.wav.taggram.png']
    assert len({p.casefold() for p in in_dir}) == len(files_)
    as_png = taggram_paths(files_[:3], str(tmp_path / 'g.png'))
    assert [os.path.basename(p) for p in as_png] == ['g-a.mp3.png', 'g-sub--a.mp3.png', 'g-a.mp3-2.png']
    assert taggram_paths(files_[:1], str(tmp_path / 'g.png')) == [str(tmp_path / 'g.png')]


def test_taggram_rows_are_ordered_by_mean_probability(tagger, audio_folder, tmp_path, monkeypatch):
    res = tagger.predict_file(audio_folder / 'a.mp3')
    seen = {}
    real_save = plots._save

    def save(fig, path, overwrite=True):
        seen['rows'] = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        seen['ylim'] = fig.axes[0].get_ylim()
        return real_save(fig, path, overwrite)
    monkeypatch.setattr(plots, '_save', save)
    plots.plot_taggram(res, tmp_path / 't.png')
    assert seen['rows'] == [t for t, _ in res.ranked()]
    assert seen['ylim'][0] > seen['ylim'][1]        # inverted axis: the first row is drawn on top
    assert seen['rows'] != list(LABELS)             # (the fixture's order is not already sorted)
    plots.plot_taggram(res, tmp_path / 't2.png', max_tags=2)
    assert seen['rows'] == [t for t, _ in res.ranked()[:2]]


def test_existing_outputs_are_refused_before_tagging(tagger, audio_folder, tmp_path, capsys):
    (tmp_path / 'o.jsonl').write_text('keep me\n')
    with pytest.raises(OutputExistsError, match='--overwrite'):
        tag_paths(tagger, [audio_folder / 'a.mp3'], json_out=str(tmp_path / 'o.jsonl'), progress=False)
    grams = tmp_path / 'grams'
    grams.mkdir()
    (grams / 'a.mp3.taggram.png').write_bytes(b'old')
    with pytest.raises(OutputExistsError, match='a.mp3.taggram.png'):
        tag_paths(tagger, [audio_folder / 'a.mp3', audio_folder / 'sub' / 'b.wav'], taggram=str(grams),
                  progress=False)
    with pytest.raises(OutputExistsError, match='two outputs'):
        tag_paths(tagger, [audio_folder / 'a.mp3'], json_out=str(tmp_path / 'x'), csv_out=str(tmp_path / 'x'),
                  progress=False)
    with pytest.raises(MuseTagError, match='is a directory'):
        tag_paths(tagger, [audio_folder / 'a.mp3'], csv_out=str(grams), overwrite=True, progress=False)
    assert capsys.readouterr().out == '' and (tmp_path / 'o.jsonl').read_text() == 'keep me\n'
    assert (grams / 'a.mp3.taggram.png').read_bytes() == b'old'
    tag_paths(tagger, [audio_folder / 'a.mp3'], json_out=str(tmp_path / 'o.jsonl'), overwrite=True, progress=False)
    assert json.loads((tmp_path / 'o.jsonl').read_text())['file'].endswith('a.mp3')


def test_outputs_get_the_umask_permissions_and_leave_no_temporary(tagger, audio_folder, tmp_path):
    old = os.umask(0o022)
    try:
        tag_paths(tagger, [audio_folder / 'a.mp3', audio_folder / 'sub' / 'b.wav'], json_out=str(tmp_path / 'o.jsonl'),
                  csv_out=str(tmp_path / 'o.csv'), taggram=str(tmp_path / 'grams'), progress=False, err=io.StringIO())
    finally:
        os.umask(old)
    made = [tmp_path / 'o.jsonl', tmp_path / 'o.csv', tmp_path / 'grams' / 'a.mp3.taggram.png',
            tmp_path / 'grams' / 'b.wav.taggram.png']
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in made} == {p.name: '0o644' for p in made}
    assert stat.S_IMODE((tmp_path / 'grams').stat().st_mode) == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ['grams', 'o.csv', 'o.jsonl']
    assert sorted(p.name for p in (tmp_path / 'grams').iterdir()) == ['a.mp3.taggram.png', 'b.wav.taggram.png']


def test_several_files_into_one_png_name(tagger, audio_folder, tmp_path):
    tag_paths(tagger, [audio_folder / 'a.mp3', audio_folder / 'sub' / 'b.wav'], taggram=str(tmp_path / 'g.png'),
              progress=False, err=io.StringIO(), out=io.StringIO())
    assert (tmp_path / 'g-a.mp3.png').read_bytes()[:4] == b'\x89PNG'
    assert (tmp_path / 'g-b.wav.png').read_bytes()[:4] == b'\x89PNG'
