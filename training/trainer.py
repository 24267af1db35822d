"""The one training loop of MuseTag (custom ``strategy.run`` loop for every model and strategy).

Why a custom loop: Keras ``fit`` fails under ``MultiWorkerMirroredStrategy`` in this stack
(ENVIRONMENT.md), and Orpheus' two diverging paths (custom loop and ``fit``) had different loss
scaling, callbacks and resume bugs (SPEC 10.12). Here one loop serves ``MirroredStrategy``
(1..n local replicas), ``OneDeviceStrategy`` and ``MultiWorkerMirroredStrategy``.

Per step: binary cross-entropy per example (mean over tags), summed and divided by the GLOBAL
batch size (``tf.nn.compute_average_loss``), plus ``weight_decay * sum(0.5 ||W||^2)`` over kernels
and any ``model.losses``, both scaled by ``1 / num_replicas`` (``tf.nn.scale_regularization_loss``)
because replica gradients are summed. Partial last batches are dropped, so every step sees exactly
the global batch.

Per epoch: mean train loss; a validation pass over every window of every validation track
(mean BCE over windows = ``val_loss``) and EXACT ROC-AUC / PR-AUC, macro and micro, on whole-track
scores (mean over windows) from ``evaluation.metrics``; the learning rate. All of it goes to
TensorBoard (``tensorboard/{train,validation}``) and ``history.csv``. Then early stopping and
reduce-on-plateau update their state, a checkpoint ``checkpoints/ckpt-<epoch>`` is written (keep
``logging.keep_checkpoints``) and, when the monitored value improved, ``checkpoints/best/``.

Resume (``resume=True``): restores model, optimizer (including ``iterations``, hence the LR schedule
position), epoch counter, early-stopping / plateau state and the best value from the newest epoch
checkpoint. A run killed in the middle of an epoch restarts that epoch from its beginning (the
data order of epoch e depends only on ``seed`` and e, so the re-run sees the same batches).
Without a checkpoint, ``resume=True`` simply starts: passing ``--resume`` always is a safe way to
restart crashed jobs.

Validation runs on one device per worker, outside ``strategy.run``: every worker computes the same
metrics from the same weights, so early-stopping decisions agree without communication.
"""
from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from . import finetune
from .config import Config, ConfigError, config_name, config_to_dict, monitor_mode, schedule_unused_params
from .data import InputInfo, TFRecordSource
from .monitors import EarlyStopping, PlateauReducer, Tracker
from .rundir import History, RunPaths, read_json, replace_dir, write_json
from .schedules import PlateauScaled, build_schedule, needs_steps_per_epoch
from .strategy import make_strategy, tf_config_cluster_size, worker_info

__all__ = ['Trainer', 'TrainResult', 'TrainState', 'registry_model_fn', 'make_optimizer',
           'default_run_dir', 'train', 'epoch_seed']

log = logging.getLogger('musetag.training')

ModelFn = Callable[[int, InputInfo], keras.Model]
_ONLY_FIRST = tf.VariableAggregation.ONLY_FIRST_REPLICA
#: Keys that must not change when a run is resumed (the checkpoint would not fit otherwise).
_FROZEN_ON_RESUME = (('model', 'name'), ('model', 'hparams'), ('dataset', 'tags'), ('input', 'window_seconds'),
                     ('input', 'feature_params'))


def epoch_seed(seed: int, epoch: int) -> int:
    """Data seed of epoch ``epoch`` (1-based): a resumed epoch replays the same order."""
    return (seed * 1000003 + epoch) % (2 ** 31 - 1)


def default_run_dir(config_path: Optional[str]) -> str:
    return os.path.join('runs', f'{config_name(config_path)}-{time.strftime("%Y%m%d-%H%M%S")}')


def registry_model_fn(model_cfg) -> ModelFn:
    """Model factory backed by ``modeling.build_model`` (CONTRACT.md)."""

    def build(n_outputs: int, info: InputInfo) -> keras.Model:
        import modeling
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
    """

    def __init__(self, cfg: Config, *, run_dir: Optional[str] = None, resume: bool = False,
                 overwrite: bool = False, data=None, model_fn: Optional[ModelFn] = None,
                 strategy: Optional[tf.distribute.Strategy] = None, config_path: Optional[str] = None,
                 schedule_override=None, export: bool = True):
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
        if cfg.optimization.optimizer.name:  # name and kwargs are checked before anything slow
            _optimizer_class(cfg.optimization.optimizer)
        for name in schedule_unused_params(cfg.optimization.schedule):
            log.warning('optimization.schedule.%s is not used by schedule "%s"', name,
                        cfg.optimization.schedule.name)
        self._prepare_run_dir(overwrite)
        keras.utils.set_random_seed(cfg.seed)
        self.data = data if data is not None else TFRecordSource(cfg)
        self.labels = list(self.data.labels)
        self.info: InputInfo = self.data.info
        self.model_fn = model_fn or registry_model_fn(cfg.model)
        self._ckpt_dir, self._best_dir = self._checkpoint_dirs()
        self._latest = tf.train.latest_checkpoint(self.paths.checkpoints) if resume else None
        self._check_resume_compat()
        self._build()

    # ------------------------------------------------------------------ set-up
    def _prepare_run_dir(self, overwrite: bool) -> None:
        has_ckpt = tf.train.latest_checkpoint(self.paths.checkpoints) is not None
        if overwrite and os.path.isdir(self.run_dir) and self.worker.is_chief and not self.resume:
            shutil.rmtree(self.run_dir)
            has_ckpt = False
        if has_ckpt and not self.resume:
            raise ConfigError('logging.run_dir', f'"{self.run_dir}" already holds checkpoints: pass --resume '
                                                 'to continue it, --overwrite to replace it, or another --run-dir')
        if self.worker.is_chief:
            os.makedirs(self.run_dir, exist_ok=True)

    def _checkpoint_dirs(self):
        if self.worker.is_chief:
            return self.paths.checkpoints, self.paths.best
        # Non-chief workers must take part in saving (collective reads of the variables) but
        # write to a private temporary directory that is deleted at the end.
        self._tmp = tempfile.mkdtemp(prefix=f'musetag-worker{self.worker.task_id}-')
        return os.path.join(self._tmp, 'checkpoints'), os.path.join(self._tmp, 'checkpoints', 'best')

    def _check_resume_compat(self) -> None:
        if not self._latest or not os.path.isfile(self.paths.config):
            return
        saved, now = read_json(self.paths.config), config_to_dict(self.cfg)
        for key in _FROZEN_ON_RESUME:
            a, b = saved, now
            for k in key:
                a, b = (a or {}).get(k), (b or {}).get(k)
            if a != b:
                raise ConfigError('.'.join(key), f'differs from the resumed run ({a!r} in {self.paths.config}); '
                                                 'resume with the same value or start a new run')
        if os.path.isfile(self.paths.labels) and read_json(self.paths.labels) != self.labels:
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
                    np.int64(0), lambda c, _x, _y: c + 1).numpy())
                log.info('counted %d steps per epoch in %.1f s', n, time.time() - t0)
            if n == 0:
                raise ConfigError('input.batch_size', 'the training split has fewer examples than one batch')
            log.info('schedule "%s": %d steps per epoch (set optimization.steps_per_epoch to override)',
                     opt.schedule.name, n)
            return n
        return None

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
        with self.strategy.scope():
            self.model = self.model_fn(len(self.labels), self.info)
        if cfg.model.batchnorm_momentum is not None:
            n_bn = set_batchnorm_momentum(self.model, cfg.model.batchnorm_momentum)
            log.info('batch-norm momentum %.3g in %d layer(s)', cfg.model.batchnorm_momentum, n_bn)
        n_out = int(self.model.outputs[0].shape[-1]) if getattr(self.model, 'outputs', None) else None
        if n_out is not None and n_out != len(self.labels):
            raise ConfigError('model.name', f'the model has {n_out} outputs but {len(self.labels)} labels were selected')
        self.finetune_report = None
        if cfg.model.init_from and not self._latest:
            self.finetune_report = finetune.init_from_run(
                self.model, self.labels, cfg.model.init_from,
                rebuild=lambda n: self.model_fn(n, self.info), freeze=cfg.model.freeze_frontend)
        elif cfg.model.init_from and cfg.model.freeze_frontend:
            finetune.freeze_frontend(self.model)  # resumed fine-tuning: weights come from the checkpoint
        with self.strategy.scope():
            self.state = TrainState()
            if self.schedule_override is not None:
                self.schedule = self.schedule_override
            else:
                base_lr = float(cfg.optimization.optimizer.kwargs.get('learning_rate', 0.001))
                base = build_schedule(sch, base_lr=base_lr, steps_per_epoch=self.steps_per_epoch,
                                      epochs=cfg.optimization.epochs)
                self.schedule = PlateauScaled(base, self.state.lr_scale, rp.min_lr) if self.use_plateau else base
            self.optimizer = make_optimizer(cfg.optimization.optimizer, self.schedule)
            # Required before the first distributed step with >1 replica (ENVIRONMENT.md).
            self.optimizer.build(self.model.trainable_variables)
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, state=self.state)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self._ckpt_dir,
                                                  max_to_keep=cfg.logging.keep_checkpoints)
        self.best_manager = tf.train.CheckpointManager(self.checkpoint, self._best_dir, max_to_keep=1,
                                                       checkpoint_name='best')
        if self._latest:
            self.checkpoint.restore(self._latest).assert_existing_objects_matched()
            log.info('resumed from %s: %d epoch(s) done, %d optimizer steps', self._latest,
                     int(self.state.epoch.numpy()), self.iterations)
        elif self.steps_per_epoch:
            self.state.steps_per_epoch.assign(self.steps_per_epoch)
        self._train_step = self._make_train_step()
        self._predict = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    @property
    def iterations(self) -> int:
        return int(np.asarray(self.optimizer.iterations.numpy()))

    def current_lr(self, step: Optional[int] = None) -> float:
        """Learning rate at optimizer step ``step`` (default: the next step)."""
        step = self.iterations if step is None else step
        return float(self.schedule(tf.constant(step, tf.int64)))

    # ------------------------------------------------------------------ step
    def _make_train_step(self):
        model, optimizer, strategy = self.model, self.optimizer, self.strategy
        global_batch = self.cfg.input.batch_size
        wd = float(self.cfg.optimization.weight_decay)

        def replica_step(x, y):
            with tf.GradientTape() as tape:
                probs = model(x, training=True)
                per_example = keras.losses.binary_crossentropy(y, tf.cast(probs, tf.float32))
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                reg = tf.constant(0.0)
                if wd > 0:
                    reg += wd * _kernel_l2(model.trainable_variables)
                if model.losses:
                    reg += tf.add_n([tf.cast(v, tf.float32) for v in model.losses])
                loss += tf.nn.scale_regularization_loss(reg)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return tf.reduce_sum(per_example)

        @tf.function
        def step(batch):
            x, y = batch
            loss_sum = strategy.run(replica_step, args=(x, y))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sum, axis=None)

        return step

    def _distribute(self, ds: tf.data.Dataset, repeat: bool):
        options = tf.data.Options()
        if self.worker.num_workers > 1 and not repeat:
            # One pass per epoch: DATA sharding gives every worker the same number of steps
            # (FILE sharding over uneven shards would leave workers with empty batches).
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(ds.with_options(options))

    # ------------------------------------------------------------------ epoch parts
    def _train_epoch(self, epoch: int, tb_train):
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
                    running = window_sum / (window_n * cfg.input.batch_size)
                    it = self.iterations
                    if tb_train is not None:
                        with tb_train.as_default(step=it):
                            tf.summary.scalar('batch_loss', running)
                            tf.summary.scalar('batch_learning_rate', self.current_lr(it - 1))
                    if bar is not None:
                        bar.set_postfix(loss=f'{running:.4f}')
                    elif self.worker.is_chief:
                        log.info('epoch %d step %d: loss %.4f (%.1f steps/s)', epoch, steps, running,
                                 steps / max(time.time() - t0, 1e-9))
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

    def validate(self) -> Optional[dict]:
        """Validation pass: ``val_loss`` and exact track-level AUCs; None without a validation split.

        Returns
        -------
        dict with ``val_loss``, ``val_roc_auc_macro``, ``val_pr_auc_macro``, ``val_roc_auc_micro``,
        ``val_pr_auc_micro`` (NaN when undefined), ``n_tracks``, ``n_windows``, ``metrics`` (the
        full ``tagging_metrics`` result).
        """
        ds = self.data.validation_dataset()
        if ds is None:
            return None
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
        metrics_log = logging.getLogger('evaluation.metrics')
        level = metrics_log.level
        metrics_log.setLevel(logging.WARNING)   # its per-call INFO line would repeat every epoch
        try:
            m = tagging_metrics(track_labels, track_scores, labels=self.labels)
        finally:
            metrics_log.setLevel(level)
        single = m.get('single_class_tags') or []
        if single and not getattr(self, '_single_logged', False) and self.worker.is_chief:
            log.info('validation: %d of %d tags have a single class (left out of the macro averages): %s',
                     len(single), len(self.labels), ', '.join(single))
            self._single_logged = True
        return {'val_loss': bce_sum / n,
                'val_roc_auc_macro': _nan(m.get('roc_auc_macro')), 'val_pr_auc_macro': _nan(m.get('pr_auc_macro')),
                'val_roc_auc_micro': _nan(m.get('roc_auc_micro')), 'val_pr_auc_micro': _nan(m.get('pr_auc_micro')),
                'n_tracks': len(track_ids), 'n_windows': n, 'metrics': m}

    # ------------------------------------------------------------------ run-dir files
    def _write_run_files(self, tb_train) -> None:
        if not self.worker.is_chief:
            return
        resolved = config_to_dict(self.cfg)
        resolved['logging']['run_dir'] = self.run_dir
        write_json(self.paths.config, resolved)
        write_json(self.paths.labels, self.labels)
        write_json(self.paths.features, self.info.features_json())
        if tb_train is not None:
            import json
            with tb_train.as_default(step=int(self.state.epoch.numpy())):
                tf.summary.text('config', '```\n' + json.dumps(resolved, indent=2) + '\n```')
                tf.summary.text('labels', ', '.join(self.labels))

    def _writers(self):
        if not (self.worker.is_chief and self.cfg.logging.tensorboard):
            return None, None
        return (tf.summary.create_file_writer(os.path.join(self.paths.tensorboard, 'train')),
                tf.summary.create_file_writer(os.path.join(self.paths.tensorboard, 'validation')))

    # ------------------------------------------------------------------ the loop
    def fit(self) -> TrainResult:
        """Train until ``optimization.epochs`` or early stopping, then export the best model."""
        cfg, state = self.cfg, self.state
        t_start = time.time()
        es_cfg, rp_cfg = cfg.callbacks.early_stopping, cfg.callbacks.reduce_on_plateau
        monitor = es_cfg.monitor
        history = History(self.paths.history)
        done = int(state.epoch.numpy())
        n_rows = len(history.rows)
        history.truncate(done)
        if len(history.rows) != n_rows and self.worker.is_chief:
            history.write()   # rows of an epoch that was not checkpointed before a crash
        tb_train, tb_val = self._writers()
        self._write_run_files(tb_train)
        stopper = EarlyStopping(es_cfg.patience, mode=monitor_mode(monitor), min_delta=es_cfg.min_delta,
                                best=state.get(state.es_best), wait=state.get(state.es_wait)) \
            if self.use_early_stop else None
        reducer = PlateauReducer(rp_cfg.patience, rp_cfg.factor, mode=monitor_mode(rp_cfg.monitor),
                                 min_delta=rp_cfg.min_delta, best=state.get(state.rp_best),
                                 wait=state.get(state.rp_wait), scale=state.get(state.lr_scale)) \
            if self.use_plateau else None
        best = Tracker(monitor_mode(monitor), 0.0, state.get(state.best_value))
        stopped = bool(state.get(state.stopped)) and self.use_early_stop
        if stopped:
            log.info('run %s early-stopped at epoch %d; nothing left to train', self.run_dir, done)
        if self.worker.is_chief:
            log.info('training %s: %d tags, %d replica(s) x %d worker(s), global batch %d, %s input %s',
                     self.run_dir, len(self.labels), self.replicas // max(self.worker.num_workers, 1),
                     self.worker.num_workers, cfg.input.batch_size, self.info.kind,
                     self.info.frames or self.info.samples)
        trained = 0
        for epoch in range(done + 1, cfg.optimization.epochs + 1):
            if stopped:
                break
            trained += 1
            train_loss, steps, train_s = self._train_epoch(epoch, tb_train)
            lr_used = self.current_lr(self.iterations - 1)
            t_val = time.time()
            val = self.validate()
            val_s = time.time() - t_val
            row = {'epoch': epoch, 'train_loss': train_loss, 'lr': lr_used, 'steps': steps,
                   'train_seconds': round(train_s, 3), 'val_seconds': round(val_s, 3),
                   'train_examples_per_sec': round(steps * cfg.input.batch_size / max(train_s, 1e-9), 2)}
            if val is not None:
                row.update({k: v for k, v in val.items() if k.startswith('val_')})
            # ---- callbacks (same decisions on every worker: same weights, same data)
            value = row.get(monitor)
            improved = best.update(_nan(value)) if val is not None else True
            if improved:
                state.best_value.assign(_nan(best.best))
                state.best_epoch.assign(epoch)
            if stopper is not None and val is not None:
                if stopper.update(_nan(value)):
                    stopped = True
                    state.stopped.assign(1)
                state.es_best.assign(_nan(stopper.tracker.best))
                state.es_wait.assign(stopper.tracker.wait)
            if reducer is not None and val is not None:
                if reducer.update(_nan(row.get(rp_cfg.monitor))):
                    state.lr_scale.assign(reducer.scale)
                    if self.worker.is_chief:
                        log.info('reduce-on-plateau: LR scale -> %.4g (next LR %.3g)', reducer.scale,
                                 self.current_lr())
                state.rp_best.assign(_nan(reducer.tracker.best))
                state.rp_wait.assign(reducer.tracker.wait)
            state.epoch.assign(epoch)
            # ---- logs first, then the checkpoint: a crash in between leaves an extra history row
            # that the resumed run drops (History.truncate), never a checkpoint without its row.
            if self.worker.is_chief:
                history.append(row)
                _log_epoch(epoch, cfg.optimization.epochs, row)
                if tb_train is not None:
                    with tb_train.as_default(step=epoch):
                        tf.summary.scalar('epoch_loss', train_loss)
                        tf.summary.scalar('learning_rate', lr_used)
                        tf.summary.scalar('steps_per_second', steps / max(train_s, 1e-9))
                    tb_train.flush()
                if tb_val is not None and val is not None:
                    with tb_val.as_default(step=epoch):
                        tf.summary.scalar('epoch_loss', val['val_loss'])
                        for k in ('roc_auc_macro', 'pr_auc_macro', 'roc_auc_micro', 'pr_auc_micro'):
                            tf.summary.scalar(k, val['val_' + k])
                    tb_val.flush()
            else:
                history.rows.append(row)
            # best before the epoch checkpoint: an epoch checkpoint never records a best epoch
            # whose weights are not on disk
            if improved:
                self.best_manager.save(checkpoint_number=epoch)
                if self.worker.is_chief:
                    write_json(self.paths.best_json, {'epoch': epoch, 'monitor': monitor,
                                                      'value': None if value is None or math.isnan(value) else value,
                                                      'checkpoint': os.path.basename(self.best_manager.latest_checkpoint)})
            self.manager.save(checkpoint_number=epoch)
            if stopped and self.worker.is_chief:
                log.info('early stopping after epoch %d: %s has not improved for %d epochs (best %.4f at epoch %d)',
                         epoch, monitor, es_cfg.patience, best.best if best.best is not None else math.nan,
                         int(state.best_epoch.numpy()))
        for w in (tb_train, tb_val):
            if w is not None:
                w.close()
        if self.worker.is_chief:
            if self.do_export and (trained or not os.path.isfile(self.paths.model_keras)):
                self.export()
        else:
            shutil.rmtree(getattr(self, '_tmp', ''), ignore_errors=True)
        best_epoch = int(state.best_epoch.numpy()) or None
        result = TrainResult(self.run_dir, int(state.epoch.numpy()), best_epoch, state.get(state.best_value),
                             monitor, bool(state.get(state.stopped)), history.rows, time.time() - t_start)
        if self.worker.is_chief:
            log.info('done: %d epoch(s) in %s; best %s = %s at epoch %s%s', result.epochs_completed,
                     _hms(result.seconds), monitor, _f4(result.best_value), best_epoch,
                     f'; exported {self.paths.model_keras}' if self.do_export else '')
        return result

    # ------------------------------------------------------------------ export
    def export(self) -> Optional[str]:
        """Write model.keras and saved_model/ from the best checkpoint (or the last one)."""
        src = tf.train.latest_checkpoint(self.paths.best) or tf.train.latest_checkpoint(self.paths.checkpoints)
        if src is None:
            log.warning('nothing to export: no checkpoint in %s', self.paths.checkpoints)
            return None
        model = self.model_fn(len(self.labels), self.info)  # outside the strategy: a plain model
        tf.train.Checkpoint(model=model).restore(src).expect_partial()
        export_model(model, self.paths)
        return src


def export_model(model: keras.Model, paths: RunPaths) -> None:
    """Save ``model`` as ``model.keras`` and ``saved_model/`` (output renamed ``tags`` if needed)."""
    model = _with_tags_output(model)
    tmp_keras = os.path.join(paths.root, '.model.tmp.keras')
    model.save(tmp_keras)
    os.replace(tmp_keras, paths.model_keras)
    tmp_dir = tempfile.mkdtemp(prefix='.saved_model.tmp', dir=paths.root)
    shutil.rmtree(tmp_dir)
    _quiet(model.export, tmp_dir)
    replace_dir(tmp_dir, paths.saved_model)


def _quiet(fn, *args):
    """model.export prints its endpoint summary to stdout; keep batch logs clean."""
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def _with_tags_output(model: keras.Model) -> keras.Model:
    if list(getattr(model, 'output_names', []) or []) == ['tags']:
        return model
    inputs = model.inputs
    outputs = keras.layers.Identity(name='tags')(model(inputs[0] if len(inputs) == 1 else inputs))
    return keras.Model(inputs, outputs, name=model.name)


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


def _log_epoch(epoch, epochs, row) -> None:
    val = ''
    if row.get('val_loss') is not None:
        val = (f' | val loss {row["val_loss"]:.4f} ROC-AUC {_f4(row.get("val_roc_auc_macro"))}/'
               f'{_f4(row.get("val_roc_auc_micro"))} PR-AUC {_f4(row.get("val_pr_auc_macro"))}/'
               f'{_f4(row.get("val_pr_auc_micro"))} (macro/micro)')
    log.info('epoch %d/%d: loss %.4f%s | lr %.3g | %d steps %.1f steps/s %.0f ex/s, val %.1f s',
             epoch, epochs, row['train_loss'], val, row['lr'], row['steps'],
             row['steps'] / max(row['train_seconds'], 1e-9), row['train_examples_per_sec'], row['val_seconds'])


def train(cfg: Config, **kwargs) -> TrainResult:
    """Build a :class:`Trainer` and run it (see its parameters)."""
    return Trainer(cfg, **kwargs).fit()
