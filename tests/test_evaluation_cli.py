"""`musetag tag` / `musetag evaluate` (evaluation.cli) and `python -m evaluation.test_model`: exit codes, fast
answers before TensorFlow, the --model path and the old command line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation import test_model as tm
from evaluation.cli import tag_main

from _audio_fixtures import music_like, write_mp3, write_wav
from _evaluation_fixtures import deny_read, make_run_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp('cli') / 'run')


@pytest.fixture(scope='module')
def songs(tmp_path_factory):
    d = tmp_path_factory.mktemp('songs')
    write_mp3(d / 'a.mp3', music_like(8.0, 44100, seed=1, channels=2), 44100)
    write_wav(d / 'b.wav', music_like(5.0, 16000, seed=2), 16000)
    return d


def _run(*args, module='evaluation', probe=False):
    """Run a command in a fresh interpreter; with ``probe`` print whether TensorFlow got imported."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(REPO))
    if probe:
        code = (f'import sys, runpy; sys.argv = {[module, *map(str, args)]!r}\n'
                f'try:\n    runpy.run_module({module!r}, run_name="__main__")\n'
                'except SystemExit as e:\n    code = e.code\n'
                'print("TF_IMPORTED", "tensorflow" in sys.modules, "EXIT", code)')
        cmd = [sys.executable, '-c', code]
    else:
        cmd = [sys.executable, '-m', module, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


@pytest.mark.parametrize('args, code, text', [
    (['tag', '--help'], 0, 'exit codes: 0 every file tagged; 1 some input skipped'),
    (['evaluate', '--help'], 0, 'exit codes: 0 done; 2 bad arguments'),
    (['tag', '--run', 'no/such/run', 'x.mp3'], 2, 'error: run directory no/such/run does not exist'),
    (['tag', '--top', '0', '--run', 'R', 'x.mp3'], 2, 'must be >= 1'),
    (['tag', 'x.mp3'], 2, 'one of the arguments --run --model is required'),
    (['evaluate', '--run', 'no/such/run'], 2, 'error: run directory no/such/run does not exist'),
])
def test_help_and_argument_errors_answer_before_tensorflow(args, code, text):
    r = _run(*args, probe=True)
    assert f'TF_IMPORTED False EXIT {code}' in r.stdout, r.stdout + r.stderr
    assert text in r.stdout + r.stderr


def test_missing_path_and_existing_output_answer_before_tensorflow(run_dir, songs, tmp_path):
    r = _run('tag', '--run', run_dir, songs / 'a.mp3', tmp_path / 'nope.mp3', probe=True)
    assert 'TF_IMPORTED False EXIT 2' in r.stdout and f'no such file or folder: {tmp_path / "nope.mp3"}' in r.stderr
    (tmp_path / 'o.csv').write_text('x')
    r = _run('tag', '--run', run_dir, songs / 'a.mp3', '--csv', tmp_path / 'o.csv', probe=True)
    assert 'TF_IMPORTED False EXIT 2' in r.stdout and '--overwrite' in r.stderr


def test_tag_command_end_to_end_through_musetag(run_dir, songs, tmp_path):
    r = _run('tag', '--run', run_dir, songs, '--top', '2', '--csv', tmp_path / 't.csv', '--json', tmp_path / 't.jsonl',
             '--json-all', '--taggram', tmp_path / 'grams', module='musetag')
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert [line.split('\t')[0] for line in lines] == [str(songs / 'a.mp3'), str(songs / 'b.wav')]
    assert all(len(line.split('\t')[1].split('  ')) == 2 for line in lines)
    assert 'Unable to register' not in r.stderr and 'tagged 2 file(s)' in r.stderr
    assert len(json.loads((tmp_path / 't.jsonl').read_text().splitlines()[0])['tags']) == 6
    assert sorted(p.name for p in (tmp_path / 'grams').iterdir()) == ['a.mp3.taggram.png', 'b.wav.taggram.png']


def test_exit_codes(run_dir, songs, tmp_path, capsys, monkeypatch, request):
    a = str(songs / 'a.mp3')
    assert tag_main(['--run', str(run_dir), a, '-q']) == 0
    (tmp_path / 'empty.mp3').write_bytes(b'')
    assert tag_main(['--run', str(run_dir), a, str(tmp_path / 'empty.mp3')]) == 1       # one file skipped
    assert 'skipped' in capsys.readouterr().err
    locked = write_wav(tmp_path / 'locked.wav', music_like(4.0, 16000), 16000)
    deny_read(locked, monkeypatch, request)
    assert tag_main(['--run', str(run_dir), a, str(locked)]) == 1
    assert f'skipped {locked}: permission-denied' in capsys.readouterr().err
    (tmp_path / 'nothing').mkdir()
    assert tag_main(['--run', str(run_dir), str(tmp_path / 'nothing')]) == 1            # nothing to tag
    assert 'nothing to tag' in capsys.readouterr().err
    assert tag_main(['--run', str(run_dir), a, '--window-seconds', '5']) == 2           # bad argument
    assert 'fixed windows' in capsys.readouterr().err
    assert tag_main(['--run', str(run_dir), str(tmp_path / 'nope.mp3')], prog='musetag tag') == 2
    assert 'musetag tag: error: no such file or folder' in capsys.readouterr().err


def test_model_name_uses_the_pretrained_cache(run_dir, songs, monkeypatch, capsys):
    import modeling.pretrained as mp
    asked = []
    monkeypatch.setattr(mp, 'cached_run', lambda name, *, cache_dir=None: asked.append(name) or Path(run_dir),
                        raising=False)
    assert tag_main(['--model', 'MSD_musicnn', str(songs / 'b.wav'), '--top', '1']) == 0
    assert asked == ['MSD_musicnn'] and str(songs / 'b.wav') in capsys.readouterr().out


@pytest.mark.slow
def test_model_name_end_to_end(songs, tmp_path):
    import modeling.pretrained as mp
    if not hasattr(mp, 'cached_run'):
        pytest.skip('modeling.pretrained.cached_run (import of a published model on first use) is not written yet')
    env_home = {'MUSETAG_CACHE': str(tmp_path / 'cache')}      # an empty cache: the first run imports
    for _ in range(2):          # the first run imports the model into the cache, the second reuses it
        r = subprocess.run([sys.executable, '-m', 'musetag', 'tag', '--model', 'MSD_musicnn', str(songs / 'a.mp3')],
                           capture_output=True, text=True, cwd=REPO, timeout=900,
                           env=dict(os.environ, PYTHONPATH=str(REPO), **env_home))
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.startswith(str(songs / 'a.mp3') + '\t')
        assert (tmp_path / 'cache' / 'pretrained' / 'msd_musicnn' / 'model.keras').is_file()
    r = subprocess.run([sys.executable, '-m', 'musetag', 'tag', '--model', 'NO_such_model', str(songs / 'a.mp3')],
                       capture_output=True, text=True, cwd=REPO, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(REPO), **env_home))
    assert r.returncode == 2 and 'MSD_musicnn' in r.stderr


# --------------------------------------------------------------------------------------------------
# the old command line: python -m evaluation.test_model
# --------------------------------------------------------------------------------------------------
def test_old_command_tags_with_paths(run_dir, songs, tmp_path):
    png = tmp_path / 'one.png'
    r = _run('--run', run_dir, songs / 'a.mp3', '--top', '2', '--hop-seconds', '1.5', '--taggram', png,
             '--json', tmp_path / 'o.jsonl', module='evaluation.test_model')
    assert r.returncode == 0, r.stderr[-2000:]
    line = [line for line in r.stdout.splitlines() if 'a.mp3' in line][0]
    assert len(line.split('\t')[1].split('  ')) == 2
    assert png.read_bytes()[:4] == b'\x89PNG'
    doc = json.loads((tmp_path / 'o.jsonl').read_text())
    assert doc['n_windows'] == 5                          # 8 s, 3 s windows every 1.5 s (+ end-aligned)


def test_old_command_exit_codes_and_errors(run_dir, songs, tmp_path, capsys):
    (tmp_path / 'empty.mp3').write_bytes(b'')
    assert tm.main(['--run', str(run_dir), str(tmp_path / 'empty.mp3')]) == 1
    assert 'empty' in capsys.readouterr().err
    assert tm.main(['--run', str(run_dir), str(songs / 'a.mp3'), '--window-seconds', '5']) == 2
    assert 'fixed windows' in capsys.readouterr().err
    assert tm.main(['--run', str(tmp_path / 'no_such_run'), str(songs / 'a.mp3')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    assert tm.main(['--run', str(run_dir), '--top', '3']) == 2          # --top without PATHs
    assert 'tagging mode' in capsys.readouterr().err
    assert tm.main(['--run', str(run_dir), '--csv', 'x.csv']) == 2
    assert '--csv needs audio PATHs' in capsys.readouterr().err
    # evaluation mode of a run whose config names no dataset and no --tfrecords
    assert tm.main(['--run', str(run_dir), '--out', str(tmp_path / 'ev')]) == 2
    assert '--tfrecords' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tm.main(['--run', str(run_dir), 'x.mp3', '--top', '3', '--threshold', '0.2'])
    # the functions it used to hold are still importable from it
    from evaluation.evaluate import evaluate_run
    from evaluation.tagging import tag_paths
    assert tm.evaluate_run is evaluate_run and tm.predict_paths is tag_paths
