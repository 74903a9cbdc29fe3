"""Sequential agent-by-agent PPO updates: what HAPPO (:mod:`.happo`) and A2PO (:mod:`.a2po`) share.

Both take the batch of one iteration (GAE as for MAPPO) and update the actors in *turns*, one turn
per agent in an order drawn each iteration. A turn runs the usual ``epochs`` x minibatches; every
gradient step is one batched forward of all agents (no Python loop over agents), with the policy
loss (objective and entropy) taken on agent ``j``'s entries only. So with N agents a sequential
update takes N times MAPPO's gradient steps, and with one agent it *is* the MAPPO update, bit for bit.

:class:`SequentialUpdate` runs the turns; a subclass decides, through its hooks,

- ``draw_order``: the order of the agents (more than one);
- ``passes``: how often the turns of all agents run (each pass in a freshly drawn order), and
  ``turn_epochs``: the epochs of one turn;
- ``turn_critic``: what of the critic a turn trains: ``"all"`` (its whole loss joins the turn's
  steps), ``"agent"`` (agent j's value loss, and of per-agent critic tensors only agent j's rows) or
  None;
- ``begin_turn`` / ``turn_samples`` / ``end_turn``: the loss settings of a turn, the turn's
  replacements of batch entries (a corrected or recomputed advantage), what follows a turn;
- ``critic_first``: whether each epoch of a turn starts with a critic-only pass;
- ``begin_update`` / ``end_update``: around all turns.

**Parameters that are not agent j's.** With shared parameters (PS, SePS clusters, MTL trunk, Prism
bases) agent j's turn moves them from agent j's samples. Per-agent tensors (``param_sharing`` tag
"agent", leading agent axis; "cluster" tensors: leading cluster axis) must not move for other agents:
:class:`SliceGuard` zeroes the other rows' gradients before clipping and, around Adam's step,
restores the other rows of the parameter and of Adam's ``exp_avg`` / ``exp_avg_sq``, and keeps one
step count per row (``state["slice_step"]``) that is swapped into Adam's ``step`` for the row that
moves. So each agent's slice sees exactly the Adam it would see with its own optimiser.

With ``normalize_advantage`` the advantage is normalised once over the whole batch (as both
reference codes do), not per minibatch.
"""

from __future__ import annotations

import torch

from marlshare.components.algorithms.keys import VALUE
from marlshare.components.algorithms.losses import SequentialPPOLoss
from marlshare.components.algorithms.precision import float32_outputs, forward_context
from marlshare.components.algorithms.update import PPOUpdate
from marlshare.components.layers import AGENT, CLUSTER

def agent_rows(modules, agent: int):
    """``(parameter, row)`` for every trainable per-agent or per-cluster tensor with more than one row
    in ``modules``: ``row`` is agent ``agent``'s index into the leading axis."""
    seen, out = set(), []
    for module in modules:
        tags = getattr(module, "param_sharing", {})
        for name, p in module.named_parameters(recurse=False):
            kind = tags.get(name)
            if kind not in (AGENT, CLUSTER) or not p.requires_grad or p.shape[0] < 2 or id(p) in seen:
                continue
            seen.add(id(p))
            out.append((p, agent if kind == AGENT else int(module.clusters[agent])))
    return out


class SliceGuard:
    """Optimiser steps that move only given rows of given tensors (see the module docstring)."""

    def __init__(self, optimiser: torch.optim.Optimizer, rows):
        self.optimiser, self.rows = optimiser, rows

    def mask_gradients(self) -> None:
        for p, row in self.rows:
            if p.grad is not None:
                keep = p.grad[row].clone()
                p.grad.zero_()
                p.grad[row] = keep

    def step(self) -> None:
        saved = []
        for p, row in self.rows:
            if p.grad is None:
                continue
            state = self.optimiser.state[p]
            if state:
                slice_step = state.get("slice_step")
                if slice_step is None:  # moments from before the sequential turns: one shared count
                    slice_step = torch.full((p.shape[0],), float(state["step"]))
                moments = {k: state[k].clone() for k in ("exp_avg", "exp_avg_sq")}
                state["step"] = slice_step[row].clone()
            else:  # Adam initialises the state in this step: the other rows start from zero
                slice_step, moments = torch.zeros(p.shape[0], dtype=torch.get_default_dtype()), None
            saved.append((p, row, p.detach().clone(), moments, slice_step))
        self.optimiser.step()
        with torch.no_grad():
            for p, row, value, moments, slice_step in saved:
                state = self.optimiser.state[p]
                others = torch.ones(p.shape[0], dtype=torch.bool, device=p.device)
                others[row] = False
                p[others] = value[others]
                for k in ("exp_avg", "exp_avg_sq"):
                    state[k][others] = 0.0 if moments is None else moments[k][others]
                slice_step = slice_step.clone()
                slice_step[row] = float(state["step"])
                state["slice_step"] = slice_step


class SequentialUpdate(PPOUpdate):
    """``PPOUpdate`` with the actors updated agent by agent; same call signature. Subclasses choose the
    hooks (module docstring); ``loss_type``: the loss it drives."""

    loss_type: type[SequentialPPOLoss] = SequentialPPOLoss

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_order: list[int] = []

    # --- the hooks --------------------------------------------------------------------------------
    def draw_order(self, advantage: torch.Tensor, value: torch.Tensor) -> list[int]:
        """The agents in the order of their turns; ``advantage`` and ``value``: ``[..., N, 1]``, N > 1."""
        raise NotImplementedError

    def turn_critic(self, turn: int, n: int) -> str | None:
        """What of the critic turn ``turn`` of ``n`` trains: ``"all"``, ``"agent"`` or None."""
        raise NotImplementedError

    def passes(self) -> int:
        return 1

    def turn_epochs(self, holder, agent: int) -> int:
        return self.epochs

    def begin_update(self, items, loss) -> None:
        pass

    def begin_turn(self, loss, order: list[int], turn: int) -> None:
        pass

    def turn_samples(self, items, loss, order: list[int], turn: int, advantage, normalise: bool) -> list:
        """``(key, tensor)`` replacements of the turn's samples: the advantage normalised over the batch."""
        return [(loss.tensor_keys.advantage, advantage)] if normalise else []

    def critic_first(self, critic: str | None) -> bool:
        return False

    def end_turn(self, items, loss, order: list[int], turn: int) -> None:
        pass

    def end_update(self, loss) -> None:
        pass

    # --- the turns --------------------------------------------------------------------------------
    def order(self, advantage: torch.Tensor, value: torch.Tensor) -> list[int]:
        """The order of the turns (:meth:`draw_order`); no random draw with one agent."""
        return [0] if advantage.shape[-2] == 1 else self.draw_order(advantage, value)

    def _train(self, items, loss, optimiser, trainable, aux, holder, stats) -> int:
        if not isinstance(loss, self.loss_type):
            raise TypeError(f"{type(self).__name__} needs a {self.loss_type.__name__}: the loss make_loss builds "
                            f"for its algorithm")
        advantage = items.get(loss.tensor_keys.advantage)  # GAE's advantage, [*rows, N, 1]
        normalised = (advantage - advantage.mean()) / advantage.std().clamp_min(1e-6)
        if loss.normalize_advantage:
            advantage = normalised
        skipped = 0
        if self.precision == "bf16":  # the turns' loss forwards under autocast, outputs back to float32
            float32_outputs(loss.actor_network, loss.critic_network)
        self._device_type = next(loss.parameters()).device.type
        actor_modules = list(holder.modules())
        critic_modules = list(loss.critic_network.modules())
        flag = loss.normalize_advantage
        loss.normalize_advantage = False
        self.begin_update(items, loss)
        try:
            for _ in range(self.passes()):
                order = self.order(normalised, items.get(VALUE))
                self.last_order = order
                for turn, agent in enumerate(order):
                    critic = self.turn_critic(turn, len(order))
                    modules = actor_modules + (critic_modules if critic == "agent" else [])
                    guard = SliceGuard(optimiser, agent_rows(modules, agent))
                    loss.update_value_norm = critic is not None
                    self.begin_turn(loss, order, turn)
                    replacements = self.turn_samples(items, loss, order, turn, advantage, flag)
                    skipped += self._turn(items, loss, optimiser, trainable, aux, stats, guard, agent, critic,
                                          replacements, self.turn_epochs(holder, agent))
                    self.end_turn(items, loss, order, turn)
        finally:
            loss.update_value_norm = True
            loss.normalize_advantage = flag
            self.end_update(loss)
        return skipped

    def _turn(self, items, loss, optimiser, trainable, aux, stats, guard, agent, critic, replacements, epochs) -> int:
        skipped = 0
        critic_first = self.critic_first(critic)
        for _ in range(epochs):
            if critic_first:
                skipped += self._critic_pass(items, loss, optimiser, trainable, guard, agent, replacements)
            for _ in range(self.steps):
                with forward_context(self.precision, self._device_type):
                    out = loss(self._minibatch(items, replacements))
                aux_loss = torch.as_tensor(aux())
                objective = out["loss_objective"].select(-1, agent).mean()
                total = objective
                critic_loss = None
                if critic is not None and "loss_critic" in out.keys():
                    critic_loss = out["loss_critic"]
                    critic_loss = critic_loss.mean() if critic == "all" else critic_loss.select(-1, agent).mean()
                    total = total + critic_loss
                entropy_loss = out["loss_entropy"].select(-1, agent).mean() if "loss_entropy" in out.keys() else None
                total = total + (0.0 if entropy_loss is None else entropy_loss) + aux_loss
                grad_norm = self.apply(total, optimiser, trainable, guard.mask_gradients, guard.step)
                if grad_norm is None:
                    skipped += 1
                    continue
                stats["loss_objective"].append(objective.detach())
                if critic_loss is not None:
                    stats["loss_critic"].append(critic_loss.detach())
                if entropy_loss is not None:
                    stats["loss_entropy"].append(entropy_loss.detach())
                for key in ("entropy", "kl_approx", "clip_fraction"):
                    if key in out.keys():
                        stats[key].append(out[key].detach().mean())
                stats["loss_aux"].append(aux_loss.detach())
                stats["grad_norm"].append(grad_norm)
        return skipped

    def _minibatch(self, items, replacements):
        """The next minibatch of ``items``, with the turn's ``(key, tensor)`` replacements (HAPPO's
        corrected advantage, A2PO's traced advantage and target) taken at the same rows."""
        index = self.minibatches.next()
        sample = items[index]
        for key, value in replacements:
            sample.set(key, value[index])
        return sample

    def _critic_pass(self, items, loss, optimiser, trainable, guard, agent, replacements) -> int:
        """One pass over the minibatches stepping only on agent ``agent``'s value loss (the actor gets
        no gradient, so Adam leaves it where it is); not in the logged statistics, as in the code."""
        skipped = 0
        for _ in range(self.steps):
            with forward_context(self.precision, self._device_type):
                critic_loss = loss.loss_critic(self._minibatch(items, replacements))[0]  # [*rows, N, 1], with critic_coeff
            critic_loss = critic_loss.squeeze(-1).select(-1, agent).mean()
            if self.apply(critic_loss, optimiser, trainable, guard.mask_gradients, guard.step) is None:
                skipped += 1
        return skipped
