"""PettingZoo parallel envs: ``pettingzoo/<env>``, MPE2 (``mpe2`` package) and SISL.

TorchRL's ``PettingZooEnv(task=...)`` looks for the MPE modules PettingZoo 1.27 no longer ships,
and its generic wrapper costs several times the simulator per step, so this adapter builds the
parallel env itself and stacks the agents into one ``"agents"`` group:

* observations are flattened (pursuit's ``7x7x3`` views become 147 numbers) and, when agents differ
  in size (``simple_speaker_listener``: 3 vs 11), zero-padded, with a constant
  ``("agents", "observation_mask")`` saying which entries are real;
* discrete actions of different counts are padded with unavailable actions
  (``("agents", "action_mask")``); continuous actions of different sizes are padded with entries
  the simulator never sees (``("agents", "action_dim_mask")``);
* the global ``"state"`` is PettingZoo's ``env.state()`` (flattened) where the env defines it;
* rewards are per agent; the episode ends for the whole group when any agent terminates or
  truncates (MPE and SISL end all agents together).

Options go to ``parallel_env(**options)`` (e.g. ``N=3``, ``max_cycles=25``, ``local_ratio=0.5``,
``n_walkers=3``; ``max_steps`` is accepted as ``max_cycles``); ``continuous_actions`` keeps PettingZoo's default (discrete) for MPE, and
``num_workers`` spreads the copies over worker processes. Competitive MPE tasks (adversary, tag,
push, crypto, world_comm) are listed for completeness: their agents get opposing rewards.
"""

from __future__ import annotations

import importlib
from functools import partial

import numpy as np
from torchrl.envs import EnvBase

from marlshare.envs._batched import BatchedSimEnv
from marlshare.envs._sim import SimSpec, pad_bounds

# task -> module with a ``parallel_env`` factory
TASKS: dict[str, str] = {
    # MPE2
    "simple": "mpe2.simple_v3",
    "simple_adversary": "mpe2.simple_adversary_v3",
    "simple_crypto": "mpe2.simple_crypto_v3",
    "simple_push": "mpe2.simple_push_v3",
    "simple_reference": "mpe2.simple_reference_v3",
    "simple_speaker_listener": "mpe2.simple_speaker_listener_v4",
    "simple_spread": "mpe2.simple_spread_v3",
    "simple_tag": "mpe2.simple_tag_v3",
    "simple_world_comm": "mpe2.simple_world_comm_v3",
    # SISL (PettingZoo 1.27 dropped waterworld)
    "multiwalker": "pettingzoo.sisl.multiwalker_v9",
    "pursuit": "pettingzoo.sisl.pursuit_v5",
}


def tasks() -> list[str]:
    return sorted(TASKS)


class PettingZooSim:
    """One copy of a PettingZoo parallel env, agents stacked in ``possible_agents`` order."""

    def __init__(self, module: str, **options):
        import gymnasium

        self.env = importlib.import_module(module).parallel_env(**options)
        self.agents = list(self.env.possible_agents)
        obs_spaces = [self.env.observation_space(a) for a in self.agents]
        act_spaces = [self.env.action_space(a) for a in self.agents]
        self.obs_sizes = [int(np.prod(s.shape)) for s in obs_spaces]
        obs_dim = max(self.obs_sizes)
        n = len(self.agents)
        discrete = [isinstance(s, gymnasium.spaces.Discrete) for s in act_spaces]
        if any(discrete) and not all(discrete):
            raise ValueError(f"{module}: agents mix discrete and continuous actions; one group needs one kind")
        self.discrete = all(discrete)
        obs_mask = None
        if len(set(self.obs_sizes)) > 1:
            obs_mask = np.arange(obs_dim)[None, :] < np.array(self.obs_sizes)[:, None]
        has_action_mask, act_mask, low, high = False, None, None, None
        if self.discrete:
            self.act_sizes = [int(s.n) for s in act_spaces]
            act_dim = max(self.act_sizes)
            if len(set(self.act_sizes)) > 1:
                has_action_mask = True
                self.static_action_mask = np.arange(act_dim)[None, :] < np.array(self.act_sizes)[:, None]
            self._act_sizes = np.array(self.act_sizes)
        else:
            self.act_sizes = [int(np.prod(s.shape)) for s in act_spaces]
            act_dim = max(self.act_sizes)
            low, high = pad_bounds([s.low.reshape(-1) for s in act_spaces], [s.high.reshape(-1) for s in act_spaces], act_dim)
            self._low, self._high = low, high
            if len(set(self.act_sizes)) > 1:
                act_mask = np.arange(act_dim)[None, :] < np.array(self.act_sizes)[:, None]
        self.state_size = None
        state_space = getattr(self.env, "state_space", None)
        if state_space is not None:
            self.state_size = int(np.prod(state_space.shape))
        self.spec = SimSpec(
            n_agents=n, obs_dim=obs_dim, discrete=self.discrete, action_dim=act_dim, state_dim=self.state_size,
            action_low=low, action_high=high, has_action_mask=has_action_mask, observation_mask=obs_mask,
            action_dim_mask=act_mask, agent_names=tuple(self.agents),
        )
        self.uniform_obs = obs_mask is None
        # env.state() recomputes what the step just computed (MPE2: every agent's observation,
        # concatenated; multiwalker: each walker's first 24 observation entries, by ray casting, plus
        # the package pose), costing a good part of a step. Build it from the observations at hand
        # instead, once the first write has shown that this gives exactly env.state().
        self.fast_state = None
        if module.startswith("mpe2."):
            self.fast_state = self._concat_observations
        elif module.endswith("multiwalker_v9"):
            self.fast_state = self._multiwalker_state
        self.fast_state_ok = None if self.fast_state is not None else False
        self._last_state = np.zeros(self.state_size or 0, np.float32)

    def _write(self, observations, obs, state, action_mask) -> None:
        if self.uniform_obs:
            for i, a in enumerate(self.agents):
                obs[i] = observations[a].reshape(-1)
        else:
            obs[...] = 0.0
            for i, a in enumerate(self.agents):
                obs[i, : self.obs_sizes[i]] = observations[a].reshape(-1)
        if state is not None:
            if self.fast_state_ok:
                state[:] = self.fast_state(observations)
            else:
                try:
                    state[:] = self.env.state().reshape(-1)
                    self._last_state = state.copy()
                except AttributeError:
                    # multiwalker's state() fails once a fallen walker's body is destroyed (the
                    # terminal step, whose next state is never bootstrapped): keep the last state
                    state[:] = self._last_state
                if self.fast_state is not None and self.fast_state_ok is None:  # first write: check
                    fast = np.asarray(self.fast_state(observations), np.float32)
                    self.fast_state_ok = bool(fast.shape == state.shape and np.array_equal(fast, state))
        if action_mask is not None:
            action_mask[...] = self.static_action_mask

    def _concat_observations(self, observations) -> np.ndarray:
        return np.concatenate([observations[a].reshape(-1) for a in self.agents])

    def _multiwalker_state(self, observations) -> np.ndarray:
        base = self.env.unwrapped.env
        package = base.package
        walkers = [np.asarray(observations[a], np.float32)[:24] for a in self.agents]
        return np.concatenate(walkers + [np.array([package.position.x, package.position.y, package.angle], np.float32)])

    def reset(self, seed, obs, state, action_mask) -> None:
        observations, _ = self.env.reset(seed=seed)
        self._write(observations, obs, state, action_mask)

    def step(self, action, obs, state, action_mask, reward):
        if self.discrete:
            if self.spec.has_action_mask:  # a padded (unavailable) action index acts as action 0
                action = np.where(action < self._act_sizes, action, 0)
            acts = action.tolist()
            actions = {a: acts[i] for i, a in enumerate(self.agents)}
        else:
            action = np.clip(action, self._low, self._high)  # MPE rejects out-of-bounds actions
            actions = {a: action[i, : self.act_sizes[i]] for i, a in enumerate(self.agents)}
        observations, rewards, terms, truncs, _ = self.env.step(actions)
        for i, a in enumerate(self.agents):
            reward[i] = rewards.get(a, 0.0)
        if len(observations) < len(self.agents):  # an agent left: keep its last observation
            observations = {**{a: obs[i, : self.obs_sizes[i]] for i, a in enumerate(self.agents)}, **observations}
        self._write(observations, obs, state, action_mask)
        terminated = any(terms.values())
        truncated = any(truncs.values())
        return terminated, truncated, False

    def close(self) -> None:
        self.env.close()


def make(task: str, num_envs: int = 1, seed: int | None = None, num_workers: int = 0, **options) -> EnvBase:
    if task not in TASKS:
        raise ValueError(f"unknown PettingZoo task {task!r}; valid tasks: {tasks()}")
    if "max_steps" in options:  # the registry-wide name of the episode cap; PettingZoo's is max_cycles
        options.setdefault("max_cycles", options.pop("max_steps"))
    return BatchedSimEnv(partial(PettingZooSim, TASKS[task], **options), num_envs=num_envs, seed=seed,
                         num_workers=num_workers, name=f"pettingzoo/{task}")
