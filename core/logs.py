"""The one logging set-up of every MuseTag command, and TensorFlow imported without its noise.

Modules log with ``logging.getLogger(__name__)`` and never configure logging themselves; each
command calls :func:`setup_logging` once with its verbosity:

=========  ==========================  ======================================
flag       level of MuseTag's loggers  progress bars
=========  ==========================  ======================================
``-q``     WARNING                     off
(none)     INFO                        on (when stderr is a terminal or a log)
``-v``     DEBUG                       on
=========  ==========================  ======================================

Messages go to stderr as ``LEVEL name: message``; a command's own results go to stdout.
TensorFlow's and absl's Python loggers are set to WARNING (their INFO lines would drown a
command's own), and :func:`import_tensorflow` keeps the C++ start-up lines that TensorFlow prints
on every machine without a GPU (``Unable to register cuFFT factory…``, ``oneDNN custom
operations…``) away from the terminal, while any other line it prints still gets through.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import tempfile

__all__ = ['setup_logging', 'import_tensorflow', 'TF_NOISE', 'verbosity_level']

#: C++ lines TensorFlow 2.16 prints at import on machines without CUDA; they say nothing useful.
TF_NOISE = re.compile(
    r'Unable to register cu(FFT|DNN|BLAS) factory|oneDNN custom operations are on|'
    r'Could not find cuda drivers|TF-TRT Warning|This TensorFlow binary is optimized|'
    r'To enable the following instructions|rebuild TensorFlow with the appropriate compiler flags|'
    r'cpu_feature_guard|successful NUMA node read')

_HANDLER_NAME = 'musetag'


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each message (as ``logging.lastResort``
    does), so a replaced stderr (a notebook, a test's capture, a progress bar) never receives a
    message after it was closed."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):     # StreamHandler.__init__ sets it; the property always wins
        pass


def verbosity_level(verbosity: int) -> int:
    """``-q`` (−1 or less) → WARNING, default (0) → INFO, ``-v`` (1 or more) → DEBUG."""
    return logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO


def setup_logging(verbosity: int = 0) -> None:
    """Configure the root logger for a command (idempotent: a second call only changes the level).

    Parameters
    ----------
    verbosity : int
        ``verbose - quiet`` counts of the command line (see the module docstring).
    """
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None:
        handler = _StderrHandler()
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter('%(levelname)s %(name)s: %(message)s'))
        root.addHandler(handler)
    root.setLevel(verbosity_level(verbosity))
    for name in ('tensorflow', 'absl', 'h5py', 'numba', 'matplotlib', 'PIL'):
        logging.getLogger(name).setLevel(logging.WARNING if verbosity <= 0 else logging.INFO)


def import_tensorflow():
    """``import tensorflow`` with its C++ start-up noise filtered out of stderr; returns the module.

    The first import prints a few C++ log lines straight to file descriptor 2 (below Python's
    ``sys.stderr``). They are captured in a temporary file during the import and every line that
    is not :data:`TF_NOISE` is written back, so real errors are still seen.
    """
    if 'tensorflow' in sys.modules:
        return sys.modules['tensorflow']
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):   # stderr replaced (pytest capture, notebooks)
        import tensorflow
        return tensorflow
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), fd)
        try:
            import tensorflow
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode('utf-8', 'replace')
    kept = [line for line in text.splitlines() if line.strip() and not TF_NOISE.search(line)]
    if kept:
        sys.stderr.write('\n'.join(kept) + '\n')
    return tensorflow
