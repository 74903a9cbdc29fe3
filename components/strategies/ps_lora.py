"""PS+LoRA (LoRASA, Zhang et al., 2025): a shared backbone, frozen, plus a rank-r adapter per agent
on every adapted layer, ``W_i = W + (alpha / r) B_i A_i``, and a per-agent log-std delta.

The intended use is a schedule ``ps -> ps_lora``: train PS, then ``adopt`` freezes the trained
network and adds zero adapters (outputs unchanged at the switch). ``make_network`` here builds the
same structure from scratch: a randomly initialised frozen PS backbone with zero adapters.
"""

from __future__ import annotations

from dataclasses import dataclass

from marlshare.components.strategies.lora import LoRA
from marlshare.components.strategies.ps import PS


@dataclass
class PSLoRA(LoRA, PS):
    name = "ps_lora"
    shared = "the frozen backbone (every weight and bias of the PS network)"
    agent_specific = "rank-r adapters A_i, B_i on each adapted layer, and a log-std delta"
    backbone = PS
    predecessors = ("ps",)
    successor = None
