"""Blind-Particle Spread (BPS), SePS's hidden-role task, as a VMAS scenario: ``vmas/bps``.

Definition (read from SePS's PettingZoo fork, ``semitable/PettingZoo``, ``mpe/scenarios/large_spread.py``
and its ``large_spread_v1..v6``; written anew for VMAS):

- ``groups=[3, 3, 3]``: agents come in groups (agents ``0..2`` are group 0, ``3..5`` group 1, ...), one
  landmark per group. SePS's variants: v1 ``[5,5,5]``, v2 ``[10,10,10]``, v3 ``[6,6,6,6,6]``,
  v4 ``[3,3,3,12,9]``, v5 ``[5,5,5]`` shuffled, v6 ``[6,6,6,6,6]`` shuffled. The paper ran 50-step
  episodes: pass ``env.options.max_steps=50`` (the VMAS family's default is 100; the evidence specs set 50).
- Reset: agents uniform in ``[-1, 1]^2`` at rest, landmarks uniform in ``[-3, 3]^2``.
- Reward of agent i: ``-reward_scale * |p_i - landmark[group(i)]|`` every step. ``reward_scale = 0.5``
  is the PettingZoo fork's ``local_ratio = 0.5`` mixing with a global reward that is 0 in the
  non-cooperative task SePS used.
- Observation ``[B, N, 4 + 2L]``: own velocity, own position, then every landmark's position relative
  to the agent, in landmark order: **not the group**, so two agents of different groups in the same
  state see the same vector. ``shuffle_obs=True`` (SePS's v5/v6) permutes each observation by a fixed
  permutation per group (the one Python's ``random.Random(group).shuffle`` gives, as in SePS): agents
  of different groups then see the same state in different layouts.
- Dynamics: MPE's (VMAS defaults: mass 1, drag 0.25, dt 0.1), no collisions; actions in ``[-1, 1]^2``
  scaled by ``u_multiplier = 5``, MPE's default acceleration sensitivity (VMAS's MPE ports use 1).

``group_of`` (agent -> group list) and ``landmark_positions()`` are on the scenario for scripted
reference policies (:mod:`tools.bps_reference`); a policy trained by marlshare never sees them.
"""

from __future__ import annotations

import random

import torch
from vmas.simulator.core import Agent, Landmark, Sphere, World
from vmas.simulator.scenario import BaseScenario
from vmas.simulator.utils import Color, ScenarioUtils

DEFAULT_GROUPS = (3, 3, 3)
AGENT_SPREAD, LANDMARK_SPREAD = 1.0, 3.0  # reset positions are uniform in [-spread, spread]^2
SENSITIVITY = 5.0  # MPE's acceleration sensitivity for agents without their own accel


def check_groups(groups) -> list[int]:
    """``groups`` as a list of positive ints (the size of each group), or ValueError naming the value."""
    if isinstance(groups, (str, bytes)) or not hasattr(groups, "__iter__"):
        raise ValueError(f"vmas/bps: groups must be a list of group sizes such as [3, 3, 3], got groups={groups!r}")
    sizes = list(groups)
    if len(sizes) < 1 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"vmas/bps: groups must be a non-empty list of positive integers (agents per group), "
                         f"e.g. [3, 3, 3] or [3, 3, 3, 12, 9]; got groups={groups!r}")
    return sizes


def group_permutation(group: int, size: int) -> list[int]:
    """The observation permutation of ``group`` under ``shuffle_obs`` (SePS: ``random.Random(group)``)."""
    order = list(range(size))
    random.Random(group).shuffle(order)
    return order


class Scenario(BaseScenario):
    def make_world(self, batch_dim: int, device: torch.device, **kwargs):
        self.groups = check_groups(kwargs.pop("groups", DEFAULT_GROUPS))
        self.shuffle_obs = bool(kwargs.pop("shuffle_obs", False))
        self.reward_scale = float(kwargs.pop("reward_scale", 0.5))
        ScenarioUtils.check_kwargs_consumed(kwargs)
        self.group_of = [g for g, size in enumerate(self.groups) for _ in range(size)]
        obs_dim = 4 + 2 * len(self.groups)
        self.permutations = [torch.tensor(group_permutation(g, obs_dim), device=device) for g in range(len(self.groups))]

        world = World(batch_dim=batch_dim, device=device)
        for i in range(len(self.group_of)):
            world.add_agent(Agent(name=f"agent_{i}", collide=False, shape=Sphere(radius=0.15),
                                  u_multiplier=SENSITIVITY, color=Color.BLUE))
        for g in range(len(self.groups)):
            world.add_landmark(Landmark(name=f"landmark_{g}", collide=False, color=Color.BLACK))
        return world

    def _uniform(self, spread: float, env_index):
        rows = 1 if env_index is not None else self.world.batch_dim
        return torch.empty((rows, self.world.dim_p), device=self.world.device).uniform_(-spread, spread)

    def reset_world_at(self, env_index: int = None):
        for agent in self.world.agents:
            agent.set_pos(self._uniform(AGENT_SPREAD, env_index), batch_index=env_index)
            agent.set_vel(torch.zeros_like(self._uniform(0.0, env_index)), batch_index=env_index)
        for landmark in self.world.landmarks:
            landmark.set_pos(self._uniform(LANDMARK_SPREAD, env_index), batch_index=env_index)

    def landmark_positions(self) -> torch.Tensor:
        """``[B, L, 2]``: every landmark's position (for scripted policies and tests)."""
        return torch.stack([landmark.state.pos for landmark in self.world.landmarks], dim=1)

    def reward(self, agent: Agent) -> torch.Tensor:
        target = self.world.landmarks[self.group_of[self.world.agents.index(agent)]]
        return -self.reward_scale * torch.linalg.vector_norm(agent.state.pos - target.state.pos, dim=-1)

    def observation(self, agent: Agent) -> torch.Tensor:
        relative = [landmark.state.pos - agent.state.pos for landmark in self.world.landmarks]
        obs = torch.cat([agent.state.vel, agent.state.pos, *relative], dim=-1)
        if self.shuffle_obs:
            obs = obs[..., self.permutations[self.group_of[self.world.agents.index(agent)]]]
        return obs
