"""Multi-Robot Warehouse (``rware``): ``rware/<id>``.

``<id>`` is a registered Gymnasium id with or without the ``rware-`` prefix and ``-v2`` suffix:
``rware/tiny-2ag`` is ``rware-tiny-2ag-v2`` (sizes tiny/small/medium/large, 1..19 agents, optional
``-easy``/``-hard`` request queues). Options go to the ``Warehouse`` constructor (e.g.
``max_steps=500``) plus ``state=True`` (``"state"`` = all observations concatenated; RWARE has no
state of its own) and ``num_workers``. RWARE has no invalid actions, so no action mask. Every
episode ends on the step limit (or the optional inactivity limit), which is reported as
``truncated``, not ``terminated``.
"""

from __future__ import annotations

from functools import partial

from torchrl.envs import EnvBase

from marlshare.envs._batched import BatchedSimEnv
from marlshare.envs._tuple_gym import TupleGymSim

PREFIX, SUFFIX = "rware-", "-v2"


def _registry() -> list[str]:
    import gymnasium as gym
    import rware  # noqa: F401  (registers the ids)

    return sorted(k for k in gym.registry if k.startswith(PREFIX))


def tasks() -> list[str]:
    return [k[len(PREFIX): -len(SUFFIX)] for k in _registry()]


def resolve(task: str) -> str:
    ids = _registry()
    for candidate in (task, PREFIX + task, PREFIX + task + SUFFIX, task + SUFFIX):
        if candidate in ids:
            return candidate
    examples = [t for t in tasks() if t.startswith(("tiny", "small"))][:10]
    raise ValueError(
        f"unknown RWARE task {task!r}: expected a registered id like 'rware-tiny-2ag-v2' or its short form "
        f"'tiny-2ag' (pattern <tiny|small|medium|large>-<agents>ag[-easy|-hard][-img...]); e.g. {examples}, "
        f"... ({len(ids)} in all, see envs.rware.tasks())"
    )


class RwareSim(TupleGymSim):
    def __init__(self, env_id: str, **kwargs):
        import rware  # noqa: F401  (registers the ids, also in a fresh worker process)

        super().__init__(env_id, **kwargs)

    def split_done(self, done: bool, truncated: bool) -> tuple[bool, bool]:
        return False, done or truncated  # RWARE only ever stops on a step limit


def make(task: str, num_envs: int = 1, seed: int | None = None, num_workers: int = 0, **options) -> EnvBase:
    env_id = resolve(task)
    return BatchedSimEnv(partial(RwareSim, env_id, **options), num_envs=num_envs, seed=seed,
                         num_workers=num_workers, name=f"rware/{task}")
