"""The preprocessing command line: split warnings and artist-id checks, features, --set, exit codes."""
import json
import logging
import os
import stat
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from msd.tables import read_master, read_table, write_master
from preprocessing.__main__ import main
from preprocessing.splits import make_split, split_warnings
from tests._audio_fixtures import music_like, write_wav

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _master(tmp_path, artists, n=44):
    """A 44-track master table; ``artists``: list of artist ids per track, or None (no column)."""
    df = pd.DataFrame({'track_id': [f'TR{i:016d}' for i in range(n)], 'file_path': [f'{i}.mp3' for i in range(n)]})
    if artists is not None:
        df['artist_id'] = artists
    path = tmp_path / 'master.csv'
    write_master(df, path, meta={'audio_root': str(tmp_path)}, overwrite=True)
    return str(path)


def _artists_leaving_test_empty():
    """11 artists of 4 tracks each whose artist split (0.6/0.2/0.2, seed 0) has an empty test split."""
    for k in range(1000):
        artists = [f'AR{k:04d}{i // 4:012d}' for i in range(44)]
        _, report = make_split(pd.DataFrame({'track_id': [f'TR{i:016d}' for i in range(44)], 'artist_id': artists}),
                               by='artist', ratios=(0.6, 0.2, 0.2), seed=0)
        if report['test'] == 0:
            return artists, report
    raise AssertionError('no artist naming leaves the test split empty')


def test_empty_split_is_a_warning_with_the_ratios_reached(tmp_path, capsys, caplog):
    artists, report = _artists_leaving_test_empty()
    master = _master(tmp_path, artists)
    out = tmp_path / 'splits.csv'
    assert main(['split', '--master', master, '--out', str(out), '--by', 'artist',
                 '--ratios', '0.6', '0.2', '0.2', '--seed', '0']) == 0
    printed = capsys.readouterr().out
    train, val = report['train'], report['validation']
    assert f'train {train} ({train / 44:.2f}), validation {val} ({val / 44:.2f}), test 0 (0.00) of 44' in printed
    assert 'asked 0.6/0.2/0.2' in printed and '11 artists' in printed
    assert any('the test split is empty' in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_tiny_split_warning_names_each_split():
    warnings = split_warnings({'train': 40, 'validation': 3, 'test': 1}, (0.6, 0.2, 0.2))
    assert len(warnings) == 2
    assert warnings[0].startswith('the validation split is tiny: 3 tracks') and 'the test split is tiny' in warnings[1]
    assert split_warnings({'train': 30, 'validation': 7, 'test': 7}, (0.6, 0.2, 0.2)) == []
    assert split_warnings({'train': 44, 'validation': 0, 'test': 0}, (1, 0, 0)) == []


@pytest.mark.parametrize('missing', [44, 3])
def test_artist_split_without_artist_ids_is_refused(tmp_path, capsys, missing):
    artists = None if missing == 44 else [None] * missing + [f'AR{i // 4}' for i in range(missing, 44)]
    master = _master(tmp_path, artists)
    out = tmp_path / 'splits.csv'
    assert main(['split', '--master', master, '--out', str(out), '--by', 'artist']) == 2
    err = capsys.readouterr().err
    assert f'{missing} of 44 tracks have no artist id' in err and '--by track' in err and 'train and test' in err
    assert not out.exists()
    if missing == 3:   # the default method does not guess either: some ids are there
        assert main(['split', '--master', master, '--out', str(out)]) == 2
        assert not out.exists()


def test_default_split_without_artist_ids_falls_back_to_track_loudly(tmp_path, capsys, caplog):
    master = _master(tmp_path, None)
    out = tmp_path / 'splits.csv'
    assert main(['split', '--master', master, '--out', str(out)]) == 0
    assert 'split (track)' in capsys.readouterr().out
    warning = ' '.join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert 'no artist ids' in warning and 'leak between train and test' in warning
    assert read_table(out).provenance.endswith('(--by track)')


def test_split_reports_bad_master_lines_with_exit_1(tmp_path, capsys):
    master = _master(tmp_path, [f'AR{i // 4}' for i in range(44)])
    with open(master, 'a') as f:
        f.write('garbage line here\n')
    assert main(['split', '--master', master, '--out', str(tmp_path / 's.csv')]) == 1
    assert '1 bad master line(s) skipped' in capsys.readouterr().out
    assert len(read_table(tmp_path / 's.csv').frame) == 44


def test_existing_output_error_names_the_prog(tmp_path, capsys):
    master = _master(tmp_path, [f'AR{i // 4}' for i in range(44)])
    (tmp_path / 's.csv').write_text('x\n')
    assert main(['split', '--master', master, '--out', str(tmp_path / 's.csv')], prog='musetag preprocess') == 2
    err = capsys.readouterr().err
    assert err.startswith('musetag preprocess: error:') and '--overwrite' in err
    assert read_master(master).frame.shape[0] == 44


# ------------------------------------------------------------------------------------ features

@pytest.fixture
def audio_folder(tmp_path):
    folder = tmp_path / 'music'
    (folder / 'a').mkdir(parents=True)
    (folder / 'b').mkdir()
    write_wav(folder / 'a' / 'song.wav', music_like(1.0, 16000, seed=1), 16000)
    write_wav(folder / 'b' / 'song.wav', music_like(1.5, 16000, seed=2), 16000)
    (folder / 'b' / 'clip.m4a').write_bytes(b'\x00\x00\x00\x18ftypM4A ' + os.urandom(200))
    (folder / 'notes.txt').write_text('not audio\n')
    (folder / '.DS_Store').write_bytes(b'\x00' * 64)          # hidden: not searched, only counted
    return folder


def test_features_reports_every_unreadable_file_and_takes_set(audio_folder, tmp_path, capsys):
    out = tmp_path / 'npy'
    old = os.umask(0o022)
    try:
        code = main(['features', str(audio_folder), '--set', 'n_mels=64', '--set', 'hop_length=512', '--out', str(out)])
    finally:
        os.umask(old)
    printed = capsys.readouterr().out
    assert code == 1
    for name in ('clip.m4a', 'notes.txt'):
        assert any(line.startswith('skip ') and name in line for line in printed.splitlines()), name
    assert 'features: 2 file(s) computed, 2 skipped, 1 hidden name(s) not searched' in printed
    assert printed.count('x64 (musicnn)') == 2
    saved = sorted(str(p.relative_to(out)) for p in out.rglob('*.npy'))
    assert saved == ['a/song.wav.npy', 'b/song.wav.npy']        # paths below the folder: no collision
    spec = np.load(out / 'a' / 'song.wav.npy')
    assert spec.shape[1] == 64 and spec.shape[0] == 1 + 16000 // 512
    assert stat.S_IMODE(os.stat(out / 'a' / 'song.wav.npy').st_mode) == 0o644


def test_set_accepts_the_older_json_object(audio_folder, capsys):
    assert main(['features', str(audio_folder / 'a' / 'song.wav'), '--set', json.dumps({'n_mels': 48})]) == 0
    assert 'x48 (musicnn)' in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:   # argparse: neither KEY=VALUE nor a JSON object
        main(['features', str(audio_folder / 'a' / 'song.wav'), '--set', '[1, 2]'])
    assert e.value.code == 2
    assert main(['features', str(audio_folder / 'a' / 'song.wav'), '--set', 'n_mel=48']) == 2
    assert 'unknown feature parameter(s): n_mel' in capsys.readouterr().err


def test_help_and_argument_errors_import_nothing_heavy(tmp_path):
    script = ('import sys\nfrom preprocessing.__main__ import main\n'
              'for argv in (["write", "--help"], ["write", "--master", "/nope.csv", "--tags", "x", "--splits", "y", '
              '"--out", "z"]):\n'
              '    try:\n        main(argv)\n    except SystemExit as e:\n        print("exit", e.code)\n'
              'print(sorted(m for m in ("tensorflow", "pandas", "numpy") if m in sys.modules))\n')
    r = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    lines = r.stdout.strip().splitlines()
    assert lines[-3:] == ['exit 0', 'exit 2', '[]'], r.stdout + r.stderr
    assert '/nope.csv: no such file' in r.stderr
    assert '(default: musicnn)' in r.stdout and 'Exit codes' not in r.stderr
