"""What a run has done so far: counters, phases, evaluations, fits, parameter counts.

One dataclass, created in one place (:meth:`RunState.start` for a new run, :meth:`RunState.restore`
for a resumed one), saved in every checkpoint and read back by the summary. The networks, critic and
optimiser live on the trainer; this is everything else a resume must restore.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from marlshare.components.schedule import AutoSwitch, Phase, auto_switch_for
from marlshare.components.strategies import Strategy


@dataclass
class RunState:
    strategies: list[Strategy]  # each entered phase's strategy (fitted clusters included)
    phases: list[Phase]
    phase_index: int = 0
    frames: int = 0
    iteration: int = 0
    wall_time: float = 0.0
    fits: dict[str, dict] = field(default_factory=dict)  # phase label -> what the strategy's fit reported
    best_eval: float = -math.inf
    last_eval: float = math.nan
    last_win: float = math.nan
    evals: list[dict] = field(default_factory=list)  # {"frames", "eval_return", "win_rate", "phase"}
    param_counts: dict[str, dict] = field(default_factory=dict)  # phase label -> count_parameters
    switch_reason: str | None = None
    auto_switch: AutoSwitch | None = None
    best: dict | None = None  # {"frame", "eval_return"} of checkpoints/best.pt, once written
    # what a stop left unfinished, done first on resume: {"row": the iteration's logged values} when its
    # evaluation was interrupted, {"switch": reason} when entering the next phase (its fit) was
    pending: dict | None = None
    # not saved: they describe this process, not the run
    stopped: str | dict | None = None  # why the run stopped early (divergence; {"signal", "frame"}; a write error)
    compile_times: dict[str, float] = field(default_factory=dict)  # phase label -> first compiled call, s

    @classmethod
    def start(cls, first_strategy: Strategy, first_label: str) -> "RunState":
        return cls(strategies=[first_strategy], phases=[Phase(first_label, first_strategy.name)])

    @classmethod
    def restore(cls, state: dict, strategies: list[Strategy], schedule, plans) -> "RunState":
        """The run state of checkpoint ``state`` (``strategies``: its phases' strategies, rebuilt)."""
        run = cls(strategies=strategies, phases=[Phase(**p) for p in state["phases"]],
                  phase_index=state["phase_index"], frames=state["frames"], iteration=state["iteration"],
                  wall_time=state["wall_time"], fits=state["fits"], best_eval=state["best_eval"],
                  last_eval=state["last_eval"], last_win=state["last_win"], evals=state["evals"],
                  param_counts=state["param_counts"], switch_reason=state.get("switch_reason"),
                  best=state.get("best"), pending=state.get("pending"))
        run.auto_switch = auto_switch_for(schedule, plans[run.phase_index])
        if run.auto_switch is not None and state["auto_switch"] is not None:
            run.auto_switch.load_state_dict(state["auto_switch"])
        return run

    @property
    def strategy(self) -> Strategy:
        return self.strategies[self.phase_index]

    def state_dict(self) -> dict:
        return {
            "iteration": self.iteration, "frames": self.frames, "wall_time": self.wall_time,
            "phase_index": self.phase_index, "phases": [dataclasses.asdict(p) for p in self.phases],
            # each entered phase's strategy, fitted fields (clusters, centres) included: a resume does not refit
            "strategies": [{**s.hyperparameters(), "name": s.name} for s in self.strategies],
            "fits": self.fits, "best_eval": self.best_eval, "last_eval": self.last_eval,
            "last_win": self.last_win, "evals": self.evals, "param_counts": self.param_counts,
            "auto_switch": None if self.auto_switch is None else self.auto_switch.state_dict(),
            "switch_reason": self.switch_reason, "best": self.best, "pending": self.pending,
        }

    def record_eval(self, ret: float, win: float, phase: str) -> bool:
        """Record an evaluation at the current frame; True when it is the best so far (strictly)."""
        improved = ret > self.best_eval
        self.last_eval, self.last_win = ret, win
        self.best_eval = max(self.best_eval, ret)
        self.evals.append({"frames": self.frames, "eval_return": ret, "win_rate": win, "phase": phase})
        return improved

    def begin_phase(self, index: int, label: str, strategy: Strategy, reason: str | None) -> None:
        """Close the current phase at the current frame and open phase ``index`` with ``strategy``."""
        self.phases[self.phase_index].end_frame = self.frames
        self.phase_index = index
        self.phases.append(Phase(label, strategy.name, start_frame=self.frames))
        self.strategies.append(strategy)
        self.switch_reason = reason
