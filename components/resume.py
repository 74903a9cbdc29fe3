"""Continuing a run: its saved config, the newest good checkpoint that belongs to it, and the few
settings a resume may change.

``resume=RUN`` continues ``RUN`` exactly as it was configured; ``resume=RUN total_frames=N`` extends
it (a finished run included). Changing anything else would make the continued run a different
experiment, so it is refused with the list of what may change (:data:`RESUMABLE`).

Every checkpoint says what it belongs to (:func:`checkpoint_meta`): the strategy and phase label, the
env, the agent count, the frame and the settings that shape the networks (:data:`NETWORK_KEYS`, with
a short hash of them). A checkpoint that does not match the run's ``config.yaml`` (say an NPS
``last.pt`` copied into a PS run, or one from another env) is skipped, naming both, and the previous
one that matches is used. Checkpoints written before this metadata existed are matched on the
phases they record (labels and strategies); what they cannot tell is caught when their weights do not
fit the network.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from torch import nn

from marlshare.components import checkpoint as ckpt
from marlshare.components.config import ConfigError, TrainConfig, config_to_dict
from marlshare.components.run_state import RunState
from marlshare.components.runs import load_network, read_run_config

#: settings a resumed run may change: how long it trains, how it reports and where and how it computes
#: (a run started on a GPU can go on on a CPU), nothing that shapes it
RESUMABLE = ("total_frames", "logger.progress", "logger.wandb_mode", "threads", "device", "env.device",
             "algorithm.compile")

#: the settings that decide the shape of the actor and critic a checkpoint holds, besides the phases'
#: strategies (name and hyperparameters, from the resolved schedule). Not how long or how the run
#: trains (total_frames, learning rates, eval_every ...): those cannot change the weights' shapes, and
#: total_frames is what a resume legitimately changes.
NETWORK_KEYS = ("env.name", "env.options", "algorithm.name", "algorithm.value_norm", "algorithm.network")


def _get(cfg, key):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _set(cfg, key, value):
    *path, last = key.split(".")
    for part in path:
        cfg = getattr(cfg, part)
    setattr(cfg, last, value)


def network_settings(cfg: TrainConfig, plans) -> dict:
    """The :data:`NETWORK_KEYS` of ``cfg`` (``algorithm.network`` field by field) and each phase's
    ``label: strategy config``, as plain values."""
    values = config_to_dict(cfg)
    out = {}
    for key in NETWORK_KEYS:
        node = values
        for part in key.split("."):
            node = node[part]
        if isinstance(node, dict) and key == "algorithm.network":
            out.update({f"{key}.{k}": v for k, v in node.items()})
        else:
            out[key] = node
    out["phases"] = [[p.label, dict(sorted(p.strategy.items()))] for p in plans]
    return json.loads(json.dumps(out, default=str))  # tuples -> lists: equal to what a checkpoint gives back


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def checkpoint_meta(cfg: TrainConfig, plans, phase_index: int, n_agents: int, frames: int) -> dict:
    """What a checkpoint belongs to (stored under ``"meta"``)."""
    settings = network_settings(cfg, plans)
    return {"strategy": plans[phase_index].strategy["name"], "phase": plans[phase_index].label,
            "env": cfg.env.name, "n_agents": n_agents, "frames": frames, "network_settings": settings,
            "config_hash": settings_hash(settings)}


def _describe(meta: dict) -> str:
    agents = f", {meta['n_agents']} agents" if meta.get("n_agents") is not None else ""
    return (f"strategy {meta['strategy']} (phase {meta['phase']}), env {meta['env']}{agents}, "
            f"config {meta['config_hash']}")


def mismatch(state: dict, path: Path, cfg: TrainConfig, plans) -> str | None:
    """Why checkpoint ``state`` (at ``path``) does not belong to the run configured by ``cfg``, or None."""
    labels = {p.label: p.strategy["name"] for p in plans}
    meta = state.get("meta")
    if meta is None:  # an older checkpoint: check the phases it records
        wrong = [f"{p['name']}: {p['strategy']}" for p in state.get("phases", [])
                 if labels.get(p["name"]) != p["strategy"]]
        if not wrong:
            return None
        theirs = [f"{p['name']}: {p['strategy']}" for p in state["phases"]]
        return (f"{path} belongs to another run: its phases are {theirs}, this run's are "
                f"{[f'{k}: {v}' for k, v in labels.items()]}")
    settings = network_settings(cfg, plans)
    stored = meta.get("network_settings", {})
    differ = [k for k in settings if k in stored and stored[k] != settings[k]]
    phase_ok = labels.get(meta["phase"]) == meta["strategy"]
    if phase_ok and meta["env"] == cfg.env.name and not differ:
        return None
    index = next((i for i, p in enumerate(plans) if p.label == meta["phase"]), 0)
    ours = {"strategy": plans[index].strategy["name"], "phase": plans[index].label, "env": cfg.env.name,
            "config_hash": settings_hash(settings)}
    return (f"{path} belongs to another run: it holds {_describe(meta)} at frame {meta['frames']}; this run is "
            f"{_describe(ours)}" + (f" (they differ in {differ})" if differ else ""))


def open_run(run_dir, changes: dict | None = None) -> tuple[TrainConfig, Path, dict | None, Path | None]:
    """``(config, run_dir, checkpoint state, its path)`` of the run to continue, with ``changes`` applied.
    Damaged newer checkpoints, and ones that belong to another run, are reported on stderr and
    skipped. A run that stopped before its first checkpoint (none at all) starts again: state None."""
    from marlshare.components.schedule import plan_phases

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise ConfigError(f"resume={str(run_dir)!r}: no config.yaml there; point resume at a run directory")
    bad = sorted(set(changes or {}) - set(RESUMABLE))
    if bad:
        raise ConfigError(f"resume={str(run_dir)!r} continues the run as it was configured; it cannot change "
                          f"{bad}. A resume may change only {list(RESUMABLE)} (start a new run for anything else)")
    cfg = read_run_config(run_dir)
    cfg.resume, cfg.run_dir = None, str(run_dir)
    for key, value in (changes or {}).items():
        _set(cfg, key, value)
    directory = run_dir / "checkpoints"
    ckpt.remove_stale_temporaries(directory)
    if not list(directory.glob("last*.pt")):
        print(f"marlshare: {run_dir} has no checkpoint (it stopped before its first one); starting it from the "
              f"beginning", file=sys.stderr)
        return cfg, run_dir, None, None
    try:
        plans = plan_phases(cfg)
    except ValueError as err:
        raise ConfigError(f"{run_dir / 'config.yaml'}: {err}") from None
    try:
        state, path, problems = ckpt.load_latest(directory, check=lambda s, p: mismatch(s, p, cfg, plans))
    except ckpt.CheckpointError as err:
        raise ConfigError(f"resume={str(run_dir)!r}: {err}") from None
    for problem in problems:
        print(f"marlshare: {problem}; resuming from {path.name} instead", file=sys.stderr)
    if cfg.total_frames < state["frames"]:
        raise ConfigError(f"total_frames={cfg.total_frames} is below the {state['frames']} frames this run has "
                          f"already trained")
    return cfg, run_dir, state, path


def changed_settings(saved: TrainConfig, wanted: TrainConfig) -> dict:
    """The :data:`RESUMABLE` settings that differ between two configs."""
    return {key: _get(wanted, key) for key in RESUMABLE if _get(wanted, key) != _get(saved, key)}


def restore(state: dict, net_kwargs: dict, schedule, plans, path="the checkpoint") -> tuple[nn.Module, RunState]:
    """The actor network and run state of checkpoint ``state``: the network of the checkpoint's phase
    is rebuilt by replaying the chain of strategies (no fit: the fitted hyperparameters are saved),
    then every value is loaded. Weights that do not fit this run's network are a ConfigError."""
    meta = state.get("meta")
    if meta is not None and meta.get("n_agents") not in (None, net_kwargs["n_agents"]):
        raise ConfigError(f"{path} holds {_describe(meta)}; this run's env has {net_kwargs['n_agents']} agents")
    try:
        net, strategies = load_network(state, net_kwargs)
    except (RuntimeError, KeyError, ValueError) as err:  # torch's size-mismatch report is dozens of lines
        first = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), str(err).splitlines()[0])
        raise ConfigError(f"{path} does not fit this run's network ({first}); it belongs to another run") from None
    return net, RunState.restore(state, strategies, schedule, plans)
