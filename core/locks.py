"""One writer per output: an advisory lock that names its holder.

Two jobs writing one output (two ``preprocessing write`` runs into one directory, two trainings
into one run directory) would mix their files. Each such job holds an :class:`OutputLock` on its
output for as long as it writes; a second job is refused at once with a message naming the first
(pid, host, command, start time) and exit code 3.

The lock is ``fcntl.flock`` on a small file *beside* the output (``.<name>.lock`` in the same
folder, so ``--overwrite`` may delete and recreate the output itself). The kernel drops a flock
when its process ends, however it ends: a lock file left by a job killed with ``kill -9`` is not
held by anyone, so the next job takes it over (and logs whose it was) instead of waiting forever
or asking the user to delete files. The holder's details written into the file are only for the
messages; the flock alone decides.

Limits: flock needs a local filesystem (or NFSv4, where Linux maps it to a POSIX lock). Outputs
given as URLs (``s3://``) cannot be locked; callers skip the lock there and say so.
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import json
import logging
import os
import shlex
import socket
import sys
import time

from .errors import EXIT_LOCKED, MuseTagError
from .files import file_mode

__all__ = ['OutputLock', 'LockedError', 'lock_path']

log = logging.getLogger(__name__)


class LockedError(MuseTagError):
    """The output is locked by another running job (exit code 3)."""

    exit_code = EXIT_LOCKED

    def __init__(self, target, holder: dict | None):
        self.target = str(target)
        self.holder = holder or {}
        h = self.holder
        who = (f"pid {h.get('pid', '?')} on {h.get('host', '?')}, started {h.get('started', '?')}: "
               f"{h.get('command', '?')}") if h else 'a process that has not yet written its details'
        super().__init__(f'{self.target} is being written by another job ({who}). Wait for it to '
                         'finish or stop it; a lock left by a killed job is taken over automatically.')


def lock_path(target, suffix: str = '') -> str:
    """The lock file of ``target``: ``.<name><suffix>.lock`` in the folder holding ``target``."""
    target = os.path.abspath(os.fspath(target)).rstrip(os.sep)
    folder, name = os.path.split(target)
    return os.path.join(folder, f'.{name}{suffix}.lock')


class OutputLock:
    """Exclusive lock on an output path (file or directory), held by this process.

    Parameters
    ----------
    target : path
        The output the job writes (it need not exist yet; its folder is created).
    suffix : str
        Distinguishes independent writers of one output, e.g. ``-host3`` for host 3 of a
        multi-host TFRecord write (hosts write disjoint shards).
    command : str, optional
        What to show a job that finds the lock held (default: this process's command line).

    Use as a context manager, or :meth:`acquire` / :meth:`release`.

    Raises
    ------
    LockedError
        From :meth:`acquire`, when another live process holds the lock.
    """

    def __init__(self, target, *, suffix: str = '', command: str | None = None):
        self.target = os.fspath(target)
        self.path = lock_path(self.target, suffix)
        self.command = command or shlex.join([os.path.basename(sys.argv[0] or 'python')] + sys.argv[1:])
        self._fd = None
        self.previous = None   # holder details of a stale lock taken over, if any

    # ------------------------------------------------------------------------------------------
    def acquire(self, wait: float = 0.0) -> 'OutputLock':
        """Take the lock; if another job holds it, wait up to ``wait`` seconds, then raise
        :class:`LockedError` (``wait=0``: at once)."""
        if self._fd is not None:
            return self
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        deadline = time.monotonic() + max(0.0, wait)
        told = False
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, file_mode())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_holder(fd)
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                if time.monotonic() >= deadline:
                    raise LockedError(self.target, holder) from None
                if not told:
                    log.info('%s: waiting for pid %s to finish writing it', self.target, (holder or {}).get('pid'))
                    told = True
                time.sleep(0.2)
                continue
            # the file may have been removed (released) between our open and our flock: then we
            # hold a lock on an orphan inode that nobody else can see; start again
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        holder = _read_holder(fd)
        if holder:
            self.previous = holder
            log.warning('%s: taking over a stale lock of pid %s on %s (%s), which is no longer running',
                        self.target, holder.get('pid'), holder.get('host'), holder.get('command'))
        info = {'pid': os.getpid(), 'host': socket.gethostname(), 'command': self.command,
                'started': datetime.datetime.now().astimezone().isoformat(timespec='seconds')}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + '\n').encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)   # while still holding it: a waiting opener then retries
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> 'OutputLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):  # pragma: no cover - a safety net; callers release explicitly
        if getattr(self, '_fd', None) is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass


def _read_holder(fd) -> dict | None:
    try:
        raw = os.pread(fd, 4096, 0)
    except OSError:
        return None
    if not raw.strip():
        return None
    try:
        value = json.loads(raw.decode('utf-8', 'replace'))
    except ValueError:
        return {'command': raw[:200].decode('utf-8', 'replace').strip()}
    return value if isinstance(value, dict) else None
