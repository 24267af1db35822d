"""The ``musetag`` command: one subcommand per stage, shared flag names, fast answers, help everywhere."""
from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from musetag.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]

#: Runs musetag in a fresh interpreter and reports, at exit, whether TensorFlow was imported.
_PROBE = ('import atexit, sys\n'
          'atexit.register(lambda: sys.stderr.write("\\nTF-IMPORTED\\n" if "tensorflow" in sys.modules else ""))\n'
          'from musetag.cli import main\n'
          'sys.exit(main(sys.argv[1:]))\n')


def _musetag(*args, cwd=ROOT):
    return subprocess.run([sys.executable, '-c', _PROBE, *map(str, args)], capture_output=True, text=True,
                          cwd=str(cwd))


def test_top_level_help_lists_every_command(capsys):
    assert main(['--help']) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert f'  {name} ' in out
    assert 'Exit codes' in out
    assert main([]) == 2                       # no command: usage, error status


def test_unknown_command_suggests_the_closest(capsys):
    assert main(['evalute']) == 2
    assert 'did you mean evaluate?' in capsys.readouterr().err


@pytest.mark.parametrize('command', list(COMMANDS))
def test_every_command_helps_without_tensorflow(command):
    proc = _musetag(command, '--help')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'usage: musetag {command}' in proc.stdout
    assert 'TF-IMPORTED' not in proc.stderr, f'musetag {command} --help imported TensorFlow'


def _parsers(command):
    """Every ArgumentParser a command builds for ``--help`` (subcommand parsers included)."""
    module, func, _ = COMMANDS[command]
    seen = []
    real = argparse.ArgumentParser.parse_args

    def capture(self, *a, **k):
        seen.append(self)
        return real(self, *a, **k)
    argparse.ArgumentParser.parse_args = capture
    try:
        with pytest.raises(SystemExit):
            getattr(importlib.import_module(module), func)(['--help'], prog=f'musetag {command}')
    finally:
        argparse.ArgumentParser.parse_args = real
    out, stack = [], list(seen)
    while stack:
        p = stack.pop()
        out.append(p)
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    return out


@pytest.mark.parametrize('command', list(COMMANDS))
def test_every_option_has_help_text(command, capsys):
    missing = []
    for parser in _parsers(command):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if action.help is None or (action.help != argparse.SUPPRESS and not action.help.strip()):
                missing.append(f'{parser.prog}: {"/".join(action.option_strings) or action.dest}')
    capsys.readouterr()
    assert not missing, 'options without help text:\n' + '\n'.join(missing)


def test_run_directory_flag_is_called_run_everywhere(capsys):
    """Every command that takes a run directory calls it --run; training's older --run-dir still works."""
    for cmd in ('train', 'lr-find', 'evaluate', 'tag'):
        flags = {s for p in _parsers(cmd) for a in p._actions for s in a.option_strings}
        assert '--run' in flags, cmd
    assert '--run-dir' in {s for p in _parsers('train') for a in p._actions for s in a.option_strings}
    capsys.readouterr()


def test_a_missing_run_dir_fails_fast_without_tensorflow(tmp_path):
    song = tmp_path / 'song.wav'
    song.write_bytes(b'RIFF')
    proc = _musetag('tag', '--run', tmp_path / 'nope', song)
    assert proc.returncode == 2
    assert 'nope' in proc.stderr and 'does not exist' in proc.stderr
    assert 'TF-IMPORTED' not in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_dispatch_passes_the_prog_name(capsys):
    with pytest.raises(SystemExit) as info:
        main(['preprocess', 'no-such-subcommand'])
    assert info.value.code == 2
    assert 'musetag preprocess' in capsys.readouterr().err
