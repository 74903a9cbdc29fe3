"""The numbers behind the analyses (no plotting, no files): weights, action distributions, activations.

Definitions (LoRASA, Zhang et al. 2025, and the Prism / AdaPS papers):

- **sparsity curve** (LoRASA Fig. 8): 100 evenly spaced thresholds between the minimum and the
  maximum of ``|w|`` over a set of weights, and for each the percentage of entries with
  ``|w| >= threshold``. Computed separately for ``|theta_shared|`` and ``|delta theta|``.
- **Frobenius norms per layer** (LoRASA Tables 10-13): ``||theta_shared||_F`` of the frozen base,
  ``||theta'_i||_F`` of the merged weight ``theta_shared + delta_i`` and ``||delta_i||_F``, the last
  two averaged over agents.
- **Wasserstein distance between agents' action distributions** (LoRASA Figs. 6-7), per pair of agents,
  averaged over states:
    * Gaussian heads: the closed-form 2-Wasserstein distance of diagonal Gaussians,
      ``W2^2 = ||mu_i - mu_j||^2 + ||sigma_i - sigma_j||^2`` (exact for diagonal covariances, which
      commute). It is taken on the network's Gaussian, before the tanh squashing of ``tanh_normal``:
      the squashed distribution has no closed form, and the Gaussian is what the strategies
      parametrise.
    * Categorical heads, ``metric="discrete"`` (default): W1 under the 0-1 ground cost
      (``d(a, b) = 1`` for ``a != b``), which equals the total-variation distance
      ``0.5 * sum_a |p_i(a) - p_j(a)|``. Discrete actions of MPE, SMAC, LBF are unordered labels
      (``no-op, left, right, down, up``), so a distance along the index line would be an artefact of
      the labelling. ``metric="ordered"``: W1 with the actions at positions ``0..A-1`` on a line
      (``scipy.stats.wasserstein_distance`` with the probabilities as weights), for tasks whose actions
      really are ordered (discretised torques).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from torch import nn

from marlshare.components.distances import gaussian_w2  # noqa: F401  (also importable from here)
from marlshare.components.layers import AgentLinear, LowRankLinear, MaskedLinear, SpectralLinear


# --- weights ------------------------------------------------------------------------------------------
def sparsity_curve(values, n_thresholds: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """``(thresholds, percent)``: ``n_thresholds`` evenly spaced thresholds from ``min |w|`` to
    ``max |w|`` and the percentage of entries with ``|w| >= threshold`` (LoRASA Fig. 8)."""
    a = np.abs(np.asarray(values, dtype=np.float64).ravel())
    if a.size == 0:
        raise ValueError("sparsity_curve needs at least one weight")
    thresholds = np.linspace(a.min(), a.max(), n_thresholds)
    percent = 100.0 * (a[None, :] >= thresholds[:, None]).mean(axis=1)
    return thresholds, percent


def lora_layers(net: nn.Module) -> list[tuple[str, LowRankLinear]]:
    return [(name, m) for name, m in net.named_modules() if isinstance(m, LowRankLinear)]


def base_weight(layer: LowRankLinear) -> torch.Tensor:
    """The frozen backbone's distinct weights: ``[out, in]`` for a shared base, ``[K, out, in]`` for
    clusters (each cluster counted once, not once per agent)."""
    return layer.base.weight.detach()


@torch.no_grad()
def frobenius_norms(net: nn.Module) -> list[dict]:
    """One row per LoRA-adapted layer: ``shared`` = ||theta_shared||_F (for a clustered base, the mean
    over agents of their cluster's weight norm), ``merged`` = mean_i ||theta_shared + delta_i||_F,
    ``delta`` = mean_i ||delta_i||_F, and ``delta_max`` = max_i ||delta_i||_F."""
    rows = []
    for name, layer in lora_layers(net):
        base_w, _ = layer.base.agent_weight()  # [N, out, in]
        delta = layer.delta_weight()  # [N, out, in]
        fro = lambda w: torch.linalg.matrix_norm(w, ord="fro")  # noqa: E731  [N]
        rows.append(dict(layer=name, role=layer.role, shape=f"{layer.out_features}x{layer.in_features}",
                         rank=layer.rank, shared=fro(base_w).mean().item(),
                         merged=fro(base_w + delta).mean().item(), delta=fro(delta).mean().item(),
                         delta_max=fro(delta).max().item()))
    return rows


@torch.no_grad()
def shared_and_delta(net: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Every entry of the adapted layers' shared weights and of all agents' deltas (flat arrays)."""
    shared, delta = [], []
    for _, layer in lora_layers(net):
        shared.append(base_weight(layer).flatten())
        delta.append(layer.delta_weight().flatten())
    if not shared:
        raise ValueError("the network has no LoRA adapters (a ps_lora or seps_lora checkpoint is needed)")
    return torch.cat(shared).numpy(), torch.cat(delta).numpy()


# --- action distributions -----------------------------------------------------------------------------
def categorical_w1(p, q, metric: str = "discrete"):
    """W1 between categorical distributions ``p, q [..., A]`` (probabilities).

    ``discrete``: 0-1 ground cost, i.e. total variation ``0.5 * sum |p - q|`` (a tensor, broadcast);
    ``ordered``: actions at positions ``0..A-1``, via ``scipy.stats.wasserstein_distance`` (numpy array).
    """
    if metric == "discrete":
        return 0.5 * (p - q).abs().sum(-1)
    if metric == "ordered":
        p, q = np.broadcast_arrays(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64))
        positions = np.arange(p.shape[-1])
        flat = [wasserstein_distance(positions, positions, a, b)
                for a, b in zip(p.reshape(-1, p.shape[-1]), q.reshape(-1, q.shape[-1]))]
        return np.asarray(flat).reshape(p.shape[:-1])
    raise ValueError(f"metric must be 'discrete' or 'ordered', got {metric!r}")


def pairwise_wasserstein(out, metric: str = "discrete", action_mask=None) -> np.ndarray:
    """``[N, N]`` mean over states of the distance between agent i's and agent j's action
    distributions. ``out``: logits ``[S, N, A]`` or ``(loc, scale)`` each ``[S, N, act]``, all agents
    evaluated on the same ``S`` states. ``action_mask [S, N, A]``: unavailable actions get probability 0."""
    if isinstance(out, tuple):
        loc, scale = out[0].detach(), out[1].detach()
        d = gaussian_w2(loc[:, :, None], scale[:, :, None], loc[:, None], scale[:, None])  # [S, N, N]
        return d.mean(0).numpy()
    logits = out.detach()
    if action_mask is not None:
        logits = logits.masked_fill(~action_mask.bool(), float("-inf"))
    p = torch.softmax(logits, -1)
    if metric == "discrete":
        return categorical_w1(p[:, :, None], p[:, None], "discrete").mean(0).numpy()
    return categorical_w1(p[:, :, None].numpy(), p[:, None].numpy(), "ordered").mean(0)


# --- activations ---------------------------------------------------------------------------------------
ACTIVATION_TYPES = (nn.ReLU, nn.Tanh, nn.ELU, nn.GELU)


@torch.no_grad()
def layer_activations(net: nn.Module, obs: torch.Tensor, hidden: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Hidden activations ``{layer name: [S, N, units]}`` of ``net`` on ``obs [S, N, d]`` (every
    nonlinearity's output, and the GRU's new hidden state for a recurrent actor)."""
    acts, hooks = {}, []
    for name, module in net.named_modules():
        if isinstance(module, ACTIVATION_TYPES):
            hooks.append(module.register_forward_hook(lambda m, i, o, name=name: acts.__setitem__(name, o.detach())))
    try:
        if getattr(net, "recurrent", False):
            *_, h = net(obs, hidden)
            acts["gru (hidden state)"] = h.detach()
        else:
            net(obs)
    finally:
        for h in hooks:
            h.remove()
    return acts


# --- masks ----------------------------------------------------------------------------------------------
@torch.no_grad()
def spectral_masks(net: nn.Module) -> dict[str, np.ndarray]:
    """Prism: ``{layer: masks [N, k]}`` in (0, 1)."""
    return {name: m.masks().numpy() for name, m in net.named_modules() if isinstance(m, SpectralLinear)}


@torch.no_grad()
def unit_masks(net: nn.Module) -> dict[str, tuple[np.ndarray, list[int]]]:
    """AdaPS: ``{layer: (masks [K, units] in {0, 1}, cluster of each agent)}``."""
    return {name: (m.masks.numpy(), m.clusters.tolist()) for name, m in net.named_modules()
            if isinstance(m, MaskedLinear)}


def agent_layers(net: nn.Module) -> list[tuple[str, AgentLinear]]:
    """Outermost per-agent layers (a LoRA layer, not also its base)."""
    out, skip = [], set()
    for name, m in net.named_modules():
        if any(name.startswith(s + ".") for s in skip):
            continue
        if isinstance(m, AgentLinear):
            out.append((name, m))
            skip.add(name)
    return out
