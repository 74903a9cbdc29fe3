"""The algorithm base class: what the trainer needs from an on-policy algorithm, declared on the class.

A subclass is one module and one line in ``ALGORITHMS`` (``components/algorithms/__init__.py``); the
trainer reads its declarations and never branches on its name:

- ``name``: its registry name (the config's ``algorithm.name``);
- ``critic``: the critic kind, ``central`` (MAPPO's centralised critic: the global state, or all
  observations) or ``local`` (IPPO's: the agent's own observation), see :mod:`components.algorithms.ppo`;
- ``loss``: the loss class (:mod:`components.algorithms.losses`); when a value-loss detail of the
  reference code is on, a loss that is not a ``ReferencePPOLoss`` is replaced by ``ReferencePPOLoss``;
- ``update``: the update class, :class:`~components.algorithms.update.PPOUpdate` or a
  :class:`~components.algorithms.sequential.SequentialUpdate`, with ``update_options(config)``: the
  keyword arguments it takes from the :class:`~components.config.AlgorithmConfig`;
- ``settings``: None, or a dataclass of the algorithm's own settings. The config gets a field named
  after the algorithm holding them (``algorithm.a2po.loop``; :mod:`components.config` builds
  ``AlgorithmConfig`` from this registry), and ``update_options`` passes its fields to the update as
  keyword arguments; its ``check()``, if it has one, raises ValueError for a bad value (the config
  check reports it under ``algorithm.<name>.``);
- ``compiles``: whether the trainer may ``torch.compile`` the update step (the sequential updates
  stay eager).

``make_critic``, ``make_loss`` and ``make_update`` build from these what the trainer holds.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torchrl.objectives import ClipPPOLoss

from marlshare.components.algorithms.losses import PPOSettings, ReferencePPOLoss, build_loss
from marlshare.components.algorithms.ppo import CENTRAL, build_critic
from marlshare.components.algorithms.update import PPOUpdate


class Algorithm:
    """Base class; subclasses only declare (see the module docstring)."""

    name: ClassVar[str] = ""
    critic: ClassVar[str] = CENTRAL
    loss: ClassVar[type[ClipPPOLoss]] = ClipPPOLoss
    update: ClassVar[type[PPOUpdate]] = PPOUpdate
    compiles: ClassVar[bool] = True
    settings: ClassVar[type | None] = None

    @classmethod
    def make_critic(cls, info, sharing: str = "shared", hidden=(64, 64), activation: str = "relu",
                    agent_id: bool = True, value_norm: bool = False):
        """The declared kind of critic; ``value_norm=True`` ends it in a ``ValueNorm``."""
        return build_critic(info, cls.critic, sharing, hidden, activation, agent_id, value_norm)

    @classmethod
    def loss_class(cls, critic, settings: PPOSettings) -> type[ClipPPOLoss]:
        if settings.reference(critic) and not issubclass(cls.loss, ReferencePPOLoss):
            return ReferencePPOLoss
        return cls.loss

    @classmethod
    def make_loss(cls, actor, critic, settings: PPOSettings) -> ClipPPOLoss:
        return build_loss(cls.loss_class(critic, settings), actor, critic, settings)

    @classmethod
    def update_options(cls, config) -> dict:
        """The update's keyword arguments beyond the common ones, from the algorithm config: the fields
        of its ``settings`` (``config.<name>``), if it declares any."""
        if cls.settings is None:
            return {}
        own = getattr(config, cls.name)
        return {f.name: getattr(own, f.name) for f in dataclasses.fields(cls.settings)}

    @classmethod
    def make_update(cls, config, chunk: int, on_nonfinite, on_finite) -> PPOUpdate:
        """The update of an :class:`~components.config.AlgorithmConfig`; ``chunk``: the recurrent
        actor's chunk length (1 for feed-forward actors). The trainer sets ``compile`` per phase where
        ``compiles``."""
        a = config
        return cls.update(a.frames_per_batch, a.minibatch_size, a.epochs, a.max_grad_norm, chunk,
                          on_nonfinite=on_nonfinite, on_finite=on_finite, **cls.update_options(a))
