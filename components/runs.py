"""Reading a run directory back: its config and any checkpoint's actor network, for analysis tools.

    run = load_run("outputs/vmas/navigation/ps/<date>_seed0", checkpoint="phase_switch")
    run.net            # the actor network of that checkpoint's phase (eval mode, no gradients)
    run.strategy       # that phase's strategy (fitted clusters included)
    run.strategies     # every phase's strategy up to the checkpoint
    run.make_env(8)    # the run's env with 8 copies (``run.info``: agents, sizes)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf
from torch import nn

from marlshare.components import checkpoint as ckpt
from marlshare.components.config import ConfigError, TrainConfig, as_train_config
from marlshare.components.strategies import Strategy, strategy_from_config
from marlshare.envs import EnvInfo, env_info, make_env


class RunFileError(ConfigError):
    """A run directory's file (``config.yaml``, ``summary.json``, a sweep's ``manifest.json``) is missing,
    empty or unreadable; the message names the file and what to do."""


def _read(path: Path, fix: str) -> str:
    if not path.exists():
        raise RunFileError(f"{path} does not exist; {fix}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise RunFileError(f"{path} cannot be read ({getattr(err, 'strerror', None) or err}); {fix}") from None
    if not text.strip():
        raise RunFileError(f"{path} is empty; {fix}")
    return text


CONFIG_FIX = ("it holds the run's settings, and the defaults would train a different run: restore it from a copy, "
              "or start a new run in another run_dir")


def read_run_config(run_dir) -> TrainConfig:
    """``run_dir/config.yaml`` as a TrainConfig; an empty, unparsable or invalid file is a RunFileError
    naming it (never the defaults)."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    text = _read(path, CONFIG_FIX)
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RunFileError(f"{path} is not valid YAML ({getattr(err, 'problem', None) or 'parse error'}{where}); "
                           f"{CONFIG_FIX}") from None
    if not isinstance(values, dict) or not values:
        raise RunFileError(f"{path} holds no settings (a {type(values).__name__}, not a mapping); {CONFIG_FIX}")
    try:
        return as_train_config(OmegaConf.create(values))
    except Exception as err:  # a setting of the wrong type or an unknown key: name the file
        message = " ".join(str(err).split()) or type(err).__name__
        raise RunFileError(f"{path}: {message}; fix that setting or {CONFIG_FIX.split(': ', 1)[1]}") from None


def read_json(path, fix: str) -> dict:
    """A JSON object file of a run (``summary.json``, ``manifest.json``); damaged is a RunFileError."""
    path = Path(path)
    text = _read(path, fix)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise RunFileError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}); {fix}") from None
    if not isinstance(value, dict):
        raise RunFileError(f"{path} holds a {type(value).__name__}, not a JSON object; {fix}")
    return value


def read_summary(run_dir) -> dict:
    """``run_dir/summary.json``; damaged is a RunFileError saying how to rebuild it."""
    return read_json(Path(run_dir) / "summary.json",
                     f"resume the run to rewrite it (marlshare train resume={run_dir}; a finished run ends at once)")


def network_kwargs(cfg: TrainConfig, info: EnvInfo) -> dict:
    """How the trainer builds the actor for ``cfg`` on an env described by ``info``."""
    a = cfg.algorithm.network
    extra = dict(recurrent=True, gru_hidden=a.gru_hidden) if a.recurrent else {}
    return dict(n_agents=info.n_agents, in_features=info.obs_dim, out_features=info.action_dim,
                hidden=tuple(a.actor_hidden), head="linear" if info.discrete else "normal", log_std=a.log_std,
                log_std_init=a.log_std_init, activation=a.activation, std_mapping=a.std_mapping,
                head_gain=a.head_gain, layer_norm=a.layer_norm, **extra)


def replay_chain(strategies: list[Strategy], net_kwargs: dict) -> nn.Module:
    """The network structure of the last of ``strategies`` (each adopting the previous one's); the
    values are then loaded from a checkpoint. No fit happens: fitted clusters are hyperparameters."""
    net = strategies[0].make_network(**net_kwargs)
    for previous, strategy in zip(strategies, strategies[1:]):
        net = strategy.adopt(previous, net)
    return net


def load_network(state: dict, net_kwargs: dict) -> tuple[nn.Module, list[Strategy]]:
    """The actor network of a checkpoint ``state`` (trainable flags restored) and the phases' strategies."""
    strategies = [strategy_from_config(hp) for hp in state["strategies"]]
    net = replay_chain(strategies, net_kwargs)
    net.load_state_dict(state["actor"])
    for name, p in net.named_parameters():
        p.requires_grad_(state["trainable"][name])
    return net, strategies


@dataclass
class Run:
    run_dir: Path
    cfg: TrainConfig
    state: dict
    info: EnvInfo
    net: nn.Module
    strategies: list[Strategy]

    @property
    def strategy(self) -> Strategy:
        return self.strategies[-1]

    def make_env(self, num_envs: int = 1, seed: int | None = None):
        options = dict(self.cfg.env.options)
        if self.cfg.env.max_steps is not None:
            options.setdefault("max_steps", self.cfg.env.max_steps)
        return make_env(self.cfg.env.name, num_envs=num_envs, seed=self.cfg.seed if seed is None else seed, **options)


def load_run(run_dir, checkpoint: str = "last") -> Run:
    """A run directory's config and the actor of ``checkpoints/<checkpoint>.pt`` (or a path to a .pt)."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    path = Path(checkpoint) if str(checkpoint).endswith(".pt") else run_dir / "checkpoints" / f"{checkpoint}.pt"
    if not path.exists():
        found = sorted(p.stem for p in (run_dir / "checkpoints").glob("*.pt"))
        raise FileNotFoundError(f"no checkpoint {path}; this run has {found}")
    state = ckpt.load(path)
    probe = Run(run_dir, cfg, state, None, None, [])  # type: ignore[arg-type]
    env = probe.make_env(1)
    info = env_info(env)
    env.close()
    net, strategies = load_network(state, network_kwargs(cfg, info))
    return Run(run_dir, cfg, state, info, net.eval().requires_grad_(False), strategies)
