"""Training schedules: ``single`` (one strategy throughout) and ``two_phase`` (shared pretraining,
then a fine-tuning transform such as ``ps -> ps_lora``), and the automatic switch rule.

A schedule is data: a list of :class:`Phase` objects. The switch itself is a network transform
(:func:`components.transforms.to_lora`); the trainer applies it, rebuilds the optimiser for the new
trainable parameters and keeps counting frames, so curves are continuous.

The automatic switch rule (:class:`AutoSwitch`) implements the LoRASA guidance "switch once the
shared policy is competent and still improving" on the evaluation curve. With ``k = window``
evaluations per block, it compares the mean return of the last three blocks of ``k`` evaluations:

1. ``gain_prev`` = block 2 - block 1 and ``gain_now`` = block 3 - block 2 (block means average out
   evaluation noise);
2. the evaluation noise is the standard deviation of the raw returns around a 3-point moving average;
3. **competent**: the curve was clearly rising (``gain_prev`` above ``noise_sigmas`` noise standard
   errors), the policy has improved well beyond noise since the first block (by more than
   ``competence_sigmas`` times the noise), and learning has started to slow down
   (``gain_now <= decel * gain_prev``): past the steepest part of the usual S-shaped curve;
4. the condition must hold at ``patience`` consecutive evaluations, so one lucky or unlucky
   evaluation cannot trigger it;
5. the rule reports whether the curve is **still improving** (``gain_now > 0``); if it has already
   flattened it switches anyway: later than ideal, but never switching is worse;
6. never before ``min_frames``; at ``max_frames`` (``schedule.switch_at`` in the recipes) the switch
   happens regardless (the fallback).

The rule needs at least ``3 * window`` evaluations, so evaluate often (e.g. 30 evaluations over the
pretraining budget). On synthetic S-curves with evaluation noise up to 8% of the total rise it fires
at 80-95% of the rise and never on a flat noisy curve (``tests/components/test_schedule.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SCHEDULES = ("single", "two_phase")


@dataclass
class Phase:
    name: str  # "train", "pretrain" or "finetune"
    strategy: str
    start_frame: int = 0
    end_frame: int | None = None  # filled in when the phase ends


@dataclass
class AutoSwitch:
    window: int = 4
    decel: float = 0.75
    noise_sigmas: float = 2.0
    competence_sigmas: float = 8.0
    patience: int = 2
    min_frames: int = 0
    max_frames: int | None = None
    history: list[tuple[int, float]] = field(default_factory=list)
    reason: str = ""

    def __post_init__(self):
        self._streak = 0
        if int(self.window) != self.window or self.window < 2:
            raise ValueError(f"auto switch window must be an integer >= 2, got window={self.window!r}")
        if not 0 < self.decel <= 1:
            raise ValueError(f"auto switch decel must be in (0, 1], got decel={self.decel!r}")

    def update(self, frames: int, eval_return: float) -> bool:
        """Record an evaluation; True when the rule says to switch now."""
        self.history.append((int(frames), float(eval_return)))
        if self.max_frames is not None and frames >= self.max_frames:
            self.reason = f"fallback: reached max_frames={self.max_frames}"
            return True
        k = self.window
        if frames < self.min_frames or len(self.history) < 3 * k:
            return False
        y = np.array([r for _, r in self.history], dtype=float)
        older, previous, recent = (y[-3 * k:-2 * k].mean(), y[-2 * k:-k].mean(), y[-k:].mean())
        gain_prev, gain_now = previous - older, recent - previous
        # evaluation noise: spread of the raw returns around a 3-point moving average
        noise = float(np.std(y[1:-1] - np.convolve(y, np.ones(3) / 3, mode="valid"))) + 1e-12
        significant = gain_prev > self.noise_sigmas * noise * np.sqrt(2.0 / k)
        total = recent - y[:k].mean()  # improvement since the first evaluations
        competent = significant and total > self.competence_sigmas * noise and gain_now <= self.decel * gain_prev
        self._streak = self._streak + 1 if competent else 0
        if self._streak >= self.patience:
            state = "still improving" if gain_now > 0 else "already flat"
            self.reason = (f"competent (gain over the last {k} evaluations {gain_now:.3g}, "
                           f"{gain_now / gain_prev:.0%} of the {k} before), {state}")
            return True
        return False

    def state_dict(self) -> dict:
        return {"history": list(self.history), "reason": self.reason, "streak": self._streak}

    def load_state_dict(self, state: dict) -> None:
        self.history = [tuple(h) for h in state["history"]]
        self.reason = state.get("reason", "")
        self._streak = state.get("streak", 0)
