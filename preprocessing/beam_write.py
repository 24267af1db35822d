"""Write the shards of a TFRecord dataset with an Apache Beam pipeline (``preprocess write --engine beam``).

The plan (which tracks go to which shard, in which order), the resume bookkeeping and the manifest
are those of the local writer (:mod:`preprocessing.tfrecords`); only the shards still to write are
handed to Beam. The pipeline is ``Create(the shards) → Reshuffle → Map(write one shard)``:
each shard is one element, written by one worker with the local writer's own per-shard code
(:func:`preprocessing.encode.encode_item` for every track in plan order, then the shard's records
to a temporary file renamed into place and its ``_shards/<shard>.json``). So the shards are
byte-identical to the local writer's, a shard is never half visible, and re-running skips the
complete ones. Parallelism is per shard: give at least as many shards as the runner has workers
(``--shards-per-split``). The runners and the invocations are in ``docs/tfrecords.md``.

The default runner is Beam's in-process ``FnApiRunner``, named explicitly: since Beam 2.68 the
default local runner (Prism) first downloads a runner binary.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading

from preprocessing.encode import encode_item, shard_items

__all__ = ['DEFAULT_RUNNER', 'IN_PROCESS_RUNNERS', 'import_beam', 'pipeline_options', 'run_beam']

log = logging.getLogger(__name__)

DEFAULT_RUNNER = 'FnApiRunner'
#: Runners whose workers run inside this process (they can write a local output and show progress).
IN_PROCESS_RUNNERS = ('FnApiRunner',)

# progress objects of the jobs started in this process, by job token: an in-process runner's
# workers find the driver's bar here; a remote worker finds nothing and counts for itself
_PROGRESS: dict = {}
_PROGRESS_LOCK = threading.Lock()


class _WorkerCount:
    """Tracks written in a process without the driver's progress (a remote worker): the test pause only."""

    def __init__(self):
        self.done = 0

    def update(self):
        from preprocessing.tfrecords import _pause_point
        self.done += 1
        _pause_point(self.done)


class _SharedProgress:
    """One progress object updated by several worker threads."""

    def __init__(self, inner):
        self.inner = inner
        self.lock = threading.Lock()

    def update(self):
        with self.lock:
            self.inner.update()


def _progress_for(token):
    with _PROGRESS_LOCK:
        if token not in _PROGRESS:
            _PROGRESS[token] = _SharedProgress(_WorkerCount())
        return _PROGRESS[token]


_TF_IMPORT_LOCK = threading.Lock()


def _import_tensorflow_once():
    """Import TensorFlow (the TFRecord writer) under a lock: a runner's worker threads importing it at
    the same time for the first time fail with "partially initialized module 'tensorflow'"."""
    from core.logs import import_tensorflow
    with _TF_IMPORT_LOCK:
        import_tensorflow()


def write_one_shard(shard, out, features, compression, token):
    """Beam step: write ``shard`` (a plan entry) as the local writer does; returns its info dict.

    The encoding runs with one BLAS thread, as in the local writer's workers (parallelism comes from
    the runner's workers; the mel projection's BLAS threads would only oversubscribe the cores).
    """
    from threadpoolctl import threadpool_limits

    from preprocessing.tfrecords import _write_shard
    _import_tensorflow_once()
    with threadpool_limits(limits=1, user_api='blas'):
        results = map(encode_item, shard_items(shard, features, compression))
        info = _write_shard(shard, out, results, _progress_for(token), compression)
    log.debug('wrote %s (%d tracks)', shard['name'], info['examples'])
    return info


def pipeline_options(runner, options, workers):
    """``apache_beam`` ``PipelineOptions`` from ``--beam-option`` pairs.

    Parameters
    ----------
    runner : str
        Runner name (``FnApiRunner``, ``DirectRunner``, ``FlinkRunner``, ``SparkRunner``,
        ``DataflowRunner``, …).
    options : dict str -> str
        Beam pipeline options without their ``--`` (e.g. ``{'flink_master': 'host:8081'}``);
        ``True`` stands for a flag without a value.
    workers : int
        For the in-process runner: ``direct_num_workers`` (threads) unless given in ``options``.
    """
    import_beam()
    from apache_beam.options.pipeline_options import PipelineOptions
    options = dict(options or {})
    if runner in IN_PROCESS_RUNNERS and workers > 1:
        options.setdefault('direct_num_workers', str(workers))
        options.setdefault('direct_running_mode', 'multi_threading')
    flags = [f'--{k}' if v is True else f'--{k}={v}' for k, v in options.items()]
    return PipelineOptions(flags)


class _BeamNoise(logging.Filter):
    """Keeps Beam's own log records to warnings while a pipeline runs (debug logging keeps them all).

    Beam logs its set-up at INFO (BigQuery extras, state cache sizes, …), and a failing task at
    ERROR with the worker's traceback, which :func:`run_beam` re-raises anyway, so the command ends
    with its one-line error instead.
    """

    def filter(self, record):
        if not record.name.startswith('apache_beam') or logging.getLogger().isEnabledFor(logging.DEBUG):
            return True
        if record.name == 'apache_beam.runners.common' and record.levelno >= logging.ERROR:
            return False
        return record.levelno >= logging.WARNING


@contextlib.contextmanager
def _beam_logs_quiet():
    """:class:`_BeamNoise` on the root logger's handlers (where Beam's records end up) for the block."""
    noise = _BeamNoise()
    handlers = list(logging.getLogger().handlers)
    for h in handlers:
        h.addFilter(noise)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(noise)


class _DropApitoolsNotice(logging.Filter):
    """Drops the notice Beam logs on the root logger at import when Google's apitools is absent
    (only BigQuery needs it; TFRecord writing does not)."""

    def filter(self, record):
        return not str(record.msg).startswith('apitools not found')


def import_beam():
    """``import apache_beam`` without its import-time notice about apitools, and without that
    ``logging.warning`` call configuring the root logger when nothing had (``logging.basicConfig``)."""
    import sys
    if 'apache_beam' in sys.modules:
        return sys.modules['apache_beam']
    root = logging.getLogger()
    quiet, placeholder = _DropApitoolsNotice(), None
    if not root.handlers:
        placeholder = logging.NullHandler()
        root.addHandler(placeholder)
    root.addFilter(quiet)
    try:
        with _beam_logs_quiet():        # its import-time INFO notes (BigQuery extras)
            import apache_beam
    finally:
        root.removeFilter(quiet)
        if placeholder is not None:
            root.removeHandler(placeholder)
    return apache_beam


def _runner(name):
    if name == 'FnApiRunner':
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner
        return FnApiRunner()
    return name


def run_beam(todo, out, features, compression, *, runner=DEFAULT_RUNNER, options=None, workers=1,
             progress=None):
    """Write the shards ``todo`` (plan entries of :func:`preprocessing.tfrecords.plan_shards`) with Beam.

    Parameters
    ----------
    todo : list of dict
        The shards to write (the complete ones already left out).
    out : str
        Dataset directory; it must be reachable from the runner's workers (a bucket or shared
        filesystem for a remote runner).
    features : dict
        The manifest's ``features`` block.
    compression : str
        ``''``, ``'ZLIB'`` or ``'GZIP'``.
    runner : str
        Beam runner name (:data:`DEFAULT_RUNNER`: in-process).
    options : dict or None
        Extra pipeline options (``--beam-option K=V``).
    workers : int
        Worker threads of the in-process runner.
    progress : object with ``update()`` or None
        Called after each track by in-process workers (a progress bar).

    Returns
    -------
    None: each shard's info is in ``out/_shards/<shard>.json`` (read by the caller).
    """
    beam = import_beam()
    _import_tensorflow_once()         # in this process before any worker thread needs it
    if runner not in IN_PROCESS_RUNNERS and not _is_url(out):
        log.warning('%s is a local path: the workers of %s must all see it (a shared filesystem), or pass a '
                    'gs://, s3:// or hdfs:// --out', out, runner)
    token = f'{os.getpid()}-{id(todo)}'
    if progress is not None:
        with _PROGRESS_LOCK:
            _PROGRESS[token] = _SharedProgress(progress)
    try:
        with _beam_logs_quiet(), beam.Pipeline(runner=_runner(runner),
                                               options=pipeline_options(runner, options, workers)) as p:
            _ = (p
                 | 'shards' >> beam.Create(todo)
                 | 'spread' >> beam.Reshuffle()
                 | 'write' >> beam.Map(write_one_shard, out, features, compression, token))
    finally:
        with _PROGRESS_LOCK:
            _PROGRESS.pop(token, None)


def _is_url(path):
    from core.files import is_url
    return is_url(path)
