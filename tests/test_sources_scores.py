"""``musetag dataset scores``: the music21 corpus rendered with fluidsynth into a folder dataset."""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import stat
import subprocess

import numpy as np
import pytest

from core.files import file_mode
from sources import scores
from sources.__main__ import main as dataset_main

pytestmark = pytest.mark.skipif(shutil.which('fluidsynth') is None or not os.path.isfile(scores.DEFAULT_SOUNDFONT),
                                reason='needs Debian fluidsynth and timgm6mb-soundfont')

BACH = scores.Piece('bach/bwv66.6.mxl', 'bach-chorales', 'organ')
REEL = scores.Piece('ryansMammoth/AcaciaReel.abc', 'fiddle-tunes', 'flute')
QUARTET = scores.Piece('mozart/k80/movement3.mxl', 'mozart-quartets', 'flute+strings')
SECONDS, SR = 3.0, 16000


@pytest.fixture(scope='module')
def root():
    return scores.corpus_root()


@pytest.fixture(scope='module')
def rendered(tmp_path_factory):
    """Three short pieces rendered on two workers: (output folder, summary)."""
    out = tmp_path_factory.mktemp('scores') / 'ds'
    summary = scores.build(str(out), seconds=SECONDS, sr=SR, workers=2, chosen=[BACH, REEL, QUARTET])
    return out, summary


def _rows(out):
    with open(out / 'tags.csv', newline='', encoding='utf-8') as f:
        return {r['source']: r for r in csv.DictReader(f)}


# ------------------------------------------------------------------------------------ the choice
def test_choice_is_seeded_and_balanced(root):
    a = scores.choose_pieces(root, 40, seed=0)
    assert a == scores.choose_pieces(root, 40, seed=0)
    assert a != scores.choose_pieces(root, 40, seed=1)
    assert len(a) == len({p.source for p in a}) == 40
    shelf = {s.name: s for s in scores.SHELVES}
    by_period = {}
    for p in a:
        by_period[shelf[p.shelf].period] = by_period.get(shelf[p.shelf].period, 0) + 1
    full = [n for period, n in by_period.items() if period != '20th century']   # the corpus has 5 of those
    assert set(by_period) == set(scores.PERIODS)
    assert max(full) - min(full) <= 1, by_period
    for p in a:
        assert p.ensemble in shelf[p.shelf].ensembles
    tested = {shelf[p.shelf].period for p in a if p.split == 'test'}
    assert tested == set(scores.PERIODS)                        # every period in the test split
    splits = [p.split for p in a]
    # 40 pieces: six periods of 6 or 5 and the 20th century's 5; the 3rd of each is test, the 6th validation
    assert (splits.count('test'), splits.count('validation')) == (7, 5), splits
    instruments = {}
    for p in a:
        for t in scores.ENSEMBLES[p.ensemble].tags:
            instruments[t] = instruments.get(t, 0) + 1
    assert min(instruments.values()) >= 5, instruments


def test_choice_leaves_out_files_too_large_to_parse_quickly(root):
    chosen = scores.choose_pieces(root, 10_000, seed=0)
    shelf = {s.name: s for s in scores.SHELVES}
    assert len(chosen) > 1000
    assert all(os.path.getsize(os.path.join(root, p.source)) <= shelf[p.shelf].max_bytes for p in chosen)
    assert 'beethoven/opus18no4.mxl' not in {p.source for p in chosen}     # a whole quartet: minutes to parse


def test_tags_of_known_pieces():
    row = scores.describe(BACH)
    assert row['tags'] == ['bach', 'baroque', 'chorale', 'organ']
    assert (row['artist'], row['album'], row['title'], row['split']) == ('bach', 'bach chorales', 'bwv66.6', 'train')
    assert scores.describe(dataclasses.replace(BACH, split='test'))['split'] == 'test'
    reel = scores.describe(REEL, None, 'Acacia -- Reel')
    assert reel['tags'] == ['folk', 'reel', 'flute'] and reel['artist'] == 'traditional'
    assert reel['title'] == 'Acacia -- Reel'
    quartet = scores.describe(QUARTET)
    assert quartet['tags'] == ['mozart', 'classical', 'quartet', 'flute', 'strings']
    assert quartet['album'] == 'mozart k80'
    trecento = scores.Piece('trecento/x.xml', 'trecento', 'choir')
    assert scores.describe(trecento, 'Gherardello F-Pn 568')['tags'][0] == 'gherardello'
    assert scores.describe(trecento, 'Johannes Ciconia (opus dubium)')['artist'] == 'johannes ciconia'
    assert scores.describe(trecento, 'Anonymous I-Rvat 1419')['artist'] == 'anonymous'
    assert scores.describe(trecento, None)['artist'] == 'anonymous'
    assert scores.audio_path(QUARTET, 'mozart') == 'mozart/k80-movement3.wav'


def test_fit_length_cuts_loops_and_refuses_silence():
    tone = np.sin(np.arange(1000) / 5.0).astype(np.float32) * 0.2
    tail = np.zeros(500, np.float32)
    looped = scores.fit_length(np.concatenate([tone, tail]), 2500)
    assert looped.shape == (2500,)
    assert np.allclose(looped[1000:2000], looped[:1000])        # the silent tail is not looped
    assert abs(float(np.abs(looped).max()) - scores._PEAK) < 1e-6
    assert scores.fit_length(tone, 300).shape == (300,)
    with pytest.raises(scores.SkipPiece) as e:
        scores.fit_length(np.zeros(100, np.float32), 50)
    assert e.value.reason == 'silent'


def test_an_abc_opus_of_voices_is_one_score_of_parts(tmp_path):
    path = tmp_path / 'voices.abc'
    path.write_text('X:1\nT:Two voices\nM:4/4\nL:1/4\nK:C\nc d e f|g a b c|\n\n'
                    'X:2\nT:Two voices\nM:4/4\nL:1/4\nK:C\nC D E F|G A B c|\n', encoding='utf-8')
    score = scores._parse(str(path))
    assert len(score.parts) == 2
    assert [n.nameWithOctave for n in score.parts[1].recurse().notes][:2] == ['C4', 'D4']


def test_parts_are_cut_after_the_needed_length_and_repeats_dropped():
    from music21 import bar, note, stream
    measured, loose = stream.Part(), stream.Part()
    for i in range(30):
        m = stream.Measure(number=i + 1)
        m.append(note.Note('C4', quarterLength=4))
        if i == 1:
            m.rightBarline = bar.Repeat(direction='end')
        measured.append(m)
        loose.append(note.Note('E4', quarterLength=4))
    score = stream.Score([measured, loose])
    a, b = scores._linear_parts(score, 10.0)        # 14 s at 120 quarters a minute: 28 quarter notes
    assert a.highestTime == b.highestTime == 28.0
    assert not any(isinstance(m.rightBarline, bar.Repeat) for m in a.getElementsByClass(stream.Measure))


def test_a_stuck_note_ends_with_the_track(tmp_path):
    """A note-on without its note-off on an organ: fluidsynth -F renders for ever unless the track
    ends every note (All Notes Off)."""
    from music21 import midi
    mf = midi.MidiFile()
    track = midi.MidiTrack(1)
    mf.tracks.append(track)

    def add(delta, event):
        track.events += [midi.DeltaTime(track, time=delta), event]
    program = midi.MidiEvent(track, type=midi.ChannelVoiceMessages.PROGRAM_CHANGE, channel=1)
    program.data = 19                                            # church organ: never decays
    add(0, program)
    note = midi.MidiEvent(track, type=midi.ChannelVoiceMessages.NOTE_ON, channel=1)
    note.pitch, note.velocity = 60, 90
    add(0, note)
    add(mf.ticksPerQuarterNote, midi.MidiEvent(track, type=midi.MetaEvents.END_OF_TRACK, channel=1))
    track.events[-1].data = b''
    scores._end_all_notes(mf)
    path = tmp_path / 'stuck.mid'
    mf.open(str(path), 'wb')
    mf.write()
    mf.close()
    wav = tmp_path / 'stuck.wav'     # without the fix: rendered until the timeout (about 0.2 GB)
    subprocess.run(['fluidsynth', '-n', '-i', '-q', '-r', '16000', '-F', str(wav), scores.DEFAULT_SOUNDFONT,
                    str(path)], stdin=subprocess.DEVNULL, capture_output=True, timeout=15, check=True)
    import soundfile as sf
    assert 0 < sf.info(str(wav)).duration < 10


# ------------------------------------------------------------------------------------ rendering
def test_rendered_audio_and_tags(rendered):
    import soundfile as sf
    out, summary = rendered
    rows = _rows(out)
    assert set(rows) == {BACH.source, REEL.source, QUARTET.source}
    assert summary['pieces'] == 3 and summary['skipped'] == 0
    assert summary['splits'] == {'train': 3, 'validation': 0, 'test': 0}
    assert {r['split'] for r in rows.values()} == {'train'}
    assert rows[BACH.source]['tags'] == 'bach;baroque;chorale;organ'
    assert rows[BACH.source]['path'] == 'bach/bwv66-6.wav'
    assert rows[REEL.source]['artist'] == 'traditional' and 'reel' in rows[REEL.source]['tags'].split(';')
    for row in rows.values():
        path = out / 'audio' / row['path']
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames) == (SR, 1, int(SECONDS * SR))
        audio, _ = sf.read(str(path), dtype='float32')
        assert float(np.sqrt(np.mean(audio ** 2))) > 0.01, row['path']
        assert stat.S_IMODE(os.stat(path).st_mode) == file_mode()
    assert summary['tag_counts']['organ'] == 1 and summary['tag_counts']['strings'] == 1
    assert not (out / 'audio' / '.render').exists() and not (out / '.render').exists()
    names = os.listdir(out.parent)
    assert [n for n in names if n.startswith('.')] == [n for n in names if n.endswith('.lock')]   # no temp dirs


def test_rendered_folder_reads_through_the_folder_adapter(rendered, tmp_path, capsys):
    out, _ = rendered
    dataset = tmp_path / 'dataset'
    code = dataset_main(['folder', '--audio', str(out / 'audio'), '--tags', str(out / 'tags.csv'),
                         '--out', str(dataset), '--protocol', 'track', '--no-progress'], prog='musetag dataset')
    assert code == 0, capsys.readouterr().err
    with open(dataset / 'master.csv', encoding='utf-8') as f:
        master = [ln for ln in f if not ln.startswith('#')]
    assert len(master) == 1 + 3
    assert any('"bach chorales"' in ln and '"bach"' in ln for ln in master)


def test_a_piece_that_fails_is_skipped_and_counted(tmp_path, monkeypatch, capsys):
    missing = scores.Piece('bach/no-such-chorale.mxl', 'bach-chorales', 'choir')
    monkeypatch.setattr(scores, 'choose_pieces', lambda root, n, seed=0: [missing, REEL])
    out = tmp_path / 'ds'
    code = dataset_main(['scores', '--out', str(out), '--seconds', '2', '--workers', '1', '--no-progress'],
                        prog='musetag dataset')
    assert code == 1
    captured = capsys.readouterr()
    assert '1 skipped (parse-failed 1)' in captured.out
    assert 'bach/no-such-chorale.mxl' in captured.err
    assert list(_rows(out)) == [REEL.source]
    summary = json.loads((out / 'summary.json').read_text(encoding='utf-8'))
    assert summary['skipped_by_reason'] == {'parse-failed': 1}
    assert summary['skipped_pieces'][0]['source'] == missing.source


def test_missing_fluidsynth_names_the_debian_packages(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('PATH', str(tmp_path))
    out = tmp_path / 'ds'
    assert dataset_main(['scores', '--out', str(out)], prog='musetag dataset') == 2
    err = capsys.readouterr().err
    assert 'musetag dataset: error: fluidsynth is not installed' in err
    assert 'apt-get install fluidsynth timgm6mb-soundfont' in err
    assert not out.exists()


def test_missing_soundfont_and_existing_output(tmp_path, capsys):
    out = tmp_path / 'ds'
    assert dataset_main(['scores', '--out', str(out), '--soundfont', str(tmp_path / 'none.sf2')],
                        prog='musetag dataset') == 2
    assert 'none.sf2 not found' in capsys.readouterr().err
    out.mkdir()
    assert dataset_main(['scores', '--out', str(out)], prog='musetag dataset') == 2
    assert 'pass --overwrite' in capsys.readouterr().err


def test_sample_rate_outside_what_fluidsynth_renders_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        dataset_main(['scores', '--out', str(tmp_path / 'ds'), '--sr', '4000'], prog='musetag dataset')
    assert e.value.code == 2
    assert 'fluidsynth renders at 8000 to 96000 Hz, got 4000' in capsys.readouterr().err
