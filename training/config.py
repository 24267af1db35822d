"""Training configuration: JSON file -> frozen dataclasses, with key-naming errors.

A config is a JSON object with the sections ``dataset``, ``input``, ``task``, ``model``,
``optimization``, ``callbacks``, ``distribution``, ``logging`` plus ``seed`` and ``description``. Every key is
checked: an unknown key or a value of the wrong type raises :class:`ConfigError` whose message
names the dotted key, e.g. ``config error: optimization.schedule.max_lr: expected number, got
"abc"``. Missing keys take the defaults documented in :data:`Config` (see
``python -m training --explain``).

Whole-line comments starting with ``//`` or ``#`` are allowed in config files (the template printed
by ``--print-default-config`` uses them), everything else is strict JSON.

This module does not import TensorFlow, so config errors are reported in well under a second.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import time
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from core.errors import MuseTagError

__all__ = [
    'ConfigError', 'Config', 'TagsConfig', 'DatasetConfig', 'InputConfig', 'TaskConfig', 'ModelConfig',
    'OptimizerConfig', 'ScheduleConfig', 'PhaseConfig', 'OptimizationConfig', 'EarlyStoppingConfig',
    'SpecAugmentConfig', 'MixupConfig', 'GainConfig', 'AugmentConfig',
    'ReduceOnPlateauConfig', 'CallbacksConfig', 'DistributionConfig', 'LoggingConfig',
    'MONITORS', 'TAGS_MONITORS', 'LATENT_MONITORS', 'TASK_LOSSES', 'DEFAULT_MONITOR',
    'SCHEDULES', 'load_config', 'parse_config', 'apply_overrides', 'parse_override',
    'config_to_dict', 'default_config_dict', 'explain_rows', 'format_template', 'read_json_file',
    'monitor_mode', 'config_name', 'default_run_dir', 'MAX_WINDOW_SECONDS',
]

#: Validation quantities of the tags task that callbacks may monitor (columns of history.csv).
TAGS_MONITORS = ('val_pr_auc_macro', 'val_roc_auc_macro', 'val_pr_auc_micro', 'val_roc_auc_micro', 'val_loss')
#: Validation quantities of the latent task (mean cosine of predicted and true vectors, recall@k of
#: each track's true neighbours in the target space, loss).
LATENT_MONITORS = ('val_cosine', 'val_recall_at_k', 'val_loss')
#: Every quantity callbacks may monitor.
MONITORS = TAGS_MONITORS + LATENT_MONITORS[:2]
#: Losses each task accepts; the first is its default.
TASK_LOSSES = {'tags': ('bce',), 'latent': ('cosine', 'mse')}
#: Monitor of early stopping and reduce-on-plateau when the config names none.
DEFAULT_MONITOR = {'tags': 'val_pr_auc_macro', 'latent': 'val_cosine'}
#: Learning-rate schedule names.
SCHEDULES = ('constant', 'step', 'plateau', 'cyclic', 'one_cycle')
#: Longest training window accepted, in seconds. Tagging models are trained on 3-30 s windows;
#: a window of hours is a typo, and would only fail later for lack of memory.
MAX_WINDOW_SECONDS = 3600.0


def monitor_mode(monitor: str) -> str:
    """Return ``'min'`` for losses and ``'max'`` for AUCs, cosine and recall (the direction of improvement)."""
    return 'min' if monitor.endswith('loss') else 'max'


class ConfigError(MuseTagError, ValueError):
    """A bad configuration value; ``key`` is the dotted path of the offending key (exit code 2)."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.reason = message
        super().__init__(f'config error: {key}: {message}' if key else f'config error: {message}')


def _doc(text: str, key: Optional[str] = None, **constraints) -> dict:
    """Field metadata: documentation, JSON key (when it differs from the attribute) and bounds."""
    meta = {'doc': text, **constraints}
    if key:
        meta['key'] = key
    return meta


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TagsConfig:
    """Tag selection applied when reading the TFRecords (see preprocessing.dataset.TagSelection)."""
    top: Optional[int] = field(default=50, metadata=_doc(
        'take the N most popular clean tags of the manifest vocabulary; null = all tags', ge=1))
    with_: tuple[str, ...] = field(default=(), metadata=_doc('tag names added to the top-N', key='with'))
    without: tuple[str, ...] = field(default=(), metadata=_doc('tag names removed from the selection'))
    merge: tuple[tuple[str, ...], ...] = field(default=(), metadata=_doc(
        'groups of tag names merged into one output (list of lists); [] = none'))


@dataclass(frozen=True)
class DatasetConfig:
    dir: str = field(default='data/tfrecords-logmel', metadata=_doc(
        'TFRecord directory written by `python -m preprocessing` (holds manifest.json); '
        'a relative path is relative to the working directory, and the run stores it as an absolute path'))
    train_split: str = field(default='train', metadata=_doc('split name used for training'))
    validation_split: str = field(default='validation', metadata=_doc(
        'split used for per-epoch validation (whole tracks, all windows)'))
    tags: TagsConfig = field(default_factory=TagsConfig, metadata=_doc('tag selection'))
    kind: Literal['tfrecords', 'images'] = field(default='tfrecords', metadata=_doc(
        'tfrecords = audio TFRecords (dir holds manifest.json); images = (picture, track) pairs read by '
        'imagemusic.data.ImageSource (dir is a pairs folder; needs task.kind latent)'))
    images: Optional[dict] = field(default=None, metadata=_doc(
        'dataset.kind images: options of the image input pipeline, e.g. {"image_size": 96, "copies": 8, '
        '"augment": {...}} (checked by imagemusic.data.ImageOptions, docs/images.md); null = its defaults'))
    weights: Optional[str] = field(default=None, metadata=_doc(
        'per-example weights: a UTF-8 CSV with header track_id,weight (extra columns ignored; weight a '
        'finite number >= 0; tracks not listed weigh 1), e.g. from `musetag feedback export`; each '
        "training example's loss is multiplied by its track's weight; null = all 1"))


@dataclass(frozen=True)
class InputConfig:
    window_seconds: float = field(default=15.0, metadata=_doc(
        'length of one training window in seconds (15 = Orpheus, 3 = musicnn); at most one hour, and '
        'a batch of windows must fit in a quarter of the memory', gt=0.0, le=MAX_WINDOW_SECONDS,
        why='one hour; tagging models are trained on 3-30 s windows'))
    window: Literal['random', 'center'] = field(default='random', metadata=_doc(
        'training window position: random offset per example and epoch, or centred'))
    batch_size: int = field(default=32, metadata=_doc(
        'GLOBAL batch size (split over all replicas of all workers)', ge=1))
    validation_batch_size: Optional[int] = field(default=None, metadata=_doc(
        'batch size of the validation pass; null = batch_size', ge=1))
    shuffle: bool = field(default=True, metadata=_doc('shuffle training examples every epoch'))
    shuffle_buffer: int = field(default=1000, metadata=_doc(
        'shuffle buffer size in windows, one per track and pass (make_dataset shuffle_buffer; memory: '
        'that many stored windows, e.g. 90 kB for 15 s of log-mel, 480 kB for 15 s of waveform)', ge=1))
    feature_params: Union[None, str, dict] = field(default=None, metadata=_doc(
        'only for waveform TFRecords feeding a log-mel model: a preset name ("orpheus", '
        '"musicnn") or {"preset": name, <FeatureParams overrides>}; the model then computes '
        'log-mel in-graph'))


@dataclass(frozen=True)
class TaskConfig:
    kind: Literal['tags', 'latent'] = field(default='tags', metadata=_doc(
        'tags = multi-label tagging (sigmoid outputs, one per tag); latent = regress a target vector per track '
        'read by track id from task.targets (linear outputs dim_000...; docs/training.md)'))
    loss: Optional[Literal['bce', 'cosine', 'mse']] = field(default=None, metadata=_doc(
        'per-example loss: bce (tags); cosine (1 - cosine similarity) or mse (mean squared error over '
        'dimensions) (latent); null = bce for tags, cosine for latent'))
    targets: Optional[str] = field(default=None, metadata=_doc(
        'latent: target table folder (targets.npz + targets.json, written by `musetag latent`); required for '
        'TFRecords, an image pairs folder may hold its own'))
    dim: Optional[int] = field(default=None, metadata=_doc(
        'latent: expected dimension of the target vectors (a table of another dimension is refused before '
        "training); null = the table's", ge=1))
    recall_k: int = field(default=10, metadata=_doc(
        "latent: k of val_recall_at_k (share of each validation track's k nearest targets found among the k "
        'nearest predictions)', ge=1))

    @property
    def loss_name(self) -> str:
        """The per-example loss: ``loss``, or the task's default (bce for tags, cosine for latent)."""
        return self.loss or TASK_LOSSES[self.kind][0]


@dataclass(frozen=True)
class ModelConfig:
    name: str = field(default='orpheus_logmel', metadata=_doc(
        'model registry name (modeling.list_models())'))
    hparams: dict = field(default_factory=dict, metadata=_doc(
        'keyword arguments passed to modeling.build_model(name, n_outputs, input_spec, **hparams)'))
    init_from: Optional[str] = field(default=None, metadata=_doc(
        'fine-tuning: run directory whose best weights initialise every layer with the same name '
        'and shapes; the output layer is new (columns of tags present in both runs are copied)'))
    freeze_frontend: bool = field(default=False, metadata=_doc(
        'with init_from: do not train the frontend layers (their weights stay as loaded)'))
    batchnorm_momentum: Optional[float] = field(default=None, metadata=_doc(
        'override the momentum of every BatchNormalization layer (Keras default 0.99); e.g. 0.9 '
        'for short runs, whose moving statistics would otherwise lag behind the weights; null = '
        "keep the model's", gt=0.0, lt=1.0))


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = field(default='Adam', metadata=_doc('any keras.optimizers class name, e.g. Adam, SGD, AdamW'))
    kwargs: dict = field(default_factory=lambda: {'learning_rate': 0.001}, metadata=_doc(
        'constructor arguments of the optimizer; learning_rate is the base LR of the '
        'constant/step/plateau schedules (ignored by cyclic/one_cycle, which use max_lr)'))


@dataclass(frozen=True)
class ScheduleConfig:
    name: Literal['constant', 'step', 'plateau', 'cyclic', 'one_cycle'] = field(
        default='constant', metadata=_doc(
            'constant | step (x gamma every step_epochs) | plateau (constant + '
            'callbacks.reduce_on_plateau, which must be enabled) | cyclic (triangular CLR, Smith 2017) | '
            'one_cycle (linear warm-up over 40% then cosine to 0; disables early stopping '
            'and reduce-on-plateau)'))
    step_epochs: Optional[float] = field(default=None, metadata=_doc(
        'step: epochs between LR drops (default 10)', gt=0.0))
    gamma: Optional[float] = field(default=None, metadata=_doc(
        'step: LR multiplier at each drop (default 0.5)', gt=0.0))
    max_lr: Optional[float] = field(default=None, metadata=_doc(
        'cyclic/one_cycle: peak learning rate (required)', gt=0.0))
    div_factor: Optional[float] = field(default=None, metadata=_doc(
        'cyclic/one_cycle: min_lr = max_lr / div_factor (default 4 for cyclic, 25 for one_cycle)',
        ge=1.0))
    step_size_epochs: Optional[float] = field(default=None, metadata=_doc(
        'cyclic: half period s in epochs (default 2, i.e. the 4-epoch cycle of Orpheus\' best run)',
        gt=0.0))
    step_size_steps: Optional[int] = field(default=None, metadata=_doc(
        'cyclic: half period s in optimizer steps (overrides step_size_epochs)', ge=1))


@dataclass(frozen=True)
class PhaseConfig:
    """One phase of a multi-optimizer recipe (``optimization.phases``, ``docs/training.md``)."""
    optimizer: str = field(default='Adam', metadata=_doc(
        'keras.optimizers class name of this phase, e.g. Adam, SGD'))
    kwargs: dict = field(default_factory=dict, metadata=_doc(
        'other constructor arguments, e.g. {"momentum": 0.9, "nesterov": true}; not learning_rate '
        'or weight_decay (phase keys)'))
    learning_rate: float = field(default=1e-4, metadata=_doc(
        'constant learning rate of the phase', gt=0.0))
    weight_decay: float = field(default=0.0, metadata=_doc(
        'coupled L2 as the weight_decay of PyTorch\'s Adam/SGD: gradient += weight_decay * w for EVERY '
        'trainable variable (biases and batch-norm scales too), i.e. 0.5 * weight_decay * ||w||^2 added '
        'to the loss; 0 = off', ge=0.0))
    epochs: Optional[int] = field(default=None, metadata=_doc(
        'epochs of this phase; null (last phase only) = until optimization.epochs', ge=1))
    reload_best: bool = field(default=False, metadata=_doc(
        'at the start of the phase, load the weights of the best epoch so far (callbacks.early_stopping.'
        'monitor, e.g. val_loss) into the model'))
    keep_optimizer_state: bool = field(default=False, metadata=_doc(
        'continue the previous phase\'s optimizer and its slots (e.g. SGD momentum), changing only the '
        'learning rate and weight decay (same optimizer and kwargs required); false = a new optimizer'))


@dataclass(frozen=True)
class OptimizationConfig:
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig, metadata=_doc('optimizer'))
    weight_decay: float = field(default=0.0, metadata=_doc(
        'L2 penalty added to the loss: weight_decay * sum(0.5 * ||W||^2) over conv/dense kernels '
        '(musicnn used 1e-5); 0 = off', ge=0.0))
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig, metadata=_doc('learning-rate schedule'))
    epochs: int = field(default=20, metadata=_doc('number of epochs', ge=1))
    steps_per_epoch: Optional[int] = field(default=None, metadata=_doc(
        'optimizer steps per epoch on a repeated training set; null = one pass over the training '
        'split per epoch', ge=1))
    phases: tuple[PhaseConfig, ...] = field(default=(), metadata=_doc(
        'multi-optimizer recipe: a list of phases run one after the other (each: optimizer, kwargs, '
        'learning_rate, weight_decay, epochs, reload_best, keep_optimizer_state); replaces optimizer '
        'and schedule; [] = off'))
    mixed_precision: bool = field(default=False, metadata=_doc(
        'mixed_float16 compute with float32 variables and outputs and dynamic loss scaling; needs a '
        'GPU (without one the run warns and trains in float32)'))


@dataclass(frozen=True)
class EarlyStoppingConfig:
    monitor: Literal[MONITORS] = field(default='val_pr_auc_macro', metadata=_doc(
        'validation quantity to watch (loss: lower is better; AUCs, cosine, recall: higher is better); '
        'a latent task watches val_cosine unless told otherwise'))
    patience: Optional[int] = field(default=10, metadata=_doc(
        'stop after this many epochs without improvement; null = disabled', ge=1))
    min_delta: float = field(default=0.0, metadata=_doc('minimum change counted as an improvement', ge=0.0))


@dataclass(frozen=True)
class ReduceOnPlateauConfig:
    monitor: Literal[MONITORS] = field(default='val_pr_auc_macro', metadata=_doc(
        'validation quantity to watch (a latent task watches val_cosine unless told otherwise)'))
    patience: Optional[int] = field(default=None, metadata=_doc(
        'multiply the LR by factor after this many epochs without improvement; null = disabled', ge=1))
    factor: float = field(default=0.5, metadata=_doc('LR multiplier', gt=0.0, lt=1.0))
    min_delta: float = field(default=0.0, metadata=_doc('minimum change counted as an improvement', ge=0.0))
    min_lr: float = field(default=0.0, metadata=_doc('lower bound of the reduced LR', ge=0.0))


@dataclass(frozen=True)
class CallbacksConfig:
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig,
                                                metadata=_doc('early stopping'))
    reduce_on_plateau: ReduceOnPlateauConfig = field(default_factory=ReduceOnPlateauConfig,
                                                     metadata=_doc('reduce LR on plateau'))


@dataclass(frozen=True)
class DistributionConfig:
    strategy: Literal['auto', 'mirrored', 'multi_worker', 'one_device'] = field(
        default='auto', metadata=_doc(
            'auto = multi_worker when TF_CONFIG is set, else mirrored; mirrored = all local GPUs, '
            'else all logical CPU devices; one_device = first GPU or CPU'))


@dataclass(frozen=True)
class LoggingConfig:
    run_dir: Optional[str] = field(default=None, metadata=_doc(
        'run directory; null = runs/<config name>-<YYYYmmdd-HHMMSS>; --run overrides'))
    tensorboard: bool = field(default=True, metadata=_doc('write TensorBoard events under run_dir/tensorboard'))
    log_every_steps: int = field(default=50, metadata=_doc(
        'log the running train loss (console + TensorBoard) every N steps', ge=1))
    keep_checkpoints: int = field(default=3, metadata=_doc(
        'epoch checkpoints kept in run_dir/checkpoints (the best one is kept separately)', ge=1))
    progress: bool = field(default=True, metadata=_doc('show a tqdm progress bar per epoch'))


@dataclass(frozen=True)
class SpecAugmentConfig:
    time_masks: int = field(default=0, metadata=_doc('time masks per training example; 0 = off', ge=0))
    time_mask_frames: int = field(default=0, metadata=_doc(
        'widest time mask in log-mel frames (each width uniform in 0..this)', ge=0))
    freq_masks: int = field(default=0, metadata=_doc('frequency masks per training example; 0 = off', ge=0))
    freq_mask_bands: int = field(default=0, metadata=_doc(
        'widest frequency mask in mel bands (each width uniform in 0..this)', ge=0))


@dataclass(frozen=True)
class MixupConfig:
    alpha: float = field(default=0.0, metadata=_doc(
        'mixup (Zhang et al. 2018): each training example and its labels are mixed with another example '
        'of the batch with weight lambda ~ Beta(alpha, alpha); 0 = off', ge=0.0))


@dataclass(frozen=True)
class GainConfig:
    min_db: float = field(default=0.0, metadata=_doc('lowest random gain in dB (waveform input)', ge=-60.0, le=60.0))
    max_db: float = field(default=0.0, metadata=_doc(
        'highest random gain in dB; each training waveform is multiplied by 10^(g/20), g uniform in '
        '[min_db, max_db]; both 0 = off', ge=-60.0, le=60.0))


@dataclass(frozen=True)
class AugmentConfig:
    spec_augment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig, metadata=_doc(
        'SpecAugment time and frequency masks on the log-mel (Park et al. 2019)'))
    mixup: MixupConfig = field(default_factory=MixupConfig, metadata=_doc('mixup of examples and labels'))
    gain: GainConfig = field(default_factory=GainConfig, metadata=_doc('random gain of training waveforms'))


@dataclass(frozen=True)
class Config:
    description: str = field(default='', metadata=_doc('free text describing the experiment'))
    dataset: DatasetConfig = field(default_factory=DatasetConfig, metadata=_doc('input data'))
    input: InputConfig = field(default_factory=InputConfig, metadata=_doc('windows and batches'))
    task: TaskConfig = field(default_factory=TaskConfig, metadata=_doc('what the model learns: tags or latent vectors'))
    augment: AugmentConfig = field(default_factory=AugmentConfig, metadata=_doc(
        'training-time augmentation (never at validation or test, never stored); off by default'))
    model: ModelConfig = field(default_factory=ModelConfig, metadata=_doc('model'))
    optimization: OptimizationConfig = field(default_factory=OptimizationConfig,
                                             metadata=_doc('optimizer, LR schedule, epochs'))
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig, metadata=_doc('callbacks'))
    distribution: DistributionConfig = field(default_factory=DistributionConfig,
                                             metadata=_doc('tf.distribute strategy'))
    logging: LoggingConfig = field(default_factory=LoggingConfig, metadata=_doc('run dir and logs'))
    seed: int = field(default=0, metadata=_doc(
        'random seed (weights, shuffling, windows; epoch e uses seed*1000003 + e)', ge=0))


# --------------------------------------------------------------------------------------------
# Generic JSON <-> dataclass conversion with dotted-key errors
# --------------------------------------------------------------------------------------------
def _show(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if tp is bool:
        return 'boolean'
    if tp is int:
        return 'integer'
    if tp is float:
        return 'number'
    if tp is str:
        return 'string'
    if tp is dict or origin is dict:
        return 'object'
    if dataclasses.is_dataclass(tp):
        return 'object'
    if origin is tuple:
        return f'list of {_type_name(typing.get_args(tp)[0])}'
    if origin is Literal:
        return 'one of ' + ', '.join(json.dumps(a) for a in typing.get_args(tp))
    if origin is Union:
        args = typing.get_args(tp)
        names = [_type_name(a) for a in args if a is not type(None)]
        return ' or '.join(names) + (' or null' if type(None) in args else '')
    return getattr(tp, '__name__', str(tp))


def _json_key(f: dataclasses.Field) -> str:
    return f.metadata.get('key', f.name)


def _all_leaf_paths(cls, prefix: str = '') -> list[str]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        path = f'{prefix}{_json_key(f)}'
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.append(path)
            out.extend(_all_leaf_paths(tp, path + '.'))
        else:
            out.append(path)
    return out


def _unknown_key_message(cls, key: str, known: list[str], value=None) -> str:
    msg = 'unknown key'
    if isinstance(value, dict):
        # A misplaced section such as {"training": {"epochs": 5}}: point at the real homes.
        homes = []
        for sub in value:
            paths = [p for p in _all_leaf_paths(Config) if p.rsplit('.', 1)[-1] == sub]
            if paths:
                homes.append(f'{sub} -> {" or ".join(paths)}')
        if homes:
            return f'{msg} (did you mean {"; ".join(homes)}?)'
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f'{msg} (did you mean "{close[0]}"?)'
    # The key may exist in another section, e.g. "training.epochs" -> optimization.epochs.
    elsewhere = [p for p in _all_leaf_paths(Config) if p.rsplit('.', 1)[-1] == key]
    if elsewhere:
        return f'{msg} (it exists as {", ".join(elsewhere)})'
    return f'{msg} (known keys: {", ".join(known)})'


def _check_bounds(value, meta: dict, path: str) -> None:
    """Apply the ``gt``/``ge``/``lt``/``le`` bounds of a field's metadata to a number."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    for name, op, ok in (('gt', '>', lambda v, b: v > b), ('ge', '>=', lambda v, b: v >= b),
                         ('lt', '<', lambda v, b: v < b), ('le', '<=', lambda v, b: v <= b)):
        bound = meta.get(name)
        if bound is not None and not ok(value, bound):
            why = f' ({meta["why"]})' if meta.get('why') else ''
            raise ConfigError(path, f'must be {op} {bound:g}, got {_show(value)}{why}')


def _convert(tp, value, path: str):
    """Check ``value`` (decoded JSON) against the type hint ``tp``; return the Python value."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _from_json(tp, value, path)
    if origin is Union:
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(path, f'expected {_type_name(tp)}, got null')
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except ConfigError as exc:
                errors.append(exc)
        # A single non-null alternative: its own (more precise) message.
        if len([a for a in args if a is not type(None)]) == 1:
            raise errors[0]
        raise ConfigError(path, f'expected {_type_name(tp)}, got {_show(value)}')
    if origin is Literal:
        choices = typing.get_args(tp)
        if isinstance(value, str) and value in choices:
            return value
        raise ConfigError(path, f'expected {_type_name(tp)}, got {_show(value)}')
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(path, f'expected boolean, got {_show(value)}')
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(path, f'expected integer, got {_show(value)}')
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(path, f'expected a finite number, got {_show(value)}')
            return float(value)
        raise ConfigError(path, f'expected number, got {_show(value)}')
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(path, f'expected string, got {_show(value)}')
    if tp is dict:
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(path, f'expected object, got {_show(value)}')
    if origin is tuple:
        (item_tp, *_rest) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(path, f'expected {_type_name(tp)}, got {_show(value)}')
        return tuple(_convert(item_tp, v, f'{path}[{i}]') for i, v in enumerate(value))
    raise TypeError(f'unsupported config type {tp!r} at {path}')  # programming error


def _from_json(cls, data, path: str):
    if not isinstance(data, dict):
        raise ConfigError(path, f'expected object, got {_show(data)}')
    hints = typing.get_type_hints(cls)
    fields = {_json_key(f): f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(f'{path}.{key}' if path else key,
                              _unknown_key_message(cls, key, list(fields), data[key]))
    kwargs = {}
    for key, f in fields.items():
        if key in data:
            sub = f'{path}.{key}' if path else key
            value = _convert(hints[f.name], data[key], sub)
            _check_bounds(value, f.metadata, sub)
            kwargs[f.name] = value
    return cls(**kwargs)


def _to_json(obj):
    if dataclasses.is_dataclass(obj):
        return {_json_key(f): _to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_json(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------------------------
# Cross-field checks
# --------------------------------------------------------------------------------------------
_SCHEDULE_PARAMS = {
    'constant': set(),
    'plateau': set(),
    'step': {'step_epochs', 'gamma'},
    'cyclic': {'max_lr', 'div_factor', 'step_size_epochs', 'step_size_steps'},
    'one_cycle': {'max_lr', 'div_factor'},
}


def schedule_unused_params(schedule: ScheduleConfig) -> list[str]:
    """Names of schedule parameters that are set but not used by ``schedule.name``."""
    used = _SCHEDULE_PARAMS[schedule.name]
    return [f.name for f in dataclasses.fields(schedule)
            if f.name != 'name' and getattr(schedule, f.name) is not None and f.name not in used]


def _validate(cfg: Config) -> None:
    sch = cfg.optimization.schedule
    if sch.name in ('cyclic', 'one_cycle') and sch.max_lr is None:
        raise ConfigError('optimization.schedule.max_lr', f'required by schedule "{sch.name}"')
    if sch.name == 'plateau' and cfg.callbacks.reduce_on_plateau.patience is None:
        raise ConfigError('callbacks.reduce_on_plateau.patience',
                          'schedule "plateau" needs reduce-on-plateau: set a patience')
    lr = cfg.optimization.optimizer.kwargs.get('learning_rate', 0.001)
    if sch.name in ('constant', 'step', 'plateau') and (
            isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0):
        raise ConfigError('optimization.optimizer.kwargs.learning_rate',
                          f'expected a positive number, got {_show(lr)}')
    for i, group in enumerate(cfg.dataset.tags.merge):
        if len(group) < 2:
            raise ConfigError(f'dataset.tags.merge[{i}]', f'a merge group needs >= 2 tags, got {_show(list(group))}')
    fp = cfg.input.feature_params
    if isinstance(fp, str) and not fp:
        raise ConfigError('input.feature_params', 'expected a preset name, got ""')
    if isinstance(fp, dict) and 'preset' in fp and not isinstance(fp['preset'], str):
        raise ConfigError('input.feature_params.preset', f'expected string, got {_show(fp["preset"])}')
    if cfg.model.freeze_frontend and not cfg.model.init_from:
        raise ConfigError('model.freeze_frontend', 'only meaningful with model.init_from')
    if cfg.optimization.phases:
        _validate_phases(cfg)
    _validate_augment(cfg.augment)
    _validate_task(cfg)


def _resolve_task_defaults(cfg: Config, data: dict) -> Config:
    """Fill what depends on ``task.kind``: the monitors of early stopping and reduce-on-plateau the config
    does not name (val_cosine for latent; the loss is resolved by :attr:`TaskConfig.loss_name`)."""
    kind = cfg.task.kind
    given = (data.get('callbacks') if isinstance(data.get('callbacks'), dict) else {}) or {}
    callbacks = cfg.callbacks
    for name in ('early_stopping', 'reduce_on_plateau'):
        section = given.get(name) if isinstance(given.get(name), dict) else {}
        if 'monitor' not in section:
            callbacks = dataclasses.replace(callbacks, **{name: dataclasses.replace(
                getattr(callbacks, name), monitor=DEFAULT_MONITOR[kind])})
    return dataclasses.replace(cfg, callbacks=callbacks)


def _validate_task(cfg: Config) -> None:
    """Loss, monitors, targets and data kind agree with ``task.kind``."""
    task = cfg.task
    if task.loss_name not in TASK_LOSSES[task.kind]:
        raise ConfigError('task.loss', f'"{task.loss}" does not fit task.kind "{task.kind}" '
                                       f'(choose from {", ".join(TASK_LOSSES[task.kind])})')
    allowed = TAGS_MONITORS if task.kind == 'tags' else LATENT_MONITORS
    for name in ('early_stopping', 'reduce_on_plateau'):
        monitor = getattr(cfg.callbacks, name).monitor
        if monitor not in allowed:
            raise ConfigError(f'callbacks.{name}.monitor', f'"{monitor}" is not measured by task.kind '
                                                          f'"{task.kind}" (choose from {", ".join(allowed)})')
    for key in ('targets', 'dim'):
        if task.kind == 'tags' and getattr(task, key) is not None:
            raise ConfigError(f'task.{key}', 'only used by task.kind "latent"')
    if task.kind == 'latent' and task.targets is None and cfg.dataset.kind == 'tfrecords':
        raise ConfigError('task.targets', 'task.kind "latent" needs a target table folder (targets.npz + '
                                          'targets.json, e.g. from `musetag latent doc2vec`)')
    if cfg.dataset.kind == 'images' and task.kind != 'latent':
        raise ConfigError('dataset.kind', '"images" trains an image model into a music space: set task.kind '
                                          'to "latent"')
    if cfg.dataset.images is not None and cfg.dataset.kind != 'images':
        raise ConfigError('dataset.images', 'only used by dataset.kind "images"')
    if cfg.dataset.weights is not None and not cfg.dataset.weights:
        raise ConfigError('dataset.weights', 'expected a CSV path or null, got ""')


#: Optimizer arguments a phase sets with its own keys (Keras' own weight_decay is decoupled, not PyTorch's).
_PHASE_OWN_KEYS = {'learning_rate': 'learning_rate', 'weight_decay': 'weight_decay'}


def _validate_phases(cfg: Config) -> None:
    """Phases: a constant LR each, no plateau/cyclic schedule on top, epochs cover the run."""
    opt, phases = cfg.optimization, cfg.optimization.phases
    if opt.schedule.name != 'constant':
        raise ConfigError('optimization.schedule.name', f'"{opt.schedule.name}" cannot be combined with '
                                                        'optimization.phases (each phase has a constant LR)')
    if cfg.callbacks.reduce_on_plateau.patience is not None:
        raise ConfigError('callbacks.reduce_on_plateau.patience', 'reduce-on-plateau cannot be combined with '
                                                                  'optimization.phases: set it to null')
    for i, phase in enumerate(phases):
        key = f'optimization.phases[{i}]'
        for name, own in _PHASE_OWN_KEYS.items():
            if name in phase.kwargs:
                raise ConfigError(f'{key}.kwargs.{name}', f'set {key}.{own} instead')
        if phase.epochs is None and i != len(phases) - 1:
            raise ConfigError(f'{key}.epochs', 'only the last phase may run "until optimization.epochs" (null)')
        if i == 0 and (phase.reload_best or phase.keep_optimizer_state):
            flag = 'reload_best' if phase.reload_best else 'keep_optimizer_state'
            raise ConfigError(f'{key}.{flag}', 'the first phase has no phase before it')
        if phase.keep_optimizer_state:
            before = phases[i - 1]
            if (phase.optimizer, phase.kwargs) != (before.optimizer, before.kwargs):
                raise ConfigError(f'{key}.keep_optimizer_state', 'needs the same optimizer and kwargs as '
                                                                 f'optimization.phases[{i - 1}]')
    if phases[-1].epochs is not None and sum(p.epochs for p in phases) < opt.epochs:
        raise ConfigError('optimization.epochs', f'{opt.epochs} epochs, but the phases add up to '
                                                 f'{sum(p.epochs for p in phases)}: set the last phase\'s epochs '
                                                 'to null (until optimization.epochs) or lower optimization.epochs')


def _validate_augment(aug) -> None:
    sa = aug.spec_augment
    if sa.time_masks and not sa.time_mask_frames:
        raise ConfigError('augment.spec_augment.time_mask_frames', 'must be >= 1 when time_masks is set')
    if sa.freq_masks and not sa.freq_mask_bands:
        raise ConfigError('augment.spec_augment.freq_mask_bands', 'must be >= 1 when freq_masks is set')
    if aug.gain.min_db > aug.gain.max_db:
        raise ConfigError('augment.gain.min_db', f'{aug.gain.min_db:g} is above max_db {aug.gain.max_db:g}')


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def parse_config(data: dict) -> Config:
    """Validate a decoded JSON object and return a :class:`Config`.

    Raises
    ------
    ConfigError
        Unknown key, wrong type, out-of-range value or inconsistent combination; the message
        names the dotted key.
    """
    cfg = _resolve_task_defaults(_from_json(Config, data, ''), data)
    _validate(cfg)
    return cfg


def read_json_file(path: str) -> dict:
    """Read a JSON config file, dropping whole-line ``//`` or ``#`` comments."""
    try:
        with open(path, encoding='utf-8') as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise ConfigError('', f'cannot read config file {path}: {exc.strerror or exc}') from None
    kept = ['' if ln.lstrip().startswith(('//', '#')) else ln for ln in lines]
    try:
        data = json.loads('\n'.join(kept))
    except json.JSONDecodeError as exc:
        raise ConfigError('', f'{path} is not valid JSON: {exc.msg} at line {exc.lineno} '
                              f'column {exc.colno}') from None
    if not isinstance(data, dict):
        raise ConfigError('', f'{path}: the top level must be a JSON object')
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``section.key=value``; the value is parsed as JSON, falling back to a plain string."""
    if '=' not in text:
        raise ConfigError('', f'--set expects section.key=value, got "{text}"')
    key, raw = text.split('=', 1)
    key = key.strip()
    if not key or any(not part for part in key.split('.')):
        raise ConfigError('', f'--set expects section.key=value, got "{text}"')
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


_INDEXED = re.compile(r'^(.+)\[(\d+)\]$')


def _override_child(node: dict, part: str, path: str, key: str, last: bool = False):
    """The object ``part`` of ``node`` (``name[i]`` = item i of the list ``name``), created when
    missing; with ``last``, return (container, index or name) to assign to instead."""
    m = _INDEXED.match(part)
    if m is None:
        if last:
            return node, part
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(path, f'is not an object, cannot set {key}')
        return child
    items = node.get(m.group(1))
    index = int(m.group(2))
    if not isinstance(items, list) or index >= len(items):
        size = len(items) if isinstance(items, list) else None
        raise ConfigError(path, f'no item {index} to set (the list has {size} items)' if size is not None
                          else f'{m.group(1)} is not a list, cannot set {key}')
    if last:
        return items, index
    if not isinstance(items[index], dict):
        raise ConfigError(path, f'is not an object, cannot set {key}')
    return items[index]


def apply_overrides(data: dict, overrides: list) -> dict:
    """Return a copy of ``data`` with ``[(dotted key, value)]`` or ``['k=v']`` overrides applied.

    Intermediate objects are created when missing; ``name[i]`` addresses item ``i`` of an existing
    list (e.g. ``optimization.phases[0].epochs``). The result is validated later by
    :func:`parse_config`, so a misspelt key is reported with its full dotted name.
    """
    out = json.loads(json.dumps(data))
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
        parts = key.split('.')
        node = out
        for i, part in enumerate(parts[:-1]):
            node = _override_child(node, part, '.'.join(parts[:i + 1]), key)
        container, name = _override_child(node, parts[-1], key, key, last=True)
        container[name] = value
    return out


def load_config(path: Optional[str] = None, overrides: Optional[list] = None) -> Config:
    """Load a config file (or the defaults when ``path`` is None) and apply ``--set`` overrides."""
    data = read_json_file(path) if path else {}
    return parse_config(apply_overrides(data, overrides or []))


def config_to_dict(cfg: Config) -> dict:
    """The complete (resolved) config as a JSON-serialisable dict with the JSON key names."""
    return _to_json(cfg)


def default_config_dict() -> dict:
    """Every key with its default value."""
    return config_to_dict(Config())


def explain_rows(cls=Config, prefix: str = '') -> list[tuple[str, str, str, str]]:
    """Rows ``(dotted key, type, default, doc)`` for every leaf key of the schema."""
    rows = []
    hints = typing.get_type_hints(cls)
    defaults = _to_json(cls())
    for f in dataclasses.fields(cls):
        key = _json_key(f)
        path = f'{prefix}{key}'
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(explain_rows(tp, path + '.'))
            continue
        rows.append((path, _type_name(tp), json.dumps(defaults[key]), f.metadata.get('doc', '')))
        item = typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else None
        if item is not None and dataclasses.is_dataclass(item):   # e.g. optimization.phases[].epochs
            rows.extend(explain_rows(item, path + '[].'))
    return rows


def format_template(with_comments: bool = True) -> str:
    """The default config as indented JSON, preceded by ``//`` lines documenting every key."""
    body = json.dumps(default_config_dict(), indent=2)
    if not with_comments:
        return body + '\n'
    lines = ['// MuseTag training config template (python -m training --print-default-config).',
             '// Whole-line // comments are allowed in config files; every other line is JSON.',
             '// Unknown keys and wrong types are errors. Override with --set section.key=value.',
             '//']
    for key, tp, default, doc in explain_rows():
        lines.append(f'// {key} ({tp}; default {default}): {doc}')
    return '\n'.join(lines) + '\n' + body + '\n'


def config_name(path: Optional[str]) -> str:
    """Stem of a config path (``configs/demo.json`` -> ``demo``), ``default`` for None."""
    if not path:
        return 'default'
    return os.path.splitext(os.path.basename(path))[0]


def default_run_dir(config_path: Optional[str]) -> str:
    """``runs/<config name>-<YYYYmmdd-HHMMSS>`` (relative to the working directory)."""
    return os.path.join('runs', f'{config_name(config_path)}-{time.strftime("%Y%m%d-%H%M%S")}')
