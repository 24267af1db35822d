"""tf.distribute strategy selection and the worker's role (chief or not) in a cluster.

``auto`` picks ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` describes a cluster of more than
one task, otherwise ``MirroredStrategy`` over all local GPUs -- or, without GPUs, over all logical
CPU devices (the test suite creates two, so the multi-replica code path runs on any machine).

``MultiWorkerMirroredStrategy`` must be created before any other TensorFlow op runs in the
process; the trainer therefore creates the strategy first.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Optional

from .config import ConfigError

__all__ = ['make_strategy', 'WorkerInfo', 'worker_info', 'tf_config_cluster_size', 'strategy_kind',
           'expects_chief']

log = logging.getLogger(__name__)


def _tf_config() -> dict:
    raw = os.environ.get('TF_CONFIG', '').strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ConfigError('distribution.strategy', 'TF_CONFIG is set but is not a JSON object')
    return value


def tf_config_cluster_size() -> int:
    """Number of tasks (chief + workers) in ``$TF_CONFIG``; 0 when it is unset or empty."""
    cluster = _tf_config().get('cluster') or {}
    return sum(len(v) for k, v in cluster.items() if k in ('chief', 'worker'))


def strategy_kind(name: str = 'auto') -> str:
    """The strategy ``distribution.strategy`` stands for (``auto`` resolved from ``$TF_CONFIG``)."""
    if name == 'auto':
        return 'multi_worker' if tf_config_cluster_size() > 1 else 'mirrored'
    return name


def expects_chief(name: str = 'auto') -> bool:
    """Whether this process will be the chief (the one that writes the run directory).

    The same rule as :func:`worker_info`, read from ``$TF_CONFIG`` without TensorFlow, so the
    command line can lock the run directory before TensorFlow starts.
    """
    if strategy_kind(name) != 'multi_worker':
        return True
    tf_config = _tf_config()
    task = tf_config.get('task') or {}
    cluster = tf_config.get('cluster') or {}
    if not task.get('type'):
        return True
    return task['type'] == 'chief' or (task['type'] == 'worker' and int(task.get('index') or 0) == 0
                                       and 'chief' not in cluster)


#: One strategy object per kind and process. Two MirroredStrategy objects over the same devices
#: in one process reuse collective instance keys, and a second trainer's all-reduce can then be
#: matched with the first one's ("Shape mismatch in the collective instance ..."); a
#: MultiWorkerMirroredStrategy can only be created once per process anyway.
_STRATEGIES: dict = {}


def make_strategy(name: str = 'auto'):
    """Return the strategy named in ``distribution.strategy`` (created once per process).

    Parameters
    ----------
    name : {'auto', 'mirrored', 'multi_worker', 'one_device'}

    Returns
    -------
    tf.distribute.Strategy
    """
    name = strategy_kind(name)
    if name not in _STRATEGIES:
        _STRATEGIES[name] = _create(name)
    strategy = _STRATEGIES[name]
    log.info('strategy %s with %d replica(s)', type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


def _create(name: str):
    import tensorflow as tf
    if name == 'multi_worker':
        if tf_config_cluster_size() == 0:
            raise ConfigError('distribution.strategy', 'multi_worker needs the TF_CONFIG environment variable')
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif name == 'mirrored':
        gpus = tf.config.list_logical_devices('GPU')
        devices = [d.name for d in (gpus or tf.config.list_logical_devices('CPU'))]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    elif name == 'one_device':
        gpus = tf.config.list_logical_devices('GPU')
        strategy = tf.distribute.OneDeviceStrategy((gpus or tf.config.list_logical_devices('CPU'))[0].name)
    else:
        raise ConfigError('distribution.strategy', f'unknown strategy "{name}"')
    return strategy


@dataclass(frozen=True)
class WorkerInfo:
    """Role of this process: only the chief writes the run directory."""
    is_chief: bool
    task_type: Optional[str]
    task_id: int
    num_workers: int


def worker_info(strategy) -> WorkerInfo:
    """Chief = task ``chief``, or ``worker`` 0 when the cluster has no chief (Keras convention)."""
    import tensorflow as tf
    resolver = getattr(strategy, 'cluster_resolver', None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return WorkerInfo(True, None, 0, 1)
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    spec = resolver.cluster_spec().as_dict()
    n = sum(len(v) for k, v in spec.items() if k in ('chief', 'worker'))
    if task_type is None:
        return WorkerInfo(True, None, 0, max(n, 1))
    chief = task_type == 'chief' or (task_type == 'worker' and task_id == 0 and 'chief' not in spec)
    return WorkerInfo(chief, task_type, task_id, n)
