"""The strategy base class: a strategy is a choice of parametrisation for each layer of a network.

A subclass says which :class:`~components.layers.AgentLinear` each layer role gets (``layer``) and
which :class:`~components.layers.AgentVector` a state-independent log-std gets (``vector``); the base
class builds MLPs and GRU actors from those choices. Optional extras: ``aux_loss`` (added to the actor
loss, e.g. Prism's regularisers) and ``sharing`` (a plain-words account of what is shared).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from torch import nn

from components.layers import AgentLinear, AgentVector, SharedLinear, SharedVector
from components.networks import AgentGRUActor, AgentMLP


@dataclass
class Strategy:
    """Base class. Subclasses are dataclasses whose fields are the strategy's hyperparameters."""

    name: ClassVar[str] = ""
    #: which parameters are shared by all agents and which are agent-specific, in words
    shared: ClassVar[str] = ""
    agent_specific: ClassVar[str] = ""

    append_id: bool = False

    def __post_init__(self):
        if not isinstance(self.append_id, bool):
            raise ValueError(f"{self.name}: append_id must be True or False, got append_id={self.append_id!r}")
        self.validate()

    # --- what subclasses choose -------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming any bad hyperparameter value and the valid range."""

    def check_agents(self, n_agents: int) -> None:
        """Raise ValueError if this strategy cannot serve ``n_agents`` agents (e.g. cluster list length)."""

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

    # --- shared machinery -------------------------------------------------------------------------
    def layer_factory(self, n_agents: int):
        return lambda role, d_in, d_out: self.layer(role, n_agents, d_in, d_out)

    def vector_factory(self, n_agents: int):
        return lambda role, features: self.vector(role, n_agents, features)

    def make_network(self, n_agents: int, in_features: int, out_features: int,
                     hidden: Sequence[int] = (64, 64), recurrent: bool = False, head: str = "linear",
                     log_std: str = "auto", log_std_init: float = 0.0, activation: str = "relu",
                     gru_hidden: int | None = None, append_id: bool | None = None) -> nn.Module:
        """Build this strategy's network: ``x [*batch, n_agents, in_features] -> [*batch, n_agents, out]``.

        ``recurrent=True`` gives the GRU actor (``forward(x, hidden) -> (y, hidden')``); ``head`` is
        ``"linear"`` (``"logits"`` alias) or ``"normal"`` (``(loc, scale)``); ``append_id`` overrides
        the strategy's default for appending one-hot agent ids to the input.
        """
        self.check_agents(int(n_agents))
        cls = AgentGRUActor if recurrent else AgentMLP
        kwargs = dict(gru_hidden=gru_hidden) if recurrent else {}
        net = cls(int(n_agents), int(in_features), int(out_features), tuple(hidden),
                  layer=self.layer_factory(int(n_agents)), vector=self.vector_factory(int(n_agents)),
                  append_id=self.append_id if append_id is None else bool(append_id), head=head,
                  log_std=log_std, log_std_init=log_std_init, activation=activation, **kwargs)
        net.strategy_name = self.name
        return net

    def hyperparameters(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        return f"{self.name}: shared = {self.shared}; agent-specific = {self.agent_specific}"


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


def check_rank_alpha(name: str, rank, alpha) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"{name}: rank must be a positive integer, got rank={rank!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"{name}: alpha must be a positive number, got alpha={alpha!r}")
