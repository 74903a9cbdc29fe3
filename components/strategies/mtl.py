"""MTL: a shared trunk (MLP and GRU layers) with an agent-specific action head (mean, and the
state-independent log-std). The LoRASA code multiplies the heads' gradients by N because each head
sees 1/N of the data; ``scale_head_grad`` (default on) does the same."""

from __future__ import annotations

from dataclasses import dataclass

from marlshare.components.layers import SharedLinear, StackedLinear
from marlshare.components.vectors import StackedVector
from marlshare.components.strategies.base import Strategy


@dataclass
class MTL(Strategy):
    name = "mtl"
    shared = "trunk: every hidden, GRU and post-GRU layer"
    agent_specific = "the action head (mean and log-std)"
    predecessors = ("ps",)  # trunk taken over, every head starts from the shared head

    append_id: bool = True
    scale_head_grad: bool = True

    def validate(self):
        if not isinstance(self.scale_head_grad, bool):
            raise ValueError(f"mtl: scale_head_grad must be True or False, got {self.scale_head_grad!r}")

    def _scale(self, n_agents):
        return float(n_agents) if self.scale_head_grad else 1.0

    def layer(self, role, n_agents, d_in, d_out):
        if role == "head":
            return StackedLinear(n_agents, d_in, d_out, role=role, grad_scale=self._scale(n_agents))
        return SharedLinear(n_agents, d_in, d_out, role=role)

    def vector(self, role, n_agents, features):
        return StackedVector(n_agents, features, role=role, grad_scale=self._scale(n_agents))
