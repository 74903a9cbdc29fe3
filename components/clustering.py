"""Learning which agents should share parameters (SePS, Christianos et al. 2021; reused by AdaPS).

1. An **identity VAE** learns a latent code for each agent from its transitions: the encoder sees
   only the agent's one-hot id ``e_i -> Linear(N, 64) -> ReLU -> Linear(64, 2z)`` (mean and log
   variance, ``z = 10``); the decoder predicts the agent's next observation and reward from
   ``[z, o, a] -> 64 -> ReLU -> 64 -> ReLU -> [o', r]``. Agents whose transitions look alike (same
   dynamics and rewards given what they see and do) end up with nearby codes, because only the code
   can tell the decoder which agent it is predicting for.
2. **k-means** (scikit-learn, k-means++, 10 restarts) on the encoder means ``mu(e_i)`` groups the
   agents. With K not given, K is the value in ``[2, N-1]`` that ``selection`` picks (:data:`SELECTIONS`):
   the highest silhouette (the default), the lowest Davies-Bouldin index (the SePS paper's rule), or
   the lowest Davies-Bouldin index among the K without singleton clusters.

Why silhouette is the default: Davies-Bouldin favours splitting a group of alike agents into
singletons, whose scatter is zero, so it over-splits. Measured by ``python -m tools.cluster_fit
--benchmark`` (docs/evidence.md, "Cluster recovery"; 5 seeds per task): Davies-Bouldin chose a wrong K
on every seed of BPS, SMAX 3s5z and the hidden-types toy; silhouette recovered the groups exactly on
the toy and SMAX and on 6 of 10 BPS [3,3,3] / [5,5,5] fits (k-means given the true K: 7 of 10). The silhouette of a singleton is 0, which
counters the bias without forbidding a role held by one agent. All scores are scikit-learn's.
``fit_clusters(..., ignore=...)`` drops observation features that name the roles (SMAX's unit types).

Loss: the squared error summed over the predicted features (``o'`` and ``r``), averaged over the
minibatch, plus ``1e-4 x`` the KL divergence to a standard normal (summed over latent dimensions,
averaged over the minibatch). Adam 3e-4, minibatches of 128 per-agent transitions, 10 epochs.
Written here rather than taken from a library because no maintained package provides the SePS
identity VAE; the k-means and the score come from scikit-learn.

Cluster labels are canonical: numbered in order of first appearance over agents 0..N-1, so the
same grouping always gives the same list (``[0, 0, 1, 1]``, never ``[1, 1, 0, 0]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from marlshare.components.interrupts import StopRequested, stop_requested


#: K-selection rules for k-means on the identity codes, K tried in ``[2, N-1]`` (SePS's range):
#: ``davies_bouldin`` (lowest Davies-Bouldin index: SePS's original rule, kept selectable),
#: ``silhouette`` (highest mean silhouette), ``davies_bouldin_no_singletons`` (Davies-Bouldin over the
#: K whose clusters all hold at least 2 agents; every K if none does). Measured in docs/evidence.md
#: ("Cluster recovery"); the strategies' default is DEFAULT_SELECTION.
SELECTIONS = ("davies_bouldin", "silhouette", "davies_bouldin_no_singletons")
DEFAULT_SELECTION = "silhouette"


@dataclass
class VAESettings:
    latent: int = 10
    hidden: int = 64
    epochs: int = 10
    batch_size: int = 128
    lr: float = 3e-4
    kl_weight: float = 1e-4


class IdentityVAE(nn.Module):
    """``encode(ids [M]) -> (mu, log_var) [M, z]``; ``decode(z, obs, action) -> [M, obs + 1]``."""

    def __init__(self, n_agents: int, obs_dim: int, action_dim: int, settings: VAESettings):
        super().__init__()
        h, z = settings.hidden, settings.latent
        self.n_agents, self.latent = n_agents, z
        self.encoder = nn.Sequential(nn.Linear(n_agents, h), nn.ReLU(), nn.Linear(h, 2 * z))
        self.decoder = nn.Sequential(nn.Linear(z + obs_dim + action_dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                                     nn.Linear(h, obs_dim + 1))

    def encode(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        one_hot = torch.nn.functional.one_hot(ids, self.n_agents).float()
        mu, log_var = self.encoder(one_hot).chunk(2, dim=-1)
        return mu, log_var

    def loss(self, ids, obs, action, target, kl_weight) -> torch.Tensor:
        mu, log_var = self.encode(ids)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        prediction = self.decoder(torch.cat([z, obs, action], dim=-1))
        reconstruction = ((prediction - target) ** 2).sum(-1).mean()
        kl = -0.5 * (1 + log_var - mu**2 - log_var.exp()).sum(-1).mean()
        return reconstruction + kl_weight * kl


@dataclass
class ClusterFit:
    """What a fit found: the labels, K, the selection score of each K tried, the VAE's final
    epoch loss, the agents' latent means and each cluster's centre (mean of its agents' codes)."""

    clusters: list[int]
    k: int
    scores: dict[int, float]  # the K-selection score of each K tried (empty when K was given)
    vae_loss: float
    latents: list[list[float]] = field(repr=False)
    centres: list[list[float]] = field(repr=False)
    selection: str = DEFAULT_SELECTION

    def report(self) -> dict:
        return {"clusters": self.clusters, "k": self.k, "selection": self.selection,
                "scores": {str(k): round(v, 4) for k, v in self.scores.items()},
                "vae_loss": round(self.vae_loss, 6)}


def agent_transitions(batch, discrete: bool, action_dim: int, group: str = "agents"):
    """Per-agent ``(obs, action, next_obs, reward)``, each ``[M, N, *]``, from a TorchRL rollout of any
    batch shape. Discrete action indices ``[.., N]`` become one-hot ``[.., N, action_dim]``."""
    obs = batch.get((group, "observation")).float()
    n = obs.shape[-2]
    action = batch.get((group, "action"))
    action = torch.nn.functional.one_hot(action.long(), int(action_dim)) if discrete else action

    def flat(t):
        return t.float().reshape(-1, n, t.shape[-1])

    return (flat(obs), flat(action), flat(batch.get(("next", group, "observation"))),
            flat(batch.get(("next", group, "reward"))))


def train_identity_vae(obs, action, next_obs, reward, settings: VAESettings | None = None,
                       seed: int = 0, should_stop=stop_requested) -> tuple[np.ndarray, float]:
    """Fit the identity VAE on ``[M, N, *]`` transitions; returns the agents' latent means ``[N, z]``
    and the mean loss of the last epoch. Uses its own random generator (the run's is untouched).
    ``should_stop()`` is asked before every minibatch (default: whether the run got Ctrl-C/SIGTERM);
    when true the fit raises StopRequested, so a stop never waits for the whole fit."""
    settings = settings or VAESettings()
    m, n = obs.shape[:2]
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        vae = IdentityVAE(n, obs.shape[-1], action.shape[-1], settings)
        optimiser = torch.optim.Adam(vae.parameters(), lr=settings.lr)
        ids = torch.arange(n).expand(m, n).reshape(-1)
        inputs = (obs.reshape(m * n, -1), action.reshape(m * n, -1))
        target = torch.cat([next_obs, reward], dim=-1).reshape(m * n, -1)
        last = float("nan")
        for _ in range(settings.epochs):
            order = torch.randperm(m * n, generator=gen)
            losses = []
            for start in range(0, m * n, settings.batch_size):
                if should_stop is not None and should_stop():
                    raise StopRequested("the identity-VAE fit was interrupted")
                idx = order[start:start + settings.batch_size]
                loss = vae.loss(ids[idx], inputs[0][idx], inputs[1][idx], target[idx], settings.kl_weight)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                losses.append(loss.item())
            last = float(np.mean(losses))
        with torch.no_grad():
            mu, _ = vae.encode(torch.arange(n))
    return mu.numpy().astype(np.float64), last


def canonical(labels) -> list[int]:
    """Renumber labels by first appearance: ``[2, 2, 0, 1] -> [0, 0, 1, 2]``."""
    order: dict[int, int] = {}
    return [order.setdefault(int(label), len(order)) for label in labels]




def kmeans_candidates(latents: np.ndarray, seed: int = 0) -> dict[int, np.ndarray]:
    """k-means labels for every K in ``[2, N-1]`` (K values whose fit collapses to one cluster, as
    identical codes do, are left out)."""
    from sklearn.cluster import KMeans

    fits = {}
    for kk in range(2, len(latents)):
        labels = KMeans(n_clusters=kk, init="k-means++", n_init=10, random_state=seed).fit_predict(latents)
        if len(set(labels)) >= 2:
            fits[kk] = labels
    return fits


def choose_k(latents: np.ndarray, candidates: dict[int, np.ndarray], selection: str) -> tuple[int, dict[int, float]]:
    """The K of ``candidates`` that ``selection`` picks, and the score of every K it considered."""
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    if selection not in SELECTIONS:
        raise ValueError(f"K selection {selection!r} is not valid; choose one of {list(SELECTIONS)}")
    if selection == "silhouette":
        scores = {k: float(silhouette_score(latents, labels)) for k, labels in candidates.items()}
        return max(scores, key=scores.get), scores
    pool = candidates
    if selection == "davies_bouldin_no_singletons":
        # a singleton has zero scatter, so it lowers the index whatever the grouping: leave such K out
        pool = {k: labels for k, labels in candidates.items() if np.bincount(labels).min() >= 2} or candidates
    scores = {k: float(davies_bouldin_score(latents, labels)) for k, labels in pool.items()}
    return min(scores, key=scores.get), scores


def kmeans_clusters(latents: np.ndarray, k: int | None = None, seed: int = 0,
                    selection: str = DEFAULT_SELECTION) -> tuple[list[int], int, dict[int, float]]:
    """k-means (k-means++, 10 restarts) on ``latents [N, z]``; K given, or the K in ``[2, N-1]`` with
    the best ``selection`` score. Returns canonical labels, K and the scores of the K values tried."""
    from sklearn.cluster import KMeans

    if selection not in SELECTIONS:
        raise ValueError(f"K selection {selection!r} is not valid; choose one of {list(SELECTIONS)}")
    n = len(latents)
    if k is not None:
        if not 1 <= k <= n:
            raise ValueError(f"n_clusters={k} must be in [1, n_agents={n}]")
        labels = KMeans(n_clusters=k, init="k-means++", n_init=10, random_state=seed).fit_predict(latents)
        return canonical(labels), k, {}
    if n < 3:
        raise ValueError(f"choosing K by a score ({selection}) needs K in [2, N-1], empty for N={n} agents: "
                         f"give n_clusters (1 or 2) or clusters=[...]")
    candidates = kmeans_candidates(latents, seed)
    if not candidates:  # identical codes: every K collapses to one cluster
        return [0] * n, 1, {}
    best, scores = choose_k(latents, candidates, selection)
    return canonical(candidates[best]), best, scores


def feature_indices(spec, obs_dim: int) -> list[int]:
    """Observation feature indices named by ``spec``: a list of ints (negative counts from the end) and
    ``"start:stop"`` ranges (Python slices, e.g. ``"4:10"`` or ``"-3:"``). Sorted, without repeats."""
    out = set()
    for item in spec or []:
        if isinstance(item, str) and ":" in item:
            try:
                bounds = [int(b) if b.strip() else None for b in item.split(":")]
                out.update(range(obs_dim)[slice(*bounds)])
            except (TypeError, ValueError):
                raise ValueError(f"fit_ignore entry {item!r} is not a 'start:stop' range of ints") from None
        elif isinstance(item, int) and not isinstance(item, bool) and -obs_dim <= item < obs_dim:
            out.add(item % obs_dim)
        else:
            raise ValueError(f"fit_ignore entry {item!r} is not a feature index in [-{obs_dim}, {obs_dim}) or a "
                             f"'start:stop' range (the observation has {obs_dim} features)")
    return sorted(out)


def fit_clusters(obs, action, next_obs, reward, k: int | None = None, settings: VAESettings | None = None,
                 seed: int = 0, selection: str = DEFAULT_SELECTION, ignore=None) -> ClusterFit:
    """Identity VAE then k-means: the SePS clustering of ``N`` agents from ``[M, N, *]`` transitions.
    ``ignore`` (:func:`feature_indices`) drops observation features from the VAE's inputs and targets:
    features that already tell the roles apart (SMAX's unit-type bits) leave the identity code
    nothing to encode."""
    drop = feature_indices(ignore, obs.shape[-1])
    if drop:
        keep = [i for i in range(obs.shape[-1]) if i not in set(drop)]
        if not keep:
            raise ValueError(f"fit_ignore={ignore!r} drops all {obs.shape[-1]} observation features")
        obs, next_obs = obs[..., keep], next_obs[..., keep]
    latents, loss = train_identity_vae(obs, action, next_obs, reward, settings, seed)
    labels, chosen, scores = kmeans_clusters(latents, k, seed, selection)
    centres = [latents[np.array(labels) == c].mean(axis=0).tolist() for c in range(chosen)]
    return ClusterFit(labels, chosen, scores, loss, latents.tolist(), centres, selection if k is None else "given")
