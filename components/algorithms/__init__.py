"""On-policy multi-agent algorithms on TorchRL (MAPPO, IPPO)."""

from components.algorithms.ppo import (
    ALGORITHMS, PPOSettings, actor_net, expand_done, make_actor, make_critic, make_loss,
)

__all__ = ["ALGORITHMS", "PPOSettings", "actor_net", "expand_done", "make_actor", "make_critic", "make_loss"]
