"""AdaPS: adaptive parameter sharing (Li et al., 2023; no public code).

Agents are clustered (the same identity VAE and k-means as SePS, learnt at the start of the phase
unless ``clusters`` is given); a fixed, randomly initialised and
never trained mapping network ``g`` turns each cluster centre into one logit per hidden unit, and
``sigmoid(g(c)) > threshold`` is that cluster's binary unit mask. Agents of cluster c use the one
shared network with ``h <- mask_c * h`` on every hidden layer (the MLP layers and the post-GRU layer;
the GRU's gates and the action head are not masked). No trainable parameter is added.

Choices the paper leaves open (settings, documented here): ``threshold = 0.5``; ``g`` is
``Linear(z, mapping_width) -> ReLU -> Linear(mapping_width, units)`` with ``mapping_width = 64``,
drawn from ``seed`` separately for each masked layer; a mask that would drop every unit of a layer
keeps its highest-logit unit. A fit sets ``centres`` to each cluster's mean VAE code (the paper's
cluster centres); with hand-given ``clusters`` and no ``centres``, centres are K standard-normal
vectors of size ``latent_size = 10`` drawn from ``seed``. :func:`keep_fractions` reports the fraction
of units each cluster keeps (also in the run's summary).

After a PS phase, AdaPS keeps the trained shared weights and adds the masks: the masked units change
the outputs at the switch (``exact_adopt = False``), which is what the method is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from marlshare.components.layers import MaskedLinear, SharedLinear
from marlshare.components.strategies.base import Strategy
from marlshare.components.strategies.clustered import Clustered

MASKED_ROLES = ("hidden", "post")


@dataclass
class AdaPS(Clustered, Strategy):
    name = "adaps"
    shared = "every weight, bias and log-std"
    agent_specific = "nothing trainable: a fixed binary unit mask per cluster on every hidden layer"
    predecessors = ("ps",)
    exact_adopt = False

    append_id: bool = True
    centres: list[list[float]] | None = None
    threshold: float = 0.5
    mapping_width: int = 64
    latent_size: int = 10
    seed: int = 0

    def validate(self):
        super().validate()
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) or not 0 < self.threshold < 1:
            raise ValueError(f"adaps: threshold must be a number in (0, 1), got threshold={self.threshold!r}")
        for field_name in ("mapping_width", "latent_size"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"adaps: {field_name} must be a positive integer, got {field_name}={value!r}")
        if self.centres is not None and self.clusters is not None:
            k = max(self.clusters) + 1
            shape = tuple(torch.as_tensor(self.centres, dtype=torch.float32).shape)
            if len(shape) != 2 or shape[0] != k:
                raise ValueError(f"adaps: centres must be [K={k}, z], one row per cluster, got shape {shape}")

    def fit(self, data, seed: int = 0) -> dict:
        report = super().fit(data, seed)
        self.centres = self._fit_result.centres
        self.latent_size = len(self.centres[0])
        return report

    def report(self, net):
        return {"keep_fractions": {name: [round(f, 4) for f in fractions]
                                   for name, fractions in keep_fractions(net).items()}}

    def _centres(self) -> torch.Tensor:
        if self.centres is not None:
            return torch.as_tensor(self.centres, dtype=torch.float32)
        gen = torch.Generator().manual_seed(int(self.seed))
        return torch.randn(max(self.clusters) + 1, self.latent_size, generator=gen)

    def unit_masks(self, centres: torch.Tensor, units: int, layer_index: int) -> torch.Tensor:
        """Binary masks ``[K, units]`` from the fixed random mapping network of one layer."""
        gen = torch.Generator().manual_seed(int(self.seed) * 7919 + 1 + layer_index)
        g = nn.Sequential(nn.Linear(centres.shape[1], self.mapping_width), nn.ReLU(),
                          nn.Linear(self.mapping_width, units))
        with torch.no_grad():
            for p in g.parameters():  # nn.Linear's init, but from our own generator (reproducible masks)
                bound = 1.0 / p.shape[-1] ** 0.5 if p.dim() > 1 else 1.0 / self.mapping_width ** 0.5
                p.uniform_(-bound, bound, generator=gen)
            logits = g(centres)
        masks = torch.sigmoid(logits) > self.threshold
        empty = ~masks.any(dim=1)
        masks[empty, logits[empty].argmax(dim=1)] = True
        return masks.float()

    def layer_factory(self, n_agents):
        centres = self._centres()
        counter = iter(range(10**9))

        def layer(role, d_in, d_out):
            base = SharedLinear(n_agents, d_in, d_out, role=role)
            if role not in MASKED_ROLES:
                return base
            return MaskedLinear(base, self.unit_masks(centres, d_out, next(counter)), self.clusters)

        return layer


def keep_fractions(net: nn.Module) -> dict[str, list[float]]:
    """Fraction of units each cluster keeps, per masked layer: ``{layer name: [K floats]}``."""
    return {name: m.masks.mean(dim=1).tolist() for name, m in net.named_modules() if isinstance(m, MaskedLinear)}
