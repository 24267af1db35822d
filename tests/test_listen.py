"""``musetag listen``: live tags from a file-backed virtual ALSA microphone, and its errors.

The microphone is ALSA's ``file`` plugin reading a raw 16-bit clip (an ``.asoundrc`` in a temporary
``HOME``): PortAudio then delivers exactly the clip's samples, so each refresh must name the tags
:class:`Tagger` gives the same window of the clip.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from core.errors import MuseTagError
from evaluation.listen import Listener, bar_lines, plain_line, resolve_device
from evaluation.tagger import Tagger

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _evaluation_fixtures import make_run_dir  # noqa: E402
from _modeling_fixtures import synth_music  # noqa: E402

TOP = 3
_ASOUNDRC = '''pcm.filemic {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{raw}"
    format "raw"
}}
pcm.!default {{
    type asym
    playback.pcm "null"
    capture.pcm "plug:filemic"
}}
'''
#: Runs listen with its reader raising KeyboardInterrupt (Ctrl-C) at the third read.
_INTERRUPTED = r'''
import sys
import evaluation.listen as listen
real = listen._reader
def reader(stream):
    read, calls = real(stream), []
    def interrupting(n):
        calls.append(n)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return read(n)
    return interrupting
listen._reader = reader
sys.exit(listen.main(sys.argv[1:]))
'''


@pytest.fixture(scope='module')
def mic(tmp_path_factory):
    """(run, clip float32 as the microphone delivers it, HOME with the virtual microphone)."""
    root = tmp_path_factory.mktemp('listen')
    run = make_run_dir(root / 'run', kind='log-mel')
    clip = synth_music(8.0, 16000, seed=3).mean(axis=1)
    pcm = np.round(clip * 32767).astype('<i2')
    pcm.tofile(root / 'mic.raw')
    home = root / 'home'
    home.mkdir()
    (home / '.asoundrc').write_text(_ASOUNDRC.format(raw=root / 'mic.raw'))
    return run, pcm.astype(np.float32) / 32768.0, home


def _listen(home, *args, script=None, cwd=None):
    env = {**os.environ, 'HOME': str(home), 'TF_CPP_MIN_LOG_LEVEL': '2'}
    cmd = [sys.executable, '-c', script, *args] if script else [sys.executable, '-m', 'evaluation.listen', *args]
    return subprocess.run(cmd, env=env, cwd=cwd or str(ROOT), capture_output=True, text=True, timeout=300)


def _expected(run, clip, ends_s, window):
    tagger = Tagger.from_run(run)
    out = []
    for t in ends_s:
        end = int(round(t * 16000))
        out.append(tagger.predict_array(clip[end - window:end], 16000).top(TOP))
    return out


def test_listen_names_the_tags_of_the_clip_from_a_virtual_microphone(mic, tmp_path):
    run, clip, home = mic
    lines = tmp_path / 'live.jsonl'
    proc = _listen(home, '--run', str(run), '--duration', '5', '--hop', '1', '--top', str(TOP),
                   '--json-lines', str(lines))
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(x) for x in lines.read_text().splitlines()]
    window = Listener(Tagger.from_run(run), 16000).window
    assert window == 47616                         # exactly one 187-frame window, not more
    assert [r['t'] for r in records] == [3.0, 4.0, 5.0]
    for rec, want in zip(records, _expected(run, clip, [3.0, 4.0, 5.0], window)):
        assert [t for t, _ in rec['tags']] == [t for t, _ in want]
        np.testing.assert_allclose([p for _, p in rec['tags']], [p for _, p in want], atol=1e-5)
    # stdout is a pipe: one plain line per refresh, naming the same tags
    shown = proc.stdout.splitlines()
    assert len(shown) == 3 and shown[0].startswith('3.0s') and all(t in shown[0] for t, _ in records[0]['tags'])
    assert 'listened to 5.0 s: 3 refreshes' in proc.stderr


def test_ctrl_c_stops_cleanly_with_exit_130(mic, tmp_path):
    run, _clip, home = mic
    lines = tmp_path / 'live.jsonl'
    proc = _listen(home, '--run', str(run), '--hop', '1.5', '--json-lines', str(lines), script=_INTERRUPTED)
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert 'interrupted' in proc.stderr and 'Traceback' not in proc.stderr
    # two reads of 1.5 s: 3.0 s captured, one refresh written before the interrupt
    assert [json.loads(x)['t'] for x in lines.read_text().splitlines()] == [3.0]


def test_list_devices_and_a_bad_device(mic):
    run, _clip, home = mic
    proc = _listen(home, '--list-devices')
    assert proc.returncode == 0 and 'filemic' in proc.stdout
    proc = _listen(home, '--run', str(run), '--device', '99', '--duration', '1')
    assert proc.returncode == 2
    assert 'no input device 99' in proc.stderr and 'filemic' in proc.stderr and 'Traceback' not in proc.stderr


def test_missing_portaudio_names_the_debian_package(mic, tmp_path):
    run, _clip, home = mic
    fake = tmp_path / 'fake'
    fake.mkdir()
    (fake / 'sounddevice.py').write_text("raise OSError('PortAudio library not found')\n")
    env = {**os.environ, 'HOME': str(home), 'PYTHONPATH': str(fake)}
    proc = subprocess.run([sys.executable, '-m', 'evaluation.listen', '--run', str(run)], env=env, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert 'libportaudio2' in proc.stderr and 'Traceback' not in proc.stderr


def test_no_input_device_is_a_clear_error():
    class PortAudioError(Exception):
        pass

    def query_devices(device=None, kind=None):
        if device is None and kind is None:
            return [{'name': 'speakers', 'max_input_channels': 0, 'default_samplerate': 48000.0}]
        if device == 0:
            return {'name': 'speakers', 'max_input_channels': 0, 'default_samplerate': 48000.0}
        raise PortAudioError('Error querying device -1')

    sd = types.SimpleNamespace(query_devices=query_devices, PortAudioError=PortAudioError)
    with pytest.raises(MuseTagError, match='no default input device'):
        resolve_device(sd, None)
    with pytest.raises(MuseTagError, match='has no input channel'):
        resolve_device(sd, 0)


def test_listener_ring_buffer_matches_tagger_windows(mic):
    run, clip, _home = mic
    tagger = Tagger.from_run(run)
    listener = Listener(tagger, 16000, hop_seconds=0.5, top=TOP)
    pos = [0]

    def read(n):
        block = clip[pos[0]:pos[0] + n]
        pos[0] += n
        return block, False

    seen = []
    listener.run(read, lambda tags, t, _o: seen.append((t, tags)), duration=4.0)
    assert [t for t, _ in seen] == [3.0, 3.5, 4.0]
    for (_t, tags), want in zip(seen, _expected(run, clip, [t for t, _ in seen], listener.window)):
        assert tags == want


def test_display_lines():
    tags = [('rock', 0.5), ('female vocalists', 1.0)]
    lines = bar_lines(tags, 12.0)
    assert lines[0].strip() == '12.0 s' and len(lines) == 3
    assert lines[2].startswith('female vocalists') and lines[2].endswith('1.000') and '█' * 30 in lines[2]
    assert '█' * 15 in lines[1] and '█' * 16 not in lines[1]
    assert plain_line(tags, 3.0) == '3.0s  rock 0.500  female vocalists 1.000'
