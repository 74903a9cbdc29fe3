"""SePS: selective parameter sharing (Christianos et al., 2021). Agents are grouped into K clusters;
each cluster has its own network, and agent i uses the parameters of ``clusters[i]``, gathered per
agent so that all clusters run in one ``bmm``.

``clusters`` is the agent -> cluster assignment (``[0, 0, 1, 1]``), given or learnt by the identity
VAE and k-means at the start of the phase (:mod:`components.strategies.clustered`). With one cluster
SePS is PS; with one cluster per agent it is NPS. The official SePS feeds no agent id
(``append_id=False``); after a PS phase the network keeps the PS input (with the id) so the copied
weights fit.

``cluster_init`` says how cluster networks start after a PS phase: ``pretrained`` (default: every
cluster from the shared weights, so K = 1 equals PS and outputs are unchanged at the switch),
``first`` (the official code: cluster 0 keeps the pretrained weights, the others start fresh) or
``fresh`` (the LoRASA re-implementation: all fresh).
"""

from __future__ import annotations

from dataclasses import dataclass

from marlshare.components.layers import IndexedLinear
from marlshare.components.vectors import IndexedVector
from marlshare.components.strategies.base import Strategy, _agent_modules
from marlshare.components.strategies.clustered import Clustered

CLUSTER_INITS = ("pretrained", "first", "fresh")


@dataclass
class SePS(Clustered, Strategy):
    name = "seps"
    shared = "every weight within a cluster (one network per cluster)"
    agent_specific = "nothing beyond the agent's cluster"
    predecessors = ("ps",)
    successor = "seps_lora"

    cluster_init: str = "pretrained"

    def validate(self):
        super().validate()
        if self.cluster_init not in CLUSTER_INITS:
            raise ValueError(f"{self.name}: cluster_init must be one of {list(CLUSTER_INITS)}, "
                             f"got cluster_init={self.cluster_init!r}")

    def layer(self, role, n_agents, d_in, d_out):
        return IndexedLinear(self.clusters, d_in, d_out, role=role)

    def vector(self, role, n_agents, features):
        return IndexedVector(self.clusters, features, role=role)

    def adopt(self, previous, net):
        if type(previous) is type(self):
            return net
        self.check_predecessor(previous)
        if self.cluster_init == "fresh":
            return Strategy.make_network(self, **net.build_kwargs, append_id=self.append_id)
        new = super().adopt(previous, net)
        if self.cluster_init == "first":  # clusters 1..K-1 take a fresh initialisation
            fresh = Strategy.make_network(self, **{**net.build_kwargs, "append_id": net.append_id})
            for target, source in zip(_agent_modules(new), _agent_modules(fresh), strict=True):
                for name, p in target.named_parameters(recurse=False):
                    p.data[1:] = getattr(source, name).data[1:]
        return new
