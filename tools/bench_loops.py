"""Per-agent Python-loop references of every strategy's network, for :mod:`tools.bench_strategies`:
the way the LoRASA reference code runs (one call per agent), built from a batched network with its
weights copied.

:func:`loop_reference` picks the loop by the network's layers (their parametrisations), never by a
strategy's name, and ``LOOP_REFERENCES`` covers every registered strategy: a new strategy is timed
like the others, or, when no loop here mirrors its layers, stops the benchmark with a TypeError
naming them (it is never skipped in silence)."""

from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from marlshare.components.layers import (
    AgentLinear, IndexedLinear, LowRankLinear, MaskedLinear, SharedLinear, SpectralLinear, StackedLinear,
)
from marlshare.components.dico_network import DiCoNetwork
from marlshare.components.generated import GeneratedLinear
from marlshare.components.thresholded import ThresholdedLinear
from marlshare.components.strategies import STRATEGIES


def agent_layers(net: nn.Module) -> list[AgentLinear]:
    """The MLP's per-agent layers in order: the hidden layers, then the head."""
    return [m for m in net.trunk if isinstance(m, AgentLinear)] + [net.head.layer]


# --- per-agent Python-loop references ------------------------------------------------------------
# Each is built from a batched network (weights copied, independent tensors) and computes the same
# function with one call per agent on x[..., i, :]. Per-agent parameters are separate leaf tensors
# (as with one module / one optimiser per agent in the reference code), not slices of a stacked
# tensor, so the backward pass does not pay for scattering slice gradients into a stacked tensor.

def _copy_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(weight)
        if bias is not None:
            lin.bias.copy_(bias)
    return lin


def _mlp(linears: list[nn.Linear]) -> nn.Sequential:
    mods = []
    for lin in linears[:-1]:
        mods += [lin, nn.ReLU()]
    return nn.Sequential(*mods, linears[-1])


class LoopBase(nn.Module):
    """Slices agent i's input (appending its one-hot id when the batched network does), calls
    ``agent_forward(i, x_i)`` once per agent and stacks the outputs on the agent axis."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.n_agents = net.n_agents
        self.append_id = net.append_id
        self.register_buffer("eye", torch.eye(self.n_agents))

    def agent_input(self, x, i):
        xi = x[..., i, :]
        if self.append_id:
            xi = torch.cat([xi, self.eye[i].expand(*xi.shape[:-1], -1)], dim=-1)
        return xi

    def forward(self, x):
        return torch.stack([self.agent_forward(i, self.agent_input(x, i)) for i in range(self.n_agents)], dim=-2)


class LoopMLP(LoopBase):
    """PS (one shared nn.Sequential), NPS (one per agent), SePS (one per cluster): agent i calls
    ``mlps[index[i]]``."""

    def __init__(self, net):
        super().__init__(net)
        layers = agent_layers(net)
        first = layers[0]
        if isinstance(first, SharedLinear):
            count, self.index = 1, [0] * self.n_agents
        elif isinstance(first, StackedLinear):
            count, self.index = self.n_agents, list(range(self.n_agents))
        elif isinstance(first, IndexedLinear):
            count, self.index = first.n_clusters, first.clusters.tolist()
        else:
            raise TypeError(f"LoopMLP cannot mirror {type(first).__name__}")
        if isinstance(first, SharedLinear):
            self.mlps = nn.ModuleList([_mlp([_copy_linear(m.weight, m.bias) for m in layers])])
        else:
            self.mlps = nn.ModuleList(_mlp([_copy_linear(m.weight[j], m.bias[j]) for m in layers])
                                      for j in range(count))

    def agent_forward(self, i, xi):
        return self.mlps[self.index[i]](xi)


class LoopMTL(LoopBase):
    """Shared trunk called once per agent, then agent i's own head (an nn.Linear per agent)."""

    def __init__(self, net):
        super().__init__(net)
        *trunk, head = agent_layers(net)
        self.trunk = nn.Sequential(*[mod for m in trunk for mod in (_copy_linear(m.weight, m.bias), nn.ReLU())])
        self.heads = nn.ModuleList(_copy_linear(head.weight[i], head.bias[i]) for i in range(self.n_agents))

    def agent_forward(self, i, xi):
        return self.heads[i](self.trunk(xi))


class LoopLoRA(LoopBase):
    """PS+LoRA / SePS+LoRA: per layer, agent i computes
    ``F.linear(x_i, W, b) + scale * F.linear(F.linear(x_i, A_i), B_i)`` with the frozen base (W, b)
    of its cluster (PS: the one shared base) and its own adapter parameters."""

    def __init__(self, net):
        super().__init__(net)
        layers = agent_layers(net)
        self.scaling = [m.scaling for m in layers]
        self.bases = nn.ModuleList()  # per layer: frozen weights [K, out, in], biases [K, out] as buffers
        for m in layers:
            base, holder = m.base, nn.Module()
            if isinstance(base, SharedLinear):
                holder.register_buffer("weight", base.weight.detach().clone().unsqueeze(0))
                holder.register_buffer("bias", base.bias.detach().clone().unsqueeze(0))
            elif isinstance(base, IndexedLinear):
                holder.register_buffer("weight", base.weight.detach().clone())
                holder.register_buffer("bias", base.bias.detach().clone())
            else:
                raise TypeError(f"LoopLoRA cannot mirror a {type(base).__name__} base")
            self.bases.append(holder)
        first = layers[0].base
        self.index = first.clusters.tolist() if isinstance(first, IndexedLinear) else [0] * self.n_agents
        self.adapters = nn.ModuleList()  # per agent: [A_1, B_1, A_2, B_2, ...]
        for i in range(self.n_agents):
            self.adapters.append(nn.ParameterList(
                nn.Parameter(t[i].detach().clone()) for m in layers for t in (m.lora_A, m.lora_B)))

    def agent_forward(self, i, h):
        c, params = self.index[i], self.adapters[i]
        last = len(self.bases) - 1
        for layer, base in enumerate(self.bases):
            a, b = params[2 * layer], params[2 * layer + 1]
            h = F.linear(h, base.weight[c], base.bias[c]) + self.scaling[layer] * F.linear(F.linear(h, a), b)
            if layer < last:
                h = torch.relu(h)
        return h


class LoopAdaPS(LoopBase):
    """AdaPS: the shared nn.Linear per agent, then agent i's cluster mask on hidden layers."""

    def __init__(self, net):
        super().__init__(net)
        layers = agent_layers(net)
        self.linears = nn.ModuleList()
        self.masks = []
        for m in layers:
            base = m.base if isinstance(m, MaskedLinear) else m
            self.linears.append(_copy_linear(base.weight, base.bias))
            self.masks.append(m.masks.clone() if isinstance(m, MaskedLinear) else None)
        first = layers[0]
        self.index = first.clusters.tolist()

    def agent_forward(self, i, h):
        c = self.index[i]
        last = len(self.linears) - 1
        for layer, (lin, mask) in enumerate(zip(self.linears, self.masks)):
            h = lin(h)
            if mask is not None:
                h = h * mask[c]
            if layer < last:
                h = torch.relu(h)
        return h


class LoopPrism(LoopBase):
    """Prism: shared ``U, s, V, b`` per layer, agent i's own mask logits;
    ``((x_i V) * (s * sigmoid(l_i))) U^T + b`` per agent and layer."""

    def __init__(self, net):
        super().__init__(net)
        layers = agent_layers(net)
        self.shared = nn.ModuleList()
        for m in layers:
            holder = nn.Module()
            for key in ("U", "V", "s", "bias"):
                setattr(holder, key, nn.Parameter(getattr(m, key).detach().clone()))
            self.shared.append(holder)
        self.logits = nn.ModuleList(
            nn.ParameterList(nn.Parameter(m.mask_logits[i].detach().clone()) for m in layers)
            for i in range(self.n_agents))

    def agent_forward(self, i, h):
        last = len(self.shared) - 1
        for layer, p in enumerate(self.shared):
            h = F.linear(F.linear(h, p.V.T) * (p.s * torch.sigmoid(self.logits[i][layer])), p.U, p.bias)
            if layer < last:
                h = torch.relu(h)
        return h


class LoopDiCo(LoopBase):
    """DiCo: the shared MLP, plus ``ratio`` times agent i's own deviation MLP, one call each per agent."""

    def __init__(self, net):
        super().__init__(net)
        self.shared, self.deviation, self.ratio = LoopMLP(net.shared), LoopMLP(net.deviation), float(net.ratio)

    def forward(self, x):
        return torch.stack([self.shared.agent_forward(i, self.shared.agent_input(x, i))
                            + self.ratio * self.deviation.agent_forward(i, x[..., i, :])
                            for i in range(self.n_agents)], dim=-2)


class LoopHyperMARL(LoopBase):
    """HyperMARL: per agent and layer, the shared hypernetwork generates agent i's weight and bias from
    its embedding row, then ``F.linear`` (the hypernetwork copied; one generation per agent per call)."""

    def __init__(self, net):
        super().__init__(net)
        self.layers = copy.deepcopy(nn.ModuleList(agent_layers(net)))  # the embedding stays shared among them

    def agent_forward(self, i, h):
        last = len(self.layers) - 1
        for layer, m in enumerate(self.layers):
            e = m.embedding()[i]
            z = e if m.trunk is None else torch.relu(m.trunk(e))
            h = F.linear(h, m.weight_head(z).view(m.out_features, m.in_features), m.bias_head(z))
            if layer < last:
                h = torch.relu(h)
        return h


class LoopKaleidoscope(LoopBase):
    """Kaleidoscope: shared ``W, b`` per layer, agent i's own threshold logits;
    ``F.linear(x_i, sign(W) * relu(|W| - sigmoid(s_i)), b)`` per agent and layer."""

    def __init__(self, net):
        super().__init__(net)
        layers = agent_layers(net)
        self.linears = nn.ModuleList(_copy_linear(m.weight, m.bias) for m in layers)
        self.logits = nn.ModuleList(
            nn.ParameterList(nn.Parameter(m.threshold_logits[i].detach().clone()) for m in layers)
            for i in range(self.n_agents))

    def agent_forward(self, i, h):
        last = len(self.linears) - 1
        for layer, lin in enumerate(self.linears):
            w = lin.weight
            h = F.linear(h, torch.sign(w) * torch.relu(w.abs() - torch.sigmoid(self.logits[i][layer])), lin.bias)
            if layer < last:
                h = torch.relu(h)
        return h


def loop_reference(net: nn.Module) -> LoopBase:
    """The per-agent loop that computes what ``net`` computes, chosen by the parametrisation of its
    layers: LoRA adapters, AdaPS unit masks, Prism spectra, a shared trunk with per-agent heads (MTL),
    or one kind of plain weight throughout (PS, NPS, SePS)."""
    if isinstance(net, DiCoNetwork):  # two MLPs, each a plain PS / NPS one
        return LoopDiCo(net)
    layers = agent_layers(net)
    *trunk, head = layers
    if any(isinstance(m, LowRankLinear) for m in layers):
        loop = LoopLoRA
    elif any(isinstance(m, MaskedLinear) for m in layers):
        loop = LoopAdaPS
    elif any(isinstance(m, SpectralLinear) for m in layers):
        loop = LoopPrism
    elif all(isinstance(m, GeneratedLinear) for m in layers):
        loop = LoopHyperMARL
    elif all(isinstance(m, ThresholdedLinear) for m in layers):
        loop = LoopKaleidoscope
    elif trunk and all(type(m) is SharedLinear for m in trunk) and type(head) is StackedLinear:
        loop = LoopMTL
    elif len({type(m) for m in layers}) == 1 and type(head) in (SharedLinear, StackedLinear, IndexedLinear):
        loop = LoopMLP
    else:
        raise TypeError(f"no per-agent loop reference in tools/bench_loops.py mirrors the layers "
                        f"{[type(m).__name__ for m in layers]} of a {getattr(net, 'strategy_name', '?')} network")
    return loop(net)


#: registry name -> a builder of its loop reference: every registered strategy, read from the registry
LOOP_REFERENCES: dict[str, Callable[[nn.Module], LoopBase]] = {name: loop_reference for name in STRATEGIES}
