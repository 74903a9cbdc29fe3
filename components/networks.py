"""Per-agent networks built from :mod:`components.layers`: an MLP and a GRU actor.

Both map ``x: [*batch, N, in_features]`` to ``[*batch, N, out_features]`` with every agent in one
batched call. A strategy supplies the parametrisation of each layer through two factories:

- ``layer(role, d_in, d_out) -> AgentLinear`` with role in ``ROLES``;
- ``vector(role, d) -> AgentVector`` for a state-independent log-std.

Heads (``head=``): ``"linear"`` (values, Q-values, or discrete-action ``logits``; ``"logits"`` is an
alias) returns one tensor; ``"normal"`` returns ``(loc, scale)`` for continuous actions, with the
log-std either a state-independent parameter (``log_std="shared"``: one vector for all agents,
``"agent"``: one per agent, ``"auto"``: what the strategy prescribes) or state-dependent
(``log_std="state"``: the head also outputs it).

:func:`count_parameters` counts a built network's parameters by how they are shared (the tags each
layer and vector sets in ``param_sharing``): the summary's and the tables' parameter counts.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import nn

from marlshare.components.layers import AGENT, CLUSTER, AgentLinear
from marlshare.components.vectors import AgentVector, SharedVector, StackedVector

ROLES = ("hidden", "gru_ih", "gru_hh", "post", "head")
HEADS = ("linear", "logits", "normal")
LOG_STD_MODES = ("auto", "shared", "agent", "state")
# scale = exp(clamped log_std) | sigmoid(p) * 0.5 (the LoRASA / HARL code) | softplus(p + b) + 0.01 with
# b such that p = 0 gives scale 1 (BenchMARL's default "biased_softplus_1.0", TensorDict's mapping)
STD_MAPPINGS = ("exp", "sigmoid", "biased_softplus")
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}

LayerFactory = Callable[[str, int, int], AgentLinear]
VectorFactory = Callable[[str, int], AgentVector]

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class _Head(nn.Module):
    """The output layer(s): ``h [*batch, N, d] -> y`` or ``(loc, scale)``."""

    def __init__(self, n_agents, d_in, out_features, head, log_std, log_std_init, layer, vector,
                 std_mapping="exp", head_gain=None):
        super().__init__()
        if std_mapping not in STD_MAPPINGS:
            raise ValueError(f"std_mapping must be one of {list(STD_MAPPINGS)}, got std_mapping={std_mapping!r}")
        if head_gain is not None and not head_gain > 0:
            raise ValueError(f"head_gain must be > 0 or None, got head_gain={head_gain!r}")
        self.std_mapping = std_mapping
        if std_mapping == "biased_softplus":
            from tensordict.nn.utils import mappings

            self.softplus = mappings("biased_softplus_1.0")
        if head not in HEADS:
            raise ValueError(f"head must be one of {list(HEADS)}, got head={head!r}")
        if log_std not in LOG_STD_MODES:
            raise ValueError(f"log_std must be one of {list(LOG_STD_MODES)}, got log_std={log_std!r}")
        self.kind = "normal" if head == "normal" else "linear"
        self.state_log_std = self.kind == "normal" and log_std == "state"
        self.out_features = out_features
        self.layer = layer("head", d_in, out_features * (2 if self.state_log_std else 1))
        if head_gain is not None:
            orthogonal_head_(self.layer, head_gain)
        self.log_std = None
        if self.kind == "normal" and not self.state_log_std:
            if log_std == "auto":
                self.log_std = vector("log_std", out_features)
            elif log_std == "shared":
                self.log_std = SharedVector(n_agents, out_features)
            else:
                self.log_std = StackedVector(n_agents, out_features)
            with torch.no_grad():
                for p in self.log_std.parameters():
                    p.fill_(0.0 if log_std_init is None else log_std_init)
        elif self.state_log_std and log_std_init is not None:  # None: keep the layer's drawn bias (BenchMARL)
            with torch.no_grad():  # start the state-dependent log-std at log_std_init
                bias = getattr(self.layer, "bias", None)
                if isinstance(bias, torch.Tensor):
                    bias[..., out_features:] = log_std_init

    def forward(self, h):
        y = self.layer(h)
        if self.kind == "linear":
            return y
        if self.state_log_std:
            loc, log_std = y.chunk(2, dim=-1)
        else:
            loc, log_std = y, self.log_std().expand_as(y)
        if self.std_mapping == "sigmoid":  # the LoRASA / HARL code's DiagGaussian2: sigmoid(p / 1) * 0.5
            return loc, torch.sigmoid(log_std) * 0.5
        if self.std_mapping == "biased_softplus":
            return loc, self.softplus(log_std)
        return loc, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()


def orthogonal_head_(layer, gain: float) -> None:
    """The reference MAPPO code's action-head initialisation: orthogonal weights with ``gain``, zero
    bias. Each agent's (or cluster's) slice of a stacked weight is its own orthogonal matrix; other
    layer types (Prism's spectral layer) take one shared orthogonal matrix through ``load_shared``."""
    if hasattr(layer, "orthogonal_init_"):  # a layer that knows its own per-agent init (HyperMARL's)
        layer.orthogonal_init_(gain)
        return
    weight = getattr(layer, "weight", None)
    with torch.no_grad():
        if isinstance(weight, torch.Tensor) and weight.dim() in (2, 3):
            for w in (weight,) if weight.dim() == 2 else weight:
                nn.init.orthogonal_(w, gain=gain)
            if getattr(layer, "bias", None) is not None:
                layer.bias.zero_()
        else:
            w = torch.empty(layer.out_features, layer.in_features)
            nn.init.orthogonal_(w, gain=gain)
            layer.load_shared(w, torch.zeros(layer.out_features))


def _trunk(n_agents, d_in, hidden, layer, activation, layer_norm=False) -> tuple[nn.Sequential, int]:
    mods = []
    for width in hidden:
        mods += [layer("hidden", d_in, width), ACTIVATIONS[activation]()]
        if layer_norm:  # the reference MLP layer: Linear -> activation -> LayerNorm
            mods.append(_norm(width))
        d_in = width
    return nn.Sequential(*mods), d_in


def _run(trunk: nn.Sequential, x: torch.Tensor, with_id: bool) -> torch.Tensor:
    """``trunk(x)``, with the one-hot agent id appended to ``x`` when ``with_id``: the input layer takes
    it through ``forward_with_id`` (for a shared layer, a per-agent bias: no ``[*, N, in + N]`` input).
    An MLP without hidden layers appends it for the head, which ``_Head`` applies itself."""
    if not with_id:
        return trunk(x)
    if len(trunk) == 0:
        eye = torch.eye(x.shape[-2], dtype=x.dtype, device=x.device)
        return torch.cat([x, eye.expand(*x.shape[:-1], -1)], dim=-1)
    h = trunk[0].forward_with_id(x)
    for module in list(trunk)[1:]:
        h = module(h)
    return h


def _norm(width: int) -> nn.LayerNorm:
    """``layer_norm=True``: the reference code's LayerNorm, here without the elementwise affine (it
    starts as the identity there): no parameters, so no strategy has to decide how to share them."""
    return nn.LayerNorm(width, elementwise_affine=False)


def _check_common(n_agents, in_features, out_features, hidden, activation):
    for name, value in (("n_agents", n_agents), ("in_features", in_features), ("out_features", out_features)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
    if any(int(w) != w or w < 1 for w in hidden):
        raise ValueError(f"hidden must be a sequence of positive widths, got hidden={tuple(hidden)!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got activation={activation!r}")


class AgentMLP(nn.Module):
    """Per-agent MLP: ``x [*batch, N, in] -> [*batch, N, out]`` (or ``(loc, scale)``).

    Layers: optional agent-id append, ``len(hidden)`` hidden layers (role "hidden") with
    ``activation``, then the head (role "head").
    """

    recurrent = False

    def __init__(self, n_agents: int, in_features: int, out_features: int, hidden: Sequence[int],
                 layer: LayerFactory, vector: VectorFactory, append_id: bool = False, head: str = "linear",
                 log_std: str = "auto", log_std_init: Optional[float] = 0.0, activation: str = "relu",
                 std_mapping: str = "exp", head_gain: float | None = None, layer_norm: bool = False):
        super().__init__()
        _check_common(n_agents, in_features, out_features, hidden, activation)
        self.n_agents, self.in_features, self.out_features = n_agents, in_features, out_features
        self.input_norm = _norm(in_features) if layer_norm else None  # the reference's feature normalisation
        self.append_id = bool(append_id)  # the input layer takes the one-hot id (``_run``)
        d_in = in_features + (n_agents if append_id else 0)
        self.trunk, d = _trunk(n_agents, d_in, hidden, layer, activation, layer_norm)
        self.head = _Head(n_agents, d, out_features, head, log_std, log_std_init, layer, vector, std_mapping,
                          head_gain)

    def forward(self, x):
        if x.shape[-2] != self.n_agents or x.shape[-1] != self.in_features:
            raise ValueError(f"expected input [*batch, {self.n_agents}, {self.in_features}], got {tuple(x.shape)}")
        if self.input_norm is not None:
            x = self.input_norm(x)
        return self.head(_run(self.trunk, x, self.append_id))


class AgentGRUCell(nn.Module):
    """A GRU cell whose input-to-hidden and hidden-to-hidden projections are per-agent layers
    (roles "gru_ih" and "gru_hh"), so every parametrisation, LoRA included, reaches them.

    ``x [*batch, N, in], h [*batch, N, H] -> h' [*batch, N, H]``; same gate equations as
    ``torch.nn.GRUCell`` (reset gate applied to the hidden-to-hidden candidate term).
    """

    def __init__(self, in_features: int, hidden_size: int, layer: LayerFactory):
        super().__init__()
        self.hidden_size = hidden_size
        self.ih = layer("gru_ih", in_features, 3 * hidden_size)
        self.hh = layer("gru_hh", hidden_size, 3 * hidden_size)

    def forward(self, x, h):
        r_i, z_i, n_i = self.ih(x).chunk(3, dim=-1)
        r_h, z_h, n_h = self.hh(h).chunk(3, dim=-1)
        r = torch.sigmoid(r_i + r_h)
        z = torch.sigmoid(z_i + z_h)
        n = torch.tanh(n_i + r * n_h)
        return (1 - z) * n + z * h


class AgentGRUActor(nn.Module):
    """Recurrent per-agent actor (the LoRASA architecture): MLP encoder (role "hidden") -> GRU cell
    ("gru_ih", "gru_hh") -> one post-GRU layer ("post") -> head ("head").

    ``forward(x [*batch, N, in], hidden [*batch, N, H] or None) -> (*outputs, hidden')`` where
    ``outputs`` is ``y`` or ``(loc, scale)``. ``forward_sequence`` runs ``[T, *batch, N, in]`` with
    optional resets (a loop over time, never over agents).
    """

    recurrent = True

    def __init__(self, n_agents: int, in_features: int, out_features: int, hidden: Sequence[int],
                 layer: LayerFactory, vector: VectorFactory, append_id: bool = False, head: str = "linear",
                 log_std: str = "auto", log_std_init: Optional[float] = 0.0, activation: str = "relu",
                 gru_hidden: int | None = None, std_mapping: str = "exp", head_gain: float | None = None,
                 layer_norm: bool = False):
        super().__init__()
        _check_common(n_agents, in_features, out_features, hidden, activation)
        if not hidden:
            raise ValueError("the GRU actor needs at least one encoder layer: hidden must not be empty")
        self.n_agents, self.in_features, self.out_features = n_agents, in_features, out_features
        self.input_norm = _norm(in_features) if layer_norm else None
        self.append_id = bool(append_id)  # the input layer takes the one-hot id (``_run``)
        d_in = in_features + (n_agents if append_id else 0)
        self.encoder, d = _trunk(n_agents, d_in, hidden, layer, activation, layer_norm)
        self.hidden_size = int(gru_hidden or d)
        self.gru = AgentGRUCell(d, self.hidden_size, layer)
        self.gru_norm = _norm(self.hidden_size) if layer_norm else None  # on the GRU's output, not its state
        self.post = nn.Sequential(layer("post", self.hidden_size, self.hidden_size), ACTIVATIONS[activation]())
        self.head = _Head(n_agents, self.hidden_size, out_features, head, log_std, log_std_init, layer, vector,
                          std_mapping, head_gain)

    def initial_hidden(self, *batch: int, device=None) -> torch.Tensor:
        return torch.zeros(*batch, self.n_agents, self.hidden_size, device=device)

    def forward(self, x, hidden=None):
        if x.shape[-2] != self.n_agents or x.shape[-1] != self.in_features:
            raise ValueError(f"expected input [*batch, {self.n_agents}, {self.in_features}], got {tuple(x.shape)}")
        if hidden is None:
            hidden = x.new_zeros(*x.shape[:-1], self.hidden_size)
        if self.input_norm is not None:
            x = self.input_norm(x)
        hidden = self.gru(_run(self.encoder, x, self.append_id), hidden)
        out = self.head(self.post(hidden if self.gru_norm is None else self.gru_norm(hidden)))
        return (*out, hidden) if isinstance(out, tuple) else (out, hidden)

    def forward_sequence(self, x, hidden=None, reset=None):
        """``x [T, *batch, N, in]``, ``reset [T, *batch]`` bool (zero the hidden state before step t)
        -> outputs stacked over T, and the final hidden state."""
        outs = []
        for t in range(x.shape[0]):
            if reset is not None and hidden is not None:
                hidden = hidden * (~reset[t]).to(hidden.dtype)[..., None, None]
            *out, hidden = self.forward(x[t], hidden)
            outs.append(out)
        stacked = tuple(torch.stack(parts) for parts in zip(*outs))
        return (*stacked, hidden)


def count_parameters(net: nn.Module) -> dict[str, int]:
    """Parameter counts of a per-agent network.

    ``total``: every parameter; ``shared``: in tensors used by all agents; ``clustered``: in
    per-cluster tensors (all clusters together); ``per_agent``: agent-specific parameters of one
    agent; ``trainable``: with ``requires_grad``. ``total = shared + clustered + n_agents * per_agent``.
    """
    n_agents = int(getattr(net, "n_agents"))
    counts = dict(total=0, shared=0, clustered=0, agent=0, trainable=0)
    for module in net.modules():
        tags = getattr(module, "param_sharing", {})
        for name, p in module.named_parameters(recurse=False):
            kind = tags.get(name, "shared")
            counts["total"] += p.numel()
            counts["trainable"] += p.numel() if p.requires_grad else 0
            key = {AGENT: "agent", CLUSTER: "clustered"}.get(kind, "shared")
            counts[key] += p.numel()
    per_agent, rest = divmod(counts.pop("agent"), n_agents)
    assert rest == 0, "agent-specific tensors must have a leading agent axis"
    return dict(total=counts["total"], shared=counts["shared"], clustered=counts["clustered"],
                per_agent=per_agent, trainable=counts["trainable"])
