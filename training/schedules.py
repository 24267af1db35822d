"""Learning-rate schedules (Keras ``LearningRateSchedule``s evaluated at ``optimizer.iterations``).

Formulas (``step`` = optimizer iterations, counted from 0):

constant
    ``lr = base``
step
    ``lr = base * gamma ** floor(step / (step_epochs * steps_per_epoch))``
cyclic (triangular CLR, Smith 2017, as in Orpheus' experiment 2)
    ``s`` = half period in steps, ``cycle = floor(step / (2 s))``, ``r = step / s - 2 cycle`` (in [0, 2)),
    ``lr = min_lr + (max_lr - min_lr) * (1 - |r - 1|)`` -- min at r = 0, max at r = 1;
    ``min_lr = max_lr / div_factor``.
one_cycle (CyclicLR_1Cycle of the davide_brandnew branch)
    ``ratio = min(step / total_steps, 1)``; ratio < 0.4: ``lr = min + (max - min) * 2.5 ratio``;
    otherwise ``lr = max / 2 * (1 + cos(pi * (5 ratio / 3 - 2 / 3)))`` (cosine from max to 0).
exponential (LR range test only)
    ``lr = lo * (hi / lo) ** (step / num_steps)``

Reduce-on-plateau is a multiplicative ``scale`` variable wrapped around any base schedule
(:class:`PlateauScaled`): ``lr = max(base(step) * scale, min(base(step), min_lr))`` -- the reduced
LR never goes below ``min_lr`` unless the base schedule itself does.
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf

__all__ = ['ConstantLR', 'StepLR', 'TriangularCyclicLR', 'OneCycleLR', 'ExponentialRangeLR',
           'PlateauScaled', 'VariableLR', 'build_schedule', 'needs_steps_per_epoch', 'schedule_defaults']

_Base = keras.optimizers.schedules.LearningRateSchedule

#: Defaults of the optional schedule parameters (ScheduleConfig fields left null).
schedule_defaults = {
    'step': {'step_epochs': 10.0, 'gamma': 0.5},
    'cyclic': {'div_factor': 4.0, 'step_size_epochs': 2.0},
    'one_cycle': {'div_factor': 25.0},
}


def _f32(step):
    return tf.cast(step, tf.float32)


class ConstantLR(_Base):
    """``lr = learning_rate`` for every step."""

    def __init__(self, learning_rate: float):
        self.learning_rate = float(learning_rate)

    def __call__(self, step):
        return tf.constant(self.learning_rate, tf.float32) + 0.0 * _f32(step)

    def get_config(self):
        return {'learning_rate': self.learning_rate}


class StepLR(_Base):
    """Multiply ``learning_rate`` by ``gamma`` every ``step_size`` optimizer steps."""

    def __init__(self, learning_rate: float, gamma: float, step_size: float):
        self.learning_rate, self.gamma, self.step_size = float(learning_rate), float(gamma), float(step_size)

    def __call__(self, step):
        k = tf.floor(_f32(step) / self.step_size)
        return self.learning_rate * tf.pow(self.gamma, k)

    def get_config(self):
        return {'learning_rate': self.learning_rate, 'gamma': self.gamma, 'step_size': self.step_size}


class TriangularCyclicLR(_Base):
    """Triangular cyclic LR between ``min_lr`` and ``max_lr``, half period ``step_size`` steps."""

    def __init__(self, min_lr: float, max_lr: float, step_size: float):
        self.min_lr, self.max_lr, self.step_size = float(min_lr), float(max_lr), float(step_size)

    def __call__(self, step):
        step = _f32(step)
        cycle = tf.floor(step / (2.0 * self.step_size))
        r = step / self.step_size - 2.0 * cycle
        return self.min_lr + (self.max_lr - self.min_lr) * (1.0 - tf.abs(r - 1.0))

    def get_config(self):
        return {'min_lr': self.min_lr, 'max_lr': self.max_lr, 'step_size': self.step_size}


class OneCycleLR(_Base):
    """One cycle over ``total_steps``: linear warm-up for 40 %, then cosine annealing to 0."""

    def __init__(self, min_lr: float, max_lr: float, total_steps: int):
        self.min_lr, self.max_lr, self.total_steps = float(min_lr), float(max_lr), int(total_steps)

    def __call__(self, step):
        ratio = tf.minimum(_f32(step) / float(self.total_steps), 1.0)
        warm = self.min_lr + (self.max_lr - self.min_lr) * 2.5 * ratio
        anneal = self.max_lr / 2.0 * (1.0 + tf.cos(math.pi * (5.0 * ratio / 3.0 - 2.0 / 3.0)))
        return tf.where(ratio < 0.4, warm, anneal)

    def get_config(self):
        return {'min_lr': self.min_lr, 'max_lr': self.max_lr, 'total_steps': self.total_steps}


class ExponentialRangeLR(_Base):
    """LR range test: ``lr = lo * (hi / lo) ** (step / num_steps)`` (reaches ``hi`` at num_steps)."""

    def __init__(self, lo: float, hi: float, num_steps: int):
        self.lo, self.hi, self.num_steps = float(lo), float(hi), int(num_steps)

    def __call__(self, step):
        return self.lo * tf.pow(self.hi / self.lo, _f32(step) / float(self.num_steps))

    def get_config(self):
        return {'lo': self.lo, 'hi': self.hi, 'num_steps': self.num_steps}


class PlateauScaled(_Base):
    """``base`` multiplied by a reduce-on-plateau ``scale`` variable, floored at ``min_lr``.

    ``scale`` is a ``tf.Variable`` owned and checkpointed by the trainer (it starts at 1 and is
    multiplied by the plateau factor); reading it inside the step makes the change effective
    without retracing.
    """

    def __init__(self, base: _Base, scale: tf.Variable, min_lr: float = 0.0):
        self.base, self.scale, self.min_lr = base, scale, float(min_lr)

    def __call__(self, step):
        lr = self.base(step)
        scaled = lr * tf.cast(self.scale, lr.dtype)
        return tf.maximum(scaled, tf.minimum(lr, self.min_lr))

    def get_config(self):
        return {'base': self.base.get_config(), 'min_lr': self.min_lr}


def needs_steps_per_epoch(schedule_cfg) -> bool:
    """True when the schedule is defined in epochs and needs the number of steps per epoch."""
    name = schedule_cfg.name
    return name in ('step', 'one_cycle') or (name == 'cyclic' and schedule_cfg.step_size_steps is None)


def _param(cfg, name):
    value = getattr(cfg, name)
    return schedule_defaults.get(cfg.name, {}).get(name) if value is None else value


def build_schedule(schedule_cfg, *, base_lr: float, steps_per_epoch, epochs: int) -> _Base:
    """Return the base :class:`LearningRateSchedule` described by a ``ScheduleConfig``.

    Parameters
    ----------
    schedule_cfg : training.config.ScheduleConfig
    base_lr : float
        ``optimizer.kwargs.learning_rate`` (used by constant/step/plateau).
    steps_per_epoch : int or None
        Optimizer steps per epoch; required when :func:`needs_steps_per_epoch` is true.
    epochs : int
        Total epochs (one_cycle spans ``epochs * steps_per_epoch`` steps).
    """
    name = schedule_cfg.name
    if needs_steps_per_epoch(schedule_cfg) and not steps_per_epoch:
        raise ValueError(f'schedule "{name}" needs steps_per_epoch')
    if name in ('constant', 'plateau'):
        return ConstantLR(base_lr)
    if name == 'step':
        return StepLR(base_lr, _param(schedule_cfg, 'gamma'),
                      _param(schedule_cfg, 'step_epochs') * steps_per_epoch)
    max_lr = schedule_cfg.max_lr
    min_lr = max_lr / _param(schedule_cfg, 'div_factor')
    if name == 'cyclic':
        size = schedule_cfg.step_size_steps or _param(schedule_cfg, 'step_size_epochs') * steps_per_epoch
        return TriangularCyclicLR(min_lr, max_lr, size)
    if name == 'one_cycle':
        return OneCycleLR(min_lr, max_lr, epochs * steps_per_epoch)
    raise ValueError(f'unknown schedule {name!r}')


class VariableLR(_Base):
    """``lr = variable`` (a float32 ``tf.Variable`` the trainer assigns; read at every step).

    The learning rate of a recipe phase (``optimization.phases``): changing the variable changes the
    learning rate of an optimizer that continues into the next phase, without retracing.
    """

    def __init__(self, variable: tf.Variable):
        self.variable = variable

    def __call__(self, step):
        return tf.cast(self.variable, tf.float32) + 0.0 * _f32(step)

    def get_config(self):
        return {'learning_rate': float(self.variable.numpy())}
