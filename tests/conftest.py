"""Test-session set-up shared by every test module.

Two logical CPU devices are created *before* TensorFlow initialises, so multi-replica code
(MirroredStrategy with 2 replicas) is exercised on a machine without GPUs.
"""
import os
import pathlib

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('NUMBA_CACHE_DIR', str(pathlib.Path(__file__).resolve().parents[1] / '.cache' / 'numba'))

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: slower end-to-end tests (still run by `make test` and CI)')
