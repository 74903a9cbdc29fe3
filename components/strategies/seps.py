"""SePS: selective parameter sharing (Christianos et al., 2021). Agents are grouped into K clusters;
each cluster has its own network, and agent i uses the parameters of ``clusters[i]``, gathered per
agent so that all clusters run in one ``bmm``.

``clusters`` is the agent -> cluster assignment (``[0, 0, 1, 1]``). With one cluster SePS is PS;
with one cluster per agent it is NPS. Newly built cluster networks are independently initialised;
starting them from a pretrained shared network is a transform (see ``components.transforms``).
The official SePS feeds no agent id (``append_id=False``, a setting).
"""

from __future__ import annotations

from dataclasses import dataclass

from components.layers import IndexedLinear, IndexedVector
from components.strategies.base import Strategy, check_clusters


@dataclass
class SePS(Strategy):
    name = "seps"
    shared = "every weight within a cluster (one network per cluster)"
    agent_specific = "nothing beyond the agent's cluster"

    clusters: list[int] | None = None

    def validate(self):
        if self.clusters is not None:
            check_clusters(self.name, self.clusters)
            self.clusters = list(self.clusters)

    def check_agents(self, n_agents):
        check_clusters(self.name, self.clusters, n_agents)

    def layer(self, role, n_agents, d_in, d_out):
        return IndexedLinear(self.clusters, d_in, d_out, role=role)

    def vector(self, role, n_agents, features):
        return IndexedVector(self.clusters, features, role=role)
