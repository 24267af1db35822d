"""What every MuseTag command line shares: argument types, common flags, and running a command.

Flag names mean the same thing in every command (``docs/cli.md``):

==================  ===========================================================================
``--run RUN``       a run directory (training run or imported model)
``--out PATH``      the output of the command
``--overwrite``     replace an existing output (otherwise an existing output is an error)
``--tags DB``       a clean tag database (``msd clean-tags``); the raw Last.fm DB is ``--lastfm``
``--set K=V``       override one setting (repeatable); ``V`` is parsed as JSON, else kept as text
``--workers N``     worker processes
``-q/--quiet``      warnings only, no progress bars
``-v/--verbose``    debug logging
``--no-progress``   no progress bars, normal logging
==================  ===========================================================================

:func:`run_command` runs a command body and turns the exceptions users cause into one line on
stderr and the documented exit code (:mod:`core.errors`), never a traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys

from .errors import EXIT_INTERRUPTED, MuseTagError, exit_code, is_user_error
from .logs import setup_logging

__all__ = ['add_run_options', 'check_inputs_exist', 'escape', 'positive_int', 'nonneg_int', 'positive_float',
           'finite_float', 'existing_file', 'existing_dir', 'existing_path', 'key_value', 'parse_overrides',
           'add_verbosity', 'verbosity', 'show_progress', 'run_command', 'dispatch', 'exit_with', 'HelpFormatter']

log = logging.getLogger(__name__)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default (``(default: …)``) and keeps descriptions as written."""

    def _get_help_string(self, action):
        text = action.help or ''
        no_default = (action.default is None or action.default is False or action.default is argparse.SUPPRESS
                      or action.default == [] or action.nargs == 0)      # switches and -q/-v counts
        if no_default or '%(default)' in text or 'default' in text:
            return text
        return super()._get_help_string(action)


def _number(text, kind):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected {"an integer" if kind is int else "a number"}, '
                                         f'got {text!r}') from None


def positive_int(text) -> int:
    v = _number(text, int)
    if v < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {v}')
    return v


def nonneg_int(text) -> int:
    v = _number(text, int)
    if v < 0:
        raise argparse.ArgumentTypeError(f'must be >= 0, got {v}')
    return v


def finite_float(text) -> float:
    v = _number(text, float)
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f'must be a finite number, got {text}')
    return v


def positive_float(text) -> float:
    v = finite_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {text}')
    return v


def existing_file(text) -> str:
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f'{text}: no such file' if not os.path.exists(text)
                                         else f'{text}: not a file')
    return text


def existing_dir(text) -> str:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f'{text}: no such directory' if not os.path.exists(text)
                                         else f'{text}: not a directory')
    return text


def existing_path(text) -> str:
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f'{text}: no such file or directory')
    return text


def key_value(text) -> tuple:
    """``--set`` item ``KEY=VALUE`` → ``(KEY, value)``; VALUE is JSON if it parses, else a string."""
    key, sep, raw = text.partition('=')
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE, got {text!r}')
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def parse_overrides(items) -> dict:
    """``--set`` items (``(key, value)`` pairs, or legacy JSON-object strings) → one dict."""
    out = {}
    for item in items or ():
        if isinstance(item, tuple):
            out[item[0]] = item[1]
            continue
        try:
            value = json.loads(item)
        except ValueError:
            raise MuseTagError(f'--set {item!r}: expected KEY=VALUE') from None
        if not isinstance(value, dict):
            raise MuseTagError(f'--set {item!r}: expected KEY=VALUE')
        out.update(value)
    return out


_ESCAPES = {'\\': '\\\\', '\n': '\\n', '\t': '\\t', '\r': '\\r'}


def escape(text: str) -> str:
    """``text`` on one line, unambiguously: backslash escapes for ``\\``, newline, tab, carriage
    return, other non-printable characters (``\\xNN``, ``\\uNNNN``) and bytes of a file name that are
    not UTF-8 (``\\xNN``: Python decodes them to lone surrogates)."""
    if text.isprintable() and '\\' not in text:
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:                 # an undecodable byte (surrogateescape)
            out.append(f'\\x{code - 0xDC00:02x}')
        elif not ch.isprintable():
            out.append(f'\\x{code:02x}' if code < 0x100 else f'\\u{code:04x}')
        else:
            out.append(ch)
    return ''.join(out)


def check_inputs_exist(paths) -> None:
    """A :class:`MuseTagError` naming the first three of ``paths`` that do not exist (escaped), if any."""
    missing = [str(p) for p in paths if not os.path.lexists(p)]
    if missing:
        more = f' (and {len(missing) - 3} more)' if len(missing) > 3 else ''
        raise MuseTagError(f'no such file or folder: {", ".join(map(escape, missing[:3]))}{more}')


def add_run_options(parser, *, model: bool = True) -> None:
    """``--run RUN`` (old spelling ``--run-dir`` hidden) and, with ``model``, ``--model NAME`` instead.

    With ``model`` the two are a required mutually exclusive group: a run directory, or a published
    model imported on first use into the user cache (the command resolves it).
    """
    run_help = 'run directory (a training run or an imported model)'
    if not model:
        parser.add_argument('--run', '--run-dir', dest='run', required=True, metavar='RUN', help=run_help)
        return
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--run', default=None, metavar='RUN', help=run_help)
    group.add_argument('--run-dir', dest='run', help=argparse.SUPPRESS)
    group.add_argument('--model', default=None, metavar='NAME',
                       help='a published model (e.g. MSD_musicnn), imported on first use into the user cache')


def add_verbosity(parser, progress: bool = True) -> None:
    """``-q/--quiet``, ``-v/--verbose`` (and ``--no-progress``) with their documented meaning."""
    parser.add_argument('-q', '--quiet', action='count', default=0,
                        help='warnings only and no progress bars (the summary is still printed)')
    parser.add_argument('-v', '--verbose', action='count', default=0, help='debug logging')
    if progress:
        parser.add_argument('--no-progress', action='store_true', help='no progress bars')


def verbosity(args) -> int:
    return getattr(args, 'verbose', 0) - getattr(args, 'quiet', 0)


def show_progress(args) -> bool:
    return not (getattr(args, 'quiet', 0) or getattr(args, 'no_progress', False))


def run_command(body, args, prog: str) -> int:
    """Set up logging, run ``body(args)`` and map exceptions to the documented exit codes.

    ``body`` returns an exit code (None means 0). Errors the user can act on (:class:`MuseTagError`,
    ``FileNotFoundError``, ``FileExistsError``, ``ValueError``, a full disk) print
    ``<prog>: error: <message>``; Ctrl-C prints ``<prog>: interrupted``. Anything else is a bug and
    keeps its traceback.
    """
    setup_logging(verbosity(args))
    try:
        code = body(args)
        return 0 if code is None else int(code)
    except KeyboardInterrupt:
        print(f'{prog}: interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - user errors become one line; anything else re-raises
        if not is_user_error(e):
            raise
        print(f'{prog}: error: {e}', file=sys.stderr)
        return exit_code(e)


def dispatch(commands: dict, argv, prog: str) -> int:
    """A package's ``python -m PACKAGE COMMAND …``: hand ``argv`` to ``commands[COMMAND]``.

    ``commands``: command -> (module, function name), imported only when chosen (``--help`` stays
    light); the function is called as ``function(rest of argv, prog='PROG COMMAND')``. A missing or
    unknown command prints the usage line (exit 2; 0 for ``-h``/``--help``).
    """
    import importlib
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in commands:
        print(f'usage: {prog} {{{",".join(commands)}}} …  (see {prog} COMMAND --help)', file=sys.stderr)
        return 0 if argv[:1] in (['-h'], ['--help']) else 2
    module, func = commands[argv[0]]
    return getattr(importlib.import_module(module), func)(argv[1:], prog=f'{prog} {argv[0]}')


def exit_with(code) -> None:
    """End this process with exit code ``code`` (the ``__main__`` of every command, ``musetag``).

    An interrupted job (130) ends at once instead of through the interpreter's shutdown. Its work is
    safe by then: partial files were flushed, temporary files removed and locks released while the
    ``KeyboardInterrupt`` unwound, and the worker processes were stopped. The shutdown would still
    join every background thread of a stopped worker pool (the executor's manager thread, a queue's
    feeder thread), and one stuck on a pipe whose other end died would keep the process alive for
    ever (seen, rarely, after Ctrl-C of a parallel ``msd scan``).
    """
    code = 0 if code is None else code
    if code == EXIT_INTERRUPTED:
        logging.shutdown()                      # flush and close the log handlers
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)
