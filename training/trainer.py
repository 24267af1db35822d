"""The one training loop of MuseTag (custom ``strategy.run`` loop for every model and strategy).

Why a custom loop: with the pinned stack (TensorFlow 2.16, Keras 3) ``Model.fit`` fails under
``MultiWorkerMirroredStrategy`` (``Attempt to convert a value (PerReplica:…) to a Tensor``), and
Orpheus' two diverging paths (a custom loop and ``fit``) had different loss scaling, callbacks and
resume bugs. Here one loop serves ``MirroredStrategy`` (1..n local replicas), ``OneDeviceStrategy``
and ``MultiWorkerMirroredStrategy``.

Per step: the task's loss per example (:mod:`training.tasks`: binary cross-entropy, mean over tags,
for ``task.kind = tags``; 1 - cosine or MSE against the target vector for ``latent``), times the
example's weight when the data source yields ``(x, y, w)`` (``dataset.weights``), summed and divided
by the GLOBAL batch size (``tf.nn.compute_average_loss``), plus ``weight_decay * sum(0.5 ||W||^2)`` over kernels
and any ``model.losses``, both scaled by ``1 / num_replicas`` (``tf.nn.scale_regularization_loss``)
because replica gradients are summed. Partial last batches are dropped, so every step sees exactly
the global batch. Before the forward pass the ``augment`` options transform the replica's batch
(:mod:`training.augment`, stateless seeds from the step of the run); under ``optimization.
mixed_precision`` the loss is scaled by a ``keras.optimizers.LossScaleOptimizer``, which unscales
the gradients.

A recipe (``optimization.phases``, :mod:`training.recipe`, ``docs/training.md``) switches optimizer
and learning rate at the first epoch of each phase, reloading the best weights first when asked;
each epoch checkpoint holds the optimizer of its phase, so a resumed run rebuilds that optimizer,
restores it and meets the next switch as an uninterrupted run does.

Per epoch (:meth:`Trainer.fit`, one named step each): train (mean train loss); validate: every
window of every validation track (mean BCE over windows = ``val_loss``) and EXACT ROC-AUC / PR-AUC,
macro and micro, on whole-track scores (mean over windows) from ``evaluation.metrics`` (a latent
task: mean loss over windows, ``val_cosine`` and ``val_recall_at_k`` on track vectors); update
early stopping and reduce-on-plateau; save the checkpoint ``checkpoints/ckpt-<epoch>`` (keep
``logging.keep_checkpoints``), then, when the monitored value improved, keep it as
``checkpoints/best/``; then log the epoch (``history.csv``, TensorBoard ``tensorboard/{train,
validation}``, the console). The history rows are saved inside every checkpoint too, so a run that
stops between the checkpoint and ``history.csv`` (a full disk) gets its row back on resume, and
``history.csv`` never lists an epoch whose checkpoint is missing.

Resume (``resume=True``): restores model, optimizer (including ``iterations``, hence the LR schedule
position), epoch counter, early-stopping / plateau state and the best value from the newest complete
epoch checkpoint. A run killed in the middle of an epoch restarts that epoch from its beginning (the
data order of epoch e depends only on ``seed`` and e, so the re-run sees the same batches).
Without a checkpoint, ``resume=True`` simply starts: passing ``--resume`` always is a safe way to
restart crashed jobs. Incomplete checkpoint files of an interrupted save are removed.

One job per run directory: the chief holds ``modeling.rundir.run_lock(run_dir)`` while it trains
(``core.locks``), so a second training into the same directory is refused at once, naming the first.

Validation runs on one device per worker, outside ``strategy.run``: every worker computes the same
metrics from the same weights, so early-stopping decisions agree without communication.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import keras
import numpy as np
import tensorflow as tf

from core.errors import NoSpaceError, is_no_space
from core.files import is_url
from modeling import rundir
from modeling.rundir import History, RunPaths, export_model, read_json, run_lock, write_json, write_run_files

from . import augment, finetune, tasks
from .config import (Config, ConfigError, OptimizerConfig, config_to_dict, default_run_dir, monitor_mode,
                     schedule_unused_params)
from .data import InputInfo, TFRecordSource
from .monitors import EarlyStopping, PlateauReducer, Tracker
from .recipe import phase_of_epoch
from .schedules import PlateauScaled, VariableLR, build_schedule, needs_steps_per_epoch
from .strategy import make_strategy, tf_config_cluster_size, worker_info

__all__ = ['Trainer', 'TrainResult', 'TrainState', 'RecipeState', 'EpochLog', 'registry_model_fn',
           'make_optimizer', 'default_run_dir', 'train', 'epoch_seed', 'mixed_precision_wanted']

log = logging.getLogger(__name__)

ModelFn = Callable[[int, InputInfo], keras.Model]
_ONLY_FIRST = tf.VariableAggregation.ONLY_FIRST_REPLICA
#: Keys that must not change when a run is resumed (the checkpoint would not fit otherwise).
_FROZEN_ON_RESUME = (('model', 'name'), ('model', 'hparams'), ('dataset', 'tags'), ('input', 'window_seconds'),
                     ('input', 'feature_params'), ('optimization', 'phases'), ('task', 'kind'), ('dataset', 'kind'),
                     ('dataset', 'images'))
_MISSING = object()   # a key absent from an older run's config.json (not compared on resume)
_CKPT, _BEST = 'ckpt', 'best'   # checkpoint name prefixes in checkpoints/ and checkpoints/best/


def epoch_seed(seed: int, epoch: int) -> int:
    """Data seed of epoch ``epoch`` (1-based): a resumed epoch replays the same order."""
    return (seed * 1000003 + epoch) % (2 ** 31 - 1)


def _gpu_available() -> bool:
    return bool(tf.config.list_logical_devices('GPU'))


def mixed_precision_wanted(cfg: Config) -> bool:
    """Whether this run computes in ``mixed_float16``: asked for, and a GPU is visible.

    Without a GPU the run warns and trains in float32: CPUs compute float16 no faster than float32
    (most kernels convert), so mixed precision there only loses precision.
    """
    if not cfg.optimization.mixed_precision:
        return False
    if not _gpu_available():
        log.warning('optimization.mixed_precision is set but no GPU is visible: training in float32 '
                    '(float16 on a CPU is not faster and loses precision)')
        return False
    return True


def registry_model_fn(model_cfg) -> ModelFn:
    """Model factory backed by ``modeling.build_model`` (model registry name and hyper-parameters)."""

    def build(n_outputs: int, info: InputInfo) -> keras.Model:
        import modeling
        if hasattr(info, 'input_spec'):   # a non-audio source (images) describes its own model input
            spec = info.input_spec()
        else:
            spec = modeling.InputSpec(kind=info.kind, n_mels=info.n_mels or 96, frames=info.frames,
                                      samples=info.samples, sr=info.sr,
                                      feature_params=info.feature_params if info.kind == 'waveform' else info.params)
        try:
            modeling.model_info(model_cfg.name)
        except ValueError as exc:
            raise ConfigError('model.name', str(exc)) from None
        try:
            return modeling.build_model(model_cfg.name, n_outputs, spec, **model_cfg.hparams)
        except (TypeError, ValueError) as exc:
            # "model 'x': unknown hyper-parameter 'foo'" / "hyper-parameter 'foo' must be int"
            m = re.search(r"hyper-parameter '([^']+)'", str(exc))
            raise ConfigError(f'model.hparams.{m.group(1)}' if m else 'model.hparams', str(exc)) from None

    return build


def _default_source(cfg: Config):
    """The data source of ``dataset.kind``: TFRecords, or ``imagemusic.data.ImageSource`` (imported only for
    image runs)."""
    if cfg.dataset.kind == 'images':
        from imagemusic.data import ImageSource
        return ImageSource(cfg)
    return TFRecordSource(cfg)


def set_batchnorm_momentum(model: keras.Model, momentum: float) -> int:
    """Set ``momentum`` on every BatchNormalization layer (nested models too); return the count.

    Read when the training step is traced, so it must be set before the first step.
    """
    n = 0
    for layer in finetune.flatten_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)
            n += 1
    return n


def make_optimizer(opt_cfg, learning_rate) -> keras.optimizers.Optimizer:
    """Instantiate ``keras.optimizers.<name>(learning_rate=..., **kwargs)``; config errors name keys."""
    cls = _optimizer_class(opt_cfg)
    kwargs = {k: v for k, v in opt_cfg.kwargs.items() if k != 'learning_rate'}
    try:
        return cls(learning_rate=learning_rate, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError('optimization.optimizer.kwargs', str(exc)) from None


def phase_optimizer_config(phases, index: int) -> OptimizerConfig:
    """The optimizer of recipe phase ``index`` as an :class:`OptimizerConfig` (class name and kwargs)."""
    phase = phases[index]
    return OptimizerConfig(name=phase.optimizer, kwargs=dict(phase.kwargs))


def _check_phase_optimizers(phases) -> None:
    """Every phase names a Keras optimizer and only its arguments; errors name the phase's key."""
    for i in range(len(phases)):
        try:
            _optimizer_class(phase_optimizer_config(phases, i))
        except ConfigError as exc:
            key = exc.key.replace('optimization.optimizer.name', f'optimization.phases[{i}].optimizer')
            key = key.replace('optimization.optimizer.kwargs', f'optimization.phases[{i}].kwargs')
            raise ConfigError(key, exc.reason) from None


def _optimizer_class(opt_cfg):
    import inspect
    excluded = {'Optimizer', 'LossScaleOptimizer', 'MultiOptimizer', 'OptimizerMap'}
    cls = getattr(keras.optimizers, opt_cfg.name, None)
    if (opt_cfg.name in excluded or not isinstance(cls, type)
            or not issubclass(cls, keras.optimizers.Optimizer)):
        names = [n for n in dir(keras.optimizers) if not n.startswith('_') and n not in excluded
                 and isinstance(getattr(keras.optimizers, n), type)
                 and issubclass(getattr(keras.optimizers, n), keras.optimizers.Optimizer)]
        raise ConfigError('optimization.optimizer.name',
                          f'unknown Keras optimizer "{opt_cfg.name}" (choose from {", ".join(names)})')
    accepted = set(inspect.signature(cls.__init__).parameters) - {'self', 'kwargs'}
    for key in opt_cfg.kwargs:
        if key not in accepted:
            raise ConfigError(f'optimization.optimizer.kwargs.{key}',
                              f'not an argument of keras.optimizers.{opt_cfg.name}')
    return cls


class TrainState(tf.Module):
    """Loop state saved in every checkpoint next to model and optimizer.

    ``*_best`` are NaN until the first finite value; ``lr_scale`` is the reduce-on-plateau factor
    read by the LR schedule inside the training step.
    """

    def __init__(self):
        super().__init__(name='train_state')

        def var(value, dtype):
            return tf.Variable(value, dtype=dtype, trainable=False, aggregation=_ONLY_FIRST)

        self.epoch = var(0, tf.int64)             # completed epochs
        self.lr_scale = var(1.0, tf.float32)
        self.es_best = var(math.nan, tf.float64)
        self.es_wait = var(0, tf.int64)
        self.rp_best = var(math.nan, tf.float64)
        self.rp_wait = var(0, tf.int64)
        self.best_value = var(math.nan, tf.float64)
        self.best_epoch = var(0, tf.int64)
        self.steps_per_epoch = var(0, tf.int64)   # 0 = unknown
        self.stopped = var(0, tf.int64)           # 1 = early-stopped

    @staticmethod
    def get(v) -> float:
        value = v.numpy().item()
        return None if isinstance(value, float) and math.isnan(value) else value


class RecipeState(tf.Module):
    """State of a multi-optimizer recipe and of the augmentation seeds, saved in every checkpoint.

    ``steps_before``: optimizer steps of the earlier phases' optimizers (a new phase's optimizer
    counts from 0; ``steps_before + iterations`` numbers the training steps of the run and seeds the
    augmentations); ``phase``: index of the current phase; ``lr``: its learning rate. Restored
    separately from the other state, so checkpoints written before it existed still resume.
    """

    def __init__(self):
        super().__init__(name='recipe_state')

        def var(value, dtype):
            return tf.Variable(value, dtype=dtype, trainable=False, aggregation=_ONLY_FIRST)

        self.steps_before = var(0, tf.int64)
        self.phase = var(0, tf.int64)
        self.lr = var(0.0, tf.float32)


class EpochLog(tf.Module):
    """The history rows of every finished epoch (JSON text), saved in each checkpoint.

    ``history.csv`` is rewritten from the restored rows on resume, so it always lists exactly the
    epochs of the checkpoint. A string variable on the CPU, outside the distribution strategy.
    """

    def __init__(self):
        super().__init__(name='epoch_log')
        with tf.device('/cpu:0'):
            self.text = tf.Variable('', dtype=tf.string, trainable=False)

    def rows(self) -> Optional[list]:
        """The saved rows, or None when nothing was restored (a new run, or an older checkpoint)."""
        raw = self.text.numpy().decode('utf-8')
        return json.loads(raw) if raw else None

    def set(self, rows: list) -> None:
        self.text.assign(json.dumps(rows))


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns."""
    run_dir: str
    epochs_completed: int
    best_epoch: Optional[int]
    best_value: Optional[float]
    monitor: str
    stopped_early: bool
    history: list = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Callbacks:
    """Early stopping, reduce-on-plateau and the best-value tracker of one :meth:`Trainer.fit`."""
    monitor: str
    best: Tracker
    stopper: Optional[EarlyStopping]
    reducer: Optional[PlateauReducer]
    stopped: bool


def _nan(x) -> float:
    return math.nan if x is None else float(x)


def _kernel_l2(variables) -> tf.Tensor:
    """sum(0.5 * ||W||^2) over conv/dense kernels (biases, BN parameters excluded)."""
    kernels = [v for v in variables if v.name.endswith('kernel')]
    if not kernels:
        return tf.constant(0.0)
    return tf.add_n([0.5 * tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in kernels])


class Trainer:
    """Builds everything from a :class:`~training.config.Config` and runs the loop.

    Parameters
    ----------
    cfg : Config
    run_dir : str, optional
        Run directory; default ``cfg.logging.run_dir`` or ``runs/<config>-<timestamp>``.
    resume : bool
        Continue from the newest checkpoint of ``run_dir`` (start fresh when there is none).
    overwrite : bool
        Delete an existing run directory first (otherwise a run dir with checkpoints is an error
        unless ``resume``).
    data : data source, optional
        Default :class:`~training.data.TFRecordSource` (``cfg.dataset``); tests pass an
        :class:`~training.data.ArraySource`.
    model_fn : callable(n_outputs, InputInfo) -> keras.Model, optional
        Default :func:`registry_model_fn` (``cfg.model``).
    strategy : tf.distribute.Strategy, optional
        Default from ``cfg.distribution.strategy``.
    config_path : str, optional
        Only used to name the default run directory.
    schedule_override : LearningRateSchedule, optional
        Replace the configured schedule (used by the LR range test).
    export : bool
        Write model.keras and saved_model/ at the end (default True; tests switch it off).
    lock : core.locks.OutputLock, optional
        The lock of ``run_dir`` when the caller already holds it (the command line holds it across
        ``--auto-restart`` attempts); otherwise the chief takes ``modeling.rundir.run_lock(run_dir)``
        here and releases it when :meth:`fit` ends or in :meth:`close`.

    Raises
    ------
    core.locks.LockedError
        Another job is training into ``run_dir`` (exit code 3).
    ConfigError
        A bad setting, named by its dotted key.
    """

    def __init__(self, cfg: Config, *, run_dir: Optional[str] = None, resume: bool = False,
                 overwrite: bool = False, data=None, model_fn: Optional[ModelFn] = None,
                 strategy=None, config_path: Optional[str] = None, schedule_override=None,
                 export: bool = True, lock=None):
        self.cfg = cfg
        self.do_export = export
        # The strategy first: MultiWorkerMirroredStrategy must exist before any other TF op.
        self.strategy = strategy or make_strategy(cfg.distribution.strategy)
        self.worker = worker_info(self.strategy)
        self.replicas = self.strategy.num_replicas_in_sync
        if cfg.input.batch_size % self.replicas:
            raise ConfigError('input.batch_size', f'{cfg.input.batch_size} is not divisible by the '
                                                  f'{self.replicas} replicas')
        if tf_config_cluster_size() > 1 and not (run_dir or cfg.logging.run_dir):
            raise ConfigError('logging.run_dir', 'required with TF_CONFIG (all workers must use the same run dir)')
        self.run_dir = run_dir or cfg.logging.run_dir or default_run_dir(config_path)
        self.paths = RunPaths(self.run_dir)
        self.resume = resume
        self.schedule_override = schedule_override
        self._lock, self._owns_lock, self._tmp = None, False, None
        self._phase = 'starting'
        if cfg.optimization.optimizer.name:  # name and kwargs are checked before anything slow
            _optimizer_class(cfg.optimization.optimizer)
        _check_phase_optimizers(cfg.optimization.phases)
        if cfg.optimization.phases and cfg.optimization.optimizer != OptimizerConfig():
            log.warning('optimization.optimizer is not used: optimization.phases sets the optimizer of each phase')
        for name in schedule_unused_params(cfg.optimization.schedule):
            log.warning('optimization.schedule.%s is not used by schedule "%s"', name,
                        cfg.optimization.schedule.name)
        try:
            self._take_lock(lock)
            self.data = data if data is not None else _default_source(cfg)
            self._prepare_run_dir(overwrite)
            keras.utils.set_random_seed(cfg.seed)
            self.labels = list(self.data.labels)
            self.info: InputInfo = self.data.info
            self._check_one_full_batch()
            self.model_fn = tasks.task_model_fn(model_fn or registry_model_fn(cfg.model), cfg.task.kind)
            self._ckpt_dir = self._checkpoint_dir()
            self._latest = rundir.latest_checkpoint(self.paths.checkpoints) if resume else None
            self._check_resume_compat()
            self._build()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ the run directory
    def _take_lock(self, lock) -> None:
        """The chief locks the run directory; the other workers of a cluster write nowhere in it."""
        if not self.worker.is_chief:
            return
        self._owns_lock = lock is None
        self._lock = run_lock(self.run_dir) if lock is None else lock
        self._lock.acquire()

    def close(self) -> None:
        """Release the run directory's lock (if this trainer took it) and a worker's scratch folder."""
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        if self._lock is not None and self._owns_lock:
            self._lock.release()

    def __enter__(self) -> 'Trainer':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _prepare_run_dir(self, overwrite: bool) -> None:
        has_ckpt = rundir.latest_checkpoint(self.paths.checkpoints) is not None
        if overwrite and os.path.isdir(self.run_dir) and self.worker.is_chief and not self.resume:
            shutil.rmtree(self.run_dir)   # under our lock: no other job is using it
            has_ckpt = False
        if has_ckpt and not self.resume and not overwrite:
            raise ConfigError('logging.run_dir', f'"{self.run_dir}" already holds checkpoints: pass --resume '
                                                 'to continue it, --overwrite to replace it, or another --run')
        if self.worker.is_chief:
            os.makedirs(self.run_dir, exist_ok=True)
            self._discard_incomplete()

    def _discard_incomplete(self) -> None:
        """Remove files of checkpoints whose save did not complete (chief; never raises)."""
        if not self.worker.is_chief:
            return
        try:
            removed = (rundir.discard_incomplete_checkpoints(self.paths.checkpoints, _CKPT)
                       + rundir.discard_incomplete_checkpoints(self.paths.best, _BEST))
        except OSError as exc:
            log.warning('could not remove incomplete checkpoint files in %s: %s', self.paths.checkpoints, exc)
            return
        if removed:
            log.info('removed %d file(s) of incomplete checkpoints: %s', len(removed),
                     ', '.join(os.path.basename(p) for p in removed))

    def _check_one_full_batch(self) -> None:
        """Partial batches are dropped, so a training split smaller than one global batch gives no
        step at all: with ``steps_per_epoch`` (a repeated dataset) the input pipeline would search
        for a full batch forever. Refuse it before anything slow."""
        hint = getattr(self.data, 'steps_hint', None)
        if hint is not None and hint() == 0:
            raise ConfigError('input.batch_size', f'the training split has fewer examples than one batch of '
                                                  f'{self.cfg.input.batch_size} (partial batches are dropped, '
                                                  'so no step could run): lower input.batch_size or add tracks')

    def _checkpoint_dir(self) -> str:
        if self.worker.is_chief:
            return self.paths.checkpoints
        # Non-chief workers must take part in saving (collective reads of the variables) but
        # write to a private temporary directory that is deleted at the end.
        self._tmp = tempfile.mkdtemp(prefix=f'musetag-worker{self.worker.task_id}-')
        return os.path.join(self._tmp, 'checkpoints')

    def _check_resume_compat(self) -> None:
        if not self._latest or not os.path.isfile(self.paths.config):
            return
        saved, now = read_json(self.paths.config), config_to_dict(self.cfg)
        for key in _FROZEN_ON_RESUME:
            a, b = saved, now
            for k in key:
                a = a.get(k, _MISSING) if isinstance(a, dict) else _MISSING
                b = (b or {}).get(k)
            if a is _MISSING:   # an older run's config.json: the key did not exist then
                continue
            if a != b:
                raise ConfigError('.'.join(key), f'differs from the resumed run ({a!r} in {self.paths.config}); '
                                                 'resume with the same value or start a new run')
        if os.path.isfile(self.paths.labels) and read_json(self.paths.labels) != self.labels:
            if self.cfg.task.kind == 'latent':
                raise ConfigError('task.targets', f'the target vectors have {len(self.labels)} dimensions, the '
                                                  f'resumed run\'s labels.json {len(read_json(self.paths.labels))}')
            raise ConfigError('dataset.tags', 'the resolved labels differ from the resumed run\'s labels.json')

    def _steps_per_epoch(self) -> Optional[int]:
        opt = self.cfg.optimization
        if opt.steps_per_epoch:
            return opt.steps_per_epoch
        if self._latest:
            saved = tf.train.load_checkpoint(self._latest).get_tensor(
                'state/steps_per_epoch/.ATTRIBUTES/VARIABLE_VALUE')
            if saved > 0:
                return int(saved)
        if self.schedule_override is None and needs_steps_per_epoch(opt.schedule):
            hint = getattr(self.data, 'steps_hint', None)
            n = hint() if hint is not None else None
            if n is None:  # unknown: count one pass
                t0 = time.time()
                n = int(self.data.train_dataset(epoch_seed(self.cfg.seed, 1), repeat=False).reduce(
                    np.int64(0), lambda c, *_batch: c + 1).numpy())
                log.info('counted %d steps per epoch in %.1f s', n, time.time() - t0)
            if n == 0:
                raise ConfigError('input.batch_size', 'the training split has fewer examples than one batch')
            log.info('schedule "%s": %d steps per epoch (set optimization.steps_per_epoch to override)',
                     opt.schedule.name, n)
            return n
        return None

    # ------------------------------------------------------------------ model, optimizer, state
    def _build(self) -> None:
        cfg = self.cfg
        self.steps_per_epoch = self._steps_per_epoch()
        sch = cfg.optimization.schedule
        rp = cfg.callbacks.reduce_on_plateau
        self.use_plateau = rp.patience is not None and sch.name != 'one_cycle' and self.schedule_override is None
        self.use_early_stop = (cfg.callbacks.early_stopping.patience is not None and sch.name != 'one_cycle'
                               and self.schedule_override is None)
        if sch.name == 'one_cycle' and (rp.patience is not None or cfg.callbacks.early_stopping.patience is not None):
            log.warning('one_cycle schedule: early stopping and reduce-on-plateau are disabled')
        self.mixed_precision = mixed_precision_wanted(cfg)
        self.phases = cfg.optimization.phases
        with self.strategy.scope():
            self.model = self._build_model()
        if cfg.model.batchnorm_momentum is not None:
            n_bn = set_batchnorm_momentum(self.model, cfg.model.batchnorm_momentum)
            log.info('batch-norm momentum %.3g in %d layer(s)', cfg.model.batchnorm_momentum, n_bn)
        n_out = int(self.model.outputs[0].shape[-1]) if getattr(self.model, 'outputs', None) else None
        if n_out is not None and n_out != len(self.labels):
            wanted = (f'the target vectors of task.targets have dimension {len(self.labels)}'
                      if cfg.task.kind == 'latent' else f'{len(self.labels)} labels were selected')
            raise ConfigError('model.name', f'the model has {n_out} outputs but {wanted}')
        self.finetune_report = None
        if cfg.model.init_from and not self._latest:
            self.finetune_report = finetune.init_from_run(
                self.model, self.labels, cfg.model.init_from,
                rebuild=lambda n: self.model_fn(n, self.info), freeze=cfg.model.freeze_frontend)
        elif cfg.model.init_from and cfg.model.freeze_frontend:
            finetune.freeze_frontend(self.model)  # resumed fine-tuning: weights come from the checkpoint
        with self.strategy.scope():
            self.state = TrainState()
            self.recipe = RecipeState()
            phase = self._resumed_phase()
            if self.schedule_override is not None:
                self.schedule = self.schedule_override
            elif self.phases:
                self.recipe.phase.assign(phase)
                self.recipe.lr.assign(self.phases[phase].learning_rate)
                self.schedule = VariableLR(self.recipe.lr)
            else:
                base_lr = float(cfg.optimization.optimizer.kwargs.get('learning_rate', 0.001))
                base = build_schedule(sch, base_lr=base_lr, steps_per_epoch=self.steps_per_epoch,
                                      epochs=cfg.optimization.epochs)
                self.schedule = PlateauScaled(base, self.state.lr_scale, rp.min_lr) if self.use_plateau else base
        self._new_optimizer(phase_optimizer_config(self.phases, phase) if self.phases
                            else cfg.optimization.optimizer)
        self._best_weights = None   # (epoch, weights) of the best epoch trained by this process
        if self._latest:
            self._restore(self._latest)
            if self.phases:   # the phase's own learning rate (the checkpoint's, unless the config changed)
                self.recipe.lr.assign(self.phases[phase].learning_rate)
        elif self.steps_per_epoch:
            self.state.steps_per_epoch.assign(self.steps_per_epoch)
        self._spec_layer, self._train_model = self._augmented_model()
        self._train_step = self._make_train_step()
        self._predict = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def _build_model(self) -> keras.Model:
        """The model (under the ``mixed_float16`` policy when mixed precision is on; the global
        policy is put back afterwards, so models built later, e.g. for export, are float32)."""
        if not self.mixed_precision:
            return self.model_fn(len(self.labels), self.info)
        before = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy('mixed_float16')
        try:
            model = self.model_fn(len(self.labels), self.info)
        finally:
            keras.mixed_precision.set_global_policy(before)
        log.info('mixed precision: mixed_float16 compute, float32 variables, dynamic loss scaling')
        return model

    def _resumed_phase(self) -> int:
        """Recipe phase whose optimizer the newest checkpoint holds (that of its last epoch); 0 when
        there is no checkpoint or no recipe."""
        if not self.phases or not self._latest:
            return 0
        done = int(tf.train.load_checkpoint(self._latest).get_tensor('state/epoch/.ATTRIBUTES/VARIABLE_VALUE'))
        return phase_of_epoch(self.phases, done, self.cfg.optimization.epochs)

    def _new_optimizer(self, opt_cfg) -> None:
        """A new optimizer (wrapped in a LossScaleOptimizer under mixed precision), built inside the
        strategy scope, and the checkpoint objects that save it."""
        with self.strategy.scope():
            inner = make_optimizer(opt_cfg, self.schedule)
            self.optimizer = keras.optimizers.LossScaleOptimizer(inner) if self.mixed_precision else inner
            # With more than one replica, a custom loop must build the optimizer inside the scope
            # before the first step (TF 2.16 otherwise fails with a placeholder InvalidArgumentError).
            self.optimizer.build(self.model.trainable_variables)
        self._inner_optimizer = inner
        self._make_checkpoint()

    def _make_checkpoint(self) -> None:
        """The checkpoint: model, the (inner) optimizer, loop state, history rows, recipe state, and the
        loss scale under mixed precision (the optimizer's slots do not depend on the precision, so a
        run resumes in either)."""
        extra = {'loss_scale': self.optimizer} if self.mixed_precision else {}
        history = getattr(self, 'epoch_log', None) or EpochLog()
        self.epoch_log = history
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self._inner_optimizer, state=self.state,
                                              history=history, recipe=self.recipe, **extra)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self._ckpt_dir,
                                                  max_to_keep=self.cfg.logging.keep_checkpoints,
                                                  checkpoint_name=_CKPT)

    def _restore(self, path: str) -> None:
        """Restore model, optimizer and loop state (all must match), then the history rows, the
        recipe state and the loss scale if saved (older checkpoints have none)."""
        status = tf.train.Checkpoint(model=self.model, optimizer=self._inner_optimizer,
                                     state=self.state).restore(path)
        status.assert_existing_objects_matched().expect_partial()
        tf.train.Checkpoint(history=self.epoch_log).restore(path).expect_partial()
        tf.train.Checkpoint(recipe=self.recipe).restore(path).expect_partial()
        if self.mixed_precision:
            tf.train.Checkpoint(loss_scale=self.optimizer).restore(path).expect_partial()
        log.info('resumed from %s: %d epoch(s) done, %d optimizer steps', path,
                 int(self.state.epoch.numpy()), self.iterations)
        self._repair_best()
        self._history()   # history.csv as the checkpoint records it, at once

    # ------------------------------------------------------------------ recipe phases
    def _enter_phase(self, epoch: int) -> None:
        """Switch to the recipe phase of ``epoch`` at its first epoch: reload the best weights
        (``reload_best``), then a new optimizer unless ``keep_optimizer_state``; the phase's LR.

        A resumed run reaches the same switch with the same checkpointed state, so it continues
        exactly as an uninterrupted one.
        """
        if not self.phases or self.schedule_override is not None:
            return
        index = phase_of_epoch(self.phases, epoch, self.cfg.optimization.epochs)
        if index == int(self.recipe.phase.numpy()):
            return
        phase = self.phases[index]
        reloaded = self._reload_best() if phase.reload_best else None
        if not phase.keep_optimizer_state:
            self.recipe.steps_before.assign_add(self.iterations)
            scale = self.optimizer.dynamic_scale.numpy() if self.mixed_precision else None
            self._new_optimizer(phase_optimizer_config(self.phases, index))
            if scale is not None:   # the loss scale found so far carries over to the new optimizer
                self.optimizer.dynamic_scale.assign(scale)
        self.recipe.phase.assign(index)
        self.recipe.lr.assign(phase.learning_rate)
        self._train_step = self._make_train_step()
        if self.worker.is_chief:
            log.info('recipe phase %d/%d from epoch %d: %s lr %.3g, weight decay %.3g, %s optimizer%s',
                     index + 1, len(self.phases), epoch,
                     phase.optimizer, phase.learning_rate, phase.weight_decay,
                     'same' if phase.keep_optimizer_state else 'new',
                     f'; weights of the best epoch {reloaded} reloaded' if reloaded else '')

    def _reload_best(self) -> Optional[int]:
        """Load the weights of the best epoch so far into the model; return that epoch (None: none yet).

        From memory when this process trained that epoch, else from the best checkpoint (which holds
        the same values): every worker of a cluster takes the same decisions from the same data.
        """
        best_epoch = int(self.state.best_epoch.numpy())
        if not best_epoch:
            log.warning('reload_best: no best epoch yet, the weights stay as they are')
            return None
        if self._best_weights is not None and self._best_weights[0] == best_epoch:
            for variable, value in zip(self.model.weights, self._best_weights[1]):
                variable.assign(value)
            return best_epoch
        path = os.path.join(self.paths.best, f'{_BEST}-{best_epoch}')
        if not os.path.isfile(path + '.index'):
            raise FileNotFoundError(f'the best checkpoint of epoch {best_epoch} ({path}) is missing: '
                                    'cannot reload the best weights at the recipe\'s phase switch')
        tf.train.Checkpoint(model=self.model).restore(path).expect_partial()
        return best_epoch

    def _repair_best(self) -> None:
        """Keep the restored epoch as the best checkpoint if it is the best one and the run stopped
        before keeping it (the best checkpoint is made after the epoch checkpoint)."""
        epoch, best = int(self.state.epoch.numpy()), int(self.state.best_epoch.numpy())
        if not self.worker.is_chief or not best or best != epoch:
            return
        if rundir.latest_checkpoint(self.paths.best) != os.path.join(self.paths.best, f'{_BEST}-{best}'):
            log.info('keeping epoch %d as the best checkpoint (not done before the run stopped)', best)
            self._keep_best(epoch, self.state.get(self.state.best_value))

    @property
    def iterations(self) -> int:
        """Steps of the current optimizer (a recipe phase with a new optimizer counts from 0)."""
        return int(np.asarray(self.optimizer.iterations.numpy()))

    @property
    def global_step(self) -> int:
        """Training steps of the run over every recipe phase."""
        return int(self.recipe.steps_before.numpy()) + self.iterations

    def current_lr(self, step: Optional[int] = None) -> float:
        """Learning rate at optimizer step ``step`` (default: the next step)."""
        step = self.iterations if step is None else step
        return float(self.schedule(tf.constant(step, tf.int64)))

    # ------------------------------------------------------------------ step
    def _augmented_model(self):
        """(SpecAugment layer, model to train): the SpecAugment layer sits inside a copy of the model
        sharing its layers when the model computes the log-mel from waveforms (after its first layer
        named in :data:`training.augment.MEL_LAYERS`); otherwise (None, the model), and the masks, if
        any, apply to the log-mel input."""
        sa = self.cfg.augment.spec_augment
        if not (sa.time_masks or sa.freq_masks) or self.info.kind != 'waveform':
            return None, self.model
        names = {layer.name for layer in self.model.layers}
        found = [name for name in augment.MEL_LAYERS if name in names]
        if not found:
            raise ConfigError('augment.spec_augment', f'model "{self.cfg.model.name}" takes waveforms and has no '
                                                      f'mel spectrogram layer ({", ".join(augment.MEL_LAYERS)}) '
                                                      'to mask after')
        masks = augment.SpecAugment(sa.time_masks, sa.time_mask_frames, sa.freq_masks, sa.freq_mask_bands,
                                    name='spec_augment')
        with self.strategy.scope():
            return masks, augment.with_spec_augment(self.model, found[0], masks)

    def _check_augment(self) -> None:
        """Random gain needs waveform input (a gain on stored log-mel depends on its compression);
        SpecAugment needs audio (a source of other inputs, e.g. images, augments its own data)."""
        gain, sa = self.cfg.augment.gain, self.cfg.augment.spec_augment
        if (gain.min_db or gain.max_db) and self.info.kind != 'waveform':
            raise ConfigError('augment.gain', f'random gain needs waveform input (the input is {self.info.kind})')
        if (sa.time_masks or sa.freq_masks) and self.info.kind not in ('log-mel', 'waveform'):
            raise ConfigError('augment.spec_augment', f'SpecAugment masks audio; the input is {self.info.kind} '
                                                      '(its data source has its own augmentation)')

    def _augment(self, x, y, counter):
        """Training-time augmentation of one replica's batch ``x``/``y`` (``training.augment``)."""
        aug, seed = self.cfg.augment, self.cfg.seed
        if aug.gain.min_db or aug.gain.max_db:
            x = augment.random_gain(x, augment.step_seed(seed, augment.GAIN, counter), aug.gain.min_db,
                                    aug.gain.max_db)
        if aug.mixup.alpha > 0:
            x, y = augment.mixup(x, y, augment.step_seed(seed, augment.MIXUP, counter), aug.mixup.alpha)
        sa = aug.spec_augment
        spec_seed = augment.step_seed(seed, augment.SPEC_AUGMENT, counter)
        if self._spec_layer is not None:
            self._spec_layer.set_seed(spec_seed)
        elif sa.time_masks or sa.freq_masks:
            x = augment.spec_augment(x, spec_seed, sa.time_masks, sa.time_mask_frames, sa.freq_masks,
                                     sa.freq_mask_bands)
        return x, y

    def _regularization(self, model, phase_wd: float) -> tf.Tensor:
        """weight_decay * sum(0.5 ||W||^2) over kernels + the phase's coupled weight decay ``phase_wd``
        over every trainable variable + ``model.losses`` (before the 1 / replicas scaling)."""
        wd = float(self.cfg.optimization.weight_decay)
        reg = tf.constant(0.0)
        if wd > 0:
            reg += wd * _kernel_l2(model.trainable_variables)
        if phase_wd > 0:
            reg += phase_wd * tf.add_n([0.5 * tf.reduce_sum(tf.square(tf.cast(v, tf.float32)))
                                        for v in model.trainable_variables])
        if model.losses:
            reg += tf.add_n([tf.cast(v, tf.float32) for v in model.losses])
        return reg

    def _make_train_step(self):
        """The distributed training step: ``step((x, y))`` or ``step((x, y, w))`` -> summed per-example
        loss of the global batch (``task.loss``; times each example's weight ``w`` when given).

        Per replica: augmentation, forward pass, loss (scaled under mixed precision: the
        LossScaleOptimizer unscales the gradients, skips steps with non-finite ones and adapts its
        scale), gradients, update. The augmentation counter ``(steps of the run) * replicas +
        replica id`` makes every draw depend only on the step and the replica.
        """
        model, train_model, optimizer, strategy = self.model, self._train_model, self.optimizer, self.strategy
        global_batch, replicas = self.cfg.input.batch_size, self.replicas
        mixed = self.mixed_precision
        self._check_augment()
        recipe = self.recipe
        phase_wd = float(self.phases[int(recipe.phase.numpy())].weight_decay) if self.phases else 0.0
        loss_name = self.cfg.task.loss_name

        def replica_step(x, y, first_counter, w=None):
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            x, y = self._augment(x, y, first_counter + tf.cast(replica, tf.int64))
            with tf.GradientTape() as tape:
                outputs = train_model(x, training=True)
                per_example = tasks.per_example_loss(loss_name, y, outputs)
                if w is not None:   # weights stay with their example (not mixed by mixup)
                    per_example = per_example * tf.cast(w, tf.float32)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                loss += tf.nn.scale_regularization_loss(self._regularization(model, phase_wd))
                if mixed:
                    loss = optimizer.scale_loss(loss)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return tf.reduce_sum(per_example)

        @tf.function
        def step(batch):
            x, y = batch[:2]
            weights = {'w': batch[2]} if len(batch) == 3 else {}
            run_step = recipe.steps_before.read_value() + tf.cast(optimizer.iterations, tf.int64)
            loss_sum = strategy.run(replica_step, args=(x, y, run_step * replicas), kwargs=weights)
            return strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sum, axis=None)

        return step

    def _distribute(self, ds: tf.data.Dataset, repeat: bool):
        options = tf.data.Options()
        if self.worker.num_workers > 1 and not repeat:
            # One pass per epoch: DATA sharding gives every worker the same number of steps
            # (FILE sharding over uneven shards would leave workers with empty batches).
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(ds.with_options(options))

    def train_steps(self, epoch: int = 1) -> Iterator[float]:
        """Optimizer steps on the repeated training data (in epoch ``epoch``'s order), one per item.

        Each ``next()`` runs one distributed training step and yields its loss: the mean per-example
        loss (``task.loss``, weighted when the data has weights) of the global batch (without the
        weight-decay term). Nothing is
        validated, checkpointed or logged: the LR range test and the benchmarks use it.
        """
        batch = self.cfg.input.batch_size
        ds = self.data.train_dataset(epoch_seed(self.cfg.seed, epoch), repeat=True)
        for item in self._distribute(ds, repeat=True):
            yield float(self._train_step(item)) / batch

    # ------------------------------------------------------------------ epoch parts
    def _train_epoch(self, epoch: int, tb_train):
        """One pass (or ``optimization.steps_per_epoch`` steps) → (mean train loss, steps, seconds)."""
        cfg = self.cfg
        spe = cfg.optimization.steps_per_epoch
        ds = self.data.train_dataset(epoch_seed(cfg.seed, epoch), repeat=spe is not None)
        iterator = iter(self._distribute(ds, repeat=spe is not None))
        hint = getattr(self.data, 'steps_hint', None)
        total = spe or self.steps_per_epoch or getattr(self, '_last_steps', None) or (hint() if hint else None)
        show = self.worker.is_chief and cfg.logging.progress
        bar = _progress(total, f'epoch {epoch}/{cfg.optimization.epochs}', show)
        loss_sum, steps, window_sum, window_n = 0.0, 0, 0.0, 0
        t0 = time.time()
        try:
            while spe is None or steps < spe:
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                value = float(self._train_step(batch))
                if not math.isfinite(value):
                    raise FloatingPointError(f'non-finite training loss at epoch {epoch}, step {steps + 1}')
                loss_sum += value
                window_sum += value
                window_n += 1
                steps += 1
                if bar is not None:
                    bar.update(1)
                if steps % cfg.logging.log_every_steps == 0:
                    self._log_running_loss(epoch, steps, window_sum / (window_n * cfg.input.batch_size),
                                           time.time() - t0, tb_train, bar)
                    window_sum, window_n = 0.0, 0
        finally:
            if bar is not None:
                bar.close()
        if steps == 0:
            raise ConfigError('input.batch_size', 'the training split yields no full batch '
                                                  f'of {cfg.input.batch_size} examples')
        self._last_steps = steps
        seconds = time.time() - t0
        return loss_sum / (steps * cfg.input.batch_size), steps, seconds

    def _log_running_loss(self, epoch, steps, running, seconds, tb_train, bar) -> None:
        it = self.iterations
        if tb_train is not None:
            with tb_train.as_default(step=self.global_step):
                tf.summary.scalar('batch_loss', running)
                tf.summary.scalar('batch_learning_rate', self.current_lr(it - 1))
        if bar is not None:
            bar.set_postfix(loss=f'{running:.4f}')
        elif self.worker.is_chief:
            log.info('epoch %d step %d: loss %.4f (%.1f steps/s)', epoch, steps, running,
                     steps / max(seconds, 1e-9))

    def validate(self) -> Optional[dict]:
        """Validation pass; None without a validation split (or with no validation window).

        Returns
        -------
        dict
            Tags task: ``val_loss`` (mean BCE over windows), ``val_roc_auc_macro``, ``val_pr_auc_macro``,
            ``val_roc_auc_micro``, ``val_pr_auc_micro`` (exact, on track scores = mean over windows;
            NaN when undefined), ``n_tracks``, ``n_windows``, ``metrics`` (the full
            ``tagging_metrics`` result). Latent task: ``val_loss`` (mean ``task.loss`` over windows),
            ``val_cosine``, ``val_recall_at_k`` (:func:`training.tasks.latent_metrics` on track vectors =
            mean over windows), ``n_tracks``, ``n_windows``, ``metrics``.
        """
        ds = self.data.validation_dataset()
        if ds is None:
            return None
        if self.cfg.task.kind == 'latent':
            return self._validate_latent(ds)
        from evaluation.metrics import WindowAggregator, tagging_metrics
        agg = WindowAggregator(len(self.labels))
        bce_sum, n = 0.0, 0
        for x, y, tid in ds:
            p = tf.cast(self._predict(x), tf.float32)
            bce_sum += float(tf.reduce_sum(keras.losses.binary_crossentropy(y, p)))
            n += int(y.shape[0])
            agg.update(tid.numpy(), p.numpy(), y.numpy())
        if n == 0:
            return None
        track_ids, track_scores, track_labels = agg.result()
        if not np.all(np.isfinite(track_scores)):
            raise FloatingPointError('the model produced non-finite validation scores')
        m = tagging_metrics(track_labels, track_scores, labels=self.labels)
        single = m.get('single_class_tags') or []
        if single and not getattr(self, '_single_logged', False) and self.worker.is_chief:
            log.info('validation: %d of %d tags have a single class (left out of the macro averages): %s',
                     len(single), len(self.labels), ', '.join(single))
            self._single_logged = True
        return {'val_loss': bce_sum / n,
                'val_roc_auc_macro': _nan(m.get('roc_auc_macro')), 'val_pr_auc_macro': _nan(m.get('pr_auc_macro')),
                'val_roc_auc_micro': _nan(m.get('roc_auc_micro')), 'val_pr_auc_micro': _nan(m.get('pr_auc_micro')),
                'n_tracks': len(track_ids), 'n_windows': n, 'metrics': m}

    def _validate_latent(self, ds) -> Optional[dict]:
        """The latent task's validation pass (see :meth:`validate`)."""
        agg = tasks.LatentAggregator()
        loss_sum, n = 0.0, 0
        for x, y, tid in ds:
            p = tf.cast(self._predict(x), tf.float32)
            loss_sum += float(tf.reduce_sum(tasks.per_example_loss(self.cfg.task.loss_name, y, p)))
            n += int(y.shape[0])
            agg.update(tid.numpy(), p.numpy(), y.numpy())
        if n == 0:
            return None
        track_ids, preds, targets = agg.result()
        if not np.all(np.isfinite(preds)):
            raise FloatingPointError('the model produced non-finite validation vectors')
        m = tasks.latent_metrics(preds, targets, self.cfg.task.recall_k)
        if not getattr(self, '_k_logged', False) and self.worker.is_chief:
            log.info('validation: %d tracks; recall@%d of random neighbours would be %.4f', len(track_ids), m['k'],
                     m['k'] / max(len(track_ids) - 1, 1))
            self._k_logged = True
        return {'val_loss': loss_sum / n, 'val_cosine': m['cosine'], 'val_recall_at_k': m['recall_at_k'],
                'n_tracks': len(track_ids), 'n_windows': n, 'metrics': m}

    # ------------------------------------------------------------------ run-dir files
    def _write_run_files(self, tb_train) -> None:
        """config.json (dataset.dir, task.targets, dataset.weights made absolute), labels.json, features.json;
        config to TensorBoard."""
        if not self.worker.is_chief:
            return
        resolved = config_to_dict(self.cfg)
        resolved['logging']['run_dir'] = self.run_dir
        resolved['dataset']['dir'] = _absolute(resolved['dataset']['dir'])
        for section, key in (('task', 'targets'), ('dataset', 'weights')):
            if resolved[section][key]:
                resolved[section][key] = _absolute(resolved[section][key])
        write_run_files(self.run_dir, config=resolved, labels=self.labels, features=self.info.features_json())
        if tb_train is not None:
            with tb_train.as_default(step=int(self.state.epoch.numpy())):
                tf.summary.text('config', '```\n' + json.dumps(resolved, indent=2) + '\n```')
                tf.summary.text('labels', ', '.join(self.labels))

    def _writers(self):
        """TensorBoard writers (train, validation) of the chief, else (None, None)."""
        if not (self.worker.is_chief and self.cfg.logging.tensorboard):
            return None, None
        return (tf.summary.create_file_writer(os.path.join(self.paths.tensorboard, 'train')),
                tf.summary.create_file_writer(os.path.join(self.paths.tensorboard, 'validation')))

    def _history(self) -> History:
        """history.csv as the restored checkpoint records it (rows of epochs 1..restored epoch)."""
        history = History(self.paths.history)
        saved = self.epoch_log.rows()
        done = int(self.state.epoch.numpy())
        before = list(history.rows)
        if saved is not None:
            history.rows = [dict(r) for r in saved]
        else:   # a new run, or a checkpoint without rows: drop rows of epochs not checkpointed
            history.truncate(done)
        if self.worker.is_chief and _no_nan(history.rows) != _no_nan(before):
            history.write()
        return history

    # ------------------------------------------------------------------ the loop
    def fit(self) -> TrainResult:
        """Train until ``optimization.epochs`` or early stopping, then export the best model.

        Each epoch runs the named steps :meth:`_train_and_validate`, :meth:`_update_callbacks`,
        :meth:`_save_epoch` and :meth:`_log_epoch`. The run directory's lock is released at the end.

        Raises
        ------
        core.errors.NoSpaceError
            The device filled up: incomplete checkpoint files were removed and the message names
            the last complete checkpoint, from which ``--resume`` continues (exit code 4).
        FloatingPointError
            A non-finite training loss or validation score.
        """
        t_start = time.time()
        if self._lock is not None:
            self._lock.acquire()   # again, if a previous fit released it
        try:
            history, trained, callbacks = self._run_epochs()
            self._phase = 'exporting the model'
            if self.worker.is_chief and self.do_export and (trained or self._export_outdated()):
                self.export()
        except BaseException as exc:
            self._discard_incomplete()
            if isinstance(exc, Exception) and is_no_space(exc):
                raise self._no_space_error(exc) from exc
            raise
        finally:
            self.close()
        state = self.state
        best_epoch = int(state.best_epoch.numpy()) or None
        result = TrainResult(self.run_dir, int(state.epoch.numpy()), best_epoch, state.get(state.best_value),
                             callbacks.monitor, bool(state.get(state.stopped)), history.rows, time.time() - t_start)
        if self.worker.is_chief:
            log.info('done: %d epoch(s) in %s; best %s = %s at epoch %s%s', result.epochs_completed,
                     _hms(result.seconds), result.monitor, _f4(result.best_value), best_epoch,
                     f'; exported {self.paths.model_keras}' if self.do_export else '')
        return result

    def _run_epochs(self):
        """The epoch loop → (History, epochs trained now, _Callbacks)."""
        cfg = self.cfg
        self._phase = 'writing the run files'
        history = self._history()
        writers = self._writers()
        try:
            self._write_run_files(writers[0])
            callbacks = self._callbacks()
            self._log_start(callbacks)
            trained = 0
            for epoch in range(int(self.state.epoch.numpy()) + 1, cfg.optimization.epochs + 1):
                if callbacks.stopped:
                    break
                self._enter_phase(epoch)
                self._phase = f'training epoch {epoch}'
                row, validated = self._train_and_validate(epoch, writers[0])
                improved = self._update_callbacks(epoch, row, validated, callbacks)
                self._phase = f'saving epoch {epoch}'
                self._save_epoch(epoch, row, improved, callbacks.monitor, history)
                self._log_epoch(epoch, row, validated, writers)
                trained += 1
                if callbacks.stopped and self.worker.is_chief:
                    log.info('early stopping after epoch %d: %s has not improved for %d epochs (best %s at epoch %d)',
                             epoch, callbacks.monitor, cfg.callbacks.early_stopping.patience,
                             _f4(callbacks.best.best), int(self.state.best_epoch.numpy()))
        finally:
            _close_writers(writers)
        return history, trained, callbacks

    def _callbacks(self) -> _Callbacks:
        """Early stopping, reduce-on-plateau and the best tracker, continued from the loop state."""
        cfg, state = self.cfg, self.state
        es_cfg, rp_cfg = cfg.callbacks.early_stopping, cfg.callbacks.reduce_on_plateau
        monitor = es_cfg.monitor
        stopper = EarlyStopping(es_cfg.patience, mode=monitor_mode(monitor), min_delta=es_cfg.min_delta,
                                best=state.get(state.es_best), wait=state.get(state.es_wait)) \
            if self.use_early_stop else None
        reducer = PlateauReducer(rp_cfg.patience, rp_cfg.factor, mode=monitor_mode(rp_cfg.monitor),
                                 min_delta=rp_cfg.min_delta, best=state.get(state.rp_best),
                                 wait=state.get(state.rp_wait), scale=state.get(state.lr_scale)) \
            if self.use_plateau else None
        best = Tracker(monitor_mode(monitor), 0.0, state.get(state.best_value))
        stopped = bool(state.get(state.stopped)) and self.use_early_stop
        return _Callbacks(monitor, best, stopper, reducer, stopped)

    def _log_start(self, callbacks: _Callbacks) -> None:
        if not self.worker.is_chief:
            return
        if callbacks.stopped:
            log.info('run %s early-stopped at epoch %d; nothing left to train', self.run_dir,
                     int(self.state.epoch.numpy()))
        outputs = (f'{len(self.labels)} tags' if self.cfg.task.kind == 'tags'
                   else f'latent vectors of dimension {len(self.labels)} ({self.cfg.task.loss_name} loss)')
        size = getattr(self.info, 'frames', None) or getattr(self.info, 'samples', None)
        log.info('training %s: %s, %d replica(s) x %d worker(s), global batch %d, %s input%s',
                 self.run_dir, outputs, self.replicas // max(self.worker.num_workers, 1),
                 self.worker.num_workers, self.cfg.input.batch_size, self.info.kind, f' {size}' if size else '')

    def _train_and_validate(self, epoch: int, tb_train) -> tuple:
        """Train one epoch and validate → (history row, whether there was a validation pass)."""
        train_loss, steps, train_s = self._train_epoch(epoch, tb_train)
        lr_used = self.current_lr(self.iterations - 1)
        t_val = time.time()
        val = self.validate()
        val_s = time.time() - t_val
        row = {'epoch': epoch, 'train_loss': train_loss, 'lr': lr_used, 'steps': steps,
               'train_seconds': round(train_s, 3), 'val_seconds': round(val_s, 3),
               'train_examples_per_sec': round(steps * self.cfg.input.batch_size / max(train_s, 1e-9), 2)}
        if val is not None:
            row.update({k: v for k, v in val.items() if k.startswith('val_')})
        return row, val is not None

    def _update_callbacks(self, epoch: int, row: dict, validated: bool, cb: _Callbacks) -> bool:
        """Best tracker, early stopping, reduce-on-plateau → the loop state; True if ``epoch`` is the best.

        Every worker takes the same decisions: same weights, same validation data.
        """
        state, rp_monitor = self.state, self.cfg.callbacks.reduce_on_plateau.monitor
        value = row.get(cb.monitor)
        improved = cb.best.update(_nan(value)) if validated else True
        if improved:
            state.best_value.assign(_nan(cb.best.best))
            state.best_epoch.assign(epoch)
            if any(p.reload_best for p in self.phases):
                self._best_weights = (epoch, [np.array(w.numpy()) for w in self.model.weights])
        if cb.stopper is not None and validated:
            if cb.stopper.update(_nan(value)):
                cb.stopped = True
                state.stopped.assign(1)
            state.es_best.assign(_nan(cb.stopper.tracker.best))
            state.es_wait.assign(cb.stopper.tracker.wait)
        if cb.reducer is not None and validated:
            if cb.reducer.update(_nan(row.get(rp_monitor))):
                state.lr_scale.assign(cb.reducer.scale)
                if self.worker.is_chief:
                    log.info('reduce-on-plateau: LR scale -> %.4g (next LR %.3g)', cb.reducer.scale,
                             self.current_lr())
            state.rp_best.assign(_nan(cb.reducer.tracker.best))
            state.rp_wait.assign(cb.reducer.tracker.wait)
        state.epoch.assign(epoch)
        return improved

    def _save_epoch(self, epoch: int, row: dict, improved: bool, monitor: str, history: History) -> None:
        """The epoch checkpoint (with the history rows inside), then the best one, then history.csv.

        In this order a run stopped at any point (a full disk, a kill) leaves a run directory whose
        files agree: the history row and the best checkpoint of an epoch exist only once its epoch
        checkpoint is complete, and resuming restores what is missing after it.
        """
        self.epoch_log.set(history.rows + [row])
        self.manager.save(checkpoint_number=epoch)
        if not self.worker.is_chief:
            history.rows.append(row)
            return
        if improved:
            self._keep_best(epoch, row.get(monitor))
        history.append(row)

    def _keep_best(self, epoch: int, value) -> None:
        """Keep the (complete) epoch checkpoint as ``checkpoints/best/best-<epoch>`` + best.json (chief)."""
        src = os.path.join(self.paths.checkpoints, f'{_CKPT}-{epoch}')
        best = rundir.keep_checkpoint_as(src, self.paths.best, f'{_BEST}-{epoch}')
        value = None if value is None or math.isnan(value) else value
        write_json(self.paths.best_json, {'epoch': epoch, 'monitor': self.cfg.callbacks.early_stopping.monitor,
                                          'value': value, 'checkpoint': os.path.basename(best)})

    def _log_epoch(self, epoch: int, row: dict, validated: bool, writers) -> None:
        """The epoch's line on the console and its scalars in TensorBoard (chief)."""
        if not self.worker.is_chief:
            return
        _log_epoch_line(epoch, self.cfg.optimization.epochs, row)
        tb_train, tb_val = writers
        if tb_train is not None:
            with tb_train.as_default(step=epoch):
                tf.summary.scalar('epoch_loss', row['train_loss'])
                tf.summary.scalar('learning_rate', row['lr'])
                tf.summary.scalar('steps_per_second', row['steps'] / max(row['train_seconds'], 1e-9))
            tb_train.flush()
        if tb_val is not None and validated:
            names = (('cosine', 'recall_at_k') if self.cfg.task.kind == 'latent'
                     else ('roc_auc_macro', 'pr_auc_macro', 'roc_auc_micro', 'pr_auc_micro'))
            with tb_val.as_default(step=epoch):
                tf.summary.scalar('epoch_loss', row['val_loss'])
                for k in names:
                    tf.summary.scalar(k, row['val_' + k])
            tb_val.flush()

    def _no_space_error(self, exc: BaseException) -> NoSpaceError:
        """The one-line message of a full disk: what was being done, the last complete checkpoint."""
        last = rundir.latest_checkpoint(self.paths.checkpoints) if self.worker.is_chief else None
        where = (f'the last complete checkpoint is epoch {rundir.checkpoint_number(last)} ({last})' if last
                 else 'no epoch was saved yet')
        err = NoSpaceError(f'no space left on the device while {self._phase} of {self.run_dir} '
                           f'({_short_reason(exc)}); {where}; incomplete checkpoint files were removed. '
                           'Free some space, then continue the run with --resume')
        err.last_checkpoint = last
        return err

    # ------------------------------------------------------------------ export
    def _export_outdated(self) -> bool:
        """True when model.keras is missing or older than the checkpoint it would be exported from."""
        src = rundir.latest_checkpoint(self.paths.best) or rundir.latest_checkpoint(self.paths.checkpoints)
        if not os.path.isfile(self.paths.model_keras):
            return src is not None
        return src is not None and os.path.getmtime(self.paths.model_keras) < os.path.getmtime(src + '.index')

    def export(self) -> Optional[str]:
        """Write model.keras and saved_model/ from the best checkpoint (or the last one)."""
        src = rundir.latest_checkpoint(self.paths.best) or rundir.latest_checkpoint(self.paths.checkpoints)
        if src is None:
            log.warning('nothing to export: no checkpoint in %s', self.paths.checkpoints)
            return None
        model = self.model_fn(len(self.labels), self.info)  # outside the strategy: a plain model
        tf.train.Checkpoint(model=model).restore(src).expect_partial()
        export_model(model, self.run_dir)
        return src


def _no_nan(rows: list) -> list:
    """History rows with NaN as None (history.csv writes both as an empty field)."""
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows]


def _close_writers(writers) -> None:
    """Close TensorBoard writers; a failing final flush (a full disk) is a warning, not the error
    that ends the run (it would hide the one that did)."""
    for w in writers:
        if w is None:
            continue
        try:
            w.close()
        except Exception as exc:  # noqa: BLE001 - TensorBoard events are not needed to resume
            log.warning('could not finish the TensorBoard events: %s', _short_reason(exc))


def _absolute(path: str) -> str:
    """An absolute local path (URLs unchanged), so the run can be evaluated from any directory."""
    return path if not path or is_url(path) else os.path.abspath(path)


def _short_reason(exc: BaseException) -> str:
    """'File too large' / 'No space left on device' … from an OSError or a TensorFlow error."""
    text = str(exc)
    for reason in ('No space left on device', 'Disk quota exceeded', 'File too large'):
        if reason.lower() in text.lower():
            return reason
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _progress(total, desc, show):
    if not show:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit='step', leave=False, mininterval=1.0, dynamic_ncols=True)


def _f4(x) -> str:
    return 'nan' if x is None or (isinstance(x, float) and math.isnan(x)) else f'{x:.4f}'


def _hms(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f'{h}:{m:02d}:{s:02d}' if h else f'{m}:{s:02d}'


def _log_epoch_line(epoch, epochs, row) -> None:
    val = ''
    if 'val_cosine' in row:
        val = (f' | val loss {row["val_loss"]:.4f} cosine {_f4(row.get("val_cosine"))} '
               f'recall@k {_f4(row.get("val_recall_at_k"))}')
    elif row.get('val_loss') is not None:
        val = (f' | val loss {row["val_loss"]:.4f} ROC-AUC {_f4(row.get("val_roc_auc_macro"))}/'
               f'{_f4(row.get("val_roc_auc_micro"))} PR-AUC {_f4(row.get("val_pr_auc_macro"))}/'
               f'{_f4(row.get("val_pr_auc_micro"))} (macro/micro)')
    log.info('epoch %d/%d: loss %.4f%s | lr %.3g | %d steps %.1f steps/s %.0f ex/s, val %.1f s',
             epoch, epochs, row['train_loss'], val, row['lr'], row['steps'],
             row['steps'] / max(row['train_seconds'], 1e-9), row['train_examples_per_sec'], row['val_seconds'])


def train(cfg: Config, **kwargs) -> TrainResult:
    """Build a :class:`Trainer` and run it (see its parameters)."""
    with Trainer(cfg, **kwargs) as trainer:
        return trainer.fit()
