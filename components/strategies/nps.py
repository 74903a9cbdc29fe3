"""NPS: no parameter sharing. Every layer stacks an independently initialised weight per agent and
runs as one ``bmm``; one optimiser over the stacked weights equals one per agent because no gradient
mixes agents."""

from __future__ import annotations

from dataclasses import dataclass

from marlshare.components.layers import StackedLinear
from marlshare.components.vectors import StackedVector
from marlshare.components.strategies.base import Strategy


@dataclass
class NPS(Strategy):
    name = "nps"
    shared = "nothing"
    agent_specific = "every weight, bias and log-std"
    predecessors = ("ps",)  # each agent's copy starts from the shared weights

    def layer(self, role, n_agents, d_in, d_out):
        return StackedLinear(n_agents, d_in, d_out, role=role)

    def vector(self, role, n_agents, features):
        return StackedVector(n_agents, features, role=role)
