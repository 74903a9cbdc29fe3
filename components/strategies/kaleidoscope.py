"""Kaleidoscope: learnable per-agent masks over shared weights ("Learnable Masks for Heterogeneous
Multi-agent Reinforcement Learning", NeurIPS 2024; off-policy code LXXXXR/Kaleidoscope, QMIX and MATD3).

Every layer is a :class:`~components.thresholded.ThresholdedLinear`: shared ``W`` and bias, agent i
uses ``sign(W) * relu(|W| - sigmoid(s_i))`` with learnt threshold logits ``s_i`` (one per weight
entry). The log-std is shared.

- Diversity loss (:meth:`Kaleidoscope.aux_terms`, added to the actor loss times ``div_coef``): minus
  the L1 distance between every ordered pair of agents' weighted masks ``1[|W| > sigmoid(s_i)] * |W|``
  (straight-through step, ``W`` detached: it trains the thresholds only), layer k weighted by
  ``layer_weight_base ** k`` (their ``sparsity_layer_weights`` 1, 2, 4, ...), divided by ``N (N - 1)``
  and by the number of thresholded weight entries.
- Resets (:meth:`Kaleidoscope.after_update`): each time the run's frame count crosses a multiple of
  ``reset_interval``, every weight entry that all agents have pruned is, with probability
  ``reset_ratio``, redrawn with its thresholds (:meth:`ThresholdedLinear.reset_`), so pruned weights
  can come back. The draws come from ``seed`` and the reset's index, so a resumed run resets alike.
- :meth:`Kaleidoscope.report`: the fraction of weight entries each agent keeps, per layer.

Defaults are their MaMuJoCo (MATD3) actor settings: threshold logits drawn from ``-(5 U(0,1) + 5)`` at
the start and at resets, ``div_coef = 0.1``, ``reset_ratio = 0.5``, ``reset_interval = 1,000,000``
frames; every layer masked and reset (their MPE agent resets only the layers after the first and
keeps its GRU unmasked; here the GRU's projections are masked like every other layer).

Adam: the shared weights take the algorithm's ``adam_eps`` (1e-5 for MAPPO), the threshold logits
``threshold_eps = 1e-8`` (torch's default, which their optimisers use): the thresholds' gradients pass
through ``sigmoid(s) ~ 1e-3`` and arrive at 1e-9 to 1e-7, so an eps of 1e-5 would keep them where they
were drawn (measured on BPS, docs/evidence.md).

Where this differs from their code: their learners rescale the diversity coefficient every step to
``|div_coef * mean(RL loss) / mean(diversity loss)|`` over the last 100 steps; here ``div_coef``
multiplies the diversity loss directly (a strategy's auxiliary loss does not see the PPO loss), so
the term is far weaker than theirs while the agents' masks still agree (docs/strategies.md has the
measured magnitudes): raise ``div_coef`` to give it weight.
They skip resets within one interval of the end of training (here the run's length is not known to
the strategy). After a PS phase (``ps -> kaleidoscope``) the shared weights are taken over and the
thresholds drawn as at the start, so the outputs move slightly (``exact_adopt = False``): only
``s = -inf`` (threshold 0) gives PS exactly, and there the thresholds have no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from marlshare.components.strategies.base import Strategy
from marlshare.components.thresholded import ThresholdedLinear


@dataclass
class Kaleidoscope(Strategy):
    name = "kaleidoscope"
    shared = "every weight and bias, and the log-std"
    agent_specific = "a threshold per weight entry of every layer (soft-threshold masks over the shared weights)"
    predecessors = ("ps",)  # the shared weights are taken over, thresholds drawn as at the start
    exact_adopt = False

    append_id: bool = True
    div_coef: float = 0.1
    layer_weight_base: float = 2.0
    threshold_init_scale: float = 5.0
    threshold_init_bias: float = 5.0
    threshold_reset_scale: float = 5.0
    threshold_reset_bias: float = 5.0
    reset_interval: int = 1_000_000
    reset_ratio: float = 0.5
    seed: int = 0
    # Adam's eps for the threshold logits: their gradients pass through sigmoid(s) ~ 1e-3 and the global
    # clip and arrive at 1e-9..1e-7, so the algorithm's eps (1e-5, MAPPO's) would freeze them; 1e-8 is
    # torch's default, which the authors' optimisers use
    threshold_eps: float = 1e-8

    def validate(self):
        for field_name in ("div_coef", "layer_weight_base", "threshold_init_scale", "threshold_init_bias",
                           "threshold_reset_scale", "threshold_reset_bias", "reset_ratio"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"kaleidoscope: {field_name} must be a number, got {field_name}={value!r}")
        if self.div_coef < 0 or self.layer_weight_base <= 0:
            raise ValueError(f"kaleidoscope: need div_coef >= 0 and layer_weight_base > 0, got "
                             f"div_coef={self.div_coef!r}, layer_weight_base={self.layer_weight_base!r}")
        if min(self.threshold_init_scale, self.threshold_reset_scale) < 0:
            raise ValueError(f"kaleidoscope: threshold scales must be >= 0, got threshold_init_scale="
                             f"{self.threshold_init_scale!r}, threshold_reset_scale={self.threshold_reset_scale!r}")
        if isinstance(self.threshold_eps, bool) or not isinstance(self.threshold_eps, (int, float)) \
                or not self.threshold_eps > 0:
            raise ValueError(f"kaleidoscope: threshold_eps must be a number > 0, got threshold_eps={self.threshold_eps!r}")
        if not 0 <= self.reset_ratio <= 1:
            raise ValueError(f"kaleidoscope: reset_ratio must be in [0, 1], got reset_ratio={self.reset_ratio!r}")
        for field_name in ("reset_interval", "seed"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"kaleidoscope: {field_name} must be an integer >= 0 (reset_interval 0: never "
                                 f"reset), got {field_name}={value!r}")

    def layer(self, role, n_agents, d_in, d_out):
        return ThresholdedLinear(n_agents, d_in, d_out, role=role, init_scale=self.threshold_init_scale,
                                 init_bias=self.threshold_init_bias)

    def aux_terms(self, net):
        layers = thresholded_layers(net)
        n = layers[0][1].n_agents if layers else 0
        if n < 2:
            return {}
        total, entries = 0.0, 0
        for k, (_, m) in enumerate(layers):
            masks = m.weighted_masks().reshape(n, -1)  # [N, out * in]
            pairwise = torch.cdist(masks.unsqueeze(0), masks.unsqueeze(0), p=1)[0]  # [N, N], ordered pairs
            total = total + self.layer_weight_base ** k * pairwise.sum()
            entries += masks.shape[1]
        return {"kaleidoscope_diversity": -total / (n * (n - 1) * entries)}

    def aux_loss(self, net):
        terms = self.aux_terms(net)
        if not terms:
            return torch.zeros(())
        return self.div_coef * terms["kaleidoscope_diversity"]

    def optimiser_groups(self, net, params):
        """The threshold logits in a group of their own with Adam's ``eps = threshold_eps``."""
        thresholds = {id(m.threshold_logits) for _, m in thresholded_layers(net)}
        return [{"params": [p for p in params if id(p) not in thresholds]},
                {"params": [p for p in params if id(p) in thresholds], "eps": self.threshold_eps}]

    def after_update(self, net, batch, frames):
        """Reset once per multiple of ``reset_interval`` that this iteration's frames crossed."""
        if not self.reset_interval:
            return {}
        start = frames - batch.numel()
        crossed = range(start // self.reset_interval + 1, frames // self.reset_interval + 1)
        count = 0
        for index in crossed:
            count += self.reset(net, index)
        row = {"kaleidoscope_kept": mean_kept_fraction(net)}
        if len(crossed):
            row["kaleidoscope_reset_entries"] = count
        return row

    def reset(self, net: nn.Module, index: int) -> int:
        """Reset number ``index`` of the run (:meth:`ThresholdedLinear.reset_` on every layer, drawn from
        ``seed`` and ``index``); returns how many weight entries were reset."""
        gen = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + int(index))
        return sum(int(m.reset_(self.reset_ratio, self.threshold_reset_scale, self.threshold_reset_bias,
                                gen).sum()) for _, m in thresholded_layers(net))

    def report(self, net):
        """Fraction of weight entries each agent keeps, per layer (1 = nothing pruned)."""
        return {"kept_fractions": {name: [round(f, 4) for f in fractions]
                                   for name, fractions in kept_fractions(net).items()}}


def thresholded_layers(net: nn.Module) -> list[tuple[str, ThresholdedLinear]]:
    return [(name, m) for name, m in net.named_modules() if isinstance(m, ThresholdedLinear)]


def kept_fractions(net: nn.Module) -> dict[str, list[float]]:
    """``{layer name: [N floats]}``: the fraction of the layer's weight entries agent i keeps."""
    return {name: m.masks().flatten(1).mean(dim=1).tolist() for name, m in thresholded_layers(net)}


def mean_kept_fraction(net: nn.Module) -> float:
    """The fraction of all thresholded weight entries kept, over every agent and layer."""
    layers = thresholded_layers(net)
    kept = sum(float(m.masks().sum()) for _, m in layers)
    return kept / max(1, sum(m.threshold_logits.numel() for _, m in layers))
