"""Using a trained team outside the trainer: its run (config, env factory, summary) and its policy.

::

    import marlshare
    run = marlshare.load_run("outputs/vmas/navigation/ps/<date>_seed0")
    policy = marlshare.load_policy(run.run_dir)          # best.pt (else last.pt), deterministic
    env = run.make_env(num_envs=4)                       # the run's env and settings, 4 copies
    rollout = env.rollout(100, policy)                   # [4, T] TensorDict, ("agents", "action") [4, T, N, act]

:func:`load_policy` returns a :class:`TeamPolicy`: a TensorDict module reading
``("agents", "observation")`` ``[*B, N, obs]`` (and the action mask where the env has one) and writing
``("agents", "action")`` for every agent at once. It acts deterministically (the distribution's
mode: ``argmax`` of the logits, ``tanh`` of the Gaussian's mean scaled to the action bounds) unless
``sample=True``. ``merged=True`` folds LoRA adapters (and PS's appended agent id) into per-agent
dense weights (:func:`~marlshare.components.transforms.merge_adapters`): the same actions, no
adapter matmuls. A GRU actor reads and writes its hidden state ``"rnn_hidden"`` ``[*B, N, H]`` as in
training (TorchRL's recurrent-module way): the env needs ``InitTracker`` and a primer for that key,
which :meth:`RunHandle.make_env` appends (``policy.env_transforms()`` gives them for an env of one's own).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import torch
from tensordict.nn import TensorDictModuleBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from marlshare.components.algorithms.ppo import make_actor, recurrent_env_transforms
from marlshare.components.config import TrainConfig, resolve_device
from marlshare.components.run_envs import make_run_env
from marlshare.components.runs import load_network, network_kwargs, read_run_config, read_summary
from marlshare.components import checkpoint as ckpt
from marlshare.components.transforms import merge_adapters
from marlshare.envs import EnvInfo, env_info, simulates_on_device

CHECKPOINT_NAMES = ("best", "last")


class TeamPolicy(TensorDictModuleBase):
    """The whole team's actor (``("agents", "observation") [*B, N, obs] -> ("agents", "action")``),
    always run in one exploration mode: deterministic, or sampling when built with ``sample=True``
    (the mode is fixed here so a caller's surrounding context cannot change it by accident).

    Attributes: ``net`` (the strategy network, merged or not), ``info`` (agents and sizes),
    ``recurrent``, ``hidden_size`` (GRU actors), ``action_dist`` (``tanh_normal`` | ``normal``)."""

    def __init__(self, net, info: EnvInfo, action_dist: str = "tanh_normal", sample: bool = False, device=None):
        super().__init__()
        self.net, self.info, self.action_dist, self.sample = net, info, action_dist, sample
        self.recurrent = bool(getattr(net, "recurrent", False))
        self.hidden_size = getattr(net, "hidden_size", None) if self.recurrent else None
        self.actor = make_actor(net, info, action_dist, device=device)
        self.in_keys, self.out_keys = list(self.actor.in_keys), list(self.actor.out_keys)
        self.exploration = ExplorationType.RANDOM if sample else ExplorationType.DETERMINISTIC

    def forward(self, tensordict):
        with set_exploration_type(self.exploration):
            return self.actor(tensordict)

    def env_transforms(self):
        """What an env needs for this actor: ``InitTracker`` and a zero ``"rnn_hidden"`` primer for a
        GRU actor (append them with ``env.append_transform``); None for a feed-forward actor."""
        return recurrent_env_transforms(self.info.n_agents, self.hidden_size) if self.recurrent else None


def team_policy(net, info: EnvInfo, action_dist: str = "tanh_normal", merged: bool = False, sample: bool = False,
                device: str | torch.device = "cpu") -> TeamPolicy:
    """A :class:`TeamPolicy` around a strategy network (``merged``: adapters folded in first)."""
    device = torch.device(device)
    net = merge_adapters(net) if merged else net
    return TeamPolicy(net.to(device).eval().requires_grad_(False), info, action_dist, sample, device)


@dataclasses.dataclass
class RunHandle:
    """A run directory: its config, summary and an env factory with the run's settings."""

    run_dir: Path
    cfg: TrainConfig
    summary: dict | None

    @property
    def checkpoints(self) -> list[str]:
        return sorted(p.stem for p in (self.run_dir / "checkpoints").glob("*.pt"))

    def env_config(self, overrides: dict | None = None):
        """The run's ``EnvConfig`` with ``overrides`` applied: ``max_steps`` and the other EnvConfig fields
        by name, anything else as an env option (``{"n_agents": 4}`` -> ``env.options.n_agents``)."""
        env_cfg = self.cfg.env
        fields = {f.name for f in dataclasses.fields(env_cfg)} - {"options", "name"}
        direct = {k: v for k, v in (overrides or {}).items() if k in fields}
        options = {**env_cfg.options, **{k.removeprefix("options."): v for k, v in (overrides or {}).items()
                                         if k not in fields}}
        return dataclasses.replace(env_cfg, options=options, **direct)

    def make_env(self, num_envs: int = 1, seed: int | None = None, device: str = "cpu",
                 overrides: dict | None = None, recurrent: bool | None = None):
        """The run's env (``num_envs`` copies; ``seed`` defaults to the run's), with the episode return
        summed into ``("agents", "episode_reward")`` and, for a GRU actor, its state transforms."""
        env_cfg = self.env_config(overrides)
        device = resolve_device(device, "device")
        env_device = device if simulates_on_device(env_cfg.name) else torch.device("cpu")
        env = make_run_env(env_cfg, num_envs, self.cfg.seed if seed is None else seed, device, env_device)
        net_cfg = self.cfg.algorithm.network
        if net_cfg.recurrent if recurrent is None else recurrent:
            hidden = int(net_cfg.gru_hidden or net_cfg.actor_hidden[-1])
            env.append_transform(recurrent_env_transforms(env_info(env).n_agents, hidden))
        return env

    def policy(self, checkpoint: str = "best", merged: bool = False, sample: bool = False,
               device: str = "cpu") -> TeamPolicy:
        return load_policy(self.run_dir, checkpoint, merged=merged, device=device, sample=sample)


def load_run(run_dir) -> RunHandle:
    """``run_dir``'s config (``config.yaml``), summary (``summary.json``, None while training) and env factory."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.yaml); a run directory is what "
                                f"`marlshare train` prints at the end, e.g. outputs/<env>/<strategy>/<date>_seed0")
    cfg = read_run_config(run_dir)  # empty or damaged: one error naming the file, never the defaults
    summary = read_summary(run_dir) if (run_dir / "summary.json").exists() else None
    return RunHandle(run_dir, cfg, summary)


def checkpoint_path(run_dir, checkpoint: str = "best") -> Path:
    """``"best"`` (``best.pt``; a run that has none falls back to ``last.pt`` with a warning),
    ``"last"``, any other checkpoint name of the run (``phase_switch``), or a path to a ``.pt`` file."""
    run_dir = Path(run_dir)
    if str(checkpoint).endswith(".pt"):
        path = Path(checkpoint)
    else:
        path = run_dir / "checkpoints" / f"{checkpoint}.pt"
        if checkpoint == "best" and not path.exists() and (run_dir / "checkpoints" / "last.pt").exists():
            warnings.warn(f"{run_dir} has no best.pt (it was trained before best checkpoints were kept); "
                          f"using last.pt", stacklevel=3)
            path = run_dir / "checkpoints" / "last.pt"
    if not path.exists():
        found = sorted(p.stem for p in (run_dir / "checkpoints").glob("*.pt"))
        raise FileNotFoundError(f"no checkpoint {path}; checkpoint must be one of {list(CHECKPOINT_NAMES)}, "
                                f"a name from this run's {found}, or a path to a .pt file")
    return path


def load_network_of(run: RunHandle, path: Path):
    """The actor network stored in the checkpoint at ``path`` (eval mode, no gradients) and the env info."""
    env = run.make_env(1, recurrent=False)
    info = env_info(env)
    env.close()
    net, _ = load_network(ckpt.load(path), network_kwargs(run.cfg, info))
    return net.eval().requires_grad_(False), info


def load_policy(run_dir, checkpoint: str = "best", merged: bool = False, device: str = "cpu",
                sample: bool = False) -> TeamPolicy:
    """The trained team of ``run_dir`` as a TensorDict module (see the module docstring)."""
    run = load_run(run_dir)
    path = checkpoint_path(run_dir, checkpoint)
    net, info = load_network_of(run, path)
    policy = team_policy(net, info, run.cfg.algorithm.network.action_dist, merged, sample, device)
    policy.checkpoint = str(path)  # which file acted (``best`` may have fallen back to ``last``)
    return policy


__all__ = ["RunHandle", "TeamPolicy", "checkpoint_path", "load_policy", "load_run", "team_policy"]
