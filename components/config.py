"""The typed source of truth for every training setting.

Hydra (``recipes/``) stores these dataclasses as the schema, YAML presets override them, the command
line overrides both, and each run saves the resolved result as ``config.yaml``. Strategy
hyperparameters are the one exception: their defaults live in the strategy dataclasses themselves
(``components/strategies``), and ``strategy`` here is the name plus any overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class EnvConfig:
    name: str = "vmas/navigation"
    num_envs: int = 60  # copies collected in parallel (one vectorised VMAS batch)
    eval_num_envs: int = 20  # evaluation episodes per evaluation (one per copy)
    max_steps: Optional[int] = None  # episode length cap passed to the env (None: the env's own; VMAS 100)
    eval_max_steps: int = 1000  # evaluation rollouts stop when every copy has ended, or at this cap
    options: Dict[str, Any] = field(default_factory=dict)  # passed on to the env (e.g. n_agents)


@dataclass
class AlgorithmConfig:
    name: str = "mappo"  # mappo | ippo
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
    action_dist: str = "tanh_normal"  # tanh_normal | normal (continuous actions)
    actor_hidden: List[int] = field(default_factory=lambda: [64, 64])
    critic_hidden: List[int] = field(default_factory=lambda: [64, 64])
    critic_sharing: str = "shared"  # shared | nps
    # MAPPO shared critic: append the agent id (one value per agent) or compute one team value per sample
    critic_agent_id: bool = True
    activation: str = "relu"
    recurrent: bool = False  # GRU actor (encoder MLP -> GRU -> post layer -> head), as in LoRASA
    chunk_length: int = 10  # recurrent PPO: updates re-run chunks of this many steps from stored states
    gru_hidden: Optional[int] = None  # GRU width (default: the last actor_hidden width)
    log_std: str = "auto"  # auto | shared | agent | state
    log_std_init: float = 0.0
    # Restart every copy's episode at the start of each iteration: iterations are then independent
    # of where the previous one stopped, which makes resumed runs bit-identical. With episodes no
    # longer than frames_per_batch / num_envs steps nothing is truncated.
    reset_each_iteration: bool = True


@dataclass
class ScheduleConfig:
    kind: str = "single"  # single | two_phase
    switch_at: Optional[int] = None  # frame of the switch; with auto=true, the fallback if the rule never fires
    auto: bool = False
    finetune: Optional[str] = None  # strategy after the switch (default: <strategy>_lora)
    rank: int = 8
    alpha: float = 8.0
    layers: Any = "all"  # "all" or a list of: hidden, gru_ih, gru_hh, post, head, log_std
    finetune_lr: Optional[float] = None  # actor learning rate after the switch (default: algorithm.lr)
    # the automatic rule's settings (components/schedule.py explains each)
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
    tensorboard: bool = False
    progress: bool = True


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
    max_nonfinite: int = 5  # consecutive skipped updates (non-finite loss/gradient) before stopping
    # torch intra-op threads (0: torch's default). Per-agent networks are small: one thread avoids
    # OpenMP spin-waits that slow every op down several-fold when the cores are shared.
    threads: int = 1
    run_dir: Optional[str] = None  # where outputs go (the recipe sets it from Hydra's run dir)
    resume: Optional[str] = None  # a run directory to continue
