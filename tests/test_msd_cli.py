"""The ``msd`` command line: fast help without the numeric stack, help text everywhere, the shared
meaning of -q/-v, the ``prog`` of ``musetag msd``, exit codes for a locked output."""
import argparse
import json
import subprocess
import sys

import pytest

from core.locks import OutputLock
from msd.__main__ import main, make_parser
from tests._audio_fixtures import encode_mp3, tone
from tests._msd_fixtures import msd_env, run_msd, write_file

SUBCOMMANDS = ('scan', 'silence', 'build', 'clean-tags', 'all', 'cooccurrence')
HEAVY = ('pandas', 'librosa', 'h5py', 'scipy', 'matplotlib', 'tensorflow')

HELP_PROBE = """
import json, sys
from msd.__main__ import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(json.dumps({'code': code, 'heavy': [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)


@pytest.mark.parametrize('sub', ('',) + SUBCOMMANDS)
def test_help_does_not_import_the_numeric_stack(sub):
    args = [sub, '--help'] if sub else ['--help']
    p = subprocess.run([sys.executable, '-c', HELP_PROBE, *args], env=msd_env(), capture_output=True, text=True,
                       timeout=120)
    info = json.loads(p.stdout.strip().splitlines()[-1])
    assert info == {'code': 0, 'heavy': []}, p.stderr
    assert 'usage: python -m msd' in p.stdout


def test_every_option_has_help_text():
    parser = make_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(SUBCOMMANDS)
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, (name, action.option_strings)


def test_prog_names_the_musetag_command(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(['scan', '--root', str(tmp_path / 'missing'), '--out', str(tmp_path / 's.csv')], prog='musetag msd')
    assert e.value.code == 2
    assert 'musetag msd scan: error: argument --root' in capsys.readouterr().err
    (tmp_path / 'audio').mkdir()
    (tmp_path / 's.csv').write_text('taken')
    code = main(['scan', '--root', str(tmp_path / 'audio'), '--out', str(tmp_path / 's.csv')], prog='musetag msd')
    assert code == 2
    assert capsys.readouterr().err.startswith('musetag msd scan: error: ')


@pytest.fixture()
def small_tree(tmp_path):
    root = tmp_path / 'audio'
    mp3 = encode_mp3(tone(1.0, 22050), 22050, bitrate=64)
    for i in range(3):
        write_file(root / str(i) / f'{1000000 + i}.clip.mp3', mp3)
    return root


def test_quiet_keeps_the_summary_and_verbose_adds_debug(small_tree, tmp_path):
    normal = run_msd('scan', '--root', small_tree, '--out', tmp_path / 'a.csv', '--workers', '1')
    quiet = run_msd('scan', '--root', small_tree, '--out', tmp_path / 'b.csv', '--workers', '1', '-q')
    verbose = run_msd('scan', '--root', small_tree, '--out', tmp_path / 'c.csv', '--workers', '1', '-v')
    for p in (normal, quiet, verbose):
        assert p.stdout.startswith('scan: 3 audio files (ok 3)')
    assert quiet.stderr == ''                        # warnings only, no progress bar
    assert 'scan:' in normal.stderr                  # the progress bar
    assert 'DEBUG' in verbose.stderr and 'DEBUG' not in normal.stderr


def test_a_second_job_on_the_same_output_is_refused(small_tree, tmp_path):
    out = tmp_path / 'scan.csv'
    with OutputLock(out, command='the first scan'):
        p = run_msd('scan', '--root', small_tree, '--out', out, '--workers', '1', check=False)
    assert p.returncode == 3, p.stderr
    assert 'the first scan' in p.stderr and 'Traceback' not in p.stderr
    assert not out.exists() and not (tmp_path / 'scan.csv.partial').exists()
    run_msd('scan', '--root', small_tree, '--out', out, '--workers', '1')   # free again
    assert out.exists()
