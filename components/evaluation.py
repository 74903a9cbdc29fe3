"""Deterministic evaluation of a policy, inside a forked RNG so that evaluating never changes what
training samples. A stop signal (Ctrl-C) ends it at its next env step with StopRequested."""

from __future__ import annotations

import math

import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type

from marlshare.components.checkpoint import forked_rng
from marlshare.components.interrupts import StopRequested, stop_requested
from marlshare.envs import GROUP

EPISODE_REWARD = (GROUP, "episode_reward")


@torch.no_grad()
def evaluate(env, actor, seed: int, max_steps: int, should_stop=stop_requested) -> tuple[float, float]:
    """Mean episode return per agent (and win rate, where the env reports wins; else NaN) of the
    deterministic policy: one episode per env copy, each cut at ``max_steps``. ``should_stop()`` is
    asked after every env step (default: whether the run got a stop signal); true raises StopRequested."""

    def check(*_):
        if should_stop is not None and should_stop():
            raise StopRequested("the evaluation was interrupted")

    with forked_rng(), set_exploration_type(ExplorationType.DETERMINISTIC):
        env.set_seed(seed)
        rollout = env.rollout(max_steps, actor, break_when_any_done=False, break_when_all_done=True,
                              callback=check)
    done = rollout.get(("next", "done")).squeeze(-1)  # [E, T]
    done[:, -1] = True  # an episode still running at the cap counts as ended there
    first = done.float().argmax(dim=1)  # first episode end of every copy
    envs = torch.arange(done.shape[0])
    returns = rollout.get(("next",) + EPISODE_REWARD)[envs, first]  # [E, N, 1]
    win = math.nan
    if ("next", "win") in rollout.keys(True):
        win = rollout.get(("next", "win"))[envs, first].float().mean().item()
    return returns.mean().item(), win


def train_return(batch) -> float:
    """Mean return of the training episodes that ended in ``batch`` (NaN if none did)."""
    done = batch.get(("next", "done")).squeeze(-1)
    if not done.any():
        return math.nan
    return batch.get(("next",) + EPISODE_REWARD)[done].mean().item()
