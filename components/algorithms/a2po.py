"""A2PO as the LoRASA authors' code runs it (``r_mappo.py``, ``a2po_update`` / ``train_a2po`` with the
agent loop outside the epochs and the "semi-greedy" order):

- order: agents sorted by ``mean |A_i / V_i|`` over the batch (normalised advantages), descending;
  the sequence alternates the best remaining agent with a uniformly random remaining one;
- agent i's ratio is multiplied by the preceding agents' joint ratio ``R = prod_k r_k`` computed at
  the *current* parameters on each minibatch (no gradient) and clipped to ``1 +/- others_clip``, and
  the PPO clip then acts on the product: ``min(r_i R A, clip(r_i R, 1 +/- eps) A)``. (The A2PO paper
  writes the correction as a factor on the advantage outside the clip; the code puts it inside the
  ratio, which we follow.) Here ``R`` is read from the same batched forward that gives ``r_i``.
- the critic updates in every turn, its loss taken on agent i's samples, as in the code;
- ``clip_tuner`` (the code's ``clip_param_tuner``): the k-th of N agents clips at
  ``eps * (k / N * w + 1 - w)``; ``loop="ppo"`` (its SMAC scripts): the epochs outside the agent
  loop, one epoch per turn, the order drawn again each epoch (there the code passes the tuner place 1);
- ``advantage="gae_trace"`` (the code's ``adv: gae_trace`` with ``speedup_trace``): before each
  turn after the first, the agent's advantage and value target come from :func:`gae_trace` with the
  preceding agents' joint ratio at the current parameters; with ``two_stage`` each epoch first
  runs a critic-only pass (the code's ``use_two_stage``).

These settings are :class:`A2POSettings`, ``algorithm.a2po.*`` in the config (``algorithm.a2po.loop``).

When the agent's cluster shares trained weights (SePS: parameters tagged "cluster" in
``param_sharing`` that train), a turn has ``ceil(epochs / size of the agent's cluster)`` epochs, as
the code does. Not reproduced from the code: its division of the shared-policy loss by the number of
agents sharing it (Adam is invariant to that scale up to ``eps`` and gradient clipping).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from marlshare.components.algorithms.algorithm import Algorithm
from marlshare.components.algorithms.keys import LOGP, VALUE
from marlshare.components.algorithms.losses import SequentialPPOLoss
from marlshare.components.algorithms.ppo import CENTRAL
from marlshare.components.algorithms.sequential import SequentialUpdate
from marlshare.components.layers import CLUSTER

A2PO_ADVANTAGES = ("gae", "gae_trace")
A2PO_LOOPS = ("agent", "ppo")  # agents outside the epochs (the code's MaMuJoCo runs) | epochs outside (SMAC)


@dataclass
class A2POSettings:
    """A2PO's own settings, ``algorithm.a2po.*`` (the keyword arguments of :class:`A2POUpdate`)."""

    # the preceding agents' joint ratio is clipped to 1 +/- others_clip (the LoRASA code's default)
    others_clip: float = 0.1
    # A2PO as the LoRASA code's configs run it: loop agent (each agent's turn runs all epochs; its
    # MaMuJoCo scripts) | ppo (each epoch runs every agent's turn, in a freshly drawn order; its SMAC
    # scripts); clip_tuner: None, or the weight w of its clip_param_tuner (0.5 there): the clip of the
    # k-th agent of N is clip_epsilon * (k / N * w + 1 - w)
    loop: str = "agent"
    clip_tuner: Optional[float] = None
    # gae | gae_trace: before each agent's turn after the first, its advantage and value target are
    # recomputed with the trace of the preceding agents' joint ratio (the code's adv: gae_trace,
    # speedup_trace; gae_trace below)
    advantage: str = "gae"
    two_stage: bool = False  # with gae_trace: a critic-only pass before each epoch (use_two_stage)

    def check(self) -> None:
        """Raise ValueError naming the first invalid setting (``key=value ...``; the config check puts
        ``algorithm.a2po.`` in front)."""
        for key, value, valid in (("loop", self.loop, A2PO_LOOPS), ("advantage", self.advantage, A2PO_ADVANTAGES)):
            if value not in valid:
                raise ValueError(f"{key}={value!r} is not valid; choose one of {list(valid)}")
        if self.clip_tuner is not None and not 0 <= self.clip_tuner <= 1:
            raise ValueError(f"clip_tuner={self.clip_tuner!r} must be in [0, 1] or null")
        if not 0 <= self.others_clip < 1:
            raise ValueError(f"others_clip={self.others_clip!r} must be in [0, 1)")


class A2POLoss(SequentialPPOLoss):
    """The unreduced loss with A2PO's correction of the ratio when ``correction`` is
    ``(preceding agents (LongTensor), clip)``."""

    correction = None

    def _log_weight(self, tensordict, adv_shape):
        log_weight, dist, kl_approx, log_is_weight = super()._log_weight(tensordict, adv_shape)
        if self.correction is not None and self.correction[0].numel():  # log_weight [*B, N, 1], agent axis -2
            preceding, clip = self.correction
            joint = log_weight.detach().index_select(-2, preceding.to(log_weight.device)).sum(-2, keepdim=True)
            joint = joint.exp().clamp(1.0 - clip, 1.0 + clip).log()
            log_weight = log_weight + joint  # the same factor for every agent; only agent j's is used
        return log_weight, dist, kl_approx, log_is_weight


def gae_trace(delta: torch.Tensor, ratio: torch.Tensor, done: torch.Tensor, gamma_lambda: float) -> torch.Tensor:
    """A2PO's GAE-trace advantage (the LoRASA code's ``adv: gae_trace`` with ``speedup_trace``), ``[E, T]``:

    ``A_k = sum_{l >= k} (gamma lambda)^(l - k) c_{k,l} delta_l``, the sum cut where an episode ends
    (``done_m`` for ``k <= m < l``), with the off-policy trace ``c_{k,k} = 1`` and
    ``c_{k,l} = min(1, c_{k,l-1} ratio_l)``: ``ratio`` is the preceding agents' joint probability
    ratio (current / behaviour policy). With ratios of 1 it is GAE. ``delta``: TD errors (bootstrapped
    through truncations, not through terminations, as TorchRL's GAE), ``done``: episode ends (bool)."""
    E, T = delta.shape
    steps = torch.arange(T, device=delta.device)
    trace = torch.zeros(E, T, dtype=delta.dtype, device=delta.device)  # c_{k,l} for every start k
    decay = torch.zeros_like(trace)  # (gamma lambda)^(l - k), 0 once an episode ended between k and l
    advantage = torch.zeros_like(trace)
    keep = (~done).to(delta.dtype)
    for l in range(T):
        if l > 0:
            trace = torch.minimum(trace * ratio[:, l:l + 1], torch.ones_like(trace))
            decay = decay * (gamma_lambda * keep[:, l - 1:l])
        start = (steps == l).to(delta.dtype)  # k = l starts with c = 1 and weight 1
        trace = trace + start * (1.0 - trace)
        decay = decay + start * (1.0 - decay)
        advantage = advantage + decay * trace * delta[:, l:l + 1]
    return advantage


def trained_cluster_size(net, agent: int) -> int | None:
    """The size of agent ``agent``'s cluster when ``net`` trains weights shared within clusters
    (``param_sharing`` tag "cluster", ``requires_grad``: SePS; not SePS+LoRA's frozen backbone), else None."""
    for module in net.modules():
        tags = getattr(module, "param_sharing", {})
        if any(tags.get(name) == CLUSTER and p.requires_grad for name, p in module.named_parameters(recurse=False)):
            return int((module.clusters == module.clusters[agent]).sum())
    return None


class A2POUpdate(SequentialUpdate):
    loss_type = A2POLoss

    def __init__(self, *args, others_clip: float = 0.1, loop: str = "agent", clip_tuner: float | None = None,
                 advantage: str = "gae", two_stage: bool = False, **kwargs):
        if loop not in A2PO_LOOPS:
            raise ValueError(f"algorithm.a2po.loop={loop!r}; valid: {list(A2PO_LOOPS)}")
        if advantage not in A2PO_ADVANTAGES:
            raise ValueError(f"algorithm.a2po.advantage={advantage!r}; valid: {list(A2PO_ADVANTAGES)}")
        super().__init__(*args, **kwargs)
        self.others_clip, self.loop, self.clip_tuner = others_clip, loop, clip_tuner
        self.advantage, self.two_stage = advantage, two_stage

    def draw_order(self, advantage, value):
        """Semi-greedy by ``mean |A_i / V_i|``: the best remaining agent, then a random remaining one."""
        n = advantage.shape[-2]
        score = (advantage / value).abs().nan_to_num(posinf=torch.finfo(advantage.dtype).max)
        score = score.reshape(-1, n).mean(0)
        remaining = sorted(range(n), key=lambda i: -float(score[i]))  # stable: ties keep agent order
        seq = []
        while remaining:
            seq.append(remaining.pop(0))
            if remaining:
                seq.append(remaining.pop(int(torch.randint(len(remaining), ()))))
        return seq

    def turn_critic(self, turn, n):
        return "agent"

    def passes(self):
        """``loop="ppo"``: ``epochs`` passes of one epoch each, every pass in a freshly drawn order
        (the code redraws it)."""
        return self.epochs if self.loop == "ppo" else 1

    def turn_epochs(self, holder, agent: int) -> int:
        """``epochs``, or 1 in the epoch loop; with weights shared within clusters (SePS, as the LoRASA
        code): ``ceil(epochs / size of the agent's cluster)``, so a cluster's shared weights get about
        ``epochs`` epochs per iteration."""
        if self.loop == "ppo":
            return 1
        size = trained_cluster_size(getattr(holder, "net", holder), agent)
        return self.epochs if size is None else -(-self.epochs // size)

    def begin_update(self, items, loss):
        self.clip_epsilon = loss.clip_epsilon.clone()

    def begin_turn(self, loss, order, turn):
        loss.correction = (self.preceding(order, turn), self.others_clip)
        # the code passes the agent's place in the order in its agent loop, and 1 (its block size) in
        # its epoch loop: followed as it is
        place = 1 if self.loop == "ppo" else turn + 1
        loss.clip_epsilon.copy_(self.turn_clip(self.clip_epsilon, place, len(order)))

    @staticmethod
    def preceding(order: list[int], turn: int) -> torch.Tensor:
        """The agents whose joint ratio corrects turn ``turn``'s: those before it in ``order``."""
        return torch.tensor(order[:turn], dtype=torch.long)

    def turn_samples(self, items, loss, order, turn, advantage, normalise):
        if self.advantage == "gae_trace" and turn > 0:
            return self.traced(items, loss, order[turn], order[:turn], advantage, normalise)
        return super().turn_samples(items, loss, order, turn, advantage, normalise)

    def critic_first(self, critic):
        """With the GAE trace and two stages (the code's ``use_two_stage``) every epoch first runs a pass
        that trains only the critic, on the traced targets, then the usual pass."""
        return self.advantage == "gae_trace" and self.two_stage and critic is not None

    def end_update(self, loss):
        loss.correction = None
        loss.clip_epsilon.copy_(self.clip_epsilon)

    @torch.no_grad()
    def traced(self, items, loss, agent: int, preceding: list[int], advantage, normalise: bool):
        """Agent ``agent``'s advantage and value target recomputed with the GAE trace of the preceding
        agents' joint ratio at the current parameters (:func:`gae_trace`); the other agents' columns
        are kept (only ``agent``'s enter its turn). Returns the sample replacements."""
        shape = self.batch_shape
        col = lambda td, key: td.get(key)[..., agent, 0].reshape(shape)  # noqa: E731  [E, T]
        new_logp = loss._get_cur_log_prob(items.copy())[0]
        log_ratio = (new_logp - items.get(LOGP))[..., preceding].sum(-1)
        value, next_value = col(items, VALUE), col(items, ("next",) + VALUE)
        reward = col(items, ("next", "agents", "reward"))
        terminated = col(items, ("next", "agents", "terminated")).to(value.dtype)
        done = col(items, ("next", "agents", "done")).bool()
        gamma, lmbda = float(loss.value_estimator.gamma), float(loss.value_estimator.lmbda)
        delta = reward + gamma * next_value * (1.0 - terminated) - value
        traced = gae_trace(delta, log_ratio.exp().reshape(shape), done, gamma * lmbda)
        target_key = loss.tensor_keys.value_target
        target = items.get(target_key).clone()
        target[..., agent, 0] = (traced + value).reshape(target.shape[:-2])
        raw = items.get(loss.tensor_keys.advantage).clone()
        raw[..., agent, 0] = traced.reshape(raw.shape[:-2])
        new_advantage = (raw - raw.mean()) / raw.std().clamp_min(1e-6) if normalise else raw
        self.last_traced = traced
        return [(loss.tensor_keys.advantage, new_advantage), (target_key, target)]

    def turn_clip(self, clip_epsilon: torch.Tensor, place: int, n: int) -> torch.Tensor:
        """The clip for the agent at ``place`` (1-based) of ``n``: ``clip_epsilon`` without the tuner;
        with it (weight ``w``, the LoRASA code's ``clip_param_tuner`` / ``near_linear``):
        ``clip_epsilon * (place / n * w + 1 - w)``, so later agents, whose ratio already carries the
        preceding agents' correction, get the wider clip."""
        if self.clip_tuner is None:
            return clip_epsilon
        w = self.clip_tuner
        return clip_epsilon * (place / n * w + 1.0 - w)


class A2PO(Algorithm):
    name = "a2po"
    critic = CENTRAL
    loss = A2POLoss
    update = A2POUpdate
    compiles = False
    settings = A2POSettings  # algorithm.a2po.*, passed to A2POUpdate by Algorithm.update_options
