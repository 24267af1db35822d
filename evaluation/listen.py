"""``musetag listen``: tag the microphone live, a rolling taggram in the terminal.

The input device is read with ``sounddevice`` (PortAudio; on Debian the library comes from the
``libportaudio2`` package, the wheel carries none on Linux) in blocking reads of ``--hop`` seconds,
16-bit, mono, at the model's sample rate when the device accepts it (else at the device's default
rate, resampled by :meth:`evaluation.tagger.Tagger.predict_array`). A ring buffer holds the last
window; once it is full, and then every hop, the window is tagged by the run's
:class:`~evaluation.tagger.Tagger` (the very code ``musetag tag`` runs) and the display is refreshed:
on a terminal the top ``--top`` tags with bars, redrawn in place; otherwise (a pipe, a file) one
plain line per refresh. ``--json-lines FILE`` also writes one JSON object per refresh
(``docs/export.md``). ``--duration`` stops after that many seconds of audio; Ctrl-C stops cleanly
(exit 130). A read that reports an input overflow (tagging slower than real time) is counted and
shown.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys

from core import files
from core.cli import HelpFormatter, add_verbosity, positive_float, positive_int, run_command
from core.errors import MuseTagError

__all__ = ['main', 'build_parser', 'Listener', 'bar_lines', 'plain_line', 'open_sounddevice', 'resolve_device']

log = logging.getLogger(__name__)

#: Samples of a 16-bit read -> float in [-1, 1).
_INT16_SCALE = 1.0 / 32768.0
_BAR_WIDTH = 30
_BLOCKS = ' ▏▎▍▌▋▊▉█'


# --------------------------------------------------------------------------------------------------
# Display
# --------------------------------------------------------------------------------------------------
def _bar(p: float, width: int = _BAR_WIDTH) -> str:
    """A horizontal bar of ``p`` in [0, 1] over ``width`` characters (eighth-block resolution)."""
    eighths = int(round(max(0.0, min(1.0, p)) * width * 8))
    full, part = divmod(eighths, 8)
    return ('█' * full + (_BLOCKS[part] if part else '')).ljust(width)


def bar_lines(tags: list, t: float) -> list:
    """Terminal lines of one refresh: a header at ``t`` seconds, then ``tag  bar  p`` per tag."""
    name_width = max([len(tag) for tag, _ in tags] + [8])
    return [f'{t:8.1f} s'] + [f'{tag:<{name_width}} {_bar(p)} {p:.3f}' for tag, p in tags]


def plain_line(tags: list, t: float) -> str:
    """One line per refresh when stdout is not a terminal: ``12.0s  rock 0.812  pop 0.554 …``."""
    return f'{t:.1f}s  ' + '  '.join(f'{tag} {p:.3f}' for tag, p in tags)


class _View:
    """Writes refreshes to ``out``: redrawn in place on a terminal, appended lines otherwise."""

    def __init__(self, out, tty: bool):
        self.out, self.tty = out, tty
        self._drawn = 0

    def show(self, tags: list, t: float) -> None:
        if not self.tty:
            print(plain_line(tags, t), file=self.out, flush=True)
            return
        lines = bar_lines(tags, t)
        up = f'\x1b[{self._drawn}F' if self._drawn else ''
        self.out.write(up + ''.join(f'\x1b[2K{line}\n' for line in lines))
        self.out.flush()
        self._drawn = len(lines)


# --------------------------------------------------------------------------------------------------
# The loop (independent of sounddevice: ``read`` is any blocking reader)
# --------------------------------------------------------------------------------------------------
class Listener:
    """Tag a live signal: a ring buffer of one window, refreshed every ``hop`` samples.

    Parameters
    ----------
    tagger : evaluation.tagger.Tagger
    rate : int
        Sample rate of the captured audio, Hz (resampled to ``tagger.sr`` when different).
    seconds : float or None
        Window length (None: the run's window).
    hop_seconds : float
        Seconds of new audio between refreshes.
    top : int
        Tags shown per refresh.
    """

    def __init__(self, tagger, rate: int, *, seconds=None, hop_seconds: float = 1.0, top: int = 5):
        import numpy as np
        self.tagger, self.rate, self.top, self.seconds = tagger, int(rate), int(top), seconds
        length, _ = tagger.window_units(seconds, None)             # checks a fixed-length model's window
        need = tagger.min_samples(length)                         # samples holding exactly one window
        self.window = int(math.ceil(need * self.rate / tagger.sr))
        self.hop = max(1, int(round(hop_seconds * self.rate)))
        self.ring = np.zeros(self.window, np.float32)
        self.captured = 0          # samples read so far
        self.overflows = 0
        self.refreshes = 0

    def push(self, block) -> None:
        """Append float32 [n] samples to the ring buffer."""
        import numpy as np
        block = np.asarray(block, np.float32)[-self.window:]
        n = block.shape[0]
        self.ring = np.concatenate([self.ring[n:], block])
        self.captured += n

    def tags(self) -> list:
        """Top tags of the ring buffer's window, ``[(tag, p), …]``."""
        result = self.tagger.predict_array(self.ring, self.rate, window_seconds=self.seconds)
        return result.top(self.top)

    def run(self, read, on_refresh, duration=None) -> None:
        """Read blocks of ``hop`` samples with ``read(n) -> (float32 [n], overflowed)`` and call
        ``on_refresh(tags, t_seconds, overflowed)`` once the ring is full and then after every hop;
        stop after ``duration`` seconds of audio (None: until interrupted)."""
        limit = None if duration is None else int(round(duration * self.rate))
        while limit is None or self.captured < limit:
            n = self.hop if limit is None else min(self.hop, limit - self.captured)
            block, overflowed = read(n)
            self.overflows += bool(overflowed)
            self.push(block)
            if self.captured >= self.window:
                self.refreshes += 1
                on_refresh(self.tags(), self.captured / self.rate, bool(overflowed))


# --------------------------------------------------------------------------------------------------
# sounddevice
# --------------------------------------------------------------------------------------------------
def open_sounddevice():
    """Import ``sounddevice``; a missing PortAudio library becomes a :class:`MuseTagError` naming the fix."""
    try:
        import sounddevice
    except OSError as e:          # sounddevice raises OSError('PortAudio library not found')
        raise MuseTagError(f'cannot use the microphone: {e}. sounddevice needs the PortAudio library: '
                           'on Debian/Ubuntu run "sudo apt-get install libportaudio2" (make sysdeps does)') from None
    except ImportError as e:
        raise MuseTagError(f'cannot use the microphone: {e} (pip install sounddevice)') from None
    return sounddevice


def _inputs_text(sd) -> str:
    rows = [f'  {i}: {d["name"]} ({d["max_input_channels"]} in, default {d["default_samplerate"]:g} Hz)'
            for i, d in enumerate(sd.query_devices()) if d['max_input_channels'] > 0]
    return '\n'.join(rows) if rows else '  (none)'


def resolve_device(sd, device):
    """The input device to use: ``(index or name, info dict)``.

    ``device`` None: the system default input. Raises :class:`MuseTagError` listing the input
    devices when there is no input device or ``device`` is unknown or has no input channel.
    """
    try:
        info = sd.query_devices(device, kind='input') if device is None else sd.query_devices(device)
    except (ValueError, sd.PortAudioError) as e:
        what = 'no default input device' if device is None else f'no input device {device!r}'
        raise MuseTagError(f'{what} ({e}); input devices:\n{_inputs_text(sd)}\n'
                           'choose one with --device N (musetag listen --list-devices)') from None
    if info['max_input_channels'] < 1:
        raise MuseTagError(f'device {device!r} ({info["name"]}) has no input channel; input devices:\n'
                           f'{_inputs_text(sd)}')
    return device, info


def _open_stream(sd, device, rate: int, info):
    """A 16-bit mono input stream at ``rate``, else at the device's default rate; returns (stream, rate)."""
    try:
        return sd.InputStream(device=device, samplerate=rate, channels=1, dtype='int16'), rate
    except sd.PortAudioError as e:
        fallback = int(info['default_samplerate'])
        if fallback == rate:
            raise MuseTagError(f'cannot open {info["name"]} at {rate} Hz: {e}') from None
        log.info('%s does not record at %d Hz (%s): recording at %d Hz and resampling', info['name'], rate, e,
                 fallback)
        return sd.InputStream(device=device, samplerate=fallback, channels=1, dtype='int16'), fallback


def _reader(stream):
    """``read(n) -> (float32 [n], overflowed)`` from a started 16-bit mono stream."""
    import numpy as np

    def read(n):
        data, overflowed = stream.read(n)
        return data[:, 0].astype(np.float32) * np.float32(_INT16_SCALE), overflowed
    return read


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def build_parser(prog=None) -> argparse.ArgumentParser:
    """The ``musetag listen`` parser."""
    p = argparse.ArgumentParser(
        prog=prog or 'python -m evaluation.listen', formatter_class=HelpFormatter,
        description='Tag the microphone live: the top tags of the last window, refreshed every hop '
                    '(bars on a terminal, plain lines otherwise). Ctrl-C stops (exit 130).')
    run = p.add_mutually_exclusive_group()          # not required: --list-devices needs no model
    run.add_argument('--run', default=None, metavar='RUN', help='run directory (a training run or an imported model)')
    run.add_argument('--run-dir', dest='run', help=argparse.SUPPRESS)
    run.add_argument('--model', default=None, metavar='NAME',
                     help='a published model (e.g. MSD_musicnn), imported on first use into the user cache')
    p.add_argument('--checkpoint', default=None, help="weights: 'best', 'last' or a checkpoint path")
    p.add_argument('--device', default=None,
                   help='input device: number or name (see --list-devices; default: the system default)')
    p.add_argument('--list-devices', action='store_true', help='list the input devices and exit')
    p.add_argument('--seconds', type=positive_float, default=None,
                   help='window tagged at each refresh, seconds (default: the model\'s window)')
    p.add_argument('--hop', type=positive_float, default=1.0, help='seconds of new audio between refreshes')
    p.add_argument('--top', type=positive_int, default=5, help='tags shown per refresh')
    p.add_argument('--duration', type=positive_float, default=None,
                   help='stop after this many seconds of audio (default: until Ctrl-C)')
    p.add_argument('--json-lines', default=None, metavar='FILE',
                   help='also write one JSON object per refresh to FILE ("-": stdout, instead of the display)')
    p.add_argument('--overwrite', action='store_true', help='replace an existing --json-lines FILE')
    add_verbosity(p, progress=False)
    return p


def _device_arg(text):
    """``--device``: an integer index, else a name (substring, as sounddevice matches it)."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _json_record(tags, t, overflowed, listener) -> str:
    return json.dumps({'t': round(t, 3), 'window_seconds': round(listener.window / listener.rate, 4),
                       'tags': [[tag, round(p, 6)] for tag, p in tags], 'overflow': overflowed})


def _body(args) -> int:
    if args.list_devices:
        print(_inputs_text(open_sounddevice()))
        return 0
    if args.json_lines not in (None, '-'):
        files.check_output(args.json_lines, args.overwrite)
    sd = open_sounddevice()
    device, info = resolve_device(sd, _device_arg(args.device))
    from core.logs import import_tensorflow
    import_tensorflow()
    from modeling.pretrained import run_or_model

    from .tagger import Tagger
    tagger = Tagger.from_run(run_or_model(args.run, args.model), args.checkpoint)
    stream, rate = _open_stream(sd, device, tagger.sr, info)
    listener = Listener(tagger, rate, seconds=args.seconds, hop_seconds=args.hop, top=args.top)
    to_stdout = args.json_lines == '-'
    view = None if to_stdout else _View(sys.stdout, sys.stdout.isatty())
    sink = None if args.json_lines in (None, '-') else open(args.json_lines, 'w', encoding='utf-8')  # noqa: SIM115
    print(f'listening on {info["name"]} at {rate} Hz: window {listener.window / rate:.2f} s, '
          f'refresh every {listener.hop / rate:.2f} s (Ctrl-C stops)', file=sys.stderr)

    def refresh(tags, t, overflowed):
        if view is not None:
            view.show(tags, t)
        if sink is not None or to_stdout:
            print(_json_record(tags, t, overflowed, listener), file=sink or sys.stdout, flush=True)

    try:
        with stream:
            listener.run(_reader(stream), refresh, args.duration)
    finally:
        if sink is not None:
            sink.close()
        print(f'listened to {listener.captured / rate:.1f} s: {listener.refreshes} refreshes, '
              f'{listener.overflows} input overflows', file=sys.stderr)
    return 0


def main(argv=None, prog=None) -> int:
    """``musetag listen``: see :func:`build_parser`. Returns the exit code."""
    prog = prog or 'python -m evaluation.listen'
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if not args.list_devices and args.run is None and args.model is None:
        parser.error('one of the arguments --run --model is required (or --list-devices)')
    return run_command(_body, args, prog)


if __name__ == '__main__':
    sys.exit(main())
