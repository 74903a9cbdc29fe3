"""Shared weights under learnt per-agent soft thresholds (Kaleidoscope: "Learnable Masks for
Heterogeneous Multi-agent Reinforcement Learning", NeurIPS 2024; code LXXXXR/Kaleidoscope).

Agent i's weight is the soft-thresholded shared weight ``W_i = sign(W) * relu(|W| - sigmoid(s_i))``:
entries whose magnitude is below agent i's threshold are pruned for agent i, the others shrink by
it. ``W [out, in]`` and the bias ``b [out]`` are shared (the bias is not thresholded, as in their
code); the threshold logits ``s [N, out, in]`` are per agent, one per weight entry. All agents'
weights are built at once (``[N, out, in]``) and applied in one ``bmm``.

``s = -inf`` gives ``sigmoid(s) = 0`` and ``W_i = W`` exactly: PS. The paper's initialisation draws
``s = -(scale * U(0, 1) + bias)`` with ``scale = bias = 5``: thresholds in ``[4.5e-5, 6.7e-3]``,
almost nothing pruned at the start.

:func:`weighted_masks` gives the masks the diversity loss compares (a straight-through binary mask
``|W| > sigmoid(s_i)`` times ``|W|``, ``W`` detached, so the loss trains only the thresholds);
:meth:`ThresholdedLinear.reset_` is their periodic reset of weights every agent has pruned.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from marlshare.components import kernels
from marlshare.components.layers import AGENT, SHARED, AgentLinear, init_linear_


class _StepStraightThrough(torch.autograd.Function):
    """``1[x > 0]`` forward; backward passes ``tanh(grad)`` through, as the Kaleidoscope code's
    ``compare_STE`` (a bounded straight-through estimator)."""

    @staticmethod
    def forward(ctx, x):
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return torch.tanh(grad)


class ThresholdedLinear(AgentLinear):
    """``W_i = sign(W) * relu(|W| - sigmoid(s_i))``: ``x [*batch, N, in] -> [*batch, N, out]``."""

    def __init__(self, n_agents, in_features, out_features, bias=True, role="hidden",
                 init_scale: float = 5.0, init_bias: float = 5.0):
        super().__init__(n_agents, in_features, out_features, role)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        init_linear_(self.weight, self.bias, in_features)
        self.threshold_logits = nn.Parameter(torch.empty(n_agents, out_features, in_features))
        self.draw_thresholds_(self.threshold_logits.data, init_scale, init_bias)
        self.param_sharing = {"weight": SHARED, "bias": SHARED, "threshold_logits": AGENT}

    @staticmethod
    @torch.no_grad()
    def draw_thresholds_(target: torch.Tensor, scale: float, bias: float, generator=None) -> torch.Tensor:
        """Fill ``target`` with the paper's threshold logits ``-(scale * U(0, 1) + bias)``."""
        target.copy_(-(torch.rand(target.shape, generator=generator) * scale + bias))
        return target

    def thresholds(self) -> torch.Tensor:
        """``sigmoid(s) [N, out, in]``."""
        return torch.sigmoid(self.threshold_logits)

    def agent_weight(self):
        w = self.weight.unsqueeze(0)
        weight = torch.sign(w) * torch.relu(w.abs() - self.thresholds())
        return weight, None if self.bias is None else self.bias.expand(self.n_agents, -1)

    def forward(self, x):
        return kernels.agent_matmul(x, *self.agent_weight())

    def forward_with_id(self, x):
        return kernels.agent_matmul_with_id(x, *self.agent_weight())

    @torch.no_grad()
    def masks(self) -> torch.Tensor:
        """Binary masks ``[N, out, in]``: 1 where agent i keeps the entry (``|W| > sigmoid(s_i)``)."""
        return (self.weight.abs() > self.thresholds()).float()

    def weighted_masks(self) -> torch.Tensor:
        """``1[|W| > sigmoid(s_i)] * |W|`` ``[N, out, in]`` with a straight-through gradient to ``s``
        only (``W`` detached): what the diversity loss compares."""
        magnitude = self.weight.detach().abs()
        return _StepStraightThrough.apply(magnitude - self.thresholds()) * magnitude

    @torch.no_grad()
    def load_shared(self, weight, bias):
        """Take over a trained shared layer; the thresholds stay as drawn (so the outputs move by at
        most the thresholds, not exactly: only ``s = -inf`` keeps them, and it has no gradient)."""
        self._check_shared(weight, bias)
        self.weight.copy_(weight)
        if bias is not None:
            self.bias.copy_(bias)

    @torch.no_grad()
    def reset_(self, ratio: float, scale: float, bias: float, generator=None) -> torch.Tensor:
        """The Kaleidoscope reset: each weight entry that every agent has pruned is, with probability
        ``ratio``, redrawn (``nn.Linear``'s initialisation) and its thresholds redrawn for every agent
        (``-(scale * U(0, 1) + bias)``). Returns the reset entries ``[out, in]`` (bool)."""
        pruned_by_all = self.masks().sum(dim=0) == 0
        chosen = (torch.rand(self.weight.shape, generator=generator) < ratio).to(self.weight.device) & pruned_by_all
        bound = 1.0 / math.sqrt(self.in_features)
        fresh = (torch.rand(self.weight.shape, generator=generator) * 2 - 1).to(self.weight) * bound
        self.weight.copy_(torch.where(chosen, fresh, self.weight))
        logits = self.draw_thresholds_(torch.empty_like(self.threshold_logits, device="cpu"), scale, bias, generator)
        self.threshold_logits.copy_(torch.where(chosen, logits.to(self.threshold_logits), self.threshold_logits))
        return chosen
