"""The cyclic cosine learning rate of Eq. 9 (after SGDR, Loshchilov & Hutter 2017)."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="ml_resnet_tf")
class CyclicCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Cosine annealing from ``lr_max`` to ``lr_min`` within each cycle, restarting at each boundary.

    Eq. 9: ``lr = lr_min + (lr_max - lr_min) * (1 + cos(pi * T_cur / T)) / 2``, where
    ``T`` is the current cycle's length in steps and ``T_cur`` the steps taken in
    it. The schedule is a function of the *global* step, so that one object serves
    every cycle and a resumed optimizer lands on the right value.

    Args:
      lr_max, lr_min: the learning rate at the start and at the end of every cycle.
      boundaries: global steps at which a new cycle starts (strictly increasing,
        each in ``(0, total_steps)``); empty for a single cosine over the run.
      total_steps: the run's length; steps past it stay at ``lr_min``.
      warmup_steps: at each restart (not the first cycle), the rate first rises linearly from
        ``lr_min`` to ``lr_max`` over this many steps, then follows Eq. 9 over the rest of the
        cycle; 0 is the paper's instant restart. A softer restart after an interpolation, so the
        jump to ``lr_max`` does not undo what the copied blocks learnt (issue 15).
      restart_lr_max: the rate every cycle after the first starts from (None: ``lr_max``, the
        paper's): a gentler restart for a net that was just grown, or that is already trained (issue 28).
    """

    def __init__(self, lr_max, lr_min, boundaries, total_steps, name="cyclic_cosine", warmup_steps=0,  # noqa: PLR0913
                 restart_lr_max=None):
        starts = [0] + [int(b) for b in boundaries]
        ends = starts[1:] + [int(total_steps)]
        if any(end <= start for start, end in zip(starts, ends)):
            raise ValueError(f"boundaries {list(boundaries)} must increase strictly within (0, {total_steps})")
        self.lr_max, self.lr_min = float(lr_max), float(lr_min)
        self.boundaries, self.total_steps = starts[1:], int(total_steps)
        self.name = name
        self.warmup_steps = int(warmup_steps)
        self.restart_lr_max = None if restart_lr_max is None else float(restart_lr_max)
        if self.boundaries and self.warmup_steps >= min(e - s for s, e in zip(starts[1:], ends[1:])):
            raise ValueError(f"warmup_steps={warmup_steps} must be shorter than every cycle after the first")

    def __call__(self, step):
        step = ops.cast(step, "float32")
        starts = ops.convert_to_tensor([0.0] + [float(b) for b in self.boundaries])
        lengths = ops.convert_to_tensor(
            [float(e - s) for s, e in zip([0] + self.boundaries, self.boundaries + [self.total_steps])])
        cycle = ops.sum(ops.cast(ops.greater_equal(step, starts[1:]), "int32"))
        warmup = ops.where(cycle > 0, float(self.warmup_steps), 0.0)
        peak = ops.where(cycle > 0, self.lr_max if self.restart_lr_max is None else self.restart_lr_max, self.lr_max)
        into = step - ops.take(starts, cycle)
        progress = ops.clip((into - warmup) / (ops.take(lengths, cycle) - warmup), 0.0, 1.0)
        cosine = self.lr_min + 0.5 * (peak - self.lr_min) * (1.0 + ops.cos(math.pi * progress))
        ramp = self.lr_min + (peak - self.lr_min) * into / ops.maximum(warmup, 1.0)
        return ops.where(into < warmup, ramp, cosine)

    def get_config(self):
        return {"lr_max": self.lr_max, "lr_min": self.lr_min, "boundaries": list(self.boundaries),
                "total_steps": self.total_steps, "name": self.name, "warmup_steps": self.warmup_steps,
                "restart_lr_max": self.restart_lr_max}
