"""HAPPO (Kuba et al. 2022; the PKU-MARL/HARL code): sequential turns in a random order.

A random permutation of the agents each iteration. Agent j's clipped objective is weighted by
``M = prod_{k before j} pi_k^new / pi_k^old`` (per sample, no gradient): ``min(r_j A M, clip(r_j) A M)``,
implemented as the clipped loss with the advantage ``A M`` (``M > 0``). After agent j's turn its ratio
is recomputed on the whole batch with the updated policy and multiplied into ``M``. The critic
updates once per iteration: its loss joins the last turn's gradient steps (the same ``epochs`` x
minibatches as MAPPO's critic). MAPPO's centralised critic.
"""

from __future__ import annotations

import torch

from marlshare.components.algorithms.algorithm import Algorithm
from marlshare.components.algorithms.keys import LOGP
from marlshare.components.algorithms.losses import SequentialPPOLoss
from marlshare.components.algorithms.ppo import CENTRAL
from marlshare.components.algorithms.sequential import SequentialUpdate


class HAPPOUpdate(SequentialUpdate):
    """``factor``: the product ``M`` of the updated agents' ratios, per row ``[*rows, 1, 1]`` (None
    before the first turn ends); ``last_factor``: its value at the end of the latest update."""

    factor = last_factor = None

    def draw_order(self, advantage, value):
        return torch.randperm(advantage.shape[-2]).tolist()

    def turn_critic(self, turn, n):
        return "all" if turn == n - 1 else None

    def begin_update(self, items, loss):
        self.factor = None

    def turn_samples(self, items, loss, order, turn, advantage, normalise):
        if self.factor is None:
            return super().turn_samples(items, loss, order, turn, advantage, normalise)
        return [(loss.tensor_keys.advantage, advantage * self.factor)]

    def end_turn(self, items, loss, order, turn):
        if turn == len(order) - 1:
            return
        agent = order[turn]
        with torch.no_grad():
            new_logp = loss._get_cur_log_prob(items.copy())[0]
        ratio = (new_logp[..., agent] - items.get(LOGP)[..., agent]).exp()[..., None, None]
        self.factor = ratio if self.factor is None else self.factor * ratio

    def end_update(self, loss):
        self.last_factor = self.factor


class HAPPO(Algorithm):
    name = "happo"
    critic = CENTRAL
    loss = SequentialPPOLoss
    update = HAPPOUpdate
    compiles = False
