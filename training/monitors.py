"""Early stopping and reduce-on-plateau decisions, as plain Python state machines.

The trainer calls :meth:`update` once per epoch with the monitored validation value and keeps
the state (``best``, ``wait``) in ``tf.Variable``s of the checkpoint, so a resumed run continues
with exactly the same counters and best value (the Orpheus custom loop forgot the best value on
resume). No TensorFlow here, so the logic is tested directly.

Improvement (Keras semantics): ``value > best + min_delta`` in ``max`` mode, ``value < best -
min_delta`` in ``min`` mode; the first finite value is always an improvement; NaN never is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

__all__ = ['Tracker', 'EarlyStopping', 'PlateauReducer']


@dataclass
class Tracker:
    """Best value and epochs since the last improvement of one monitored quantity."""
    mode: str = 'max'
    min_delta: float = 0.0
    best: Optional[float] = None
    wait: int = 0

    def improves(self, value: float) -> bool:
        """Whether ``value`` would count as an improvement over ``best``."""
        if value is None or math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == 'max':
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, value: float) -> bool:
        """Record one epoch's value; return True when it improved (then ``wait`` resets to 0)."""
        if self.improves(value):
            self.best, self.wait = float(value), 0
            return True
        self.wait += 1
        return False


class EarlyStopping:
    """Stop when the monitored value has not improved for ``patience`` epochs."""

    def __init__(self, patience: int, *, mode: str = 'max', min_delta: float = 0.0,
                 best: Optional[float] = None, wait: int = 0):
        self.patience = int(patience)
        self.tracker = Tracker(mode, float(min_delta), best, int(wait))

    def update(self, value: float) -> bool:
        """Record one epoch; return True when training should stop now."""
        self.tracker.update(value)
        return self.tracker.wait >= self.patience


class PlateauReducer:
    """Multiply the LR ``scale`` by ``factor`` after ``patience`` epochs without improvement.

    After a reduction the wait counter restarts from 0 (Keras ReduceLROnPlateau without cooldown).
    """

    def __init__(self, patience: int, factor: float, *, mode: str = 'max', min_delta: float = 0.0,
                 best: Optional[float] = None, wait: int = 0, scale: float = 1.0):
        self.patience, self.factor = int(patience), float(factor)
        self.tracker = Tracker(mode, float(min_delta), best, int(wait))
        self.scale = float(scale)

    def update(self, value: float) -> bool:
        """Record one epoch; return True when the LR scale was reduced."""
        self.tracker.update(value)
        if self.tracker.wait >= self.patience:
            self.scale *= self.factor
            self.tracker.wait = 0
            return True
        return False
