"""IPPO: MAPPO's loss and update with a local critic (the agent's own observation)."""

from __future__ import annotations

from torchrl.objectives import ClipPPOLoss

from marlshare.components.algorithms.algorithm import Algorithm
from marlshare.components.algorithms.ppo import LOCAL
from marlshare.components.algorithms.update import PPOUpdate


class IPPO(Algorithm):
    name = "ippo"
    critic = LOCAL
    loss = ClipPPOLoss
    update = PPOUpdate
    compiles = True
