"""Training schedules: ``single`` (one strategy throughout) and ``two_phase`` (shared pretraining,
then a fine-tuning transform such as ``ps -> ps_lora``), and the automatic switch rule.

A schedule is data: a list of :class:`Phase` objects. The switch itself is a network transform
(:func:`components.transforms.to_lora`); the trainer applies it, rebuilds the optimiser for the new
trainable parameters and keeps counting frames, so curves are continuous.

The automatic switch rule (:class:`AutoSwitch`) implements the LoRASA guidance "switch once the
shared policy is competent and still improving" on the evaluation curve:

1. smooth the evaluation returns with a moving average over ``window`` evaluations;
2. the *slope* at each evaluation is the least-squares slope of the last ``window`` smoothed points;
3. the policy counts as **competent** once the curve has passed its steepest part: the current slope
   has fallen to at most ``decel`` (default 0.5) times the steepest slope seen so far. On the usual
   S-shaped learning curve this happens after the inflection point, i.e. once about half of the
   attainable improvement has been made;
4. the improvement must be real: the smoothed return must have risen above its first value by more
   than ``noise_sigmas`` times the evaluation noise (the standard deviation of the raw returns
   around the smoothed curve), so a flat noisy curve never triggers;
5. it must be **still improving**: the current slope is positive. If the curve has already flattened
   (slope <= 0) the rule switches anyway: later is worse, but never switching is worse still;
6. never before ``min_frames``; at ``max_frames`` the switch happens regardless (the fallback).
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
    window: int = 3
    decel: float = 0.5
    noise_sigmas: float = 2.0
    min_frames: int = 0
    max_frames: int | None = None
    history: list[tuple[int, float]] = field(default_factory=list)
    reason: str = ""

    def __post_init__(self):
        if int(self.window) != self.window or self.window < 2:
            raise ValueError(f"auto switch window must be an integer >= 2, got window={self.window!r}")
        if not 0 < self.decel < 1:
            raise ValueError(f"auto switch decel must be in (0, 1), got decel={self.decel!r}")

    def update(self, frames: int, eval_return: float) -> bool:
        """Record an evaluation; True when the rule says to switch now."""
        self.history.append((int(frames), float(eval_return)))
        if self.max_frames is not None and frames >= self.max_frames:
            self.reason = f"fallback: reached max_frames={self.max_frames}"
            return True
        if frames < self.min_frames or len(self.history) < 2 * self.window:
            return False
        x = np.array([f for f, _ in self.history], dtype=float)
        y = np.array([r for _, r in self.history], dtype=float)
        w = self.window
        smooth = np.convolve(y, np.ones(w) / w, mode="valid")  # smooth[j] averages y[j:j+w]
        xs = x[w - 1:]
        slopes = [np.polyfit(xs[j - w + 1:j + 1], smooth[j - w + 1:j + 1], 1)[0] for j in range(w - 1, len(smooth))]
        peak, now = max(slopes), slopes[-1]
        noise = float(np.std(y[w - 1:] - smooth)) + 1e-12
        gain = smooth[-1] - smooth[0]
        if peak <= 0 or gain <= self.noise_sigmas * noise:
            return False
        if now <= self.decel * peak:
            state = "still improving" if now > 0 else "already flat"
            self.reason = (f"competent ({gain:.3g} above the start, slope down to {now / peak:.0%} of its peak), "
                           f"{state}")
            return True
        return False

    def state_dict(self) -> dict:
        return {"history": list(self.history), "reason": self.reason}

    def load_state_dict(self, state: dict) -> None:
        self.history = [tuple(h) for h in state["history"]]
        self.reason = state.get("reason", "")
