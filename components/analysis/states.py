"""The same states for every agent: what the behaviour analyses feed to a trained team.

States come from rolling out the checkpoint's own stochastic policy in the run's env
(:func:`collect_states`). :func:`same_inputs` then lays them out so that agents can be compared on
identical inputs (``inputs="shared"``: every observation in every agent's slot, so a difference
between agents can only come from their parameters and, for PS, the appended agent id) or on their
own observations of the same env state (``inputs="own"``). :func:`policy_outputs` evaluates a
(possibly recurrent) actor on them. Used by ``marlshare analyze`` (:mod:`.run_analysis`) and by the
diversity column of the docs reproductions.
"""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def collect_states(run, n_states: int = 256, num_envs: int = 8, seed: int = 12345):
    """Observations ``[S, N, d]`` (and the GRU input state ``[S, N, H]``, the action mask
    ``[S, N, A]``, each None where absent) visited by the run's stochastic policy."""
    from torchrl.envs import TransformedEnv
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    from marlshare.components.algorithms.ppo import HIDDEN, MASK, OBS, make_actor, recurrent_env_transforms

    net, info = run.net, run.info
    env = TransformedEnv(run.make_env(num_envs, seed))
    recurrent = getattr(net, "recurrent", False)
    if recurrent:
        env.append_transform(recurrent_env_transforms(info.n_agents, net.hidden_size))
    actor = make_actor(net, info, run.cfg.algorithm.network.action_dist)
    steps = max(2, math.ceil(n_states / num_envs))
    torch.manual_seed(seed)
    with set_exploration_type(ExplorationType.RANDOM):
        env.set_seed(seed)
        td = env.rollout(steps, actor, break_when_any_done=False)
    env.close()
    obs = td.get(OBS).reshape(-1, info.n_agents, info.obs_dim)
    hidden = mask = None
    if recurrent:
        hidden = td.get(HIDDEN) * (~td.get("is_init")).unsqueeze(-1).to(torch.float32)
        hidden = hidden.reshape(-1, info.n_agents, net.hidden_size)
    if MASK in td.keys(True):
        mask = td.get(MASK).reshape(-1, info.n_agents, td.get(MASK).shape[-1])
    pick = torch.randperm(obs.shape[0], generator=torch.Generator().manual_seed(seed))[:n_states]
    return obs[pick], None if hidden is None else hidden[pick], None if mask is None else mask[pick]


def same_inputs(obs, hidden=None, mask=None, inputs: str = "shared"):
    """``inputs="shared"``: row ``(s, k)`` holds agent k's observation of state s in every agent's
    slot: ``[S * N, N, d]``. ``"own"``: unchanged ``[S, N, d]``."""
    if inputs == "own":
        return obs, hidden, mask
    if inputs != "shared":
        raise ValueError(f"inputs must be 'shared' or 'own', got {inputs!r}")
    n = obs.shape[1]

    def spread(t):
        return None if t is None else t.reshape(-1, 1, t.shape[-1]).expand(-1, n, -1).contiguous()

    return spread(obs), spread(hidden), spread(mask)


@torch.no_grad()
def policy_outputs(net, obs, hidden=None):
    """Logits ``[S, N, A]`` or ``(loc, scale)`` of a (possibly recurrent) actor."""
    if getattr(net, "recurrent", False):
        *out, _ = net(obs, hidden)
        return out[0] if len(out) == 1 else tuple(out)
    return net(obs)
