"""Per-agent linear layers: one module per layer, one batched call for all agents.

Every layer maps ``x: [*batch, n_agents, in_features] -> y: [*batch, n_agents, out_features]``
(agent axis -2, as in TorchRL). What differs between sharing strategies is only how the effective
weight ``W_i`` of agent ``i`` is parametrised:

==============  ==========================================  ==========================
class           effective weight of agent i                 parameters
==============  ==========================================  ==========================
SharedLinear    ``W``                                       ``W [out, in]``
StackedLinear   ``W[i]``                                    ``W [N, out, in]``
IndexedLinear   ``W[cluster(i)]``                           ``W [K, out, in]``
LowRankLinear   ``base_i + (alpha/r) B[i] A[i]``            ``A [N, r, in], B [N, out, r]``
MaskedLinear    ``mask[cluster(i)] * base_i`` (unit mask)   none beyond the base
SpectralLinear  ``U diag(s * m[i]) V^T``                    ``U, s, V`` shared, ``m [N, k]``
==============  ==========================================  ==========================

No forward pass loops over agents: stacked weights go through one ``bmm``, indexed weights are
gathered (parameters, not outputs) and then go through the same ``bmm``.

Each module tags its own parameters in ``param_sharing`` ("shared", "cluster" or "agent") so that
:func:`components.networks.count_parameters` can tell shared from agent-specific parameters, and
each can return its effective per-agent weights with :meth:`AgentLinear.agent_weight` (used by
``merge_adapters``, the equivalence tests and the analysis tools).

This module says what each agent's weight is; how it is computed fast on a CPU (the agent-major
layout, the id as a bias, the dense path, the LoRA kernel) lives in :mod:`components.kernels`.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from marlshare.components import kernels

SHARED, CLUSTER, AGENT = "shared", "cluster", "agent"


def init_linear_(weight: torch.Tensor, bias: torch.Tensor | None, in_features: int) -> None:
    """``nn.Linear``'s default initialisation, elementwise so a leading agent axis is independent."""
    bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
    with torch.no_grad():
        weight.uniform_(-bound, bound)
        if bias is not None:
            bias.uniform_(-bound, bound)


def scale_grad(tensor: torch.Tensor, scale: float) -> torch.Tensor:
    """``tensor`` in the forward pass (exactly: the added term is zero), its gradient times ``scale``."""
    if scale == 1.0 or not torch.is_grad_enabled():
        return tensor
    detached = tensor.detach()
    return detached + scale * (tensor - detached)


def _cluster_index(clusters: Sequence[int]) -> tuple[torch.Tensor, int]:
    """Validate an agent -> cluster list; returns the index tensor ``[N]`` and the cluster count K."""
    labels = [int(c) for c in clusters]
    if not labels:
        raise ValueError("clusters must list one cluster label per agent, got an empty list")
    k = max(labels) + 1
    if min(labels) < 0 or sorted(set(labels)) != list(range(k)):
        raise ValueError(f"cluster labels must be 0..K-1 with every label used, got clusters={labels}")
    return torch.tensor(labels, dtype=torch.long), k


class AgentLinear(kernels.AgentMajor, nn.Module):
    """Base class: ``forward(x [*batch, N, in]) -> [*batch, N, out]``.

    ``role`` names the layer's place in a network ("hidden", "gru_ih", "gru_hh", "post", "head"), so
    that transforms such as ``to_lora`` can pick the layers they adapt. ``AgentMajor``: the paths the
    LoRA kernel takes through a base layer (:mod:`components.kernels`).
    """

    def __init__(self, n_agents: int, in_features: int, out_features: int, role: str = "hidden"):
        super().__init__()
        self.n_agents, self.in_features, self.out_features, self.role = n_agents, in_features, out_features, role
        self.param_sharing: dict[str, str] = {}

    def agent_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Effective per-agent ``weight [N, out, in]`` and ``bias [N, out]`` (or None)."""
        raise NotImplementedError

    def forward_with_id(self, x: torch.Tensor) -> torch.Tensor:
        """``forward([x, one-hot id])`` for ``x [*batch, N, in - N]``: the input layer of a network that
        appends the agent id. Here by appending it (the reference); every layer class below computes
        the same function without building the wider input (the id's weight column as a bias)."""
        eye = torch.eye(self.n_agents, dtype=x.dtype, device=x.device)
        return self(torch.cat([x, eye.expand(*x.shape[:-1], -1)], dim=-1))

    @torch.no_grad()
    def load_shared(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        """Start every agent from one trained shared layer (``weight [out, in]``, ``bias [out]``), so
        that this layer computes exactly what the shared layer did (a phase switch from PS)."""
        raise NotImplementedError(f"{type(self).__name__} cannot start from a shared layer")

    @torch.no_grad()
    def _broadcast_shared(self, weight, bias):
        """Copy a shared layer into every slice of a stacked (agent or cluster) ``weight`` / ``bias``."""
        self._check_shared(weight, bias)
        self.weight.copy_(weight.expand_as(self.weight))
        if bias is not None:
            self.bias.copy_(bias.expand_as(self.bias))

    def _check_shared(self, weight, bias):
        if tuple(weight.shape) != (self.out_features, self.in_features):
            raise ValueError(f"shared weight must be [{self.out_features}, {self.in_features}], got {tuple(weight.shape)}")
        if (bias is None) != (getattr(self, "bias", None) is None):
            raise ValueError("shared layer and target layer disagree on having a bias")

    def extra_repr(self) -> str:
        return f"n_agents={self.n_agents}, in={self.in_features}, out={self.out_features}, role={self.role}"


class SharedLinear(AgentLinear):
    """One weight for every agent (PS). Runs as a single ``F.linear`` over all agents and batch."""

    def __init__(self, n_agents, in_features, out_features, bias=True, role="hidden"):
        super().__init__(n_agents, in_features, out_features, role)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        init_linear_(self.weight, self.bias, in_features)
        self.param_sharing = {"weight": SHARED, "bias": SHARED}

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def forward_with_id(self, x):
        """The appended one-hot id selects one weight column per agent: the same function as
        ``forward([x, id])`` and the same parameters, as the observation columns times ``x`` plus agent
        i's id column as a bias, so the cost does not grow with N."""
        return kernels.linear_with_id(x, self.weight, self.bias)

    def forward_agent_major(self, xt, with_id=False):
        return kernels.linear_agent_major(xt, self.weight, self.bias, with_id)

    @torch.no_grad()
    def input_grad_agent_major(self, grad, d):
        return torch.matmul(grad, self.weight[:, :d])

    def agent_weight(self):
        n = self.n_agents
        bias = None if self.bias is None else self.bias.expand(n, -1)
        return self.weight.expand(n, -1, -1), bias

    @torch.no_grad()
    def load_shared(self, weight, bias):
        self._check_shared(weight, bias)
        self.weight.copy_(weight)
        if bias is not None:
            self.bias.copy_(bias)


class StackedLinear(AgentLinear):
    """An independent weight per agent (NPS, MTL heads): ``W [N, out, in]``, one ``bmm``.

    ``grad_scale`` multiplies the gradient reaching these parameters (MTL scales its per-agent heads
    by N because each head sees 1/N of the data, as the LoRASA code does).
    """

    def __init__(self, n_agents, in_features, out_features, bias=True, role="hidden", grad_scale=1.0):
        super().__init__(n_agents, in_features, out_features, role)
        self.weight = nn.Parameter(torch.empty(n_agents, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(n_agents, out_features)) if bias else None
        init_linear_(self.weight, self.bias, in_features)
        self.grad_scale = float(grad_scale)
        self.param_sharing = {"weight": AGENT, "bias": AGENT}

    def forward(self, x):
        bias = None if self.bias is None else scale_grad(self.bias, self.grad_scale)
        return kernels.agent_matmul(x, scale_grad(self.weight, self.grad_scale), bias)

    def forward_with_id(self, x):
        bias = None if self.bias is None else scale_grad(self.bias, self.grad_scale)
        return kernels.agent_matmul_with_id(x, scale_grad(self.weight, self.grad_scale), bias)

    def agent_weight(self):
        return self.weight, self.bias

    def load_shared(self, weight, bias):  # every agent's copy starts from the shared weight
        self._broadcast_shared(weight, bias)


class IndexedLinear(AgentLinear):
    """One weight per cluster, agent i uses ``W[cluster(i)]`` (SePS).

    The cluster weights are gathered into ``[N, out, in]`` and applied with one ``bmm``: parameters
    are gathered, outputs are never computed for clusters an agent is not in. With one cluster this
    is a plain ``F.linear`` (and equals PS).
    """

    def __init__(self, clusters: Sequence[int], in_features, out_features, bias=True, role="hidden"):
        index, k = _cluster_index(clusters)
        super().__init__(len(index), in_features, out_features, role)
        self.n_clusters = k
        self.register_buffer("clusters", index)
        self.weight = nn.Parameter(torch.empty(k, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(k, out_features)) if bias else None
        init_linear_(self.weight, self.bias, in_features)
        self.param_sharing = {"weight": CLUSTER, "bias": CLUSTER}

    def forward(self, x):
        if self.n_clusters == 1:
            return F.linear(x, self.weight[0], None if self.bias is None else self.bias[0])
        return kernels.dense_forward(self, x)

    def forward_with_id(self, x):
        if self.n_clusters == 1:
            return kernels.linear_with_id(x, self.weight[0], None if self.bias is None else self.bias[0])
        return kernels.dense_forward(self, x, with_id=True)

    def forward_agent_major(self, xt, with_id=False):
        if self.n_clusters == 1:
            return super().forward_agent_major(xt, with_id)
        return kernels.agent_bmm_maybe_id(xt, *self._gathered(), with_id)

    def input_grad_agent_major(self, grad, d):
        if self.n_clusters == 1:
            return torch.matmul(grad, self.weight[0, :, :d])
        return torch.bmm(grad, self._gathered()[0][:, :, :d])

    def _gathered(self):
        """``agent_weight()``, gathered once while the weights are frozen (a LoRA base) and unchanged."""
        return kernels.cached_if_frozen(self, "_gathered_cache", (self.weight, self.bias, self.clusters), self.agent_weight)

    def agent_weight(self):
        bias = None if self.bias is None else self.bias[self.clusters]
        return self.weight[self.clusters], bias

    def load_shared(self, weight, bias):  # every cluster's network starts from the shared one
        self._broadcast_shared(weight, bias)


class LowRankLinear(AgentLinear):
    """A frozen base layer plus a per-agent low-rank adapter (LoRASA, Sec. 3):
    ``y_i = base_i(x_i) + (alpha / r) B[i] A[i] x_i``.

    ``A [N, r, in]`` and ``B [N, out, r]``; ``init="b_zero"`` (the paper) zeroes B and draws A
    Kaiming-uniform, ``init="a_zero"`` (the LoRASA code) the other way round; either way the adapter
    is zero at creation, so the layer computes exactly what ``base`` does. ``train_bias=True`` adds a
    trainable per-agent bias delta (the paper keeps bias deltas frozen at zero, which is the same as
    not having them, so by default none is allocated). The base may be any AgentLinear (shared for
    PS+LoRA, indexed for SePS+LoRA); its parameters are frozen here.

    Small batches take the factored path (:func:`components.kernels.low_rank_agent_major`), large ones
    the dense per-agent weights (:func:`components.kernels.uses_dense_path`).
    """

    dense_rows_factor = kernels.LOW_RANK_DENSE_ROWS_FACTOR

    def __init__(self, base: AgentLinear, rank: int = 8, alpha: float = 8.0, init: str = "b_zero",
                 train_bias: bool = False):
        super().__init__(base.n_agents, base.in_features, base.out_features, base.role)
        if int(rank) != rank or rank < 1:
            raise ValueError(f"LoRA rank must be a positive integer, got rank={rank!r}")
        if init not in ("b_zero", "a_zero"):
            raise ValueError(f"LoRA init must be one of ['a_zero', 'b_zero'], got init={init!r}")
        self.base = base.requires_grad_(False)
        self.rank, self.alpha, self.scaling = int(rank), float(alpha), float(alpha) / int(rank)
        n, d_in, d_out = base.n_agents, base.in_features, base.out_features
        self.lora_A = nn.Parameter(torch.empty(n, self.rank, d_in))
        self.lora_B = nn.Parameter(torch.empty(n, d_out, self.rank))
        with torch.no_grad():
            nonzero, zero = (self.lora_A, self.lora_B) if init == "b_zero" else (self.lora_B, self.lora_A)
            fan_in = nonzero.shape[-1]
            bound = math.sqrt(6.0 / ((1 + 5.0) * fan_in))  # kaiming_uniform_(a=sqrt(5)), as nn.Linear
            nonzero.uniform_(-bound, bound)
            zero.zero_()
        self.bias_delta = nn.Parameter(torch.zeros(n, d_out)) if train_bias else None
        self.param_sharing = {"lora_A": AGENT, "lora_B": AGENT, "bias_delta": AGENT}

    def forward(self, x):
        return self._forward(x, with_id=False)

    def forward_with_id(self, x):
        """As the base layer (a shared input layer keeps its id-as-bias path, so a zero adapter still
        computes exactly what the base did) plus the adapter on ``[x, id]``, the id taken as a bias
        in rank space (no ``[*, N, in + N]`` input is built)."""
        return self._forward(x, with_id=True)

    def _forward(self, x, with_id):
        if kernels.uses_dense_path(self, x):
            return kernels.dense_forward(self, x, with_id)
        return kernels.low_rank_agent_major(x, self.base, self.lora_A, self.lora_B, self.scaling, self.bias_delta, with_id)

    def delta_weight(self) -> torch.Tensor:
        """``(alpha / r) B[i] A[i]``: ``[N, out, in]``."""
        return self.scaling * torch.bmm(self.lora_B, self.lora_A)

    def agent_weight(self):
        weight, bias = self.base.agent_weight()
        weight = weight + self.delta_weight()
        if self.bias_delta is not None:
            bias = self.bias_delta if bias is None else bias + self.bias_delta
        return weight, bias

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, alpha={self.alpha}"


class MaskedLinear(AgentLinear):
    """A base layer whose output units are switched off by a fixed binary mask per cluster (AdaPS):
    ``y_i = mask[cluster(i)] * base(x_i)``, the same as masking the rows of ``W`` and ``b``.

    ``masks [K, out]`` and ``clusters [N]`` are buffers: no trainable parameters beyond the base.
    """

    def __init__(self, base: AgentLinear, masks: torch.Tensor, clusters: Sequence[int]):
        super().__init__(base.n_agents, base.in_features, base.out_features, base.role)
        index, k = _cluster_index(clusters)
        if masks.shape != (k, base.out_features):
            raise ValueError(f"masks must be [K={k}, out={base.out_features}], got {tuple(masks.shape)}")
        if len(index) != base.n_agents:
            raise ValueError(f"clusters has {len(index)} entries for {base.n_agents} agents")
        self.base = base
        self.register_buffer("clusters", index)
        self.register_buffer("masks", masks.float())

    def forward(self, x):
        return self.base(x) * self.masks[self.clusters]

    def forward_with_id(self, x):
        return self.base.forward_with_id(x) * self.masks[self.clusters]

    def load_shared(self, weight, bias):  # the masks stay: only the shared weights are taken over
        self.base.load_shared(weight, bias)

    def agent_weight(self):
        weight, bias = self.base.agent_weight()
        mask = self.masks[self.clusters]  # [N, out]
        return weight * mask.unsqueeze(-1), None if bias is None else bias * mask


class SpectralLinear(AgentLinear):
    """Spectral parameter sharing (Prism): ``W_i = U diag(s * m_i) V^T``, ``m_i = sigmoid(logits_i)``.

    ``U [out, k]``, ``V [in, k]``, ``s [k]`` and the bias are shared, ``logits [N, k]`` per agent,
    ``k = min(in, out)``. Computed as ``((x V) * (s * m_i)) U^T + b``: two shared matmuls and an
    elementwise product. ``U, s, V`` start from the SVD of ``nn.Linear``'s initialisation, with ``s``
    divided by ``sigmoid(mask_init)`` so that every agent's initial weight equals that initialisation.
    """

    def __init__(self, n_agents, in_features, out_features, bias=True, role="hidden", mask_init: float = 3.0):
        super().__init__(n_agents, in_features, out_features, role)
        k = min(in_features, out_features)
        w0 = torch.empty(out_features, in_features)
        b0 = torch.empty(out_features) if bias else None
        init_linear_(w0, b0, in_features)
        u, s, vh = torch.linalg.svd(w0, full_matrices=False)
        self.U = nn.Parameter(u.contiguous())
        self.V = nn.Parameter(vh.T.contiguous())
        self.s = nn.Parameter(s / torch.sigmoid(torch.tensor(float(mask_init))))
        self.mask_logits = nn.Parameter(torch.full((n_agents, k), float(mask_init)))
        self.bias = nn.Parameter(b0) if bias else None
        self.param_sharing = {"U": SHARED, "V": SHARED, "s": SHARED, "bias": SHARED, "mask_logits": AGENT}

    def masks(self) -> torch.Tensor:
        """Spectral masks ``[N, k]`` in (0, 1)."""
        return torch.sigmoid(self.mask_logits)

    def forward(self, x):
        if kernels.uses_dense_path(self, x):
            return kernels.dense_forward(self, x)
        h = F.linear(x, self.V.T) * (self.s * self.masks())  # [*, N, k]
        return F.linear(h, self.U, self.bias)

    def forward_with_id(self, x):
        """``forward([x, one-hot id])``: agent i's id row of ``V`` enters ``x V`` as a bias (no wider input)."""
        if kernels.uses_dense_path(self, x):
            return kernels.dense_forward(self, x, with_id=True)
        d = x.shape[-1]
        h = (F.linear(x, self.V[:d].T) + self.V[d:]) * (self.s * self.masks())  # [*, N, k]
        return F.linear(h, self.U, self.bias)

    def agent_weight(self):
        scaled = (self.s * self.masks()).unsqueeze(1)  # [N, 1, k]
        weight = torch.matmul(self.U * scaled, self.V.T)  # [N, out, in]
        bias = None if self.bias is None else self.bias.expand(self.n_agents, -1)
        return weight, bias

    @torch.no_grad()
    def load_shared(self, weight, bias):
        """``U, s, V`` from the SVD of the trained shared weight, ``s`` divided by the agents' current
        (equal) mask so that every ``W_i`` equals ``weight`` at the switch."""
        self._check_shared(weight, bias)
        mask = self.masks()
        if not torch.allclose(mask, mask[:1].expand_as(mask)):
            raise ValueError("load_shared needs equal masks for every agent (a freshly built layer)")
        u, s, vh = torch.linalg.svd(weight, full_matrices=False)
        self.U.copy_(u)
        self.V.copy_(vh.T)
        self.s.copy_(s / mask[0])
        if bias is not None:
            self.bias.copy_(bias)
