"""The cluster settings shared by SePS, SePS+LoRA and AdaPS: a mixin that declares the need for an
agent -> cluster map and learns it from trajectories (:mod:`components.clustering`) when it is not
given.

Hyperparameters (one home, here):

- ``clusters``: the agent -> cluster list; given by hand it overrides the fit;
- ``n_clusters``: K for k-means; ``None`` chooses K in ``[2, N-1]`` by ``k_selection``:
  ``silhouette`` (default, chosen by the cluster-recovery benchmark of docs/evidence.md),
  ``davies_bouldin`` (the SePS paper's original rule) or ``davies_bouldin_no_singletons``
  (see :mod:`components.clustering`);
- ``fit_ignore``: observation features the fit leaves out (indices, negative from the end, and
  ``"start:stop"`` ranges), for features that already name an agent's role and so leave the identity
  code nothing to learn, e.g. SMAX's unit-type bits (``tools.cluster_fit.smax_unit_type_features``
  lists them for a map); the policy still sees them;
- ``fit_frames``: environment frames of the current policy collected for the fit (the policy of
  the previous phase, or the initial shared policy in a single-phase run);
- ``vae_epochs``: passes of the identity VAE over those transitions (the SePS default: 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from marlshare.components.clustering import DEFAULT_SELECTION
from marlshare.components.strategies.base import check_clusters
from marlshare.components.strategies.ps import PS


@dataclass
class Clustered:
    needs_clusters: ClassVar[bool] = True

    clusters: list[int] | None = None
    n_clusters: int | None = None
    k_selection: str = DEFAULT_SELECTION
    fit_ignore: list | None = None
    fit_frames: int = 10_000
    vae_epochs: int = 10

    def validate(self):
        super().validate()
        if self.clusters is not None:
            check_clusters(self.name, self.clusters)
            self.clusters = list(self.clusters)
        if self.n_clusters is not None and (isinstance(self.n_clusters, bool) or not isinstance(self.n_clusters, int)
                                            or self.n_clusters < 1):
            raise ValueError(f"{self.name}: n_clusters must be a positive integer or None (choose K by "
                             f"k_selection={self.k_selection!r}), got n_clusters={self.n_clusters!r}")
        from marlshare.components.clustering import SELECTIONS

        if self.k_selection not in SELECTIONS:
            raise ValueError(f"{self.name}: k_selection must be one of {list(SELECTIONS)}, "
                             f"got k_selection={self.k_selection!r}")
        if self.fit_ignore is not None:
            if isinstance(self.fit_ignore, (str, int)):
                self.fit_ignore = [self.fit_ignore]
            bad = [x for x in self.fit_ignore if not (isinstance(x, int) and not isinstance(x, bool))
                   and not (isinstance(x, str) and ":" in x)]
            if bad:
                raise ValueError(f"{self.name}: fit_ignore takes feature indices and 'start:stop' ranges, "
                                 f"got {bad} in fit_ignore={self.fit_ignore!r}")
            self.fit_ignore = list(self.fit_ignore)
        for key in ("fit_frames", "vae_epochs"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{self.name}: {key} must be a positive integer, got {key}={value!r}")

    def check_agents(self, n_agents):
        if self.clusters is None:
            raise ValueError(f"{self.name} has no clusters yet: give clusters=[...] (one label per agent) or "
                             f"train it in a schedule, where the trainer fits them from trajectories")
        check_clusters(self.name, self.clusters, n_agents)
        if self.n_clusters is not None and max(self.clusters) + 1 != self.n_clusters:
            raise ValueError(f"{self.name}: clusters={self.clusters} has {max(self.clusters) + 1} clusters but "
                             f"n_clusters={self.n_clusters}")

    def check_config(self, n_agents: int) -> None:
        """Raise ValueError before any training when the fit cannot work for ``n_agents`` agents."""
        if self.clusters is not None:
            check_clusters(self.name, self.clusters, n_agents)
        elif self.n_clusters is None and n_agents < 3:
            raise ValueError(f"{self.name}: choosing K by a score needs K in [2, N-1], empty for "
                             f"N={n_agents} agents; set {self.name}'s n_clusters (1 or 2) or clusters=[...]")
        elif self.n_clusters is not None and self.n_clusters > n_agents:
            raise ValueError(f"{self.name}: n_clusters={self.n_clusters} exceeds the {n_agents} agents")

    def needs_fit(self) -> bool:
        return self.clusters is None

    def inherit(self, previous):
        if self.clusters is None and getattr(previous, "clusters", None) is not None:
            self.clusters = list(previous.clusters)

    def initial_policy(self):
        """SePS pretrains a shared policy; with no previous phase, the fit data come from a fresh one."""
        return PS(append_id=self.append_id)

    def fit(self, data, seed: int = 0) -> dict:
        from marlshare.components.clustering import VAESettings, fit_clusters

        result = fit_clusters(*data, k=self.n_clusters, settings=VAESettings(epochs=self.vae_epochs), seed=seed,
                              selection=self.k_selection, ignore=self.fit_ignore)
        self.clusters = result.clusters
        self._fit_result = result
        return result.report()

