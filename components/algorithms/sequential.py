"""Sequential agent-by-agent PPO updates: HAPPO and A2PO.

Both take the batch of one iteration (GAE as for MAPPO) and update the actors in *turns*, one turn
per agent in an order drawn each iteration. A turn runs the usual ``epochs`` x minibatches; every
gradient step is one batched forward of all agents (no Python loop over agents), with the policy
loss (objective and entropy) taken on agent ``j``'s entries only. So with N agents a sequential
update takes N times MAPPO's gradient steps, and with one agent it *is* the MAPPO update, bit for bit.

**HAPPO** (Kuba et al. 2022; the PKU-MARL/HARL code): a random permutation of the agents each
iteration. Agent j's clipped objective is weighted by ``M = prod_{k before j} pi_k^new / pi_k^old``
(per sample, no gradient): ``min(r_j A M, clip(r_j) A M)``, implemented as the clipped loss with the
advantage ``A M`` (``M > 0``). After agent j's turn its ratio is recomputed on the whole batch with
the updated policy and multiplied into ``M``. The critic updates once per iteration: its loss joins
the last turn's gradient steps (the same ``epochs`` x minibatches as MAPPO's critic).

**A2PO** as the LoRASA authors' code runs it (``r_mappo.py``, ``a2po_update`` / ``train_a2po`` with
the agent loop outside the epochs and the "semi-greedy" order):

- order: agents sorted by ``mean |A_i / V_i|`` over the batch (normalised advantages), descending;
  the sequence alternates the best remaining agent with a uniformly random remaining one;
- agent i's ratio is multiplied by the preceding agents' joint ratio ``R = prod_k r_k`` computed at
  the *current* parameters on each minibatch (no gradient) and clipped to ``1 +/- others_clip``, and
  the PPO clip then acts on the product: ``min(r_i R A, clip(r_i R, 1 +/- eps) A)``. (The A2PO paper
  writes the correction as a factor on the advantage outside the clip; the code puts it inside the
  ratio, which we follow.) Here ``R`` is read from the same batched forward that gives ``r_i``.
- the critic updates in every turn, its loss taken on agent i's samples, as in the code;
- ``a2po_clip_tuner`` (the code's ``clip_param_tuner``): the k-th of N agents clips at
  ``eps * (k / N * w + 1 - w)``; ``a2po_loop="ppo"`` (its SMAC scripts): the epochs outside the agent
  loop, one epoch per turn, the order drawn again each epoch (there the code passes the tuner place 1);
- ``a2po_advantage="gae_trace"`` (the code's ``adv: gae_trace`` with ``speedup_trace``): before each
  turn after the first, the agent's advantage and value target come from :func:`gae_trace` with the
  preceding agents' joint ratio at the current parameters; with ``a2po_two_stage`` each epoch first
  runs a critic-only pass (the code's ``use_two_stage``).

With SePS, A2PO gives each turn ``ceil(epochs / size of the agent's cluster)`` epochs, as the code
does. Not reproduced from the code: its division of the shared-policy loss by the number of agents
sharing it (Adam is invariant to that scale up to ``eps`` and gradient clipping).

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

from marlshare.components.algorithms.ppo import ReferencePPOLoss
from marlshare.components.algorithms.update import PPOUpdate
from marlshare.components.layers import AGENT, CLUSTER

SEQUENTIAL = ("happo", "a2po")
A2PO_ADVANTAGES = ("gae", "gae_trace")
A2PO_LOOPS = ("agent", "ppo")  # agents outside the epochs (the code's MaMuJoCo runs) | epochs outside (SMAC)
VALUE, LOGP = ("agents", "state_value"), ("agents", "action_log_prob")


class SequentialPPOLoss(ReferencePPOLoss):
    """ClipPPOLoss without reduction (losses ``[*B, N]``: the updater picks agent j's entries), with
    A2PO's correction of the ratio when ``self.a2po`` is ``(preceding agents (LongTensor), clip)``."""

    a2po = None

    def _log_weight(self, tensordict, adv_shape):
        log_weight, dist, kl_approx, log_is_weight = super()._log_weight(tensordict, adv_shape)
        if self.a2po is not None and self.a2po[0].numel():  # log_weight [*B, N, 1], agent axis -2
            preceding, clip = self.a2po
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
    """``PPOUpdate`` with the actors updated agent by agent (HAPPO or A2PO); same call signature."""

    def __init__(self, method: str, *args, others_clip: float = 0.1, loop: str = "agent",
                 clip_tuner: float | None = None, advantage: str = "gae", two_stage: bool = False, **kwargs):
        if method not in SEQUENTIAL:
            raise ValueError(f"sequential method must be one of {list(SEQUENTIAL)}, got {method!r}")
        if loop not in A2PO_LOOPS:
            raise ValueError(f"algorithm.a2po_loop={loop!r}; valid: {list(A2PO_LOOPS)}")
        if advantage not in A2PO_ADVANTAGES:
            raise ValueError(f"algorithm.a2po_advantage={advantage!r}; valid: {list(A2PO_ADVANTAGES)}")
        super().__init__(*args, **kwargs)
        self.method, self.others_clip, self.loop, self.clip_tuner = method, others_clip, loop, clip_tuner
        self.advantage, self.two_stage = advantage, two_stage
        self.last_order: list[int] = []

    # --- order ------------------------------------------------------------------------------------
    def order(self, advantage: torch.Tensor, value: torch.Tensor) -> list[int]:
        """HAPPO: a random permutation. A2PO: semi-greedy by ``mean |A_i / V_i|``. ``advantage`` and
        ``value``: ``[..., N, 1]``. No random draw with one agent."""
        n = advantage.shape[-2]
        if n == 1:
            return [0]
        if self.method == "happo":
            return torch.randperm(n).tolist()
        score = (advantage / value).abs().nan_to_num(posinf=torch.finfo(advantage.dtype).max)
        score = score.reshape(-1, n).mean(0)
        remaining = sorted(range(n), key=lambda i: -float(score[i]))  # stable: ties keep agent order
        seq = []
        while remaining:
            seq.append(remaining.pop(0))
            if remaining:
                seq.append(remaining.pop(int(torch.randint(len(remaining), ()))))
        return seq

    # --- the turns --------------------------------------------------------------------------------
    def _train(self, items, loss, optimiser, trainable, aux, holder, stats) -> int:
        if not isinstance(loss, SequentialPPOLoss):
            raise TypeError(f"{self.method} needs the loss built by make_loss for {self.method!r}")
        adv_key = loss.tensor_keys.advantage  # GAE's advantage, [*rows, N, 1]
        advantage = items.get(adv_key)
        normalised = (advantage - advantage.mean()) / advantage.std().clamp_min(1e-6)
        if loss.normalize_advantage:
            advantage = normalised
        epoch_loop = self.method == "a2po" and self.loop == "ppo"
        # the passes: one pass over every agent's turn with `epochs` epochs each, or (A2PO, loop "ppo")
        # `epochs` passes of one epoch each, every pass in a freshly drawn order (the code redraws it)
        passes = self.epochs if epoch_loop else 1
        skipped, factor = 0, None  # HAPPO's product of the updated agents' ratios, per row: [*rows, 1, 1]
        old_logp = items.get(LOGP)
        actor_modules = list(holder.modules())
        critic_modules = list(loss.critic_network.modules())
        flag, clip_epsilon = loss.normalize_advantage, loss.clip_epsilon.clone()
        loss.normalize_advantage = False
        try:
            for _ in range(passes):
                order = self.order(normalised, items.get(VALUE))
                self.last_order = order
                n = len(order)
                for turn, agent in enumerate(order):
                    modules = actor_modules + (critic_modules if self.method == "a2po" else [])
                    guard = SliceGuard(optimiser, agent_rows(modules, agent))
                    critic = "agent" if self.method == "a2po" else ("all" if turn == n - 1 else None)
                    loss.update_value_norm = critic is not None
                    if self.method == "a2po":
                        loss.a2po = (torch.tensor(order[:turn], dtype=torch.long), self.others_clip)
                        # the code passes the agent's place in the order in its agent loop, and 1 (its
                        # block size) in its epoch loop: followed as it is
                        loss.clip_epsilon.copy_(self.turn_clip(clip_epsilon, 1 if epoch_loop else turn + 1, n))
                    turn_adv = advantage if factor is None else advantage * factor
                    replacements = [(adv_key, turn_adv)] if factor is not None or flag else []
                    if self.method == "a2po" and self.advantage == "gae_trace" and turn > 0:
                        replacements = self.traced(items, loss, agent, order[:turn], advantage, flag)
                    epochs = 1 if epoch_loop else self.turn_epochs(holder, agent)
                    skipped += self._turn(items, loss, optimiser, trainable, aux, stats, guard, agent, critic,
                                          replacements, epochs)
                    if self.method == "happo" and turn < n - 1:
                        with torch.no_grad():
                            new_logp = loss._get_cur_log_prob(items.copy())[0]
                        ratio = (new_logp[..., agent] - old_logp[..., agent]).exp()[..., None, None]
                        factor = ratio if factor is None else factor * ratio
        finally:
            loss.a2po, loss.update_value_norm = None, True
            loss.normalize_advantage = flag
            loss.clip_epsilon.copy_(clip_epsilon)
        self.last_factor = factor
        return skipped

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
        """A2PO's clip for the agent at ``place`` (1-based) of ``n``: ``clip_epsilon`` without the tuner;
        with it (weight ``w``, the LoRASA code's ``clip_param_tuner`` / ``near_linear``):
        ``clip_epsilon * (place / n * w + 1 - w)``, so later agents, whose ratio already carries the
        preceding agents' correction, get the wider clip."""
        if self.clip_tuner is None:
            return clip_epsilon
        w = self.clip_tuner
        return clip_epsilon * (place / n * w + 1.0 - w)

    def turn_epochs(self, holder, agent: int) -> int:
        """``epochs``; A2PO with SePS (as the LoRASA code): ``ceil(epochs / size of the agent's cluster)``,
        so a cluster's shared weights get about ``epochs`` epochs per iteration."""
        net = getattr(holder, "net", holder)
        if self.method != "a2po" or getattr(net, "strategy_name", None) != "seps":
            return self.epochs
        clusters = next((m.clusters for m in net.modules() if hasattr(m, "clusters")), None)
        if clusters is None:
            return self.epochs
        size = int((clusters == clusters[agent]).sum())
        return -(-self.epochs // size)

    def _turn(self, items, loss, optimiser, trainable, aux, stats, guard, agent, critic, replacements, epochs) -> int:
        skipped = 0
        # A2PO with the GAE trace and two stages (the code's use_two_stage): every epoch first runs a
        # pass that trains only the critic, on the traced targets, then the usual pass
        critic_first = self.method == "a2po" and self.advantage == "gae_trace" and self.two_stage and critic
        for _ in range(epochs):
            if critic_first:
                skipped += self._critic_pass(items, loss, optimiser, trainable, guard, agent, replacements)
            for _ in range(self.steps):
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
            critic_loss = loss.loss_critic(self._minibatch(items, replacements))[0]  # [*rows, N, 1], critic_coeff included
            critic_loss = critic_loss.squeeze(-1).select(-1, agent).mean()
            if self.apply(critic_loss, optimiser, trainable, guard.mask_gradients, guard.step) is None:
                skipped += 1
        return skipped


def make_update(algorithm, chunk: int, on_nonfinite, on_finite) -> PPOUpdate:
    """The update of ``algorithm`` (an :class:`~components.config.AlgorithmConfig`): ``PPOUpdate`` for
    MAPPO / IPPO, :class:`SequentialUpdate` for HAPPO / A2PO. The trainer sets ``compile`` per phase
    (:func:`~components.algorithms.update.compile_mode`); the sequential updates stay eager."""
    a = algorithm
    args = (a.frames_per_batch, a.minibatch_size, a.epochs, a.max_grad_norm, chunk)
    if a.name in SEQUENTIAL:
        return SequentialUpdate(a.name, *args, others_clip=a.others_clip, loop=a.a2po_loop,
                                clip_tuner=a.a2po_clip_tuner, advantage=a.a2po_advantage,
                                two_stage=a.a2po_two_stage,
                                on_nonfinite=on_nonfinite, on_finite=on_finite)
    return PPOUpdate(*args, on_nonfinite=on_nonfinite, on_finite=on_finite)
