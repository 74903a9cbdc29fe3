"""MAPPO: clipped PPO with GAE and a centralised critic (the env's global state, or all observations).
TorchRL's ``ClipPPOLoss`` (``ReferencePPOLoss`` with a reference value-loss detail on) and the
:class:`~components.algorithms.update.PPOUpdate`, which the trainer may compile."""

from __future__ import annotations

from torchrl.objectives import ClipPPOLoss

from marlshare.components.algorithms.algorithm import Algorithm
from marlshare.components.algorithms.ppo import CENTRAL
from marlshare.components.algorithms.update import PPOUpdate


class MAPPO(Algorithm):
    name = "mappo"
    critic = CENTRAL
    loss = ClipPPOLoss
    update = PPOUpdate
    compiles = True
