"""A small multi-agent env whose agents have hidden types (test-only, registered as ``hidden/<N>``).

Each agent observes only its own 2-d position; it moves by ``gain[type] * action`` and is rewarded
``-scale[type] * |position|^2``. Types are never in the observation, so only the transitions
(``o, a -> o', r``) tell agents of different types apart. Options: ``types`` (the agent -> type
list, default ``[0, 1, 2, 0, 1, 2]``) and ``max_steps`` (episode length, default 20).
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from torchrl.data import Bounded, Composite, Unbounded
from torchrl.envs import EnvBase

from marlshare.envs import GROUP

GAIN = torch.tensor([0.05, 0.4, -0.25])  # how far an action moves an agent of each type
SCALE = torch.tensor([1.0, 0.2, 2.0])  # reward weight of the distance from the origin, per type


class HiddenTypesEnv(EnvBase):
    def __init__(self, num_envs: int = 1, seed: int | None = None, types=(0, 1, 2, 0, 1, 2), max_steps: int = 20):
        super().__init__(batch_size=torch.Size([num_envs]))
        self.types = torch.as_tensor(list(types), dtype=torch.long)
        self.n_agents, self.max_steps = len(self.types), int(max_steps)
        b, n = num_envs, self.n_agents
        self.observation_spec = Composite({GROUP: Composite(observation=Unbounded((b, n, 2)), shape=(b, n))}, shape=(b,))
        self.action_spec = Composite({GROUP: Composite(action=Bounded(-1.0, 1.0, (b, n, 2)), shape=(b, n))}, shape=(b,))
        self.reward_spec = Composite({GROUP: Composite(reward=Unbounded((b, n, 1)), shape=(b, n))}, shape=(b,))
        self.gen = torch.Generator()
        self._set_seed(0 if seed is None else seed)

    def _reset(self, tensordict=None, **kwargs):
        b, n = self.batch_size[0], self.n_agents
        fresh = torch.rand(b, n, 2, generator=self.gen) * 2 - 1
        steps = torch.zeros(b, dtype=torch.long)
        if tensordict is not None and "_reset" in tensordict.keys():
            reset = tensordict["_reset"].reshape(b)
            fresh = torch.where(reset[:, None, None], fresh, self.pos)
            steps = torch.where(reset, steps, self.steps)
        self.pos, self.steps = fresh, steps
        return self._observe(done=torch.zeros(b, 1, dtype=torch.bool))

    def _observe(self, done, reward=None):
        b, n = self.batch_size[0], self.n_agents
        group = TensorDict({"observation": self.pos.clone()}, batch_size=[b, n])
        if reward is not None:
            group["reward"] = reward
        return TensorDict({GROUP: group, "done": done, "terminated": done.clone()}, batch_size=[b])

    def _step(self, tensordict):
        action = tensordict[GROUP, "action"].clamp(-1, 1)
        self.pos = self.pos + GAIN[self.types][None, :, None] * action
        reward = -SCALE[self.types][None, :, None] * (self.pos**2).sum(-1, keepdim=True)
        self.steps = self.steps + 1
        done = (self.steps >= self.max_steps)[:, None]
        return self._observe(done, reward)

    def _set_seed(self, seed):
        self.gen.manual_seed(int(seed or 0))


def make(task: str, num_envs: int = 1, seed: int | None = None, **options) -> EnvBase:
    return HiddenTypesEnv(num_envs=num_envs, seed=seed, **options)
