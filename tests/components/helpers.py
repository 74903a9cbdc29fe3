"""Shared test helpers: strategies with the hyperparameters they need, weight copying."""

import torch

from marlshare.components.layers import AgentLinear
from marlshare.components.vectors import AgentVector
from marlshare.components.strategies import STRATEGIES, make_strategy


def needs_clusters(name: str) -> bool:
    return STRATEGIES[name].needs_clusters


def is_adapter(name: str) -> bool:
    """Strategies that train adapters over a frozen backbone (they declare the backbone)."""
    return hasattr(STRATEGIES[name], "backbone")


def strategy_for(name: str, n_agents: int, **hp):
    """The strategy ``name`` with a valid cluster assignment for ``n_agents`` where it needs one."""
    if needs_clusters(name) and "clusters" not in hp:
        k = max(1, n_agents // 2)
        hp["clusters"] = [i % k for i in range(n_agents)]
    return make_strategy(name, **hp)


def agent_layers(net):
    """The outermost per-agent layers and vectors of a network, in order."""
    out = []

    def walk(module):
        for child in module.children():
            if isinstance(child, (AgentLinear, AgentVector)):
                out.append(child)
            else:
                walk(child)

    walk(net)
    return out


def first(y):
    return y[0] if isinstance(y, tuple) else y
