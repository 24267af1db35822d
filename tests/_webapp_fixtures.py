"""Fixtures for the web app tests: a tiny run and index (tests/_retrieval_index_fixtures.py), a live
uvicorn server on a free port of 127.0.0.1 in a thread, and stationary WAVs whose tags are known.

Kept import-light at module level (TF, FastAPI and uvicorn inside the functions).
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time

import numpy as np

CHROMIUM = '/usr/bin/chromium'


def build_index(base):
    """``(run dir, library {rel: abs}, index dir)`` under ``base`` (built through ``musetag index build``)."""
    from retrieval.cli import index_main
    from tests._retrieval_index_fixtures import make_library, make_run
    run = str(make_run(base / 'run'))
    lib = make_library(base / 'lib')
    index = str(base / 'idx')
    assert index_main(['build', '--run', run, str(base / 'lib'), '--index', index, '-q']) == 0
    return run, lib, index


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app, port=None):
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yields its base URL until the block ends."""
    import uvicorn
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host='127.0.0.1', port=port, log_level='warning', log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError('the test server did not start')
        time.sleep(0.05)
    try:
        yield f'http://127.0.0.1:{port}'
    finally:
        server.should_exit = True
        thread.join(30)


def chord(seconds, sr, freqs=(220.0, 330.0, 440.0), amp=0.15):
    """A steady chord: float32 [n] (every window of it looks alike, so its tags do not depend on where a
    window starts)."""
    t = np.arange(int(seconds * sr)) / sr
    return (amp * sum(np.sin(2 * np.pi * f * t) for f in freqs)).astype(np.float32)
