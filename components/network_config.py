"""The actor and critic networks' settings, ``algorithm.network.*`` (:class:`NetworkConfig`).

Their own module so that :mod:`components.config` stays short; :mod:`components.config` re-exports
the class, and :func:`components.runs.network_kwargs` turns it into the actor's constructor arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class NetworkConfig:
    """How the actor and the critic are built (``algorithm.network.actor_hidden`` etc.)."""

    action_dist: str = "tanh_normal"  # tanh_normal | normal (continuous actions)
    actor_hidden: List[int] = field(default_factory=lambda: [64, 64])
    critic_hidden: List[int] = field(default_factory=lambda: [64, 64])
    critic_sharing: str = "shared"  # shared | nps
    # MAPPO shared critic: append the agent id (one value per agent) or compute one team value per sample
    critic_agent_id: bool = True
    activation: str = "relu"
    recurrent: bool = False  # GRU actor (encoder MLP -> GRU -> post layer -> head), as in LoRASA
    gru_hidden: Optional[int] = None  # GRU width (default: the last actor_hidden width)
    log_std: str = "auto"  # auto | shared | agent | state
    log_std_init: Optional[float] = 0.0  # None: a state-dependent scale keeps the head's drawn bias
    # the reference code's network details (components/networks.py): LayerNorm after the input and each
    # hidden layer, orthogonal action-head init with this gain (None: nn.Linear's), std mapping
    # exp | sigmoid | biased_softplus
    layer_norm: bool = False
    head_gain: Optional[float] = None
    std_mapping: str = "exp"
