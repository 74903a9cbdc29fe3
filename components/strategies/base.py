"""The strategy base class: a strategy is a choice of parametrisation for each layer of a network,
plus its life cycle in a schedule of phases.

A subclass says which :class:`~components.layers.AgentLinear` each layer role gets (``layer``) and
which :class:`~components.layers.AgentVector` a state-independent log-std gets (``vector``); the base
class builds MLPs and GRU actors from those choices.

The life cycle, declared on the class so the trainer never branches on a strategy name:

- ``needs_clusters`` (class flag): the strategy maps agents to clusters; ``clusters`` is then a
  hyperparameter that a fit fills in when not given;
- ``needs_fit()`` / ``fit(data)``: learn from trajectories of the current policy at the start of the
  strategy's phase (SePS, SePS+LoRA and AdaPS cluster agents); ``fit_frames`` says how much data;
- ``predecessors`` (class tuple) and ``adopt(previous, net)``: start this phase's network from the
  previous phase's, outputs unchanged where the maths allows (``exact_adopt``); any other pair is
  refused with the valid predecessors named;
- ``successor`` (class attribute): the default next phase of the ``two_phase`` preset;
- ``aux_loss(net)``: added to the actor loss (Prism); ``trainable(net)``: the parameters that train.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from torch import nn

from marlshare.components.layers import AgentLinear, SharedLinear
from marlshare.components.vectors import AgentVector, SharedVector
from marlshare.components.networks import AgentGRUActor, AgentMLP


@dataclass
class Strategy:
    """Base class. Subclasses are dataclasses whose fields are the strategy's hyperparameters."""

    name: ClassVar[str] = ""
    #: which parameters are shared by all agents and which are agent-specific, in words
    shared: ClassVar[str] = ""
    agent_specific: ClassVar[str] = ""
    #: declared needs and life cycle (see the module docstring)
    needs_clusters: ClassVar[bool] = False
    predecessors: ClassVar[tuple[str, ...]] = ()
    successor: ClassVar[str | None] = None
    exact_adopt: ClassVar[bool] = True  # adopt() keeps the previous network's outputs exactly

    append_id: bool = False

    def __post_init__(self):
        if not isinstance(self.append_id, bool):
            raise ValueError(f"{self.name}: append_id must be True or False, got append_id={self.append_id!r}")
        self.validate()

    # --- what subclasses choose -------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming any bad hyperparameter value and the valid range."""

    def check_agents(self, n_agents: int) -> None:
        """Raise ValueError if this strategy cannot build a network for ``n_agents`` agents now."""

    def check_config(self, n_agents: int) -> None:
        """Raise ValueError, before any training, if this strategy can never serve ``n_agents`` agents
        in a run (a fit that cannot work, a cluster list of the wrong length)."""
        self.check_agents(n_agents)

    def check_network(self, layers: Sequence[tuple[str, int, int]]) -> None:
        """Raise ValueError, before any training, if a hyperparameter does not suit the network: ``layers``
        are ``(role, d_in, d_out)`` of the actor's layers whose widths are known (before the env: the
        hidden ones; components/config_checks.py: actor_layers). E.g. a LoRA rank above a layer's width."""

    def layer(self, role: str, n_agents: int, d_in: int, d_out: int) -> AgentLinear:
        return SharedLinear(n_agents, d_in, d_out, role=role)

    def vector(self, role: str, n_agents: int, features: int) -> AgentVector:
        return SharedVector(n_agents, features, role=role)

    def aux_loss(self, net: nn.Module) -> torch.Tensor:
        """Auxiliary loss added to the actor loss (zero for most strategies)."""
        return torch.zeros(())

    def aux_terms(self, net: nn.Module) -> dict[str, torch.Tensor]:
        """The auxiliary loss's terms, for logging."""
        return {}

    def trainable(self, net: nn.Module) -> list[nn.Parameter]:
        """The parameters this strategy trains (frozen backbones excluded)."""
        return [p for p in net.parameters() if p.requires_grad]

    def optimiser_groups(self, net: nn.Module, params: list[nn.Parameter]) -> list[dict]:
        """``params`` (:meth:`trainable`'s) as Adam parameter groups; a group may set its own ``eps``
        (Kaleidoscope's thresholds). Default: one group with the algorithm's settings."""
        return [{"params": params}]

    # --- life cycle -------------------------------------------------------------------------------
    def needs_fit(self) -> bool:
        """True when the strategy must see trajectories (``fit``) before it can build its network."""
        return False

    def fit(self, data, seed: int = 0) -> dict:
        """Learn from per-agent transitions ``(obs, action, next_obs, reward)``, each ``[M, N, *]``, by
        setting hyperparameter fields (so checkpoints keep what was learnt); returns a report for the
        logs and the summary."""
        return {}

    def inherit(self, previous: "Strategy") -> None:
        """Take over what the previous phase's strategy learned (e.g. its clusters) before ``fit``."""

    def initial_policy(self) -> "Strategy":
        """The strategy whose freshly built network collects ``fit`` data when this strategy starts a run
        (it cannot act before its fit)."""
        return self

    def report(self, net: nn.Module) -> dict:
        """Facts about a built network for the logs and the summary (e.g. AdaPS's kept fractions)."""
        return {}

    def after_update(self, net: nn.Module, batch, frames: int) -> dict:
        """Called once per iteration after the update with the actor network, the iteration's batch
        (``[*batch, n_agents, ...]`` TensorDict) and the frames so far: for state a strategy keeps
        outside the gradient (e.g. a soft-updated diversity estimate, periodic resets). Returns numbers
        for the metrics row (keys prefixed by the strategy's name)."""
        return {}


    def adopt(self, previous: "Strategy", net: nn.Module) -> nn.Module:
        """This phase's network, started from ``net`` trained under ``previous``.

        Same strategy: the network continues as it is. Otherwise (the default, for predecessors
        whose layers are shared): build this strategy's network with the same architecture and load
        every shared layer into it (``load_shared``), so each agent starts from the shared policy.
        """
        if type(previous) is type(self):
            return net
        self.check_predecessor(previous)
        new = self.make_network(**{**net.build_kwargs, "append_id": net.append_id})
        load_shared_network(net, new)
        return new

    def check_predecessor(self, previous: "Strategy") -> None:
        if previous.name not in self.predecessors and type(previous) is not type(self):
            # the valid predecessors are this class's declaration (the schedule planner, which has the
            # registry, names the valid successors instead)
            raise ValueError(f"{previous.name} -> {self.name} is not a valid phase chain: {self.name} can follow "
                             f"{[self.name, *self.predecessors]}")

    # --- shared machinery -------------------------------------------------------------------------
    def layer_factory(self, n_agents: int):
        return lambda role, d_in, d_out: self.layer(role, n_agents, d_in, d_out)

    def vector_factory(self, n_agents: int):
        return lambda role, features: self.vector(role, n_agents, features)

    def make_network(self, n_agents: int, in_features: int, out_features: int,
                     hidden: Sequence[int] = (64, 64), recurrent: bool = False, head: str = "linear",
                     log_std: str = "auto", log_std_init: float = 0.0, activation: str = "relu",
                     gru_hidden: int | None = None, append_id: bool | None = None, std_mapping: str = "exp",
                     head_gain: float | None = None, layer_norm: bool = False) -> nn.Module:
        """Build this strategy's network: ``x [*batch, n_agents, in_features] -> [*batch, n_agents, out]``.

        ``recurrent=True`` gives the GRU actor (``forward(x, hidden) -> (y, hidden')``); ``head`` is
        ``"linear"`` (``"logits"`` alias) or ``"normal"`` (``(loc, scale)``); ``append_id`` overrides
        the strategy's default for appending one-hot agent ids to the input; ``std_mapping``,
        ``head_gain`` and ``layer_norm`` are the reference MAPPO options of
        :mod:`components.networks`.
        """
        self.check_agents(int(n_agents))
        cls = AgentGRUActor if recurrent else AgentMLP
        kwargs = dict(gru_hidden=gru_hidden) if recurrent else {}
        net = cls(int(n_agents), int(in_features), int(out_features), tuple(hidden),
                  layer=self.layer_factory(int(n_agents)), vector=self.vector_factory(int(n_agents)),
                  append_id=self.append_id if append_id is None else bool(append_id), head=head,
                  log_std=log_std, log_std_init=log_std_init, activation=activation, std_mapping=std_mapping,
                  head_gain=head_gain, layer_norm=layer_norm, **kwargs)
        net.strategy_name = self.name
        # how to rebuild this architecture under another strategy (adopt)
        net.build_kwargs = dict(n_agents=int(n_agents), in_features=int(in_features), out_features=int(out_features),
                                hidden=tuple(hidden), recurrent=recurrent, head=head, log_std=log_std,
                                log_std_init=log_std_init, activation=activation, gru_hidden=gru_hidden,
                                std_mapping=std_mapping, layer_norm=layer_norm)
        return net

    def hyperparameters(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        return f"{self.name}: shared = {self.shared}; agent-specific = {self.agent_specific}"


def load_shared_network(source: nn.Module, target: nn.Module) -> None:
    """Copy every shared layer and vector of ``source`` into the matching one of ``target`` (same
    architecture, layers in the same order) with ``load_shared``."""
    pairs = list(zip(_agent_modules(source), _agent_modules(target), strict=True))
    for src, dst in pairs:
        if isinstance(src, SharedLinear):
            dst.load_shared(src.weight.detach(), None if src.bias is None else src.bias.detach())
        elif isinstance(src, SharedVector):
            dst.load_shared(src.value.detach())
        else:
            raise ValueError(f"cannot start a new strategy from a {type(src).__name__} layer: only shared layers")


def _agent_modules(net: nn.Module) -> list[nn.Module]:
    """The outermost per-agent layers and vectors, in depth-first order."""
    found = []
    for child in net.children():
        if isinstance(child, (AgentLinear, AgentVector)):
            found.append(child)
        else:
            found += _agent_modules(child)
    return found


def check_clusters(name: str, clusters, n_agents: int | None = None) -> None:
    """Validate an agent -> cluster list: labels 0..K-1, all used, one per agent."""
    if clusters is None:
        raise ValueError(
            f"{name} needs an agent -> cluster assignment: pass clusters=[...] with one label per agent "
            f"(e.g. clusters=[0, 0, 1, 1])"
        )
    labels = list(clusters)
    if not labels or any(not isinstance(c, int) or isinstance(c, bool) for c in labels):
        raise ValueError(f"{name}: clusters must be a non-empty list of integer labels, got clusters={clusters!r}")
    k = max(labels) + 1
    if min(labels) < 0 or sorted(set(labels)) != list(range(k)):
        raise ValueError(f"{name}: cluster labels must be 0..K-1 with every label used, got clusters={labels}")
    if n_agents is not None and len(labels) != n_agents:
        raise ValueError(f"{name}: clusters has {len(labels)} labels but the network has n_agents={n_agents}")
