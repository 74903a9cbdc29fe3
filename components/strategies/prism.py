"""Prism: spectral parameter sharing (Kim, Oh, Kim, 2026; no public code).

Every linear layer is ``W = U diag(s) V^T`` with ``U, V, s`` shared; agent i uses
``W_i = U diag(s * m_i) V^T`` with a per-agent spectral mask ``m_i = sigmoid(logits_i)`` in (0, 1)^k,
initialised near one (``mask_init`` logit = 3, sigmoid 0.95; ``s`` is rescaled so that each agent's
initial weight equals a standard initialisation). The per-agent log-std is shared.

Regularisers (added to the actor loss by the trainer through :meth:`Prism.aux_loss`):

- diversity: minus the mean pairwise L1 distance between agents' masks, per mask entry, averaged over
  layers; pushes agents to use different spectral components. Coefficient ``diversity_coef``.
- orthogonality: ``||U^T U - I||^2 + ||V^T V - I||^2`` summed over layers; keeps U, V near the
  orthonormal bases they start as. Coefficient ``orthogonality_coef``.

The paper does not give the coefficients; the defaults (1e-3 each) are small enough not to dominate
a PPO loss of order 1 and are settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from marlshare.components.layers import SpectralLinear
from marlshare.components.strategies.base import Strategy


@dataclass
class Prism(Strategy):
    name = "prism"
    shared = "U, s, V and the bias of every layer, and the log-std"
    agent_specific = "a spectral mask m_i (k = min(d_in, d_out) entries) per layer"
    predecessors = ("ps",)  # U, s, V from the SVD of the trained shared weights

    append_id: bool = True
    mask_init: float = 3.0
    diversity_coef: float = 1e-3
    orthogonality_coef: float = 1e-3

    def validate(self):
        for field_name in ("mask_init", "diversity_coef", "orthogonality_coef"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"prism: {field_name} must be a number, got {field_name}={value!r}")
        if self.diversity_coef < 0 or self.orthogonality_coef < 0:
            raise ValueError(
                f"prism: coefficients must be >= 0, got diversity_coef={self.diversity_coef!r}, "
                f"orthogonality_coef={self.orthogonality_coef!r}"
            )

    def layer(self, role, n_agents, d_in, d_out):
        return SpectralLinear(n_agents, d_in, d_out, role=role, mask_init=self.mask_init)

    def aux_terms(self, net):
        layers = [m for m in net.modules() if isinstance(m, SpectralLinear)]
        if not layers:
            return {}
        diversity, orthogonality = [], []
        for m in layers:
            masks = m.masks()  # [N, k]
            n, k = masks.shape
            if n > 1:
                pairwise = torch.cdist(masks.unsqueeze(0), masks.unsqueeze(0), p=1)[0]  # [N, N]
                diversity.append(-pairwise.sum() / (n * (n - 1) * k))
            eye = torch.eye(m.U.shape[1], dtype=m.U.dtype, device=m.U.device)
            orthogonality.append(((m.U.T @ m.U - eye) ** 2).sum() + ((m.V.T @ m.V - eye) ** 2).sum())
        terms = {"prism_orthogonality": torch.stack(orthogonality).sum()}
        if diversity:
            terms["prism_diversity"] = torch.stack(diversity).mean()
        return terms

    def report(self, net):
        """Mean spectral mask per layer (1 = every component kept)."""
        return {"mean_mask": {name: round(float(m.masks().mean()), 4) for name, m in net.named_modules()
                              if isinstance(m, SpectralLinear)}}

    def aux_loss(self, net):
        terms = self.aux_terms(net)
        if not terms:
            return torch.zeros(())
        loss = self.orthogonality_coef * terms["prism_orthogonality"]
        if "prism_diversity" in terms:
            loss = loss + self.diversity_coef * terms["prism_diversity"]
        return loss
