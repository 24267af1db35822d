"""Resumable, parallel row producer used by ``scan`` and ``silence``.

:func:`run_resumable` applies a per-item function to a stream of items (file paths) in a process pool
and streams one CSV row per item to ``<out>.partial``; when the stream is exhausted the partial file
is renamed to ``<out>``. Design points:

* **Bounded memory.** Items are read lazily from the input iterator and at most ``4 × workers``
  chunks are in flight (``multiprocessing.Pool.imap`` would read the whole input eagerly), so a
  million-file tree costs the same memory as a thousand-file one.
* **Ordered output.** Chunks are collected in submission order, so the output rows come in input
  order whatever the number of workers: runs with 1 and N workers give identical files.
* **Resume.** If ``<out>.partial`` exists (a run was interrupted or killed), its complete rows are
  kept (a torn last line is cut off), the first ``n`` items of the input are skipped after checking
  that the ``n``-th item is the last row's key, and work continues by appending. The finished file
  therefore has exactly the rows of an uninterrupted run. A partial file that does not match the
  input is an error (``restart=True`` / ``--restart`` discards it).
* **Never a traceback mid-run.** The per-item function is expected to turn bad input into a row
  with a ``status``/``reason``; an unexpected exception in it still becomes a row via ``error_row``.
* **One writer per output.** The run holds a :class:`core.locks.OutputLock` on ``<out>``: a second
  job on the same output is refused (exit code 3) instead of appending to the same partial file.
* **Workers end with the job.** Every worker calls :func:`core.procs.exit_with_parent` with the
  job's pid, so ``kill -9`` of the job does not leave its workers running.

Workers are started with ``fork`` when the parent has not imported TensorFlow (fast start, the CLI
case) and from a ``forkserver`` otherwise (forking a process with TensorFlow's threads can deadlock).
Before forking, the parent's heap is frozen (:func:`gc.freeze`), so the workers' garbage collections
never walk, nor copy-on-write, the objects they inherit; the parent unfreezes when the pool ends.
"""
from __future__ import annotations

import collections
import contextlib
import csv
import gc
import io
import logging
import multiprocessing as mp
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from tqdm import tqdm

from core.errors import NoSpaceError, OutputExistsError, is_no_space
from core.files import atomic_write_text, check_output, rename
from core.locks import OutputLock
from core.procs import exit_with_parent

from .common import CSV_QUOTING, MsdError, provenance_lines

log = logging.getLogger(__name__)


def _ignore_sigint():
    # Ctrl-C reaches every process of the foreground group; only the parent should react
    # (it terminates the pool and keeps the partial file). SIGTERM (sent by pool.terminate())
    # must just end the worker, whatever handler the parent installed before forking.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _clean_field(x):
    # one CSV row per line, always: the resume logic reads the partial file line by line
    return x.replace('\n', ' ').replace('\r', ' ') if isinstance(x, str) else x


def _work_chunk(fn, error_row, status_index, items):
    """Rows for ``items`` as CSV text (formatted here, in the worker, to keep the parent light).

    An exception of ``fn`` becomes ``error_row(item, message)``. Returns (text, statuses) with
    ``statuses`` a dict status -> rows (small to send back, whatever the chunk size).
    """
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=CSV_QUOTING, lineterminator='\n')
    statuses = collections.Counter()
    for item in items:
        try:
            row = fn(item)
        except Exception as e:  # noqa: BLE001 - a worker must never die on one bad item
            row = error_row(item, f'{type(e).__name__}: {e}')
        writer.writerow([_clean_field(x) for x in row])
        if status_index is not None:
            statuses[row[status_index]] += 1
    return buf.getvalue(), dict(statuses)


#: Modules a forkserver imports once for any pool (scan and silence workers), so a session that
#: runs several pools pays the librosa import once.
PRELOAD = ('msd.scan', 'msd.silence', 'mutagen.mp3', 'preprocessing.audio', 'librosa.effects',
           'librosa.feature')


def mp_context(preload=PRELOAD):
    """``fork`` if safe (TensorFlow not loaded here), else ``forkserver`` (else ``spawn``).

    The forkserver is a fresh interpreter that imports ``preload`` once; every pool afterwards forks
    from it, so heavy imports (librosa) are paid once per session instead of once per worker.
    """
    methods = mp.get_all_start_methods()
    if 'fork' in methods and 'tensorflow' not in sys.modules:
        return mp.get_context('fork')
    if 'forkserver' in methods:
        ctx = mp.get_context('forkserver')
        if preload:
            # only effective before the server starts (first pool of this process)
            ctx.set_forkserver_preload(list(preload))
        return ctx
    return mp.get_context('spawn')


def _parse_line(line: bytes, n_fields: int):
    """Fields of one complete CSV line, or None if it is torn or malformed."""
    if not line.endswith(b'\n'):
        return None
    try:
        rows = list(csv.reader(io.StringIO(line.decode('utf-8'))))
    except (UnicodeDecodeError, csv.Error):
        return None
    if len(rows) != 1 or len(rows[0]) != n_fields:
        return None
    return rows[0]


def _load_partial(partial, header_lines, columns, key_index, status_index):
    """Validate ``partial``; cut it after its last complete row.

    Returns (n_rows, last_key, Counter of statuses).
    """
    n_fields = len(columns)
    statuses = collections.Counter()
    n_rows, last_key = 0, None
    with open(partial, 'rb') as f:
        offset = 0
        # the comment lines that matter for consistency are the metadata ones (``# key=value``)
        expected_meta = [ln for ln in header_lines[1:]]
        meta_seen, header_ok = [], False
        good_end = 0
        for line in f:
            if not header_ok:
                if line.startswith(b'#'):
                    if not line.startswith(b'# musetag '):
                        meta_seen.append(line.decode('utf-8', 'replace').rstrip('\n'))
                    offset += len(line)
                    continue
                fields = _parse_line(line, n_fields)
                if fields != list(columns):
                    raise MsdError(f'{partial}: unexpected header {line[:200]!r}; '
                                   'pass --restart to discard this partial output')
                if meta_seen != expected_meta:
                    raise MsdError(f'{partial} was written with {meta_seen} but this run has '
                                   f'{expected_meta}; pass --restart to discard it')
                header_ok = True
                offset += len(line)
                good_end = offset
                continue
            fields = _parse_line(line, n_fields)
            if fields is None:
                break
            offset += len(line)
            good_end = offset
            n_rows += 1
            last_key = fields[key_index]
            if status_index is not None:
                statuses[fields[status_index]] += 1
    if not header_ok:
        return None
    if good_end < os.path.getsize(partial):
        log.info('%s: dropping a torn last line (interrupted write)', partial)
        with open(partial, 'r+b') as f:
            f.truncate(good_end)
    return n_rows, last_key, statuses


class RunResult:
    """Outcome of :func:`run_resumable`.

    Attributes
    ----------
    statuses : collections.Counter
        Rows per ``status`` value over the whole output (resumed + new).
    n_rows, n_resumed, n_new : int
        Rows in the output; rows kept from a partial file; rows computed by this run.
    seconds : float
        Wall time of this run.
    """

    def __init__(self, statuses, n_resumed, n_new, seconds):
        self.statuses = statuses
        self.n_resumed = n_resumed
        self.n_new = n_new
        self.n_rows = n_resumed + n_new
        self.seconds = seconds

    def __repr__(self):
        return (f'RunResult(rows={self.n_rows}, resumed={self.n_resumed}, new={self.n_new}, '
                f'statuses={dict(self.statuses)}, seconds={self.seconds:.2f})')


#: Test hook: ``N:PATH`` makes a job pause once at least ``N`` rows are in its partial file
#: (flushed): it writes the number of rows done to ``PATH.reached``, then waits until ``PATH``
#: exists. A test can then interrupt or kill the job at a known point instead of guessing with sleeps.
PAUSE_ENV = 'MUSETAG_TEST_PAUSE'


def _pause_hook():
    """``(rows, release_path)`` from :data:`PAUSE_ENV`, or None."""
    raw = os.environ.get(PAUSE_ENV)
    if not raw:
        return None
    n, sep, path = raw.partition(':')
    if not sep or not n.strip().isdigit() or not path:
        raise MsdError(f'{PAUSE_ENV}={raw!r}: expected ROWS:PATH')
    return int(n), path


class _RowSink:
    """The partial file, the progress bar and the counts of one run (rows arrive in input order)."""

    def __init__(self, f, bar, statuses, n_skip, flush_seconds):
        self.f, self.bar, self.statuses = f, bar, statuses
        self.n_skip, self.n_new = n_skip, 0
        self.flush_seconds = flush_seconds
        self.last_flush = time.monotonic()
        self.pause = _pause_hook()

    def add(self, n_items, result):
        text, chunk_statuses = result
        self.f.write(text)
        self.statuses.update(chunk_statuses)
        self.n_new += n_items
        self.bar.update(n_items)
        now = time.monotonic()
        if now - self.last_flush >= self.flush_seconds:
            self.f.flush()
            self.last_flush = now
        if self.pause is not None and self.n_skip + self.n_new >= self.pause[0]:
            self._wait_for_release()

    def _wait_for_release(self):
        _, release = self.pause
        self.pause = None
        self.f.flush()
        atomic_write_text(release + '.reached', f'{self.n_skip + self.n_new}\n')
        log.debug('test hook: paused after %d rows until %s exists', self.n_skip + self.n_new, release)
        while not os.path.exists(release):
            time.sleep(0.02)


def _chunks(items, chunk_size):
    """Lists of items; sizes start small and double up to ``chunk_size``: a small input still
    reaches every worker, a large one pays the per-task cost of the pool rarely."""
    size, buf = min(chunk_size, 16), []
    for item in items:
        buf.append(item)
        if len(buf) >= size:
            yield buf
            buf = []
            size = min(chunk_size, 2 * size)
    if buf:
        yield buf


def _resume_state(partial, restart, header_lines, columns, key_index, status_index):
    """``(n_done, last_key, statuses)`` of a partial file to resume, or None to start afresh."""
    if not os.path.exists(partial):
        return None
    if restart:
        os.unlink(partial)
        return None
    return _load_partial(partial, header_lines, columns, key_index, status_index)


def _skip_done(items, n_skip, last_key, key, partial):
    """Consume the first ``n_skip`` items of ``items``, checking the last one is ``last_key``."""
    last, seen = None, 0
    for item in items:
        last, seen = item, seen + 1
        if seen == n_skip:
            break
    if seen < n_skip:
        raise MsdError(f'{partial} has {n_skip} rows but the input has only {seen} items; '
                       'pass --restart to discard it')
    if key(last) != last_key:
        raise MsdError(f'{partial} does not match the input: its row {n_skip} is {last_key!r} '
                       f'but input item {n_skip} is {key(last)!r}; pass --restart to discard it')


def _run_serial(sink, chunks, fn, error_row, status_index):
    for chunk in chunks:
        sink.add(len(chunk), _work_chunk(fn, error_row, status_index, chunk))


def _run_pool(sink, chunks, fn, error_row, status_index, workers, ctx, initializer, partial):
    """Chunks on a process pool, at most ``4 * workers`` in flight, results in submission order."""
    forked = ctx.get_start_method() == 'fork'
    if forked:
        # the parent's objects (modules, mutagen, …) go to the permanent generation before
        # the workers fork: the workers' garbage collections then never walk them, nor
        # write to their pages (copy-on-write). Measured: 2-worker scan speedup 1.26-1.39x
        # without, 1.63-1.66x with (median of 5 paired runs each, 20,000 files).
        gc.freeze()
    warm = initializer if not forked else None
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker, initargs=(warm, os.getpid()))
    try:
        pending = collections.deque()
        for chunk in chunks:
            pending.append((len(chunk), pool.submit(_work_chunk, fn, error_row, status_index, chunk)))
            if len(pending) >= 4 * workers:
                n, future = pending.popleft()
                sink.add(n, future.result())
        while pending:
            n, future = pending.popleft()
            sink.add(n, future.result())
    except BrokenProcessPool as e:
        stop_pool(pool)
        raise MsdError(f'a worker process died ({e}; killed, or out of memory?). The '
                       f'{sink.n_skip + sink.n_new} rows done are kept in {partial}: run the same command '
                       'again to resume.') from None
    except BaseException:
        stop_pool(pool)
        raise
    finally:
        if forked:
            gc.unfreeze()
    pool.shutdown(wait=True)


def run_resumable(out, columns, items, fn, *, key, error_row, command=None, meta=None,
                  workers=1, chunk_size=64, overwrite=False, restart=False, progress=True,
                  desc='rows', status_column='status', key_column='file_path',
                  initializer=None, preload=PRELOAD, flush_seconds=1.0) -> RunResult:
    """Stream ``fn(item)`` rows for every item into ``out`` (via ``out + '.partial'``).

    Parameters
    ----------
    out : str
        Final CSV path.
    columns : sequence of str
        CSV header; ``fn`` returns tuples in this order.
    items : iterable
        Work items (small, picklable), consumed lazily.
    fn : callable
        ``fn(item) -> tuple`` (module-level or ``functools.partial`` so it pickles).
    key : callable
        ``key(item) -> str``, the value ``fn`` puts in ``key_column`` (used to check a resume).
    error_row : callable
        ``error_row(item, message) -> tuple`` for an item whose ``fn`` raised (module-level: it
        is sent to the workers).
    command, meta
        Provenance command and ``# key=value`` metadata lines; a resumed partial file must carry
        the same metadata.
    workers : int
        Processes; ``<= 1`` runs in this process.
    chunk_size : int
        Largest number of items per task sent to a worker (the first tasks are smaller, so a short
        input is still shared between workers).
    overwrite, restart : bool
        Replace an existing ``out``; discard an existing partial file instead of resuming it.
    progress : bool
        Show a tqdm bar on stderr.
    initializer : callable, optional
        Warm-up run once per process that does work (inherited by forked workers).
    preload : sequence of str
        Modules a forkserver imports once (when fork is unsafe); only the first pool of a process
        starts the server, so the default covers every msd pool.

    Returns
    -------
    RunResult

    Raises
    ------
    core.errors.OutputExistsError
        ``out`` exists and ``overwrite`` is false.
    core.locks.LockedError
        Another job is writing ``out`` (exit code 3).
    MsdError
        A partial file does not match this run's input, or a worker died.
    core.errors.NoSpaceError
        The disk filled up; the rows done are kept in the partial file for a resume.
    KeyboardInterrupt
        Re-raised after the pool is stopped; the partial file stays for a resume.
    """
    out = os.fspath(out)
    check_output(out, overwrite)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with OutputLock(out, command=command):
        return _run_locked(out, columns, items, fn, key=key, error_row=error_row, command=command, meta=meta,
                           workers=workers, chunk_size=chunk_size, overwrite=overwrite, restart=restart,
                           progress=progress, desc=desc, status_column=status_column, key_column=key_column,
                           initializer=initializer, preload=preload, flush_seconds=flush_seconds)


def _run_locked(out, columns, items, fn, *, key, error_row, command, meta, workers, chunk_size, overwrite,
                restart, progress, desc, status_column, key_column, initializer, preload,
                flush_seconds) -> RunResult:
    """:func:`run_resumable` once the output lock is held."""
    partial = out + '.partial'
    header_lines = provenance_lines(command, meta)
    key_index = list(columns).index(key_column)
    status_index = list(columns).index(status_column) if status_column in columns else None
    t0 = time.perf_counter()

    resumed = _resume_state(partial, restart, header_lines, columns, key_index, status_index)
    items = iter(items)
    n_skip, statuses = 0, collections.Counter()
    if resumed is not None:
        n_skip, last_key, statuses = resumed
        log.info('resuming from %s (%d rows done)', partial, n_skip)
        if n_skip:
            _skip_done(items, n_skip, last_key, key, partial)

    ctx = mp_context(preload) if workers > 1 else None
    if initializer is not None and (ctx is None or ctx.get_start_method() == 'fork'):
        # warm up once here: forked workers inherit the imported (and JIT-compiled) modules
        initializer()
    sink = None
    try:
        with open(partial, 'a' if resumed is not None else 'w', encoding='utf-8', newline='') as f:
            if resumed is None:
                for line in header_lines:
                    f.write(line + '\n')
                csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator='\n').writerow(columns)
            bar = tqdm(desc=desc, unit=' files', initial=n_skip, disable=not progress,
                       mininterval=0.5, smoothing=0.1, file=sys.stderr)
            sink = _RowSink(f, bar, statuses, n_skip, flush_seconds)
            if ctx is None:
                _run_serial(sink, _chunks(items, chunk_size), fn, error_row, status_index)
            else:
                _run_pool(sink, _chunks(items, chunk_size), fn, error_row, status_index, workers, ctx,
                          initializer, partial)
            bar.close()
    except KeyboardInterrupt:
        log.warning('interrupted: the %d rows done are kept in %s; run the same command again to resume '
                    '(--restart discards them)', n_skip + (sink.n_new if sink else 0), partial)
        raise
    except OSError as e:
        if is_no_space(e):
            raise NoSpaceError(f'no space left on the device while writing {partial} ({e}); the '
                               f'{n_skip + (sink.n_new if sink else 0)} rows done are kept there: free some '
                               'space and run the same command again to resume') from e
        raise
    if os.path.exists(out) and not overwrite:
        raise OutputExistsError(f'{out} appeared while running; the result is in {partial}')
    rename(partial, out)
    result = RunResult(statuses, n_skip, sink.n_new, time.perf_counter() - t0)
    log.debug('%s: %r with %d worker(s), chunks of up to %d items -> %s', desc, result, workers, chunk_size, out)
    return result


def stop_pool(pool):
    """Cancel queued chunks and end the workers now (their chunks are lost; the partial file is not)."""
    # the executor has no public terminate before Python 3.14, and shutdown() forgets the processes,
    # so take them first; without terminate, shutdown would wait for the running chunks to finish
    procs = list((getattr(pool, '_processes', None) or {}).values())
    writer = getattr(getattr(pool, '_result_queue', None), '_writer', None)    # shutdown() forgets it
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
    # A worker terminated while sending a result leaves half a message in the result pipe, and the
    # executor's manager thread waits for the rest for ever: the interpreter then hangs at exit,
    # joining it (seen as a scan that never exits after Ctrl-C). This process holds the pipe's last
    # write end once the workers are gone; closing it gives the reader end-of-file, so the thread
    # sees a broken pool and ends.
    if writer is not None and not any(proc.is_alive() for proc in procs):
        with contextlib.suppress(OSError):
            writer.close()


def init_worker(initializer, owner):
    """Pool initializer: end with the job (``owner``, its pid), leave Ctrl-C to it, then run ``initializer``
    (if not None)."""
    exit_with_parent(owner)
    _ignore_sigint()
    if initializer is not None:
        initializer()
