"""VMAS scenarios (vectorised in torch): ``vmas/<scenario>``, every VMAS scenario, options passed on.

VMAS already batches ``num_envs`` copies in one torch call and names its group ``agents`` when all
agents are alike. Options go to the scenario (e.g. ``n_agents=4``); ``max_steps`` defaults to 100 so
episodes end (VMAS scenarios otherwise run forever); ``continuous_actions`` defaults to True.
"""

from __future__ import annotations

import importlib
import warnings

import torch
from tensordict import TensorDict
from torchrl.data import Composite
from torchrl.envs import EnvBase
from torchrl.envs.libs.vmas import VmasEnv, _selective_unsqueeze

from marlshare.envs import GROUP, RNG_STREAMS

#: VMAS simulates in torch on any device (``device=``): a run simulates it on its training device by
#: default, where the other families sample on the CPU (:func:`envs.simulates_on_device`)
SIMULATES_ON_DEVICE = True


def _vmas_rng():
    """VMAS keeps its own random state (torch, numpy, python), shared by every VMAS env of the process
    and swapped in around each reset and step; it is part of the run's random state."""
    import sys

    module = sys.modules.get("vmas.simulator.environment.environment")
    return None if module is None else module.Environment.vmas_random_state


def _get_vmas_rng():
    state = _vmas_rng()
    return None if state is None else list(state)


def _set_vmas_rng(state):
    current = _vmas_rng()
    if current is not None:
        current[:] = state  # in place: VMAS holds this very list


RNG_STREAMS["vmas"] = (_get_vmas_rng, _set_vmas_rng)


#: scenarios marlshare adds to VMAS's own: name -> module defining ``Scenario`` (a VMAS BaseScenario)
EXTRA_SCENARIOS: dict[str, str] = {"bps": "marlshare.envs.bps"}


def scenarios() -> list[str]:
    import vmas

    return sorted(set(vmas.scenarios) | set(getattr(vmas, "mpe_scenarios", [])) | set(getattr(vmas, "debug_scenarios", []))
                  | set(EXTRA_SCENARIOS))


tasks = scenarios  # the registry's name for a family's task list


class LeanVmasEnv(VmasEnv):
    """TorchRL's ``VmasEnv`` with a leaner step for one group of alike agents with tensor observations:
    the same output, bit for bit (tests/envs/test_vmas_collection.py), built from one ``torch.stack``
    per entry instead of one TensorDict per agent stacked into a lazy stack and densified; and
    ``n_agents`` / ``continuous_actions`` as properties, which TorchRL's wrapper otherwise reaches every
    step through ``__getattr__``, i.e. two ``dir()`` calls each (tools/bench_collection.py). Other
    layouts (several groups, dict observations) take TorchRL's own step."""

    _lean = None  # whether the lean step applies; decided at the first step, from the specs

    @property
    def n_agents(self) -> int:
        return self._env.n_agents

    @property
    def continuous_actions(self) -> bool:
        return self._env.continuous_actions

    def lean(self) -> bool:
        if self._lean is None:
            names = self.group_map.get(GROUP, [])
            self._lean = (list(self.group_map) == [GROUP] and not self.het_specs
                          and [self.agent_names_to_indices_map[n] for n in names] == list(range(len(names)))
                          and not isinstance(self.full_observation_spec[GROUP, "observation"], Composite))
        return self._lean

    def _step(self, tensordict):
        if not self.lean():
            return super()._step(tensordict)
        action = self.read_action(tensordict.get((GROUP, "action")), group=GROUP)
        obs, rews, dones, infos = self._env.step(list(action))
        batch = self.batch_size
        dim, agents = len(batch), (*batch, len(obs))
        group = {"observation": torch.stack([_selective_unsqueeze(o, batch_size=batch) for o in obs], dim=dim),
                 "reward": torch.stack([_selective_unsqueeze(r, batch_size=batch) for r in rews], dim=dim)}
        if len(infos[0]):  # as read_info: every entry float32
            group["info"] = TensorDict(
                {key: torch.stack([_selective_unsqueeze(info[key].to(torch.float32), batch_size=batch)
                                   for info in infos], dim=dim) for key in infos[0]},
                batch_size=agents, device=self.device)
        dones = self.read_done(dones)
        return TensorDict({"done": dones, "terminated": dones.clone(),
                           GROUP: TensorDict(group, batch_size=agents, device=self.device)},
                          batch_size=batch, device=self.device)


def make(task: str, num_envs: int = 1, seed: int | None = None, max_steps: int = 100,
         continuous_actions: bool = True, device: str = "cpu", lean: bool = True, **options) -> EnvBase:
    """``lean=False``: TorchRL's own ``VmasEnv`` (the reference of the lean step's tests and benchmark)."""
    valid = scenarios()
    if task not in valid:
        raise ValueError(f"unknown VMAS scenario {task!r}; valid scenarios: {valid}")
    scenario = importlib.import_module(EXTRA_SCENARIOS[task]).Scenario() if task in EXTRA_SCENARIOS else task

    def build(**group_map):
        return (LeanVmasEnv if lean else VmasEnv)(scenario, num_envs=num_envs, continuous_actions=continuous_actions,
                                                 max_steps=max_steps, seed=seed, device=device,
                                                 categorical_actions=True, **group_map, **options)

    with warnings.catch_warnings(record=True) as caught:  # VMAS only warns about options a scenario ignores
        warnings.simplefilter("always")
        env = build()
    unused = [str(w.message).split(" passed")[0] for w in caught if "passed but not used by the scenario" in str(w.message)]
    if unused:
        raise ValueError(f"vmas/{task} does not take the option(s) {unused[0].removeprefix('Scenario kwargs: ')}; "
                         f"see the scenario's make_world in VMAS for the ones it takes")
    for w in caught:  # every other warning as it was
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if len(env.group_map) == 1 and GROUP not in env.group_map:  # one group of alike agents named otherwise
        # (vmas/drone's agents are "drone_i"): the same agents, grouped under marlshare's group name
        from torchrl.envs.utils import MarlGroupMapType

        env.close()
        env = build(group_map=MarlGroupMapType.ALL_IN_ONE_GROUP)
    if list(env.group_map) != [GROUP]:
        raise ValueError(
            f"vmas/{task} has agent groups {list(env.group_map)}; marlshare trains one group of "
            f"alike agents, so heterogeneous VMAS scenarios are not supported"
        )
    return env
