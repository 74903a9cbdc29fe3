"""PS: full parameter sharing. One network for every agent; the one-hot agent id is appended to the
input (a setting, on by default) so the shared policy can still tell agents apart."""

from __future__ import annotations

from dataclasses import dataclass

from marlshare.components.strategies.base import Strategy


@dataclass
class PS(Strategy):
    name = "ps"
    shared = "every weight, bias and log-std"
    agent_specific = "nothing (agents differ only through the appended one-hot id)"
    successor = "ps_lora"

    append_id: bool = True
