"""The real StarCraft II SMAC: ``smac/<map>`` (needs the StarCraft II binary; ``smax/<map>`` does not).

A plain ``pip install`` cannot provide StarCraft II, so this family only works on a machine set up
by hand:

1. StarCraft II (Linux package 4.10) unpacked at ``~/StarCraftII`` or wherever ``$SC2PATH``
   points, plus the SMAC maps copied into ``$SC2PATH/Maps/SMAC_Maps``;
2. one of the Python packages that drive it: ``smacv2`` (``pip install
   git+https://github.com/oxwhirl/smacv2.git``, also what TorchRL's ``SMACv2Env`` wraps) or
   oxwhirl's original ``smac`` (``pip install git+https://github.com/oxwhirl/smac.git``).
   Never ``pip install smac``: that PyPI name is SMAC3, an unrelated hyper-parameter optimiser.

Without them :func:`make` raises an error saying which part is missing. Each copy is a
``StarCraft2Env`` (one StarCraft II process each) driven through the same batched adapter as the
other non-vectorised simulators, so the keys match ``smax/<map>``: ``("agents", "observation")``,
``("agents", "action_mask")`` (SMAC's available actions), ``"state"``, shared team reward per
agent, ``"win"`` from ``battle_won``, the episode limit reported as ``truncated``. Options go to
``StarCraft2Env`` (e.g. ``difficulty="7"``, ``capability_config=...`` for SMACv2's ``*_gen_*``
maps); ``package="smacv2"|"smac"`` picks the driver; ``num_workers`` runs copies in worker
processes.
"""

from __future__ import annotations

import importlib.util
import os
from functools import partial

import numpy as np
from torchrl.envs import EnvBase

from marlshare.envs._batched import BatchedSimEnv
from marlshare.envs._sim import SimSpec

SMAC_MAPS = [
    "3m", "8m", "25m", "5m_vs_6m", "8m_vs_9m", "10m_vs_11m", "27m_vs_30m", "MMM", "MMM2", "2s3z", "3s5z",
    "3s5z_vs_3s6z", "3s_vs_3z", "3s_vs_4z", "3s_vs_5z", "1c3s5z", "2m_vs_1z", "corridor", "6h_vs_8z",
    "2s_vs_1sc", "so_many_baneling", "bane_vs_bane", "2c_vs_64zg",
]
SMACV2_MAPS = ["10gen_terran", "10gen_protoss", "10gen_zerg"]

INSTALL = (
    "The real SMAC needs the StarCraft II binary and an oxwhirl driver package, which pip alone cannot "
    "provide: (1) download StarCraft II for Linux (SC2.4.10) from Blizzard's s2client-proto releases, unzip "
    "it to ~/StarCraftII or set SC2PATH to its folder, and copy the SMAC maps into $SC2PATH/Maps/SMAC_Maps; "
    "(2) pip install git+https://github.com/oxwhirl/smacv2.git (or git+https://github.com/oxwhirl/smac.git). "
    "Do NOT `pip install smac` (that PyPI package is SMAC3, an unrelated optimiser). Without StarCraft II use "
    "the JAX re-implementation instead: env=smax/<map>."
)


def sc2_path() -> str:
    return os.environ.get("SC2PATH", os.path.join(os.path.expanduser("~"), "StarCraftII"))


def _driver(package: str | None) -> str | None:
    """The installed oxwhirl driver (``smacv2`` or ``smac``), or None."""
    candidates = [package] if package else ["smacv2", "smac"]
    for name in candidates:
        if importlib.util.find_spec(name) is None:
            continue
        if name == "smac" and importlib.util.find_spec("smac.env") is None:
            continue  # PyPI's `smac` is SMAC3, not oxwhirl's SMAC
        return name
    return None


def available(package: str | None = None) -> bool:
    """True when a driver package and the StarCraft II binary are both present."""
    return _driver(package) is not None and os.path.isdir(sc2_path())


def tasks(package: str | None = None) -> list[str]:
    """The driver's map registry when a driver is installed, else the standard SMAC/SMACv2 maps."""
    driver = _driver(package)
    if driver is not None:
        try:
            maps = importlib.import_module(f"{driver}.env.starcraft2.maps.smac_maps")
            return sorted(maps.get_smac_map_registry())
        except Exception:
            pass
    return SMAC_MAPS + SMACV2_MAPS


class StarCraftSim:
    """One ``StarCraft2Env`` (oxwhirl API: ``get_obs``, ``get_state``, ``get_avail_actions``)."""

    def __init__(self, map_name: str, package: str, **options):
        module = importlib.import_module(f"{package}.env")
        self.env = module.StarCraft2Env(map_name=map_name, **options)
        info = self.env.get_env_info()
        self.spec = SimSpec(
            n_agents=int(info["n_agents"]), obs_dim=int(info["obs_shape"]), discrete=True,
            action_dim=int(info["n_actions"]), state_dim=int(info["state_shape"]), has_action_mask=True,
            has_win=True, agent_names=tuple(f"agent_{i}" for i in range(int(info["n_agents"]))),
        )

    def _write(self, obs, state, action_mask) -> None:
        obs[...] = np.asarray(self.env.get_obs(), np.float32)
        if state is not None:
            state[:] = np.asarray(self.env.get_state(), np.float32)
        if action_mask is not None:
            action_mask[...] = np.asarray(self.env.get_avail_actions(), bool)

    def reset(self, seed, obs, state, action_mask) -> None:
        if seed is not None and getattr(self.env, "_sc2_proc", None) is None:
            self.env._seed = int(seed)  # read when StarCraft II is launched, on the first reset
        self.env.reset()
        self._write(obs, state, action_mask)

    def step(self, action, obs, state, action_mask, reward):
        r, terminated, info = self.env.step(action.tolist())
        reward[:] = r
        self._write(obs, state, action_mask)
        truncated = bool(info.get("episode_limit", False))
        return bool(terminated) and not truncated, truncated, bool(info.get("battle_won", False))

    def close(self) -> None:
        self.env.close()


def make(task: str, num_envs: int = 1, seed: int | None = None, num_workers: int = 0, package: str | None = None,
         **options) -> EnvBase:
    if options.pop("max_steps", None) is not None:
        import warnings

        warnings.warn("smac: max_steps is ignored, each SMAC map has its own episode limit (truncated when reached)")
    if task not in tasks(package):
        raise ValueError(f"unknown SMAC map {task!r}; valid maps: {tasks(package)}")
    driver = _driver(package)
    if driver is None:
        raise RuntimeError(f"smac/{task}: no StarCraft II driver package (smacv2 or oxwhirl smac) is installed. {INSTALL}")
    if not os.path.isdir(sc2_path()):
        raise RuntimeError(f"smac/{task}: StarCraft II not found at {sc2_path()!r} (set SC2PATH). {INSTALL}")
    return BatchedSimEnv(partial(StarCraftSim, task, driver, **options), num_envs=num_envs, seed=seed,
                         num_workers=num_workers, name=f"smac/{task}")
