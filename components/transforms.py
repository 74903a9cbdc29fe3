"""Network transforms: the phase switch of the two-phase schedule and inference-time merging.

- :func:`to_lora` turns a trained PS (or SePS, or any) network into its LoRA counterpart: every
  existing parameter frozen, zero-initialised per-agent adapters added, outputs unchanged (the LoRA
  strategies' ``adopt`` applies it at a phase switch).
- :func:`merge_adapters` folds the adapters into per-agent dense weights (LoRASA Algorithm 3);
  merged outputs equal unmerged ones.

Transforms return a new network and leave their input untouched.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from marlshare.components.layers import AgentLinear, LowRankLinear, StackedLinear
from marlshare.components.vectors import AgentVector, DeltaVector, StackedVector
from marlshare.components.networks import ROLES

#: what ``to_lora(layers=...)`` can adapt: the layer roles of the networks, plus the log-std vector
LORA_TARGETS = ROLES + ("log_std",)


def check_lora_layers(layers) -> tuple[str, ...]:
    """``"all"`` or a list of names from ``LORA_TARGETS``; returns the tuple of targets."""
    if layers == "all":
        return LORA_TARGETS
    names = [layers] if isinstance(layers, str) else list(layers)
    bad = [name for name in names if name not in LORA_TARGETS]
    if bad or not names:
        raise ValueError(f"LoRA layers must be 'all' or a non-empty list from {list(LORA_TARGETS)}, got layers={layers!r}")
    return tuple(names)


def check_rank_alpha(name: str, rank, alpha) -> None:
    """A LoRA rank (a positive integer) and alpha (a positive number); ``name`` says whose."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"{name}: rank must be a positive integer, got rank={rank!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"{name}: alpha must be a positive number, got alpha={alpha!r}")


def _replace_children(module: nn.Module, linear_fn, vector_fn) -> None:
    """Replace the outermost AgentLinear / AgentVector modules below ``module`` in place."""
    for name, child in module.named_children():
        if isinstance(child, AgentLinear):
            setattr(module, name, linear_fn(child))
        elif isinstance(child, AgentVector):
            setattr(module, name, vector_fn(child))
        else:
            _replace_children(child, linear_fn, vector_fn)


def to_lora(net: nn.Module, rank: int = 8, alpha: float = 8.0, layers="all", init: str = "b_zero",
            train_bias: bool = False) -> nn.Module:
    """Freeze ``net`` and add a per-agent rank-``rank`` adapter to each layer whose role is in ``layers``.

    Returns a new network whose outputs equal ``net``'s (the adapters start at zero) and whose only
    trainable parameters are the adapters (and the per-agent log-std delta when ``"log_std"`` is
    adapted, and bias deltas when ``train_bias``).
    """
    check_rank_alpha("to_lora", rank, alpha)
    targets = check_lora_layers(layers)
    if any(isinstance(m, LowRankLinear) for m in net.modules()):
        raise ValueError("to_lora: the network already has LoRA adapters; merge_adapters it first to adapt again")
    new = copy.deepcopy(net).requires_grad_(False)
    _replace_children(
        new,
        lambda lin: LowRankLinear(lin, rank, alpha, init, train_bias) if lin.role in targets else lin,
        lambda vec: DeltaVector(vec) if vec.role in targets else vec,
    )
    return new


def merge_adapters(net: nn.Module) -> nn.Module:
    """Fold every adapter into per-agent dense weights (LoRASA Algorithm 3), for inference.

    Each ``LowRankLinear`` becomes a ``StackedLinear`` with ``W_i = base_i + (alpha/r) B_i A_i`` and each
    ``DeltaVector`` a ``StackedVector``; the result computes what ``net`` computes, with no extra
    matmuls. An appended one-hot agent id is folded into the input layer's per-agent bias, so the
    merged network's input layer is as narrow as NPS's. Merged parameters are frozen (it is an
    inference network).
    """
    new = copy.deepcopy(net)

    def merge_linear(lin):
        if not isinstance(lin, LowRankLinear):
            return lin
        weight, bias = lin.agent_weight()
        merged = StackedLinear(lin.n_agents, lin.in_features, lin.out_features, bias=bias is not None, role=lin.role)
        with torch.no_grad():
            merged.weight.copy_(weight)
            if bias is not None:
                merged.bias.copy_(bias)
        return merged.requires_grad_(False)

    def merge_vector(vec):
        if not isinstance(vec, DeltaVector):
            return vec
        merged = StackedVector(vec.n_agents, vec.features, role=vec.role)
        with torch.no_grad():
            merged.value.copy_(vec())
        return merged.requires_grad_(False)

    _replace_children(new, merge_linear, merge_vector)
    if getattr(new, "append_id", False):
        _fold_agent_id(new)
    return new


def _first_agent_linear(module: nn.Module):
    """(parent, attribute name) of the first per-agent layer in depth-first order: the input layer."""
    for name, child in module.named_children():
        if isinstance(child, AgentLinear):
            return module, name
        found = _first_agent_linear(child)
        if found is not None:
            return found
    return None


def _fold_agent_id(net: nn.Module) -> None:
    """Replace "append the one-hot id, then ``W_i``" by "``W_i`` without the id columns, plus the id
    column of agent i as a bias": the same function, on an input N features narrower (in place)."""
    parent, name = _first_agent_linear(net)
    layer = getattr(parent, name)
    n = layer.n_agents
    weight, bias = layer.agent_weight()  # [N, out, in + N]
    d_in = layer.in_features - n
    id_bias = torch.diagonal(weight[:, :, d_in:], dim1=0, dim2=2).T  # column d_in + i of agent i: [N, out]
    folded = StackedLinear(n, d_in, layer.out_features, role=layer.role)
    with torch.no_grad():
        folded.weight.copy_(weight[:, :, :d_in])
        folded.bias.copy_(id_bias if bias is None else bias + id_bias)
    setattr(parent, name, folded.requires_grad_(False))
    net.append_id = False
