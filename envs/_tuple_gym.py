"""One copy of a Gymnasium multi-agent env with ``Tuple`` observation and action spaces (LBF, RWARE).

TorchRL's ``GymWrapper`` cannot step these (a tuple of discrete actions is not a gym action it
knows), so this small :class:`~envs._sim.Sim` stacks the tuple into ``[N, obs]`` rows itself.
The global state is the concatenation of all agents' observations (the EPyMARL convention for
these envs, which have no state of their own).
"""

from __future__ import annotations

import numpy as np

from marlshare.envs._sim import SimSpec


class TupleGymSim:
    """``env_id`` built with ``gymnasium.make(env_id, **kwargs).unwrapped`` (the wrappers
    ``gym.make`` adds only check the API and cost time on every step)."""

    def __init__(self, env_id: str, state: bool = True, **kwargs):
        import gymnasium as gym

        self.env = gym.make(env_id, **kwargs).unwrapped
        obs_spaces, act_spaces = self.env.observation_space.spaces, self.env.action_space.spaces
        self.n_agents = len(act_spaces)
        sizes = [int(np.prod(space.shape)) for space in obs_spaces]
        n_actions = [int(space.n) for space in act_spaces]
        if len(set(sizes)) != 1 or len(set(n_actions)) != 1:
            raise ValueError(f"{env_id}: agents differ in observation {sizes} or action {n_actions} sizes")
        self.obs_dim = sizes[0]
        self.spec = SimSpec(
            n_agents=self.n_agents,
            obs_dim=self.obs_dim,
            discrete=True,
            action_dim=n_actions[0],
            state_dim=self.n_agents * self.obs_dim if state else None,
            has_action_mask=self.has_action_mask,
            agent_names=tuple(f"agent_{i}" for i in range(self.n_agents)),
        )

    has_action_mask = False

    def _write(self, nobs, obs, state, action_mask) -> None:
        for i, o in enumerate(nobs):
            obs[i] = o.reshape(-1)
        if state is not None:
            state[:] = obs.reshape(-1)
        if action_mask is not None:
            self.write_action_mask(action_mask)

    def write_action_mask(self, action_mask) -> None:
        action_mask[...] = True

    def reset(self, seed, obs, state, action_mask) -> None:
        nobs, _ = self.env.reset(seed=seed)
        self._write(nobs, obs, state, action_mask)

    def step(self, action, obs, state, action_mask, reward):
        nobs, rewards, done, truncated, _ = self.env.step(action.tolist())
        reward[:] = rewards
        self._write(nobs, obs, state, action_mask)
        terminated, truncated = self.split_done(bool(done), bool(truncated))
        return terminated, truncated, False

    def split_done(self, done: bool, truncated: bool) -> tuple[bool, bool]:
        return done and not truncated, truncated

    def close(self) -> None:
        self.env.close()
