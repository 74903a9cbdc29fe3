"""SePS+LoRA (LoRASA, Sec. 3.2): SePS clusters for the backbone (one frozen network per cluster,
trained in phase 1), then a per-agent rank-r adapter over each agent's cluster weights."""

from __future__ import annotations

from dataclasses import dataclass

from components.strategies.base import check_rank_alpha
from components.strategies.seps import SePS
from components.transforms import check_lora_layers, to_lora


@dataclass
class SePSLoRA(SePS):
    name = "seps_lora"
    shared = "the frozen per-cluster backbones"
    agent_specific = "rank-r adapters A_i, B_i over the agent's cluster weights, and a log-std delta"

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

    def make_network(self, n_agents, in_features, out_features, **kwargs):
        base = super().make_network(n_agents, in_features, out_features, **kwargs)
        return to_lora(base, rank=self.rank, alpha=self.alpha, layers=self.layers, init=self.init,
                       train_bias=self.train_bias)
