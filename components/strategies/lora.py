"""The LoRA settings shared by PS+LoRA and SePS+LoRA, in one home: a mixin that builds the backbone
strategy's network and turns it into its LoRA counterpart with :func:`components.transforms.to_lora`.

``rank`` and ``alpha`` (``delta W_i = (alpha / rank) B_i A_i``), ``init`` (``b_zero``: the paper's
zero B; ``a_zero``: the LoRASA code's zero A), ``layers`` (``all`` or a list of roles) and
``train_bias`` (per-agent bias deltas, frozen at zero by default). In a schedule, ``adopt`` freezes
the previous phase's network and adds zero adapters: outputs are unchanged at the switch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from marlshare.components.transforms import check_lora_layers, check_rank_alpha, to_lora


@dataclass
class LoRA:
    backbone: ClassVar[type]  # the strategy whose (frozen) network carries the adapters

    rank: int = 8
    alpha: float = 8.0
    layers: str | list[str] = "all"
    init: str = "b_zero"
    train_bias: bool = False

    def validate(self):
        super().validate()
        check_rank_alpha(self.name, self.rank, self.alpha)
        if not isinstance(self.layers, str):
            self.layers = list(self.layers)
        check_lora_layers(self.layers)
        if self.init not in ("a_zero", "b_zero"):
            raise ValueError(f"{self.name}: init must be one of ['a_zero', 'b_zero'], got init={self.init!r}")
        if not isinstance(self.train_bias, bool):
            raise ValueError(f"{self.name}: train_bias must be True or False, got train_bias={self.train_bias!r}")

    def check_network(self, layers):
        """The rank may not exceed ``min(d_in, d_out)`` of an adapted layer: a higher rank adds parameters
        (``rank * (d_in + d_out)`` per agent) without adding expressiveness; at rank 128 on 64-wide layers a
        PS+LoRA agent had more parameters than an NPS one. The head is not passed: its output size is the
        env's action count, often below the default rank."""
        super().check_network(layers)
        targets = check_lora_layers(self.layers)
        for role, d_in, d_out in layers:
            if role in targets and self.rank > min(d_in, d_out):
                raise ValueError(f"rank={self.rank} exceeds min(d_in, d_out)={min(d_in, d_out)} of the adapted {role} "
                                 f"layer ({d_in} -> {d_out}): choose rank <= {min(d_in, d_out)}, or leave the {role} "
                                 f"layers out of layers=[...]")

    def _lora(self, net):
        new = to_lora(net, rank=self.rank, alpha=self.alpha, layers=self.layers, init=self.init,
                      train_bias=self.train_bias)
        new.strategy_name = self.name
        return new

    def make_network(self, n_agents, in_features, out_features, **kwargs):
        return self._lora(super().make_network(n_agents, in_features, out_features, **kwargs))

    def backbone_strategy(self):
        """The backbone strategy with this strategy's values of its hyperparameters."""
        cls = self.backbone
        return cls(**{f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})

    def adopt(self, previous, net):
        if type(previous) is type(self):
            return net
        self.check_predecessor(previous)
        backbone = self.backbone_strategy()
        if type(previous) is not type(backbone):  # e.g. ps -> seps_lora: first the SePS clusters
            net = backbone.adopt(previous, net)
        return self._lora(net)
