"""Test-session set-up shared by every test module.

Two logical CPU devices are created *before* TensorFlow initialises, so multi-replica code
(MirroredStrategy with 2 replicas) is exercised on a machine without GPUs. Published models that a
test imports into the user cache (``musetag tag --model``) go to a session-private cache folder, never
to the user's ``~/.cache/musetag``.
"""
import atexit
import os
import pathlib
import shutil
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('NUMBA_CACHE_DIR', str(pathlib.Path(__file__).resolve().parents[1] / '.cache' / 'numba'))
_CACHE = tempfile.mkdtemp(prefix='musetag-test-cache-')
os.environ['MUSETAG_CACHE'] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)

from core.logs import import_tensorflow  # noqa: E402

tf = import_tensorflow()
_cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: slower end-to-end tests (still run by `make test` and CI)')

