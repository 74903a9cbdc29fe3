"""The LoRA settings shared by PS+LoRA and SePS+LoRA: a mixin that builds the base strategy's network
and turns it into its LoRA counterpart with :func:`components.transforms.to_lora`."""

from __future__ import annotations

from dataclasses import dataclass

from components.strategies.base import check_rank_alpha
from components.transforms import check_lora_layers, to_lora


@dataclass
class LoRA:
    rank: int = 8
    alpha: float = 8.0
    layers: str | list[str] = "all"
    init: str = "b_zero"
    train_bias: bool = False

    def validate(self):
        super().validate()
        check_rank_alpha(self.name, self.rank, self.alpha)
        check_lora_layers(self.layers)
        if self.init not in ("a_zero", "b_zero"):
            raise ValueError(f"{self.name}: init must be one of ['a_zero', 'b_zero'], got init={self.init!r}")
        if not isinstance(self.train_bias, bool):
            raise ValueError(f"{self.name}: train_bias must be True or False, got train_bias={self.train_bias!r}")

    def make_network(self, n_agents, in_features, out_features, **kwargs):
        base = super().make_network(n_agents, in_features, out_features, **kwargs)
        return to_lora(base, rank=self.rank, alpha=self.alpha, layers=self.layers, init=self.init,
                       train_bias=self.train_bias)
