"""Worker processes that end when the job that started them dies.

A pool's workers normally notice a dead parent only when they next talk to it, which an idle or
busy worker may not do for minutes (``kill -9`` of ``msd scan --workers 2`` left both workers
running). :func:`exit_with_parent` is called in every worker at start-up (a pool initializer):

* on Linux it asks the kernel for ``SIGKILL`` when the parent exits (``prctl(PR_SET_PDEATHSIG)``),
  which covers workers forked straight from the job;
* a daemon thread also checks every ``interval`` seconds that the job's process (``owner``, which
  may be a grandparent when a forkserver sits in between) is still alive, and ends the worker
  with ``os._exit`` when it is not.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

__all__ = ['exit_with_parent', 'pid_alive']

_PR_SET_PDEATHSIG = 1


def pid_alive(pid: int) -> bool:
    """True if process ``pid`` exists (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii', errors='replace') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError):
        return True


def _watch(owner: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if not pid_alive(owner) or os.getppid() == 1:
            os._exit(1)


def exit_with_parent(owner: int | None = None, interval: float = 1.0) -> None:
    """Make this (worker) process end when its parent, or the process ``owner``, dies.

    Parameters
    ----------
    owner : int, optional
        Pid of the job that owns the pool (default: the parent). Pass the job's pid when workers
        are started through a forkserver, whose death alone would not be noticed quickly.
    interval : float
        Seconds between liveness checks of ``owner``.
    """
    owner = os.getppid() if owner is None else int(owner)
    if sys.platform.startswith('linux'):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no libc: the watcher still works
            pass
    if not pid_alive(owner):   # died before the request above took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(owner, interval), name='exit-with-parent', daemon=True).start()
