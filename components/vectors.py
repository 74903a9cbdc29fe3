"""Per-agent vectors: ``forward() -> [N, d]``, used for a state-independent log-std.

Like the layers of :mod:`components.layers`, each tags its parameters in ``param_sharing``:

=============  ==================================  ===========================
class          value of agent i                    parameters
=============  ==================================  ===========================
SharedVector   ``v``                               ``v [d]``
StackedVector  ``v[i]``                            ``v [N, d]``
IndexedVector  ``v[cluster(i)]``                   ``v [K, d]``
DeltaVector    ``base_i + delta[i]`` (base frozen)  ``delta [N, d]``
=============  ==================================  ===========================
"""

from __future__ import annotations

import torch
from torch import nn

from marlshare.components.layers import AGENT, CLUSTER, SHARED, _cluster_index, scale_grad


class AgentVector(nn.Module):
    """A learnable per-agent vector: ``forward() -> [N, d]``. Used for state-independent log-std."""

    def __init__(self, n_agents: int, features: int, role: str = "log_std"):
        super().__init__()
        self.n_agents, self.features, self.role = n_agents, features, role
        self.param_sharing: dict[str, str] = {}

    @torch.no_grad()
    def load_shared(self, value: torch.Tensor) -> None:
        """Start every agent (or cluster) from one trained shared vector ``[d]``."""
        if tuple(value.shape) != (self.features,):
            raise ValueError(f"shared vector must be [{self.features}], got {tuple(value.shape)}")
        if not hasattr(self, "value"):
            raise NotImplementedError(f"{type(self).__name__} cannot start from a shared vector")
        self.value.copy_(value.expand_as(self.value))


class SharedVector(AgentVector):
    """One vector for every agent: ``value [d]``."""

    def __init__(self, n_agents, features, init=0.0, role="log_std"):
        super().__init__(n_agents, features, role)
        self.value = nn.Parameter(torch.full((features,), float(init)))
        self.param_sharing = {"value": SHARED}

    def forward(self):
        return self.value.expand(self.n_agents, -1)


class StackedVector(AgentVector):
    """One vector per agent: ``value [N, d]``."""

    def __init__(self, n_agents, features, init=0.0, role="log_std", grad_scale=1.0):
        super().__init__(n_agents, features, role)
        self.value = nn.Parameter(torch.full((n_agents, features), float(init)))
        self.grad_scale = float(grad_scale)
        self.param_sharing = {"value": AGENT}

    def forward(self):
        return scale_grad(self.value, self.grad_scale)


class IndexedVector(AgentVector):
    """One vector per cluster: ``value [K, d]``, agent i reads ``value[cluster(i)]``."""

    def __init__(self, clusters, features, init=0.0, role="log_std"):
        index, k = _cluster_index(clusters)
        super().__init__(len(index), features, role)
        self.register_buffer("clusters", index)
        self.value = nn.Parameter(torch.full((k, features), float(init)))
        self.param_sharing = {"value": CLUSTER}

    def forward(self):
        return self.value[self.clusters]


class DeltaVector(AgentVector):
    """A frozen base vector plus a trainable per-agent delta (LoRASA's per-agent log-std):
    ``base() + delta``, ``delta [N, d]`` zero at creation."""

    def __init__(self, base: AgentVector):
        super().__init__(base.n_agents, base.features, base.role)
        self.base = base.requires_grad_(False)
        self.delta = nn.Parameter(torch.zeros(base.n_agents, base.features))
        self.param_sharing = {"delta": AGENT}

    def forward(self):
        return self.base() + self.delta
