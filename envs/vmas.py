"""VMAS scenarios (vectorised in torch): ``vmas/<scenario>``, every VMAS scenario, options passed on.

VMAS already batches ``num_envs`` copies in one torch call and names its group ``agents`` when all
agents are alike. Options go to the scenario (e.g. ``n_agents=4``); ``max_steps`` defaults to 100 so
episodes end (VMAS scenarios otherwise run forever); ``continuous_actions`` defaults to True.
"""

from __future__ import annotations

from torchrl.envs import EnvBase

from envs import GROUP


def scenarios() -> list[str]:
    import vmas

    return sorted(set(vmas.scenarios) | set(getattr(vmas, "mpe_scenarios", [])) | set(getattr(vmas, "debug_scenarios", [])))


def make(task: str, num_envs: int = 1, seed: int | None = None, max_steps: int = 100,
         continuous_actions: bool = True, device: str = "cpu", **options) -> EnvBase:
    from torchrl.envs.libs.vmas import VmasEnv

    valid = scenarios()
    if task not in valid:
        raise ValueError(f"unknown VMAS scenario {task!r}; valid scenarios: {valid}")
    env = VmasEnv(task, num_envs=num_envs, continuous_actions=continuous_actions, max_steps=max_steps,
                  seed=seed, device=device, categorical_actions=True, **options)
    if list(env.group_map) != [GROUP]:
        raise ValueError(
            f"vmas/{task} has agent groups {list(env.group_map)}; marlshare trains one group of "
            f"alike agents, so heterogeneous VMAS scenarios are not supported"
        )
    return env
