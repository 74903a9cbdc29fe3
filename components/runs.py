"""Reading a run directory back: its config and any checkpoint's actor network, for analysis tools.

    run = load_run("outputs/vmas/navigation/ps/<date>_seed0", checkpoint="phase_switch")
    run.net            # the actor network of that checkpoint's phase (eval mode, no gradients)
    run.strategy       # that phase's strategy (fitted clusters included)
    run.strategies     # every phase's strategy up to the checkpoint
    run.make_env(8)    # the run's env with 8 copies (``run.info``: agents, sizes)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf
from torch import nn

from marlshare.components import checkpoint as ckpt
from marlshare.components.config import TrainConfig, as_train_config
from marlshare.components.strategies import Strategy, strategy_from_config
from marlshare.envs import EnvInfo, env_info, make_env


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
    cfg = as_train_config(OmegaConf.load(run_dir / "config.yaml"))
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
