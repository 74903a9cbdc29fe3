"""SePS+LoRA (LoRASA, Sec. 3.2): SePS clusters for the frozen backbone (one network per cluster),
then a rank-r adapter per agent over its cluster's weights. After ``seps`` the clusters and the
cluster networks are taken over; after ``ps`` the clusters are fitted first and every cluster starts
from the shared weights (``cluster_init``), then the adapters are added."""

from __future__ import annotations

from dataclasses import dataclass

from marlshare.components.strategies.lora import LoRA
from marlshare.components.strategies.seps import SePS


@dataclass
class SePSLoRA(LoRA, SePS):
    name = "seps_lora"
    shared = "the frozen per-cluster backbones"
    agent_specific = "rank-r adapters A_i, B_i over the agent's cluster weights, and a log-std delta"
    backbone = SePS
    predecessors = ("ps", "seps")
    successor = None
