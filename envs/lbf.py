"""Level-Based Foraging (``lbforaging``): ``lbf/<id>``.

``<id>`` is a registered Gymnasium id with or without the ``Foraging-`` prefix and ``-v3`` suffix:
``lbf/8x8-2p-2f-coop`` is ``Foraging-8x8-2p-2f-coop-v3``; ``-2s`` ids are partially observable
(sight 2); ``grid-...`` ids give grid observations, flattened (their registration takes LBF ~30 s, once per process). Options go to the env constructor
(e.g. ``normalize_reward=True``, ``penalty=0.1``) plus:

* ``max_steps`` (alias ``max_episode_steps``, LBF's default 50): the episode length cap;

* ``action_mask=True``: ``("agents", "action_mask")`` from LBF's own valid-move list (invalid
  moves are no-ops in LBF, so masking them only removes wasted choices);
* ``state=True``: ``"state"`` = all agents' observations concatenated (LBF has no state of its own);
* ``num_workers=0``: worker processes for the copies (see :class:`envs._batched.BatchedSimEnv`).

Episode end: LBF reports ``done`` both when all food is eaten and when the step limit is reached;
the adapter calls the first ``terminated`` and the second ``truncated``, so value bootstrapping is
right.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from torchrl.envs import EnvBase

from marlshare.envs._batched import BatchedSimEnv
from marlshare.envs._tuple_gym import TupleGymSim

PREFIX, SUFFIX = "Foraging-", "-v3"


def _registry(grid: bool = False) -> list[str]:
    """Registered LBF ids. Grid-observation ids are registered only on demand: LBF registers
    thousands of them through Gymnasium's quadratic duplicate check, which takes tens of seconds."""
    import gymnasium as gym
    import lbforaging

    if grid and not any(k.startswith("Foraging-grid") for k in gym.registry):
        lbforaging.register_grid_envs()
    return sorted(k for k in gym.registry if k.startswith(PREFIX))


def tasks() -> list[str]:
    """Every LBF task name, short form (``8x8-2p-2f-coop``)."""
    return [k[len(PREFIX): -len(SUFFIX)] for k in _registry()]


def resolve(task: str) -> str:
    ids = _registry(grid="grid" in task)
    for candidate in (task, PREFIX + task, PREFIX + task + SUFFIX, task + SUFFIX):
        if candidate in ids:
            return candidate
    examples = [t for t in tasks() if t.startswith(("8x8", "10x10", "2s-8x8"))][:12]
    raise ValueError(
        f"unknown LBF task {task!r}: expected a registered id like 'Foraging-8x8-2p-2f-coop-v3' or its short "
        f"form '8x8-2p-2f-coop' (pattern [2s-]<size>x<size>-<players>p-<food>f[-coop]; sizes 5..19, "
        f"players 2..9, food 1..4); e.g. {examples}, ... ({len(ids)} in all, see envs.lbf.tasks())"
    )


def write_observations(env, out: np.ndarray) -> None:
    """LBF's vector observations of every agent, written into ``out[N, obs]``.

    Computes exactly what ``ForagingEnv._make_gym_obs`` returns (``tests/envs/test_lbf.py`` checks
    it step by step), without building per-agent namedtuples, copying neighbourhoods and checking
    every observation against its Box: that bookkeeping is more than half of LBF's step time.
    Layout: ``max_num_food`` triples (row, col, level) of the food in sight, ``-1, -1, 0`` when
    absent, then one (row, col[, level]) entry per player in sight, self first; coordinates are
    relative to the agent's (border-clipped) view window.
    """
    sight, field = env.sight, env.field
    n_food = env.max_num_food
    width = 3 if env._observe_agent_levels else 2
    base = 3 * n_food
    out[...] = 0.0
    out[:, 0:base:3] = -1.0
    out[:, 1:base:3] = -1.0
    out[:, base::width] = -1.0
    out[:, base + 1::width] = -1.0
    players = env.players
    positions = [p.position for p in players]
    levels = [p.level for p in players]
    reach = 2 * sight
    for i, (row, col) in enumerate(positions):
        r0, c0 = max(row - sight, 0), max(col - sight, 0)
        window = field[r0: row + sight + 1, c0: col + sight + 1]
        ys, xs = np.nonzero(window)
        k = len(ys)
        if k:
            o = out[i]
            o[0: 3 * k: 3] = ys
            o[1: 3 * k: 3] = xs
            o[2: 3 * k: 3] = window[ys, xs]
        slot = base
        for a in [i] + [a for a in range(len(players)) if a != i]:
            ty, tx = positions[a][0] - r0, positions[a][1] - c0
            if ty >= 0 and tx >= 0 and ty <= reach and tx <= reach:
                out[i, slot] = ty
                out[i, slot + 1] = tx
                if width == 3:
                    out[i, slot + 2] = levels[a]
                slot += width


class LBFSim(TupleGymSim):
    """One LBF copy. With ``fast_obs`` (default, vector observations only) the adapter writes the
    observations itself (:func:`write_observations`) and LBF's own observation builder is skipped."""

    def __init__(self, env_id: str, state: bool = True, action_mask: bool = True, fast_obs: bool = True,
                 **kwargs):
        import lbforaging  # noqa: F401  (registers the ids, also in a fresh worker process)

        if "grid" in env_id:
            _registry(grid=True)
        self.has_action_mask = action_mask
        # gym.make would turn max_episode_steps into a TimeLimit wrapper; LBF counts steps itself
        max_steps = kwargs.pop("max_episode_steps", None)
        max_steps = kwargs.pop("max_steps", max_steps)  # the registry-wide name of the same cap
        super().__init__(env_id, state=state, **kwargs)
        if max_steps is not None:
            self.env._max_episode_steps = int(max_steps)
        self.fast_obs = fast_obs and not self.env._grid_observation
        if self.fast_obs:
            self.env._make_gym_obs = _no_obs  # instance attribute: reset() and step() call it

    def reset(self, seed, obs, state, action_mask) -> None:
        if seed is not None:
            # LBF spawns players away from where they stood last episode; forget that, so a seeded
            # reset of a used env gives what a fresh env gives
            for player in self.env.players:
                player.position = None
        super().reset(seed, obs, state, action_mask)

    def _write(self, nobs, obs, state, action_mask) -> None:
        if not self.fast_obs:
            return super()._write(nobs, obs, state, action_mask)
        write_observations(self.env, obs)
        super()._write((), obs, state, action_mask)  # state and masks from the observations just written

    def write_action_mask(self, action_mask) -> None:
        action_mask[...] = False
        valid = self.env._valid_actions
        for i, player in enumerate(self.env.players):
            for a in valid[player]:
                action_mask[i, a.value] = True

    def split_done(self, done: bool, truncated: bool) -> tuple[bool, bool]:
        env = self.env
        out_of_time = done and env.current_step >= env._max_episode_steps and env.field.sum() > 0
        return done and not out_of_time, truncated or out_of_time


def _no_obs():
    return None


def make(task: str, num_envs: int = 1, seed: int | None = None, num_workers: int = 0, **options) -> EnvBase:
    env_id = resolve(task)
    return BatchedSimEnv(partial(LBFSim, env_id, **options), num_envs=num_envs, seed=seed,
                         num_workers=num_workers, name=f"lbf/{task}")
