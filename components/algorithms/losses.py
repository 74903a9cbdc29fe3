"""The clipped PPO losses (TorchRL's ``ClipPPOLoss`` and its subclasses) and their settings.

- ``ClipPPOLoss`` as TorchRL has it (MAPPO, IPPO with the default value loss);
- :class:`ReferencePPOLoss`: with the value-loss details of the MAPPO / LoRASA reference code;
- :class:`SequentialPPOLoss`: unreduced (``[*B, N]``), for the agent-by-agent updates.

:func:`build_loss` builds any of them keyed for one agent group, with TorchRL's GAE; an algorithm
declares which class (:attr:`~components.algorithms.algorithm.Algorithm.loss`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torchrl.objectives import ClipPPOLoss, ValueEstimators

from marlshare.components.algorithms.keys import ACTION, LOGP, VALUE
from marlshare.components.algorithms.ppo import ValueNorm, value_norm_of
from marlshare.envs import GROUP


@dataclass
class PPOSettings:
    clip_epsilon: float = 0.2
    entropy_coeff: float = 0.0
    critic_coeff: float = 1.0
    gamma: float = 0.99
    lmbda: float = 0.95
    normalize_advantage: bool = False
    loss_critic_type: str = "l2"
    algorithm: str = "mappo"  # the registry name whose loss class make_loss builds
    huber_delta: Optional[float] = None  # Huber value loss with this delta (None: squared error)
    clip_value_loss: bool = False  # PPO-style clipped value loss, radius clip_epsilon (normalised space)

    def reference(self, critic) -> bool:
        """Whether a value-loss detail of the reference code is on (it needs a :class:`ReferencePPOLoss`)."""
        return value_norm_of(critic) is not None or self.huber_delta is not None or self.clip_value_loss


def ppo_settings(algorithm, plan) -> PPOSettings:
    """The loss settings of an :class:`~components.config.AlgorithmConfig`, with a phase's overrides
    (``plan.clip_epsilon``, ``plan.entropy_coeff``; None keeps the algorithm's)."""
    a = algorithm
    pick = lambda value, default: default if value is None else value  # noqa: E731
    return PPOSettings(clip_epsilon=pick(plan.clip_epsilon, a.clip_epsilon),
                       entropy_coeff=pick(plan.entropy_coeff, a.entropy_coeff), critic_coeff=a.critic_coeff,
                       gamma=a.gamma, lmbda=a.lmbda, normalize_advantage=a.normalize_advantage, algorithm=a.name,
                       huber_delta=a.huber_delta, clip_value_loss=a.clip_value_loss)


class ReferencePPOLoss(ClipPPOLoss):
    """ClipPPOLoss with the value-loss details of the MAPPO / LoRASA code, through TorchRL's own
    critic-loss path (``_critic_loss_inputs`` hook, ``clip_value``, ``smooth_l1``):

    - value normalisation: when the critic ends in a :class:`ValueNorm`, the statistics are updated
      with each minibatch's targets (as the reference does) and target, value and old value are
      normalised before the distance;
    - Huber loss with delta ``d``: ``huber_d(e) = d^2 smooth_l1(e / d)``, so the inputs are divided
      by ``d``, the loss type is ``smooth_l1``, the coefficient is multiplied by ``d^2`` and the value
      clip radius divided by ``d``;
    - clipped value loss: TorchRL's ``clip_value`` (``max`` of the plain and the clipped loss).

    ``update_value_norm = False`` freezes the statistics (HAPPO's turns that leave the critic alone).
    """

    input_scale: float | None = None
    update_value_norm = True

    @property
    def value_norm(self) -> ValueNorm | None:  # looked up, not stored: a Module attribute would be registered
        return value_norm_of(self.critic_network)

    def _critic_loss_inputs(self, target_return, state_value, old_state_value):
        if self.value_norm is not None:
            if self.update_value_norm and torch.is_grad_enabled():
                self.value_norm.update(target_return)
            target_return, state_value = self.value_norm.normalize(target_return), self.value_norm.normalize(state_value)
            old_state_value = None if old_state_value is None else self.value_norm.normalize(old_state_value)
        if self.input_scale is not None:
            target_return, state_value = target_return * self.input_scale, state_value * self.input_scale
            old_state_value = None if old_state_value is None else old_state_value * self.input_scale
        return target_return, state_value, old_state_value


class SequentialPPOLoss(ReferencePPOLoss):
    """ClipPPOLoss without reduction: losses ``[*B, N]``, the sequential update picks agent j's entries."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, reduction="none", **kwargs)


def build_loss(cls: type[ClipPPOLoss], actor, critic, settings: PPOSettings) -> ClipPPOLoss:
    """A clipped PPO loss of class ``cls`` with TorchRL's GAE, keyed for one agent group. Built
    ``functional=False``: the loss calls the actor and critic as they are instead of swapping copies
    of their parameters in (the same losses and gradients; fewer guards for a compiled loss,
    docs/benchmarks.md section 6)."""
    coeff, critic_type, clip_value = settings.critic_coeff, settings.loss_critic_type, None
    if settings.clip_value_loss:
        clip_value = settings.clip_epsilon
    if settings.huber_delta is not None:
        d = float(settings.huber_delta)
        coeff, critic_type = coeff * d * d, "smooth_l1"
        clip_value = None if clip_value is None else clip_value / d
    loss = cls(actor, critic, clip_epsilon=settings.clip_epsilon, entropy_coeff=settings.entropy_coeff,
               critic_coeff=coeff, loss_critic_type=critic_type, clip_value=clip_value,
               normalize_advantage=settings.normalize_advantage, functional=False)
    if isinstance(loss, ReferencePPOLoss):
        loss.input_scale = None if settings.huber_delta is None else 1.0 / float(settings.huber_delta)
    loss.set_keys(reward=(GROUP, "reward"), action=ACTION, sample_log_prob=LOGP, value=VALUE,
                  done=(GROUP, "done"), terminated=(GROUP, "terminated"))
    loss.make_value_estimator(ValueEstimators.GAE, gamma=settings.gamma, lmbda=settings.lmbda)
    return loss
