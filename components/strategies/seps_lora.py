"""SePS+LoRA (LoRASA, Sec. 3.2): SePS clusters for the backbone (one frozen network per cluster,
trained in phase 1), then a per-agent rank-r adapter over each agent's cluster weights."""

from __future__ import annotations

from dataclasses import dataclass

from components.strategies.lora import LoRA
from components.strategies.seps import SePS


@dataclass
class SePSLoRA(LoRA, SePS):
    name = "seps_lora"
    shared = "the frozen per-cluster backbones"
    agent_specific = "rank-r adapters A_i, B_i over the agent's cluster weights, and a log-std delta"
