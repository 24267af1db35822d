"""msd silence: statistics equal hand-computed values on constructed signals; files, resume, bad input.

Hand computation. librosa.effects.split frames the signal with a centred 2048-sample RMS window every
512 samples and calls a frame non-silent if its RMS is within 60 dB of the loudest frame. The test
signals are a square wave of amplitude A (every sample has |x| = A) and exact zeros, so a frame that
overlaps the sound by even one sample has RMS >= A / sqrt(2048) (-33 dB) and is non-silent, and a
frame that does not overlap it has RMS 0. For sound on samples [0, 512 a) and [512 b, 512 c):

* frame t covers [512 t - 1024, 512 t + 1024): it touches the first sound iff t <= a + 1, the second
  iff b - 1 <= t <= c + 1;
* so the first interval ends at sample 512 (a + 2), the second starts at 512 (b - 1): the detected gap
  is 512 (b - a - 3) samples, i.e. 3 hops shorter than the true one;
* a leading silence of 512 s samples is detected as 512 (s - 1) samples long.
"""
import json
import math

import numpy as np
import pytest

from msd.common import read_csv
from msd.scan import scan
from msd.silence import COLUMNS, mp3_truncation, silence, silence_stats, stats_from_intervals
from tests._audio_fixtures import encode_mp3, square, tone, write_wav
from tests._msd_fixtures import run_msd, write_file

HOP = 512


def _signal(segments, amp=0.5):
    """Concatenate ('s', hops) sound / ('z', hops) silence segments."""
    parts = [square(h * HOP, amp) if kind == 's' else np.zeros(h * HOP, np.float32) for kind, h in segments]
    return np.concatenate(parts)


@pytest.mark.parametrize('sr', [22050, 44100])
def test_tone_gap_tone(sr):
    a, b, c = 40, 90, 160  # sound [0, 40) hops, silence [40, 90), sound [90, 160)
    y = _signal([('s', a), ('z', b - a), ('s', c - b)])
    st = silence_stats(y, sr)
    np.testing.assert_array_equal(st['intervals'], [[0, HOP * (a + 2)], [HOP * (b - 1), HOP * c]])
    gap = HOP * (b - a - 3) / sr
    assert st['audio_start'] == 0.0
    assert st['audio_end'] == pytest.approx(HOP * c / sr)
    assert st['effective_clip_length'] == pytest.approx(HOP * c / sr)
    assert st['mid_silence_length'] == pytest.approx(gap)
    assert st['max_silence_length'] == pytest.approx(gap)
    assert st['non_silence_length'] == pytest.approx(HOP * c / sr - gap)
    assert st['silence_percentage'] == pytest.approx(100 * gap / (HOP * c / sr))
    assert st['n_gaps'] == 1
    assert st['silence_detail'] == [[pytest.approx(HOP * (a + 2) / sr), pytest.approx(HOP * (b - 1) / sr)]]


def test_leading_trailing_silence_and_two_gaps():
    sr = 22050
    # silence 20 hops, sound 30, silence 10, sound 30, silence 40, sound 30, silence 20
    y = _signal([('z', 20), ('s', 30), ('z', 10), ('s', 30), ('z', 40), ('s', 30), ('z', 20)])
    st = silence_stats(y, sr)
    s1, e1 = 20, 50
    s2, e2 = 60, 90
    s3, e3 = 130, 160
    assert st['audio_start'] == pytest.approx(HOP * (s1 - 1) / sr)
    assert st['audio_end'] == pytest.approx(HOP * (e3 + 2) / sr)
    gaps = [HOP * (s2 - e1 - 3) / sr, HOP * (s3 - e2 - 3) / sr]
    assert st['n_gaps'] == 2
    assert st['mid_silence_length'] == pytest.approx(sum(gaps))
    assert st['max_silence_length'] == pytest.approx(max(gaps))
    eff = HOP * (e3 + 2 - (s1 - 1)) / sr
    assert st['effective_clip_length'] == pytest.approx(eff)
    assert st['silence_percentage'] == pytest.approx(100 * sum(gaps) / eff)
    assert st['clip_length'] == pytest.approx(len(y) / sr)


def test_short_gap_below_frame_is_not_silence():
    # a 2-hop hole is shorter than the 4-hop RMS window: no frame is fully silent
    y = _signal([('s', 30), ('z', 2), ('s', 30)])
    st = silence_stats(y, 22050)
    assert st['n_gaps'] == 0 and st['mid_silence_length'] == 0 and st['max_silence_length'] == 0


def test_quiet_gap_relative_threshold():
    # -70 dB relative noise counts as silence (top_db 60); -50 dB does not
    sr = 22050
    for level, silent in ((10 ** (-70 / 20), True), (10 ** (-50 / 20), False)):
        y = _signal([('s', 40), ('s', 50), ('s', 40)])
        y[40 * HOP:90 * HOP] *= level
        st = silence_stats(y, sr)
        assert (st['n_gaps'] == 1) is silent


def test_digital_silence_is_silent_not_one_interval():
    st = silence_stats(np.zeros(22050, np.float32), 22050)
    assert len(st['intervals']) == 0 and st['peak_db'] == -math.inf
    assert st['effective_clip_length'] == 0 and st['silence_percentage'] == 100
    # ... and a very quiet clip falls under the absolute floor unless the floor is disabled
    quiet = square(22050, 10 ** (-80 / 20))
    assert len(silence_stats(quiet, 22050)['intervals']) == 0
    assert len(silence_stats(quiet, 22050, floor_db=-math.inf)['intervals']) == 1


def test_stats_from_intervals_units():
    st = stats_from_intervals([[0, 100], [300, 400], [1000, 1600]], 100, 2000)
    assert st['audio_start'] == 0 and st['audio_end'] == 16
    assert st['mid_silence_length'] == pytest.approx(2 + 6)
    assert st['max_silence_length'] == pytest.approx(6)
    assert st['silence_detail'] == [[1.0, 3.0], [4.0, 10.0]]


@pytest.fixture(scope='module')
def audio_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp('sil') / 'audio'
    sr1, sr2 = 22050, 44100
    write_wav(root / 'a' / '1.wav', _signal([('s', 40), ('z', 50), ('s', 70)]), sr1, subtype='FLOAT')
    stereo = np.stack([_signal([('z', 20), ('s', 100), ('z', 20)])] * 2, axis=1)
    write_wav(root / 'a' / '2.wav', stereo, sr2, subtype='FLOAT')
    write_wav(root / 'b' / '3.wav', np.zeros(sr1, np.float32), sr1, subtype='FLOAT')
    write_file(root / 'b' / '4.wav', b'RIFF....WAVEfmt garbage that is not a wav file at all' * 10)
    write_wav(root / 'c' / '5.wav', _signal([('s', 30)]), sr1, subtype='FLOAT')
    scan_csv = root.parent / 'scan.csv'
    scan(root, scan_csv, progress=False)
    return root, scan_csv


def test_silence_file_rows_match_hand_computed(audio_tree, tmp_path):
    root, scan_csv = audio_tree
    out = tmp_path / 'silence.csv'
    r = silence(scan_csv, out, workers=1, progress=False)
    df = read_csv(out, keep_default_na=False).set_index('file_path')
    assert list(df.reset_index().columns) == list(COLUMNS)
    one = df.loc['a/1.wav']
    assert one['status'] == 'ok' and int(one['sample_rate']) == 22050 and int(one['channels']) == 1
    assert float(one['mid_silence_length']) == pytest.approx(HOP * (90 - 40 - 3) / 22050, abs=1e-6)
    assert json.loads(one['silence_detail']) == [[round(HOP * 42 / 22050, 3), round(HOP * 89 / 22050, 3)]]
    two = df.loc['a/2.wav']
    assert int(two['channels']) == 2 and int(two['sample_rate']) == 44100
    assert float(two['audio_start']) == pytest.approx(HOP * 19 / 44100, abs=1e-6)
    assert float(two['audio_end']) == pytest.approx(HOP * 122 / 44100, abs=1e-6)
    assert float(two['mid_silence_length']) == 0
    assert df.loc['b/3.wav', 'status'] == 'silent'
    assert float(df.loc['b/3.wav', 'effective_clip_length']) == 0
    # the garbage .wav is not-audio in the scan and therefore not analysed at all
    assert 'b/4.wav' not in df.index
    assert df.loc['c/5.wav', 'status'] == 'ok'
    assert r.statuses == {'ok': 3, 'silent': 1}


def test_missing_file_gives_reason_row(audio_tree, tmp_path):
    root, scan_csv = audio_tree
    text = scan_csv.read_text().replace('"c/5.wav"', '"c/gone.wav"')
    scan2 = tmp_path / 'scan.csv'
    scan2.write_text(text)
    out = tmp_path / 'silence.csv'
    silence(scan2, out, progress=False)
    df = read_csv(out, keep_default_na=False).set_index('file_path')
    assert df.loc['c/gone.wav', 'status'] == 'missing' and df.loc['c/gone.wav', 'reason']


def test_resume_and_workers_identical(audio_tree, tmp_path):
    root, scan_csv = audio_tree
    full = tmp_path / 'full.csv'
    silence(scan_csv, full, progress=False, command='c')
    lines = full.read_text().splitlines(keepends=True)
    out = tmp_path / 'silence.csv'
    head = 4  # provenance, root, params, header
    (tmp_path / 'silence.csv.partial').write_text(''.join(lines[:head + 1]) + lines[head + 1][:9])
    r = silence(scan_csv, out, progress=False, command='c', workers=2)
    assert r.n_resumed == 1
    assert out.read_bytes() == full.read_bytes()


def test_changed_params_refuse_partial(audio_tree, tmp_path):
    root, scan_csv = audio_tree
    full = tmp_path / 'full.csv'
    silence(scan_csv, full, progress=False)
    lines = full.read_text().splitlines(keepends=True)
    (tmp_path / 'silence.csv.partial').write_text(''.join(lines[:5]))
    p = run_msd('silence', '--scan', scan_csv, '--out', tmp_path / 'silence.csv', '--top-db', '40',
                check=False)
    assert p.returncode == 2 and '--restart' in p.stderr


def test_cli_bad_scan_csv(tmp_path):
    bad = write_file(tmp_path / 'x.csv', b'# root=/tmp\na,b\n1,2\n')
    p = run_msd('silence', '--scan', bad, '--out', tmp_path / 's.csv', check=False)
    assert p.returncode == 2 and 'not a scan CSV' in p.stderr and 'Traceback' not in p.stderr


def test_mp3_truncation_check(tmp_path):
    for sr, ch, kbps in ((44100, 2, 128), (22050, 1, 64), (16000, 1, 32)):
        y = tone(3.0, sr, channels=ch)
        data = encode_mp3(y, sr, bitrate=kbps)
        whole = write_file(tmp_path / f'{sr}.mp3', data)
        assert mp3_truncation(whole) is None
        cut = write_file(tmp_path / f'{sr}cut.mp3', data[:len(data) // 2 + 7])
        assert 'truncated' in mp3_truncation(cut)
        # an ID3v2 tag in front and an ID3v1 tag at the end are not truncation
        id3v2 = b'ID3\x03\x00\x00\x00\x00\x00\x0a' + b'\x00' * 10
        tagged = write_file(tmp_path / f'{sr}tag.mp3', id3v2 + data + b'TAG' + b'x' * 125)
        assert mp3_truncation(tagged) is None
    assert mp3_truncation(write_file(tmp_path / 'junk.mp3', b'no frames here' * 100)) is None


def test_truncated_mp3_gets_its_own_status(tmp_path):
    root = tmp_path / 'audio'
    data = encode_mp3(tone(3.0, 22050), 22050, bitrate=64)
    write_file(root / '1.clip.mp3', data)
    write_file(root / '2.clip.mp3', data[:len(data) // 2 + 7])
    scan(root, tmp_path / 'scan.csv', progress=False)
    silence(tmp_path / 'scan.csv', tmp_path / 'sil.csv', progress=False)
    df = read_csv(tmp_path / 'sil.csv', keep_default_na=False).set_index('file_path')
    assert df.loc['1.clip.mp3', 'status'] == 'ok'
    assert df.loc['2.clip.mp3', 'status'] == 'truncated' and 'frame' in df.loc['2.clip.mp3', 'reason']
    assert 1.0 < float(df.loc['2.clip.mp3', 'clip_length']) < 2.0
