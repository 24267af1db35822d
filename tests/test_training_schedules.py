"""LR schedules against their formulas (training/schedules.py, Smith 2017 for the triangular cycle) and the
early-stopping / plateau state machines."""
import math

import numpy as np
import pytest
import tensorflow as tf

from training.config import load_config
from training.monitors import EarlyStopping, PlateauReducer, Tracker
from training.schedules import (ConstantLR, ExponentialRangeLR, OneCycleLR, PlateauScaled, StepLR,
                                TriangularCyclicLR, build_schedule, needs_steps_per_epoch)

STEPS = np.arange(0, 2000, 7)


def values(schedule, steps=STEPS):
    return np.array([float(schedule(tf.constant(s, tf.int64))) for s in steps])


def test_triangular_cyclic_matches_the_formula():
    max_lr, iterations = 0.0014, 50       # Orpheus' experiment 2: min = max/4, half period s = 2 epochs
    min_lr, s = max_lr / 4, 2 * iterations
    expected = []
    for step in STEPS:
        cycle = math.floor(step / (2 * s))
        r = step / s - 2 * cycle
        expected.append(min_lr + (max_lr - min_lr) * (1 - abs(r - 1)))
    got = values(TriangularCyclicLR(min_lr, max_lr, s))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # min at r = 0, max at r = 1, a 4-epoch period
    sched = TriangularCyclicLR(min_lr, max_lr, s)
    assert float(sched(0)) == pytest.approx(0.00035)
    assert float(sched(s)) == pytest.approx(0.0014)
    assert float(sched(2 * s)) == pytest.approx(0.00035)
    assert float(sched(s // 2)) == pytest.approx((0.00035 + 0.0014) / 2)
    assert float(sched(4 * iterations + 17)) == pytest.approx(float(sched(17)))


def test_one_cycle_matches_spec_formula():
    max_lr, min_lr, total = 0.01, 0.0004, 1000
    expected = []
    for step in STEPS:
        ratio = min(step / total, 1.0)
        if ratio < 0.4:
            expected.append(min_lr + (max_lr - min_lr) * 2.5 * ratio)
        else:
            expected.append(max_lr / 2 * (1 + math.cos(math.pi * (5 * ratio / 3 - 2 / 3))))
    got = values(OneCycleLR(min_lr, max_lr, total))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-9)
    sched = OneCycleLR(min_lr, max_lr, total)
    assert float(sched(0)) == pytest.approx(min_lr)
    assert float(sched(400)) == pytest.approx(max_lr)
    assert float(sched(total)) == pytest.approx(0.0, abs=1e-9)
    assert float(sched(total + 50)) == pytest.approx(0.0, abs=1e-9)      # stays at 0 afterwards


def test_step_constant_exponential():
    np.testing.assert_allclose(values(ConstantLR(0.003)), 0.003, rtol=1e-6)
    got = values(StepLR(0.1, 0.5, 300))
    np.testing.assert_allclose(got, [0.1 * 0.5 ** math.floor(s / 300) for s in STEPS], rtol=1e-6)
    got = values(ExponentialRangeLR(1e-7, 10.0, 100), range(0, 101))
    np.testing.assert_allclose(got, [1e-7 * (1e8) ** (s / 100) for s in range(0, 101)], rtol=1e-4)


def test_plateau_scaled_floor():
    scale = tf.Variable(1.0)
    sched = PlateauScaled(ConstantLR(0.01), scale, min_lr=0.002)
    assert float(sched(5)) == pytest.approx(0.01)
    scale.assign(0.5)
    assert float(sched(5)) == pytest.approx(0.005)                      # takes effect without rebuild
    scale.assign(0.01)
    assert float(sched(5)) == pytest.approx(0.002)                      # floored at min_lr
    cyc = PlateauScaled(TriangularCyclicLR(0.001, 0.004, 10), scale, min_lr=0.002)
    assert float(cyc(0)) == pytest.approx(0.001)                        # base below min_lr: base wins


def test_build_schedule_from_config():
    cfg = load_config(None, ['optimization.schedule={"name": "cyclic", "max_lr": 0.0014}'])
    assert needs_steps_per_epoch(cfg.optimization.schedule)
    sched = build_schedule(cfg.optimization.schedule, base_lr=1e-3, steps_per_epoch=10, epochs=5)
    assert isinstance(sched, TriangularCyclicLR)
    assert sched.min_lr == pytest.approx(0.00035) and sched.step_size == 20      # default 2 epochs
    cfg = load_config(None, ['optimization.schedule={"name": "cyclic", "max_lr": 0.01, "step_size_steps": 7}'])
    assert not needs_steps_per_epoch(cfg.optimization.schedule)
    assert build_schedule(cfg.optimization.schedule, base_lr=1e-3, steps_per_epoch=None, epochs=5).step_size == 7
    cfg = load_config(None, ['optimization.schedule={"name": "one_cycle", "max_lr": 0.01}'])
    sched = build_schedule(cfg.optimization.schedule, base_lr=1e-3, steps_per_epoch=10, epochs=5)
    assert sched.total_steps == 50 and sched.min_lr == pytest.approx(0.01 / 25)
    cfg = load_config(None, ['optimization.schedule={"name": "step", "step_epochs": 2, "gamma": 0.1}'])
    sched = build_schedule(cfg.optimization.schedule, base_lr=0.5, steps_per_epoch=10, epochs=5)
    assert float(sched(19)) == pytest.approx(0.5) and float(sched(20)) == pytest.approx(0.05)
    with pytest.raises(ValueError, match='steps_per_epoch'):
        build_schedule(cfg.optimization.schedule, base_lr=0.5, steps_per_epoch=None, epochs=5)


def test_tracker_semantics():
    t = Tracker('max', 0.01)
    assert t.update(0.5) and t.best == 0.5 and t.wait == 0
    assert not t.update(0.505) and t.wait == 1          # within min_delta: not an improvement
    assert not t.update(float('nan')) and t.wait == 2   # NaN never improves
    assert t.update(0.52) and t.wait == 0
    t = Tracker('min', 0.0)
    assert t.update(1.0) and t.update(0.9) and not t.update(0.9)


def test_early_stopping_and_plateau():
    es = EarlyStopping(2, mode='max', min_delta=0.0)
    assert [es.update(v) for v in (0.5, 0.6, 0.6, 0.55)] == [False, False, False, True]
    # restored state continues the count (resume)
    es2 = EarlyStopping(2, best=0.6, wait=1)
    assert es2.update(0.59) is True
    rp = PlateauReducer(2, 0.5, mode='min')
    out = [rp.update(v) for v in (1.0, 0.9, 0.95, 0.93, 0.91, 0.92)]
    assert out == [False, False, False, True, False, True]
    assert rp.scale == pytest.approx(0.25)
