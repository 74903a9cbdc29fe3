"""PS+LoRA (LoRASA, Zhang et al., 2025): a shared backbone, frozen, plus a rank-r adapter per agent
on every adapted layer, ``W_i = W + (alpha / r) B_i A_i``, and a per-agent log-std delta.

The intended use is the two-phase schedule: train PS, then ``to_lora`` the trained network (outputs
unchanged at the switch). ``make_network`` here builds the same structure from scratch: a randomly
initialised frozen PS backbone with zero-initialised adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from components.strategies.base import check_rank_alpha
from components.strategies.ps import PS
from components.transforms import LORA_TARGETS, check_lora_layers, to_lora


@dataclass
class PSLoRA(PS):
    name = "ps_lora"
    shared = "the frozen backbone (every weight and bias of the PS network)"
    agent_specific = "rank-r adapters A_i, B_i on each adapted layer, and a log-std delta"

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
