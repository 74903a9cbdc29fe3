"""Distances between agents' action distributions, torch only (the strategies and the analysis share
them; the analysis re-exports :func:`gaussian_w2` from :mod:`components.analysis.measures`).

- :func:`gaussian_w2`: the closed-form 2-Wasserstein distance of diagonal Gaussians,
  ``W2^2 = ||mu_p - mu_q||^2 + ||sigma_p - sigma_q||^2`` (exact: diagonal covariances commute).
- :func:`mean_pairwise`: ``out [S, N, A]`` of N agents evaluated on the same S inputs -> the mean over
  the ``N (N - 1) / 2`` agent pairs and the S inputs of ``gaussian_w2`` between agents (with equal or
  no scales: the L2 distance of the means). DiCo's system neural diversity (SND) is this number.
"""

from __future__ import annotations

import torch


def gaussian_w2(loc_p, scale_p, loc_q, scale_q) -> torch.Tensor:
    """2-Wasserstein distance of diagonal Gaussians (last axis = action dimensions), broadcast."""
    return ((loc_p - loc_q) ** 2 + (scale_p - scale_q) ** 2).sum(-1).sqrt()


def mean_pairwise(loc: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over agent pairs ``i < j`` and inputs of ``W2(N(loc_i, scale_i), N(loc_j, scale_j))``.

    ``loc, scale [S, N, A]``: every agent evaluated on the same S inputs (``scale=None``: zero, i.e.
    the L2 distance of the means, which is the W2 distance when the agents share their scale).
    Returns a scalar tensor; 0 for one agent."""
    n = loc.shape[-2]
    if n < 2:
        return loc.new_zeros(())
    scale = torch.zeros_like(loc) if scale is None else scale
    d = gaussian_w2(loc[..., :, None, :], scale[..., :, None, :], loc[..., None, :, :], scale[..., None, :, :])
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=loc.device), diagonal=1)
    return d[..., upper].mean()
