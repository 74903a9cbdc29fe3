"""Continuing a run: its saved config, the newest good checkpoint, and the few settings a resume may
change.

``resume=RUN`` continues ``RUN`` exactly as it was configured; ``resume=RUN total_frames=N`` extends
it (a finished run included). Changing anything else would make the continued run a different
experiment, so it is refused with the list of what may change (:data:`RESUMABLE`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf
from torch import nn

from marlshare.components import checkpoint as ckpt
from marlshare.components.config import ConfigError, TrainConfig, as_train_config
from marlshare.components.run_state import RunState
from marlshare.components.runs import load_network

#: settings a resumed run may change: how long it trains, how it reports and where and how it computes
#: (a run started on a GPU can go on on a CPU), nothing that shapes it
RESUMABLE = ("total_frames", "logger.progress", "logger.wandb_mode", "threads", "device", "env.device",
             "algorithm.compile")


def _get(cfg, key):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _set(cfg, key, value):
    *path, last = key.split(".")
    for part in path:
        cfg = getattr(cfg, part)
    setattr(cfg, last, value)


def open_run(run_dir, changes: dict | None = None) -> tuple[TrainConfig, Path, dict]:
    """``(config, run_dir, checkpoint state)`` of the run to continue, with ``changes`` applied.
    Damaged newer checkpoints are reported on stderr and skipped."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise ConfigError(f"resume={str(run_dir)!r}: no config.yaml there; point resume at a run directory")
    bad = sorted(set(changes or {}) - set(RESUMABLE))
    if bad:
        raise ConfigError(f"resume={str(run_dir)!r} continues the run as it was configured; it cannot change "
                          f"{bad}. A resume may change only {list(RESUMABLE)} (start a new run for anything else)")
    cfg = as_train_config(OmegaConf.load(run_dir / "config.yaml"))
    cfg.resume, cfg.run_dir = None, str(run_dir)
    for key, value in (changes or {}).items():
        _set(cfg, key, value)
    ckpt.remove_stale_temporaries(run_dir / "checkpoints")
    try:
        state, path, problems = ckpt.load_latest(run_dir / "checkpoints")
    except ckpt.CheckpointError as err:
        raise ConfigError(f"resume={str(run_dir)!r}: {err}") from None
    for problem in problems:
        print(f"marlshare: {problem}; resuming from {path.name} instead", file=sys.stderr)
    if cfg.total_frames < state["frames"]:
        raise ConfigError(f"total_frames={cfg.total_frames} is below the {state['frames']} frames this run has "
                          f"already trained")
    return cfg, run_dir, state


def changed_settings(saved: TrainConfig, wanted: TrainConfig) -> dict:
    """The :data:`RESUMABLE` settings that differ between two configs."""
    return {key: _get(wanted, key) for key in RESUMABLE if _get(wanted, key) != _get(saved, key)}


def restore(state: dict, net_kwargs: dict, schedule, plans) -> tuple[nn.Module, RunState]:
    """The actor network and run state of checkpoint ``state``: the network of the checkpoint's phase
    is rebuilt by replaying the chain of strategies (no fit: the fitted hyperparameters are saved),
    then every value is loaded."""
    net, strategies = load_network(state, net_kwargs)
    return net, RunState.restore(state, strategies, schedule, plans)
