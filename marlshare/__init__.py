"""marlshare: parameter-sharing strategies for cooperative multi-agent RL, on TorchRL and TensorDict.

The front door. Everything else is reached through the subpackages, which are the repository's
top-level folders mapped under this name (``pyproject.toml``, ``[tool.setuptools] package-dir``):

- ``marlshare.components``: layers, strategies, algorithms, the trainer, analysis, checkpoints;
- ``marlshare.envs``: the environment registry (``make_env("vmas/balance", num_envs=...)``);
- ``marlshare.recipes``: the training recipe, its Hydra presets, sweeps and the command line.

::

    import marlshare
    summary = marlshare.train(marlshare.compose(["env=vmas/balance", "schedule=single"]))
    net = marlshare.make_strategy("ps_lora", rank=8).make_network(n_agents=4, in_features=10, out_features=6)
    policy = marlshare.load_policy(run_dir, checkpoint="best", merged=True)   # a trained team
    rollout = marlshare.load_run(run_dir).make_env(num_envs=4).rollout(100, policy)
    report = marlshare.evaluate_run(run_dir, episodes=64)  # `marlshare eval`; export_policy: `marlshare export`

The names below load on first use, so ``import marlshare`` (and ``marlshare --help``) does not
import torch, TorchRL or Hydra.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "train": "marlshare.recipes.train",
    "compose": "marlshare.recipes.train",
    "make_strategy": "marlshare.components.strategies",
    "STRATEGIES": "marlshare.components.strategies",
    "ALGORITHMS": "marlshare.components.algorithms",
    "make_env": "marlshare.envs",
    "load_run": "marlshare.components.policy_io",
    "load_policy": "marlshare.components.policy_io",
    "evaluate_run": "marlshare.components.policy_eval",
    "export_policy": "marlshare.components.export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'marlshare' has no attribute {name!r}; its public names: {__all__}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
