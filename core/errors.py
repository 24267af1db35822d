"""User-facing errors and the exit codes every MuseTag command uses.

==========  =======================================================================================
exit code   meaning
==========  =======================================================================================
0           done; every input was processed
1           done, but some inputs were skipped (each one is reported with its reason), or the job
            failed for a reason that is not the user's input (e.g. a non-finite training loss)
2           bad arguments, configuration or input (the message names the problem); nothing written
3           the output is locked by another running job (the message names it); nothing written
4           no space left on the device; partial files were removed, finished work is kept and
            the same command resumes it once space is freed
130         interrupted (Ctrl-C or SIGTERM); resumable jobs keep their partial state
==========  =======================================================================================

The table is also in ``docs/cli.md``.
"""
from __future__ import annotations

import errno

__all__ = ['EXIT_OK', 'EXIT_PARTIAL', 'EXIT_USAGE', 'EXIT_LOCKED', 'EXIT_NO_SPACE', 'EXIT_INTERRUPTED',
           'MuseTagError', 'OutputExistsError', 'NoSpaceError', 'is_no_space', 'is_user_error', 'exit_code']

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_NO_SPACE = 4
EXIT_INTERRUPTED = 130


class MuseTagError(Exception):
    """A problem the user can fix (bad argument, unreadable input, existing output).

    Commands print the message, without a traceback, and exit with :attr:`exit_code`.
    """

    exit_code = EXIT_USAGE


class OutputExistsError(MuseTagError, FileExistsError):
    """An output exists and replacing it was not asked for (``--overwrite``)."""


class NoSpaceError(MuseTagError, OSError):
    """The device holding an output is full. Partial files have been removed."""

    exit_code = EXIT_NO_SPACE

    def __init__(self, message: str):
        MuseTagError.__init__(self, message)
        self.errno = errno.ENOSPC


_NO_SPACE_TEXT = ('no space left on device', 'disk quota exceeded', 'file too large')


def is_no_space(exc: BaseException) -> bool:
    """True if ``exc`` (an ``OSError``, or a TensorFlow error wrapping one) means the disk is full.

    TensorFlow reports a failed write as ``tf.errors.ResourceExhaustedError`` / ``UnknownError`` /
    ``InternalError`` with the C library's text, so the message is checked as well as ``errno``.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, NoSpaceError):
            return True
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return True
        if any(t in str(exc).lower() for t in _NO_SPACE_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def exit_code(exc: BaseException) -> int:
    """The documented exit code for an exception that ends a command."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if is_no_space(exc):
        return EXIT_NO_SPACE
    if hasattr(exc, 'exit_code'):
        return int(exc.exit_code)
    if is_user_error(exc):
        return EXIT_USAGE
    return EXIT_PARTIAL


def is_user_error(exc: BaseException) -> bool:
    """True for errors a command reports in one line (no traceback): the user's input or a full disk."""
    return isinstance(exc, (MuseTagError, FileNotFoundError, FileExistsError, PermissionError,
                            NotADirectoryError, IsADirectoryError, ValueError)) or is_no_space(exc)
