"""The algorithm registry: on-policy multi-agent algorithms on TorchRL (MAPPO, IPPO, and the
sequential HAPPO and A2PO). Adding an algorithm is one module (an :class:`Algorithm` subclass that
declares its critic, loss, update and whether it compiles) plus one line here.

Public API (what the trainer calls)::

    from marlshare.components.algorithms import ALGORITHMS, make_critic, make_loss, make_update
    critic = make_critic(info, "happo")                      # ALGORITHMS["happo"].make_critic(info)
    update = make_update(config.algorithm, chunk, on_nonfinite=..., on_finite=...)
    loss = make_loss(actor, critic, ppo_settings(config.algorithm, plan))
"""

from __future__ import annotations

from marlshare.components.algorithms.a2po import A2PO
from marlshare.components.algorithms.algorithm import Algorithm
from marlshare.components.algorithms.happo import HAPPO
from marlshare.components.algorithms.ippo import IPPO
from marlshare.components.algorithms.keys import expand_done
from marlshare.components.algorithms.losses import PPOSettings, ppo_settings
from marlshare.components.algorithms.mappo import MAPPO
from marlshare.components.algorithms.ppo import actor_net, make_actor
from marlshare.components.algorithms.sequential import SequentialUpdate
from marlshare.components.algorithms.update import PPOUpdate

ALGORITHMS: dict[str, type[Algorithm]] = {
    "mappo": MAPPO,
    "ippo": IPPO,
    "happo": HAPPO,
    "a2po": A2PO,
}


def algorithm_class(name: str) -> type[Algorithm]:
    """The registered class of ``name``, rejecting unknown names clearly."""
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {list(ALGORITHMS)}, got {name!r}")
    return ALGORITHMS[name]


def make_critic(info, algorithm: str = "mappo", sharing: str = "shared", hidden=(64, 64), activation: str = "relu",
                agent_id: bool = True, value_norm: bool = False):
    """The critic ``algorithm`` declares; ``value_norm=True`` appends a ``ValueNorm`` that denormalises
    its output."""
    return algorithm_class(algorithm).make_critic(info, sharing, hidden, activation, agent_id, value_norm)


def make_loss(actor, critic, settings: PPOSettings):
    """The loss of ``settings.algorithm`` with TorchRL's GAE, keyed for one agent group."""
    return algorithm_class(settings.algorithm).make_loss(actor, critic, settings)


def make_update(algorithm, chunk: int, on_nonfinite, on_finite) -> PPOUpdate:
    """The update of ``algorithm`` (an :class:`~components.config.AlgorithmConfig`). The trainer sets
    ``compile`` per phase (:func:`~components.algorithms.update.compile_mode`) where the algorithm
    ``compiles``."""
    return algorithm_class(algorithm.name).make_update(algorithm, chunk, on_nonfinite, on_finite)


__all__ = ["ALGORITHMS", "Algorithm", "PPOSettings", "SequentialUpdate", "actor_net", "algorithm_class",
           "expand_done", "make_actor", "make_critic", "make_loss", "make_update", "ppo_settings"] + \
          [cls.__name__ for cls in ALGORITHMS.values()]
