"""A run's environments: where they simulate and how their batches reach the training device.

``devices(cfg) -> (training device, sampling device)``: ``device`` and ``env.device`` (BenchMARL's
``train_device`` / ``sampling_device``). A family that simulates in torch on any device (it says so:
:func:`envs.simulates_on_device`) simulates on the sampling device, by default the training device (it
runs thousands of copies on a GPU); the CPU simulators sample on the CPU.

``make_run_env(env_cfg, num_envs, seed, device, env_device)``: the registry's env with the episode
return summed (``("agents", "episode_reward")``) and, when the two devices differ, a
``DeviceCastTransform`` to the training device, so the collector, the policy and the update all work
on one device.
"""

from __future__ import annotations

import torch
from torchrl.envs import DeviceCastTransform, RewardSum, TransformedEnv

from marlshare.components.config import ConfigError, resolve_device
from marlshare.components.evaluation import EPISODE_REWARD
from marlshare.envs import FAMILIES, GROUP, make_env, simulates_on_device


def devices(cfg) -> tuple[torch.device, torch.device]:
    device = resolve_device(cfg.device, "device")
    on_device = simulates_on_device(cfg.env.name)
    if cfg.env.device is None:
        return device, device if on_device else torch.device("cpu")
    env_device = resolve_device(cfg.env.device, "env.device")
    if env_device.type != "cpu" and not on_device:
        gpu_families = " and ".join(f.upper() for f in FAMILIES if simulates_on_device(f))
        raise ConfigError(f"env.device={cfg.env.device!r}: only {gpu_families} simulates on a GPU; {cfg.env.name} "
                          f"samples on the CPU (env.device=cpu) and its batches move to device={cfg.device}")
    return device, env_device


def make_run_env(env_cfg, num_envs: int, seed: int, device: torch.device, env_device: torch.device):
    """An unknown family, task or option is a ConfigError naming the env and its options."""
    options = dict(env_cfg.options)
    if env_cfg.max_steps is not None:
        options.setdefault("max_steps", env_cfg.max_steps)
    if env_device.type != "cpu":
        options["device"] = str(env_device)
    try:
        env = make_env(env_cfg.name, num_envs=num_envs, seed=seed, **options)
    except (ValueError, TypeError, AssertionError) as err:
        detail = str(err) or type(err).__name__
        raise ConfigError(f"env.name={env_cfg.name!r} with env.options={options}: {detail}") from None
    env = TransformedEnv(env, RewardSum(in_keys=[(GROUP, "reward")], out_keys=[EPISODE_REWARD]))
    if env_device != device:
        env.append_transform(DeviceCastTransform(device, env_device))
    return env
