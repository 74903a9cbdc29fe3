"""What a family adapter writes for :class:`envs._batched.BatchedSimEnv`: one copy of its simulator
(:class:`Sim`), numpy in and numpy out, agents already padded into one group, and its shapes
(:class:`SimSpec`). Both the env (``_batched``) and its worker processes (``_workers``) read it.

Sim contract (every array argument is a writable row of the batch buffer, ``None`` when absent)::

    spec: SimSpec
    reset(seed, obs[N, obs], state[S] | None, action_mask[N, A] | None) -> None
    step(action[N, act] float32 | [N] int64, obs, state, action_mask, reward[N])
        -> (terminated: bool, truncated: bool, win: bool)
    close() -> None
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class SimSpec:
    """Shapes of one simulator copy, after padding its agents into one group."""

    n_agents: int
    obs_dim: int
    discrete: bool
    action_dim: int  # discrete: number of actions (max over agents); continuous: max action size
    state_dim: int | None = None
    action_low: np.ndarray | None = None  # [N, act] continuous bounds (padded columns: a real agent's)
    action_high: np.ndarray | None = None
    has_action_mask: bool = False
    observation_mask: np.ndarray | None = None  # [N, obs] bool, only when observation sizes differ
    action_dim_mask: np.ndarray | None = None  # [N, act] bool, only when continuous action sizes differ
    has_win: bool = False
    agent_names: tuple[str, ...] = field(default_factory=tuple)


class Sim(Protocol):
    spec: SimSpec

    def reset(self, seed, obs, state, action_mask) -> None: ...

    def step(self, action, obs, state, action_mask, reward) -> tuple[bool, bool, bool]: ...

    def close(self) -> None: ...


def pad_bounds(lows: list[np.ndarray], highs: list[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-agent action bounds ``[N, width]``; a padded column takes the bounds of an agent that has it,
    so a squashing distribution never sees an empty interval."""
    n = len(lows)
    low = np.zeros((n, width), np.float32)
    high = np.zeros((n, width), np.float32)
    donor_low = np.full(width, -1.0, np.float32)
    donor_high = np.full(width, 1.0, np.float32)
    for lo, hi in sorted(zip(lows, highs), key=lambda p: len(p[0])):  # the widest agent donates last
        donor_low[: len(lo)] = lo
        donor_high[: len(hi)] = hi
    for i, (lo, hi) in enumerate(zip(lows, highs)):
        low[i] = donor_low
        high[i] = donor_high
        low[i, : len(lo)] = lo
        high[i, : len(hi)] = hi
    return low, high
