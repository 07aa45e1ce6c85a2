"""Eq. 9: cosine annealing that restarts at every cycle boundary."""

import math

import keras
import pytest

from ml_resnet_tf.training.schedules import CyclicCosineDecay

LR_MAX, LR_MIN = 0.5, 0.001


def lr(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def eq9(t_cur, t):
    return LR_MIN + 0.5 * (LR_MAX - LR_MIN) * (1 + math.cos(math.pi * t_cur / t))


def test_values_at_and_around_the_boundaries():
    # The paper's schedule: 160 epochs, restarts at 60 and 110, 500 steps an epoch (CIFAR, batch 100).
    schedule = CyclicCosineDecay(LR_MAX, LR_MIN, [30_000, 55_000], 80_000)
    assert lr(schedule, 0) == pytest.approx(LR_MAX)
    assert lr(schedule, 15_000) == pytest.approx((LR_MAX + LR_MIN) / 2)
    assert lr(schedule, 29_999) == pytest.approx(eq9(29_999, 30_000), rel=1e-5)
    assert lr(schedule, 29_999) < 0.0011
    assert lr(schedule, 30_000) == pytest.approx(LR_MAX)  # restart
    assert lr(schedule, 42_500) == pytest.approx((LR_MAX + LR_MIN) / 2)
    assert lr(schedule, 54_999) == pytest.approx(eq9(24_999, 25_000), rel=1e-5)
    assert lr(schedule, 55_000) == pytest.approx(LR_MAX)
    assert lr(schedule, 79_999) == pytest.approx(eq9(24_999, 25_000), rel=1e-5)
    assert lr(schedule, 80_000) == pytest.approx(LR_MIN)
    assert lr(schedule, 90_000) == pytest.approx(LR_MIN)  # past the end it stays at the minimum


def test_without_boundaries_it_is_one_cosine():
    schedule = CyclicCosineDecay(LR_MAX, LR_MIN, [], 1000)
    assert [lr(schedule, s) for s in (0, 500, 1000)] == pytest.approx([LR_MAX, (LR_MAX + LR_MIN) / 2, LR_MIN])


def test_an_optimizer_reads_it_on_its_global_step():
    schedule = CyclicCosineDecay(LR_MAX, LR_MIN, [100], 300)
    optimizer = keras.optimizers.SGD(schedule)
    optimizer.build([keras.Variable(1.0)])
    optimizer.iterations.assign(100)
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(LR_MAX)


def test_serializes():
    schedule = CyclicCosineDecay(LR_MAX, LR_MIN, [10, 20], 30)
    clone = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert clone.get_config() == schedule.get_config()
    assert lr(clone, 15) == lr(schedule, 15)


@pytest.mark.parametrize("boundaries, total", [([20, 10], 30), ([0, 10], 30), ([10, 30], 30), ([10, 10], 30)])
def test_refuses_boundaries_outside_the_run(boundaries, total):
    with pytest.raises(ValueError, match="must increase strictly"):
        CyclicCosineDecay(LR_MAX, LR_MIN, boundaries, total)


def test_a_restart_with_warm_up_ramps_from_lr_min_then_follows_the_cosine():
    schedule = CyclicCosineDecay(LR_MAX, LR_MIN, [1000], 3000, warmup_steps=200)
    assert lr(schedule, 0) == pytest.approx(LR_MAX)  # the first cycle starts as the paper's
    assert lr(schedule, 999) == pytest.approx(eq9(999, 1000), rel=1e-5)
    assert lr(schedule, 1000) == pytest.approx(LR_MIN)
    assert lr(schedule, 1100) == pytest.approx((LR_MAX + LR_MIN) / 2)
    assert lr(schedule, 1200) == pytest.approx(LR_MAX)
    assert lr(schedule, 2100) == pytest.approx(eq9(900, 1800), rel=1e-5)  # the cosine over what is left
    restored = CyclicCosineDecay.from_config(schedule.get_config())
    assert lr(restored, 1050) == pytest.approx(lr(schedule, 1050))
    with pytest.raises(ValueError, match="warmup_steps=2000 must be shorter than every cycle after the first"):
        CyclicCosineDecay(LR_MAX, LR_MIN, [1000], 3000, warmup_steps=2000)


def test_a_lower_restart_peak_acts_on_every_cycle_after_the_first_only():
    schedule = CyclicCosineDecay(LR_MAX, LR_MIN, [1000, 2000], 3000, restart_lr_max=0.1)
    assert lr(schedule, 0) == pytest.approx(LR_MAX) and lr(schedule, 500) == pytest.approx((LR_MAX + LR_MIN) / 2)
    assert lr(schedule, 1000) == pytest.approx(0.1) and lr(schedule, 2000) == pytest.approx(0.1)
    assert lr(schedule, 1500) == pytest.approx((0.1 + LR_MIN) / 2) and lr(schedule, 2999) < 0.0011
    restored = CyclicCosineDecay.from_config(schedule.get_config())
    assert lr(restored, 1250) == pytest.approx(lr(schedule, 1250))
    # A schedule saved before the option (0.1.0 .keras files) has no such key and restarts at lr_max.
    old = {k: v for k, v in schedule.get_config().items() if k != "restart_lr_max"}
    assert lr(CyclicCosineDecay.from_config(old), 1000) == pytest.approx(LR_MAX)
