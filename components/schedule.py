"""Training schedules: a list of phases, each a registry strategy config with an end condition, and
the automatic switch rule.

:func:`plan_phases` resolves a :class:`~components.config.ScheduleConfig` (presets ``single``,
``two_phase``, ``two_phase_auto``, ``three_phase``, or any list, with the ``chain`` / ``switch_at``
shorthands) into :class:`PhasePlan` records and checks the chain against the registry: each strategy
must declare the previous one among its ``predecessors`` (or be the same strategy). What happens at a
boundary belongs to the strategy that starts there (``inherit``, ``fit``, ``adopt``); the trainer
only walks the list, rebuilds the optimiser for the new trainable parameters and keeps counting
frames, so curves are continuous.

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
6. never before ``min_frames``; at ``max_frames`` (the phase's ``until``) the switch happens
   regardless (the fallback).

The rule needs at least ``3 * window`` evaluations, so evaluate often (e.g. 30 evaluations over the
pretraining budget). On synthetic S-curves with evaluation noise up to 8% of the total rise it fires
at 80-95% of the rise and never on a flat noisy curve (``tests/components/test_schedule.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Phase:
    """What happened in a phase (kept in checkpoints and the summary)."""

    name: str  # the phase label: "train", "pretrain", "phase<i>" or "finetune"
    strategy: str
    start_frame: int = 0
    end_frame: int | None = None  # filled in when the phase ends


@dataclass
class PhasePlan:
    """A resolved phase: the full strategy config and the phase's settings."""

    label: str
    strategy: dict[str, Any]
    until: int | None = None
    auto: bool = False
    lr: float | None = None
    critic_lr: float | None = None
    clip_epsilon: float | None = None
    entropy_coeff: float | None = None


def _plain(value):
    from omegaconf import OmegaConf

    return OmegaConf.to_object(value) if OmegaConf.is_config(value) else value


def expand_shorthands(phases: list[dict], chain, switch_at) -> list[dict]:
    """``phases`` (plain dicts, changed in place) with the ``chain`` and ``switch_at`` shorthands written
    into them: ``chain`` renames (and adds) phases, each keeping the hyperparameters its new strategy
    has; ``switch_at`` sets the ``until`` of every phase but the last. Raises ValueError."""
    from marlshare.components.strategies import STRATEGIES

    if not phases and not chain:
        raise ValueError("schedule.phases is empty: a schedule needs at least one phase")
    if chain is not None:
        chain = [chain] if isinstance(chain, str) else list(chain)
        if not chain:
            raise ValueError("schedule.chain is empty: list the strategies of the phases, e.g. [ps, ps_lora]")
        # an added phase: PhaseConfig's defaults (False for auto, None for the rest), with the same keys
        keys = list(phases[0]) if phases else ["strategy", "until", "auto", "lr", "critic_lr", "clip_epsilon",
                                               "entropy_coeff", "label"]
        phases = phases[:len(chain)] + [{**{k: False if k == "auto" else None for k in keys}, "strategy": {}}
                                        for _ in range(len(chain) - len(phases))]
        for phase, name in zip(phases, chain):
            if name not in STRATEGIES:
                raise ValueError(f"schedule.chain: strategy {name!r} is not valid; choose from {list(STRATEGIES)}")
            # the chain renames the preset's phases: each keeps the hyperparameters its new strategy has
            valid = {f.name for f in dataclasses.fields(STRATEGIES[name])}
            phase["strategy"] = {**{k: v for k, v in (phase["strategy"] or {}).items() if k in valid}, "name": name}
    if switch_at is not None:
        points = [switch_at] if isinstance(switch_at, int) else list(switch_at) if isinstance(switch_at, list) else None
        if points is None or any(isinstance(p, bool) or not isinstance(p, int) for p in points):
            raise ValueError(f"schedule.switch_at={switch_at!r} must be a frame count (an integer), or a list of them "
                             f"with one per phase boundary")
        if len(points) != len(phases) - 1:
            raise ValueError(f"schedule.switch_at={switch_at!r} needs {len(phases) - 1} frame count(s), one per "
                             f"phase boundary of the {len(phases)}-phase schedule")
        for phase, point in zip(phases, points):
            phase["until"] = point
    return phases


def resolve_shorthands(schedule: dict) -> dict:
    """A plain ``schedule`` dict as it runs: ``chain`` and ``switch_at`` written into ``phases`` and
    unset, so a saved ``config.yaml`` says which phases ran (``schedule.switch_at=1200`` leaves no
    ``phases[0].until: 60000`` beside it). Planning the result gives the same phases. A schedule whose
    shorthands are invalid comes back unchanged (``plan_phases`` reports them)."""
    if schedule.get("chain") is None and schedule.get("switch_at") is None:
        return schedule
    try:
        phases = expand_shorthands([dict(p) for p in schedule["phases"]], schedule.get("chain"),
                                   schedule.get("switch_at"))
    except (ValueError, TypeError):
        return schedule
    return {**schedule, "phases": phases, "chain": None, "switch_at": None}


def plan_phases(cfg) -> list[PhasePlan]:
    """Resolve ``cfg.schedule`` (with ``cfg.strategy`` and ``cfg.total_frames``) into phase plans.
    Raises ValueError naming the bad value and the valid choices."""
    from marlshare.components.strategies import STRATEGIES, make_strategy, successors

    s = cfg.schedule
    phases = expand_shorthands([dict(strategy=dict(_plain(p.strategy) or {}), **{k: getattr(p, k) for k in (
        "until", "auto", "lr", "critic_lr", "clip_epsilon", "entropy_coeff", "label")}) for p in s.phases],
        _plain(s.chain), _plain(s.switch_at))
    run_strategy = dict(_plain(cfg.strategy))
    previous = None
    plans, bad_ends = [], []
    for i, phase in enumerate(phases):
        where = f"schedule phase {i}"
        hp = phase["strategy"]
        name = hp.get("name")
        if i == 0 and (name is None or name == run_strategy.get("name")):
            hp = {**run_strategy, **hp}
        elif name is None:
            name = STRATEGIES[previous].successor if previous in STRATEGIES else None
            if name is None:
                raise ValueError(f"{where}: {previous!r} declares no default successor; name this phase's strategy, "
                                 f"one of {successors(previous)}")
            hp = {**hp, "name": name}
        name = hp.get("name")
        if name not in STRATEGIES:
            raise ValueError(f"{where}: strategy={name!r} is not valid; choose one of {list(STRATEGIES)}")
        if previous is not None and name not in successors(previous):
            raise ValueError(f"{where}: {previous} -> {name} is not a valid phase chain; after {previous} "
                             f"choose one of {successors(previous)}")
        try:
            make_strategy(name, **{k: v for k, v in hp.items() if k != "name"})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where} ({name}): {err}") from None
        last = i == len(phases) - 1
        until = phase["until"]
        if last and until is not None:
            raise ValueError(f"{where} is the last phase and runs to total_frames={cfg.total_frames}: "
                             f"its until={until} must be unset")
        if not last:
            if until is None:
                raise ValueError(f"{where} ({name}) needs an end: until=<frames> (or schedule.switch_at)"
                                 + (", the fallback of auto=true" if phase["auto"] else ""))
            low = plans[-1].until if plans else 0
            if isinstance(until, bool) or not isinstance(until, int) or not low < until < cfg.total_frames:
                # reported after every phase's strategy is checked: a bad hyperparameter (a LoRA rank of 0)
                # is the reason to name, not a preset's switch point beyond a short total_frames
                bad_ends.append(f"{where}: until={until!r} must be a frame count in ({low}, "
                                f"total_frames={cfg.total_frames})")
        if phase["auto"] and last:
            raise ValueError(f"{where} is the last phase: auto=true only ends phases that have a successor")
        for key in ("lr", "critic_lr", "clip_epsilon", "entropy_coeff"):
            value = phase[key]
            bad = value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                         or value < 0 or (value == 0 and key in ("lr", "critic_lr")))
            if bad:
                raise ValueError(f"{where}: {key}={value!r} must be a {'positive' if 'lr' in key else 'non-negative'} "
                                 f"number (or unset for the algorithm's)")
        label = phase["label"] or _label(i, len(phases))
        plans.append(PhasePlan(label=label, strategy=hp, **{k: phase[k] for k in
                                                            ("until", "auto", "lr", "critic_lr", "clip_epsilon",
                                                             "entropy_coeff")}))
        previous = name
    if bad_ends:
        raise ValueError(bad_ends[0])
    labels = [p.label for p in plans]
    if len(set(labels)) != len(labels):
        raise ValueError(f"schedule phase labels must differ, got {labels}")
    if any(p.auto for p in plans):
        try:
            AutoSwitch(window=s.auto_window, decel=s.auto_decel)
        except ValueError as err:
            raise ValueError(f"schedule.auto_*: {err}") from None
    return plans


def _label(i: int, n: int) -> str:
    if n == 1:
        return "train"
    return "pretrain" if i == 0 else "finetune" if i == n - 1 else f"phase{i}"


def auto_switch_for(schedule, plan: PhasePlan) -> "AutoSwitch | None":
    """The automatic rule for a phase with ``auto=true`` (its ``until`` is the fallback)."""
    if not plan.auto:
        return None
    return AutoSwitch(window=schedule.auto_window, decel=schedule.auto_decel, noise_sigmas=schedule.auto_noise_sigmas,
                      competence_sigmas=schedule.auto_competence_sigmas, patience=schedule.auto_patience,
                      min_frames=schedule.auto_min_frames, max_frames=plan.until)


def plan_dict(plan: PhasePlan) -> dict:
    return dataclasses.asdict(plan)


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
