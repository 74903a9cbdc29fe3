"""On-policy multi-agent algorithms on TorchRL (MAPPO, IPPO, and the sequential HAPPO and A2PO)."""

from marlshare.components.algorithms.ppo import (
    ALGORITHMS, PPOSettings, actor_net, expand_done, make_actor, make_critic, make_loss, ppo_settings,
)
from marlshare.components.algorithms.sequential import SEQUENTIAL, SequentialUpdate, make_update

__all__ = ["ALGORITHMS", "PPOSettings", "SEQUENTIAL", "SequentialUpdate", "actor_net", "expand_done", "make_actor",
           "make_critic", "make_loss", "make_update", "ppo_settings"]
