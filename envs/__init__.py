"""The environment registry: ``make_env("family/task", num_envs=..., seed=..., **options)``.

Every adapter returns a TorchRL ``EnvBase`` with batch size ``[num_envs]`` and these keys (agent
axis -2, the same for every family, so the trainer never special-cases an env):

=================================  ===========================  =====================================
key                                shape                        meaning
=================================  ===========================  =====================================
``("agents", "observation")``      ``[B, N, obs]`` float         local observation of each agent
``("agents", "action")``           ``[B, N, act]`` float         continuous actions in ``[low, high]``
                                   ``[B, N]`` long               or discrete action indices
``("agents", "action_mask")``      ``[B, N, n_actions]`` bool    available discrete actions (optional)
``("agents", "reward")``           ``[B, N, 1]`` float           per-agent reward (next)
``"done"``, ``"terminated"``       ``[B, 1]`` bool               episode end, at the root
``"state"``                        ``[B, state]`` float          global state for a centralised critic
                                                                 (optional)
``"win"``                          ``[B, 1]`` bool               battle won, where the env defines it
                                                                 (optional; meaningful when done)
``"truncated"``                    ``[B, 1]`` bool               episode cut by a time limit (the
                                                                 non-VMAS families; ``done`` =
                                                                 ``terminated | truncated``)
``("agents", "observation_mask")`` ``[B, N, obs]`` bool          real (not padded) observation entries,
                                                                 only when agents' sizes differ
``("agents", "action_dim_mask")``  ``[B, N, act]`` bool          real continuous action entries, only
                                                                 when agents' sizes differ; padded
                                                                 entries never reach the simulator
=================================  ===========================  =====================================

Padding: agents with different observation sizes are zero-padded to the largest; agents with
fewer discrete actions get the extra indices marked unavailable in ``action_mask``. No agent-id
feature is added by the env: the PS strategy appends the agent id itself.

The agent group is always called ``"agents"`` (adapters rename ``agent``, ``walker``, ...). Done
flags live at the root; the trainer expands them to ``[B, N, 1]`` before GAE. :func:`env_info`
summarises an env for building networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torchrl.envs import EnvBase

GROUP = "agents"

#: Random streams that simulators keep for themselves, registered by their family modules when they
#: are imported (VMAS): name -> (get() -> state or None, set(state)). Checkpoints save and restore them
#: with torch's, numpy's and Python's (``components/checkpoint.py``): they are part of a run's random state.
RNG_STREAMS: dict[str, tuple] = {}

# family -> the module that adapts it; adding a family is one module plus one line here. The module is
# imported on first use, so a missing optional dependency only matters for the family that needs it.
# A family module defines make(task, num_envs, seed, **options) and tasks(), and may declare
# SIMULATES_ON_DEVICE = True (see simulates_on_device).
FAMILIES: dict[str, str] = {
    "vmas": "marlshare.envs.vmas",
    "pettingzoo": "marlshare.envs.pettingzoo",
    "mamujoco": "marlshare.envs.mamujoco",
    "smax": "marlshare.envs.smax",
    "smac": "marlshare.envs.smac",
    "lbf": "marlshare.envs.lbf",
    "rware": "marlshare.envs.rware",
}


def _family_module(family: str):
    import importlib

    return importlib.import_module(FAMILIES[family])


def make_env(name: str, num_envs: int = 1, seed: int | None = None, **options) -> EnvBase:
    """Build ``family/task`` with ``num_envs`` copies (vectorised or in parallel), seeded."""
    family, sep, task = name.partition("/")
    if not sep or not task:
        raise ValueError(f"env name must look like 'family/task', got {name!r}; families: {sorted(FAMILIES)}")
    if family not in FAMILIES:
        raise ValueError(f"unknown env family {family!r} in {name!r}; valid families: {sorted(FAMILIES)}")
    if int(num_envs) < 1:
        raise ValueError(f"num_envs must be >= 1, got num_envs={num_envs!r}")
    return _family_module(family).make(task, num_envs=int(num_envs), seed=seed, **options)


def simulates_on_device(name: str) -> bool:
    """Whether the family of ``name`` (``"family/task"`` or ``"family"``) simulates on any torch device
    (``device=`` option: a GPU runs thousands of copies) rather than on the CPU only. Its module says
    so (``SIMULATES_ON_DEVICE = True``: VMAS). False for an unknown family (``make_env`` names it) and
    for one whose module cannot be imported here (a missing optional dependency: it samples nowhere)."""
    family = name.partition("/")[0]
    if family not in FAMILIES:
        return False
    try:
        module = _family_module(family)
    except ImportError:
        return False
    return bool(getattr(module, "SIMULATES_ON_DEVICE", False))


def tasks(family: str) -> list[str]:
    """The task names of a family (``make_env(f"{family}/{task}")``), without building any env."""
    if family not in FAMILIES:
        raise ValueError(f"unknown env family {family!r}; valid families: {sorted(FAMILIES)}")
    return list(_family_module(family).tasks())


@dataclass
class EnvInfo:
    """What a network needs to know about an env."""

    n_agents: int
    obs_dim: int
    discrete: bool
    action_dim: int  # continuous: action size; discrete: number of actions
    state_dim: int | None  # None: no global state
    has_action_mask: bool
    action_low: "object" = None  # tensor [N, act] for continuous actions
    action_high: "object" = None
    has_observation_mask: bool = False  # ("agents", "observation_mask"): padded observations
    has_action_dim_mask: bool = False  # ("agents", "action_dim_mask"): padded continuous actions


def env_info(env: EnvBase) -> EnvInfo:
    obs_spec = env.full_observation_spec_unbatched
    act_spec = env.full_action_spec_unbatched[GROUP, "action"]
    n_agents, obs_dim = obs_spec[GROUP, "observation"].shape[-2:]
    discrete = act_spec.dtype in (__import__("torch").long, __import__("torch").int64) or hasattr(act_spec, "n")
    if discrete:
        action_dim, low, high = int(act_spec.space.n), None, None
    else:
        action_dim, low, high = int(act_spec.shape[-1]), act_spec.space.low, act_spec.space.high
    state_dim = int(obs_spec["state"].shape[-1]) if "state" in obs_spec.keys() else None
    has_mask = (GROUP, "action_mask") in obs_spec.keys(True)
    keys = obs_spec.keys(True)
    return EnvInfo(int(n_agents), int(obs_dim), bool(discrete), action_dim, state_dim, has_mask, low, high,
                   (GROUP, "observation_mask") in keys, (GROUP, "action_dim_mask") in keys)


__all__ = ["GROUP", "FAMILIES", "make_env", "env_info", "EnvInfo", "tasks", "simulates_on_device"]
