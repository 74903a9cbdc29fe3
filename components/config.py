"""The typed source of truth for every training setting.

Hydra (``recipes/``) stores these dataclasses as the schema, YAML presets override them, the command
line overrides both, and each run saves the resolved result as ``config.yaml``. Strategy
hyperparameters are the one exception: their defaults live in the strategy dataclasses themselves
(``components/strategies``), and ``strategy`` here (and in each phase) is the name plus overrides.

``algorithm`` holds the settings every algorithm shares (:class:`PPOConfig`), the networks' settings
under ``algorithm.network`` (:class:`NetworkConfig`, ``components/network_config.py``), and each
algorithm's own settings under its name, in the dataclass its registry class declares next to it
(``algorithm.a2po.loop``: ``A2POSettings`` in ``components/algorithms/a2po.py``). Keys that moved there
from the older flat layout are listed in :data:`MOVED`.

:func:`validate_config` checks a config before anything is built and raises one :class:`ConfigError`
naming the bad value and the valid choices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from marlshare.components.algorithms import ALGORITHMS
from marlshare.components.network_config import NetworkConfig


@dataclass
class EnvConfig:
    name: str = "vmas/navigation"
    num_envs: int = 60  # copies collected in parallel (one vectorised VMAS batch)
    eval_num_envs: int = 20  # evaluation episodes per evaluation (one per copy)
    max_steps: Optional[int] = None  # episode length cap passed to the env (None: the env's own; VMAS 100)
    eval_max_steps: int = 1000  # evaluation rollouts stop when every copy has ended, or at this cap
    options: Dict[str, Any] = field(default_factory=dict)  # passed on to the env (e.g. n_agents)
    # where the env simulates (BenchMARL's sampling_device): cpu | cuda | cuda:N | auto; None: the
    # training device for VMAS (it simulates on a GPU), cpu for the other families (CPU simulators)
    device: Optional[str] = None


@dataclass
class PPOConfig:
    """The settings every algorithm shares: PPO's numbers, the networks (``network``), the value-loss
    details and speed. :data:`AlgorithmConfig` adds each algorithm's own settings."""

    name: str = "mappo"  # mappo | ippo | happo | a2po (sequential agent-by-agent updates, docs/algorithms.md)
    frames_per_batch: int = 6000  # environment frames (steps x copies) per iteration
    epochs: int = 10
    minibatch_size: int = 400
    lr: float = 3e-4
    adam_eps: float = 1e-5
    max_grad_norm: float = 1.0
    clip_epsilon: float = 0.2
    entropy_coeff: float = 0.0
    critic_coeff: float = 1.0
    gamma: float = 0.99
    lmbda: float = 0.9
    normalize_advantage: bool = False
    network: NetworkConfig = field(default_factory=NetworkConfig)  # the actor and the critic
    chunk_length: int = 10  # recurrent PPO: updates re-run chunks of this many steps from stored states
    # Restart every copy's episode at the start of each iteration: iterations are then independent
    # of where the previous one stopped, which makes resumed runs bit-identical. With episodes no
    # longer than frames_per_batch / num_envs steps nothing is truncated.
    reset_each_iteration: bool = True
    # Value-loss details of the MAPPO / LoRASA reference code (docs/algorithms.md); off by default
    value_norm: bool = False  # running mean/std of the value targets (the reference's use_valuenorm)
    huber_delta: Optional[float] = None  # Huber value loss with this delta (reference: 10); None: squared error
    clip_value_loss: bool = False  # clipped value loss, radius clip_epsilon (reference: on)
    # Speed (docs/benchmarks.md). compile: torch.compile the loss (forward and backward) of the MAPPO /
    # IPPO update, auto | true | false; auto compiles phases of at least 3000 gradient steps on a GPU
    # and 10000 on a CPU (feed-forward actors there: a GRU's compiled step was not faster), where a
    # compiled step is about 2x faster at the default recipe's networks but the first compile takes
    # 5-15 s; the benchmarl preset turns it on.
    # clip_grad_per_network: clip the actor's and the critic's gradients each to max_grad_norm
    # (BenchMARL) instead of one joint norm.
    compile: str = "auto"
    clip_grad_per_network: bool = False
    # precision of the update step's forward passes (components/algorithms/precision.py): fp32 | bf16
    # (bfloat16 autocast; parameters, optimiser state, GAE and loss reductions stay float32) | auto (bf16
    # on CPUs with AMX-BF16 / AVX512-BF16 and bf16-capable GPUs, else fp32). MAPPO / IPPO only: the
    # sequential updates (happo, a2po) run in fp32
    precision: str = "fp32"


def algorithm_config_class(algorithms: dict) -> type:
    """:class:`PPOConfig` plus one field per algorithm of the registry ``algorithms`` that declares its
    own settings (``Algorithm.settings``), named after it: ``algorithm.a2po`` holds ``A2POSettings``."""
    cls = dataclasses.make_dataclass(
        "AlgorithmConfig", [(name, algorithm.settings, field(default_factory=algorithm.settings))
                            for name, algorithm in algorithms.items() if algorithm.settings is not None],
        bases=(PPOConfig,))
    cls.__module__ = __name__  # pickled (Ray trials) and typed (Hydra's schema) as this module's
    cls.__doc__ = "Every algorithm setting: PPOConfig's and each algorithm's own (algorithm.<name>.*)."
    return cls


#: ``algorithm.*``, built from the registry, so an algorithm with settings stays one file plus one line
#: in ``ALGORITHMS``
AlgorithmConfig = algorithm_config_class(ALGORITHMS)

#: settings that moved when the flat algorithm config was split (old key -> new key): typed on the
#: command line they are a ConfigError naming the new key (recipes/compose.py: env_overrides); in a
#: run directory's config.yaml written before the split, :func:`as_train_config` moves them silently
MOVED = {f"algorithm.{key}": f"algorithm.network.{key}" for key in (
    "action_dist", "actor_hidden", "critic_hidden", "critic_sharing", "critic_agent_id", "activation", "recurrent",
    "gru_hidden", "log_std", "log_std_init", "layer_norm", "head_gain", "std_mapping")} | {
    "algorithm.others_clip": "algorithm.a2po.others_clip", "algorithm.a2po_loop": "algorithm.a2po.loop",
    "algorithm.a2po_clip_tuner": "algorithm.a2po.clip_tuner", "algorithm.a2po_advantage": "algorithm.a2po.advantage",
    "algorithm.a2po_two_stage": "algorithm.a2po.two_stage"}


@dataclass
class PhaseConfig:
    """One phase of a schedule: a registry strategy config, an end condition and its own PPO settings.

    ``strategy`` is ``{"name": ..., **hyperparameters}``. Without a name, the first phase takes the
    run's ``strategy`` and a later phase the previous strategy's declared successor (``ps -> ps_lora``,
    ``seps -> seps_lora``); given hyperparameters apply either way.
    """

    strategy: Dict[str, Any] = field(default_factory=dict)
    until: Optional[int] = None  # frame (run counter) at which the phase ends; None for the last phase
    auto: bool = False  # end by the "competent but still improving" rule; `until` is then the fallback
    lr: Optional[float] = None  # actor learning rate in this phase (default: algorithm.lr)
    critic_lr: Optional[float] = None  # critic learning rate in this phase (default: algorithm.lr)
    clip_epsilon: Optional[float] = None  # default: algorithm.clip_epsilon
    entropy_coeff: Optional[float] = None  # default: algorithm.entropy_coeff
    label: Optional[str] = None  # name in logs (default: train | pretrain, phase<i>, finetune)
    # the critic's strategy from this phase on: a name or {name: ..., **hyperparameters} among
    # components.phases.CRITIC_STRATEGIES (e.g. ps_lora: per-agent adapters on the frozen critic);
    # None: the critic goes on as it is (it starts as algorithm.network.critic_sharing says)
    critic_strategy: Any = None


@dataclass
class ScheduleConfig:
    """A schedule is a list of phases (``components/schedule.py`` resolves and checks it).

    Shorthands that rewrite ``phases``: ``chain`` names each phase's strategy in order
    (``[ps, seps, seps_lora]``, phases added as needed) and ``switch_at`` sets the ``until`` of every
    phase but the last (an int for two phases, or a list).
    """

    name: str = "single"  # the preset's name, a label for summaries
    phases: List[PhaseConfig] = field(default_factory=lambda: [PhaseConfig()])
    chain: Optional[List[str]] = None
    critic_chain: Optional[List[Any]] = None  # each phase's critic_strategy in order, e.g. [ps, ps_lora]
    switch_at: Any = None
    # the automatic rule's settings, for phases with auto=true (components/schedule.py explains each)
    auto_window: int = 4
    auto_decel: float = 0.75
    auto_noise_sigmas: float = 2.0
    auto_competence_sigmas: float = 8.0
    auto_patience: int = 2
    auto_min_frames: int = 0


@dataclass
class LoggerConfig:
    csv: bool = True  # TorchRL CSVLogger (metrics.csv is always written as well)
    wandb: bool = True
    wandb_mode: str = "auto"  # auto (offline unless a key and a network are available) | offline | online
    wandb_project: str = "marlshare"
    wandb_group: Optional[str] = None  # W&B group (a sweep puts all its trials in one group)
    wandb_tags: List[str] = field(default_factory=list)  # W&B tags (a sweep derives them from its axes)
    tensorboard: bool = False
    progress: bool = True
    # record one deterministic evaluation episode every N frames into RUN/videos (and W&B when on);
    # 0: never. Only for env families that render (components/video.py)
    video_every: int = 0


@dataclass
class TrainConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    strategy: Dict[str, Any] = field(default_factory=lambda: {"name": "ps"})
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 0
    total_frames: int = 300_000
    eval_every: int = 30_000  # frames between evaluations (rounded up to whole iterations)
    checkpoint_every: int = 60_000  # frames between periodic checkpoints (0: only at switch and end)
    checkpoint_keep: int = 2  # periodic checkpoints kept (last.pt, last.1.pt, ...), plus the phase switches
    max_nonfinite: int = 5  # consecutive skipped updates (non-finite loss/gradient) before stopping
    # torch intra-op threads. None (auto): OMP_NUM_THREADS when set (launchers of parallel runs set it),
    # else the cores this process may use, at most 4 (docs/benchmarks.md: 2 threads are faster than 1
    # on a quiet 2-core machine; on cores other jobs share, set threads=1). Otherwise an integer >= 1
    # (0 is rejected: it used to mean torch's own default, which is the machine's every core).
    threads: Optional[int] = None
    # where the networks train (BenchMARL's train_device): cpu | cuda | cuda:N | auto (cuda when available)
    device: str = "cpu"
    run_dir: Optional[str] = None  # where outputs go (the recipe sets it from Hydra's run dir)
    resume: Optional[str] = None  # a run directory to continue


def config_to_dict(cfg) -> dict:
    """A plain dict of a TrainConfig or an OmegaConf config (interpolations resolved), with the schedule's
    shorthands (``chain``, ``switch_at``) written into its phases: what a run saves as config.yaml."""
    from omegaconf import OmegaConf

    from marlshare.components.schedule import resolve_shorthands

    values = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dataclasses.asdict(cfg)
    if isinstance(values.get("schedule"), dict) and "phases" in values["schedule"]:
        values["schedule"] = resolve_shorthands(values["schedule"])
    return values


#: settings whose values are free-form dicts (their keys are checked by the strategy or env adapter)
FREE_FORM = {"strategy", "options"}


def check_keys(values: dict, schema=None, path: str = "") -> None:
    """Raise ConfigError for a key the schema does not have, suggesting the closest valid one (e.g. a
    misspelt ``+totl_frames=1200`` would otherwise be silently ignored)."""
    import difflib

    schema = schema or TrainConfig
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key, value in values.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {path}{close[0]}?" if close else f"; valid keys here: {sorted(fields)}"
            raise ConfigError(f"unknown setting {path}{key}{hint}")
        inner = _dataclass_of(schema, key)
        if key in FREE_FORM or inner is None:
            continue
        if isinstance(value, dict):
            check_keys(value, inner, f"{path}{key}.")
        elif isinstance(value, list):  # schedule.phases
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    check_keys(item, inner, f"{path}{key}.{i}.")


def _dataclass_of(schema, key):
    """The dataclass type of field ``key`` of ``schema`` (or of its list items), else None."""
    import typing

    hint = typing.get_type_hints(schema)[key]
    for candidate in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(candidate):
            return candidate
    return None


def migrate(values: dict) -> dict:
    """``values`` (a plain nested dict, changed in place) with the :data:`MOVED` keys of a config written
    before they moved put in their new place (a value already at the new place wins)."""
    for old, new in MOVED.items():
        (*path, last), node = old.split("."), values
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or last not in node:
            continue
        value, (*path, last), node = node.pop(last), new.split("."), values
        for part in path:
            node = node.setdefault(part, {})
        node.setdefault(last, value)
    return values


def as_train_config(cfg) -> TrainConfig:
    """Accept a TrainConfig, a (structured) OmegaConf config or a plain dict; unknown keys are a
    ConfigError naming the closest valid key. Keys of an older config that have moved (:data:`MOVED`,
    e.g. ``algorithm.actor_hidden`` in a run directory's config.yaml) are read at their new place."""
    import copy

    from omegaconf import OmegaConf

    if isinstance(cfg, TrainConfig):
        return cfg
    values = OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else copy.deepcopy(dict(cfg))
    values.pop("hydra", None)
    check_keys(migrate(values))
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.create(values)))


class ConfigError(ValueError):
    """An invalid setting, caught before training starts."""


AUTO_THREADS_MAX = 4  # small per-agent networks gain little from more intra-op threads


def auto_threads() -> int:
    """``threads=None``: ``OMP_NUM_THREADS`` when set, else the cores this process may use (its CPU
    affinity, which container and ``taskset`` limits set), at most :data:`AUTO_THREADS_MAX`."""
    import os

    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, AUTO_THREADS_MAX))


def resolve_device(value: str, key: str = "device"):
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (cuda when available) as a ``torch.device``; a device
    this machine does not have is a ConfigError naming it and the choices."""
    import torch

    value = str(value).lower()
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(value)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"{key}={value!r} is not a device; valid: cpu, cuda, cuda:N, auto")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ConfigError(f"{key}={value!r}: this machine has {count} CUDA device(s); valid here: cpu, auto"
                              + "".join(f", cuda:{i}" for i in range(count)))
    return device
