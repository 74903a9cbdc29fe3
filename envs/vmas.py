"""VMAS scenarios (vectorised in torch): ``vmas/<scenario>``, every VMAS scenario, options passed on.

VMAS already batches ``num_envs`` copies in one torch call and names its group ``agents`` when all
agents are alike. Options go to the scenario (e.g. ``n_agents=4``); ``max_steps`` defaults to 100 so
episodes end (VMAS scenarios otherwise run forever); ``continuous_actions`` defaults to True.
"""

from __future__ import annotations

import warnings

from torchrl.envs import EnvBase

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


def scenarios() -> list[str]:
    import vmas

    return sorted(set(vmas.scenarios) | set(getattr(vmas, "mpe_scenarios", [])) | set(getattr(vmas, "debug_scenarios", [])))


tasks = scenarios  # the registry's name for a family's task list


def make(task: str, num_envs: int = 1, seed: int | None = None, max_steps: int = 100,
         continuous_actions: bool = True, device: str = "cpu", **options) -> EnvBase:
    from torchrl.envs.libs.vmas import VmasEnv

    valid = scenarios()
    if task not in valid:
        raise ValueError(f"unknown VMAS scenario {task!r}; valid scenarios: {valid}")
    with warnings.catch_warnings(record=True) as caught:  # VMAS only warns about options a scenario ignores
        warnings.simplefilter("always")
        env = VmasEnv(task, num_envs=num_envs, continuous_actions=continuous_actions, max_steps=max_steps,
                      seed=seed, device=device, categorical_actions=True, **options)
    unused = [str(w.message).split(" passed")[0] for w in caught if "passed but not used by the scenario" in str(w.message)]
    if unused:
        raise ValueError(f"vmas/{task} does not take the option(s) {unused[0].removeprefix('Scenario kwargs: ')}; "
                         f"see the scenario's make_world in VMAS for the ones it takes")
    for w in caught:  # every other warning as it was
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if list(env.group_map) != [GROUP]:
        raise ValueError(
            f"vmas/{task} has agent groups {list(env.group_map)}; marlshare trains one group of "
            f"alike agents, so heterogeneous VMAS scenarios are not supported"
        )
    return env
