"""Entering a phase of a schedule, the same for every strategy (the strategy owns what happens)::

    strategy.inherit(previous)        # e.g. SePS+LoRA takes SePS's clusters
    if strategy.needs_fit():          # SePS, SePS+LoRA, AdaPS without clusters
        strategy.fit(transitions of the current policy)
    net = strategy.adopt(previous, net)   # or make_network for the first phase

then the phase's optimiser is built over ``strategy.trainable(net)`` with the phase's learning rates,
clip and entropy coefficients (:func:`build_optimiser`). Each function takes the
:class:`~marlshare.components.trainer.Trainer` whose actor, critic and run state it changes.

The critic has a strategy too (:func:`critic_strategies`): it starts as ``critic_sharing`` says
(``ps``: one shared network, ``nps``: one per agent) and a phase may switch it with
``critic_strategy`` (or ``schedule.critic_chain``) to one of :data:`CRITIC_STRATEGIES`, through the
same ``adopt`` as the actor, so its values are unchanged at the switch; e.g. ``ps -> ps_lora`` freezes
the shared critic and gives every agent a LoRA adapter on it (the LoRASA paper's future work).
"""

from __future__ import annotations

import time

import torch

from marlshare.components import checkpoint as ckpt
from marlshare.components.algorithms import ALGORITHMS, actor_net, make_loss, ppo_settings
from marlshare.components.algorithms.ppo import CENTRAL
from marlshare.components.algorithms.update import compile_mode
from marlshare.components.clustering import agent_transitions
from marlshare.components.config import ConfigError
from marlshare.components.schedule import auto_switch_for
from marlshare.components.strategies import make_strategy, strategy_from_config
from marlshare.components.networks import count_parameters


def enter_phase(trainer, index: int, reason: str | None = None) -> None:
    """Start phase ``index`` of ``trainer``'s schedule from its current network (phase 0: a new one)."""
    run = trainer.state
    previous, net = run.strategy, actor_net(trainer.actor).net
    if index > 0:
        plan = trainer.plans[index]
        run.begin_phase(index, plan.label, strategy_from_config(plan.strategy), reason)
        run.strategy.inherit(previous)
    strategy = run.strategy
    if strategy.needs_fit():
        fit_on_policy(trainer, strategy)
    try:
        net = strategy.adopt(previous, net) if index > 0 else strategy.make_network(**trainer.net_kwargs)
    except ValueError as err:
        raise ConfigError(f"schedule phase {index}: {err}") from None
    if index > 0:
        adopt_critic(trainer, index)
    finish_entering(trainer, net)


def fit_on_policy(trainer, strategy) -> None:
    """Collect ``fit_frames`` frames of the current policy on a separate env copy (inside a forked
    RNG: fitting does not change what training samples) and fit the strategy on them."""
    run = trainer.state
    frames, seed = strategy.fit_frames, trainer.cfg.seed + 2_000_003 + run.phase_index
    num_envs = min(trainer.cfg.env.num_envs, frames)
    env = trainer.make_env(num_envs, seed)
    try:
        with ckpt.forked_rng(), torch.no_grad():
            rollout = env.rollout(max(1, -(-frames // num_envs)), trainer.actor, break_when_any_done=False)
    finally:
        env.close()
    data = agent_transitions(rollout.cpu(), trainer.info.discrete, trainer.info.action_dim)
    start = time.perf_counter()
    report = strategy.fit(data, seed=seed)
    report.update(fit_frames=int(rollout.numel()), fit_time_s=round(time.perf_counter() - start, 2))
    run.fits[trainer.plan.label] = report


def finish_entering(trainer, net) -> None:
    """Install ``net`` as the actor's network and build the phase's optimiser."""
    run, label = trainer.state, trainer.plan.label
    net = net.to(trainer.device)  # a new phase's parameters (adapters, masks) are made on the CPU
    actor_net(trainer.actor).net = net
    report = run.strategy.report(net)
    if report:
        run.fits.setdefault(label, {}).update(report)
    run.param_counts[label] = count_parameters(net)
    run.auto_switch = auto_switch_for(trainer.cfg.schedule, trainer.plan)
    trainer.entered = True
    build_optimiser(trainer)


def build_optimiser(trainer) -> None:
    """The phase's loss, optimiser (Adam over the parameters that train in it; ``fused``: one kernel
    per parameter, 2-3x faster than ``foreach`` on a CPU at these sizes and equal to it within
    1e-8 after 10 steps, tools/bench_update), auxiliary loss and compile mode."""
    a, plan, strategy = trainer.cfg.algorithm, trainer.plan, trainer.state.strategy
    pick = lambda value, default: default if value is None else value  # noqa: E731
    trainer.loss = make_loss(trainer.actor, trainer.critic, ppo_settings(a, plan))
    net = actor_net(trainer.actor).net
    actor_params = strategy.trainable(net)
    critic_params = [p for p in trainer.critic.parameters() if p.requires_grad]
    trainer.trainable = (actor_params, critic_params) if a.clip_grad_per_network else actor_params + critic_params
    actor_groups = [{**g, "lr": pick(plan.lr, a.lr)} for g in strategy.optimiser_groups(net, actor_params) if g["params"]]
    trainer.optimiser = torch.optim.Adam(actor_groups + [{"params": critic_params, "lr": pick(plan.critic_lr, a.lr)}],
                                         eps=a.adam_eps, fused=True)
    trainer.aux = lambda: strategy.aux_loss(net)  # one callable per phase: compiled once with the loss
    if ALGORITHMS[a.name].compiles:  # the sequential updates stay eager
        trainer.update.compile = compile_mode(a.compile, trainer.device, phase_steps(trainer), a.network.recurrent)


def phase_steps(trainer) -> int:
    """Gradient steps left in the current phase (to its ``until``, or the run's end)."""
    a, until, frames = trainer.cfg.algorithm, trainer.plan.until, trainer.state.frames
    end = trainer.cfg.total_frames if until is None else min(until, trainer.cfg.total_frames)
    iterations = max(0, -(-(end - frames) // a.frames_per_batch))
    return iterations * a.epochs * max(1, a.frames_per_batch // a.minibatch_size)


# --- the critic's strategy ------------------------------------------------------------------------------
#: what a phase can switch the critic to: strategies whose ``adopt`` keeps the values exactly and that
#: need no fit (SePS, SePS+LoRA and AdaPS cluster on the policy's trajectories; Prism's and
#: Kaleidoscope's regularisers and DiCo's diversity target are written for the actor)
CRITIC_STRATEGIES = ("ps", "nps", "ps_lora")


def critic_strategies(cfg, n_phases: int) -> list:
    """The critic's strategy in each of the ``n_phases`` phases of ``cfg.schedule`` (the same object
    where a phase keeps the previous one's critic). Raises ValueError naming the bad value and the
    valid choices."""
    from omegaconf import OmegaConf

    plain = lambda v: OmegaConf.to_object(v) if OmegaConf.is_config(v) else v  # noqa: E731
    net_cfg, s = cfg.algorithm.network, cfg.schedule
    specs = [getattr(p, "critic_strategy", None) for p in s.phases][:n_phases]
    specs += [None] * (n_phases - len(specs))
    chain = plain(getattr(s, "critic_chain", None))
    if chain is not None:
        chain = [chain] if isinstance(chain, str) else list(chain)
        if len(chain) != n_phases:
            raise ValueError(f"schedule.critic_chain={chain} needs {n_phases} entries, one per phase of the schedule")
        specs = chain
    current = make_strategy("ps" if net_cfg.critic_sharing == "shared" else "nps")
    team = ALGORITHMS[cfg.algorithm.name].critic == CENTRAL and net_cfg.critic_sharing == "shared" \
        and not net_cfg.critic_agent_id
    out = []
    for i, spec in enumerate(specs):
        spec = plain(spec)
        if spec is not None:
            hp = {"name": spec} if isinstance(spec, str) else dict(spec)
            name = hp.pop("name", None)
            where = f"schedule phase {i}: critic_strategy={name!r}"
            if name not in CRITIC_STRATEGIES:
                raise ValueError(f"{where} is not valid; choose one of {list(CRITIC_STRATEGIES)}")
            strategy = make_strategy(name, **hp)
            if name != current.name:
                if i == 0:
                    raise ValueError(f"{where}: the first phase's critic is algorithm.network.critic_sharing="
                                     f"{net_cfg.critic_sharing!r} ({current.name}); switch it in a later phase")
                if team:
                    raise ValueError(f"{where}: {cfg.algorithm.name}'s critic computes one value for the team "
                                     f"(critic_agent_id=false); a per-agent critic strategy needs "
                                     f"algorithm.network.critic_agent_id=true (or ippo's local critic)")
                try:
                    strategy.check_predecessor(current)
                except ValueError as err:
                    raise ValueError(f"{where}: the critic's {err} (critic_sharing={net_cfg.critic_sharing!r} "
                                     f"starts it as {out[0].name if out else current.name})") from None
            current = strategy
        out.append(current)
    return out


def plan_critic(trainer) -> None:
    """``trainer.critic_strategies``: the critic's strategy per phase, or a ConfigError before training."""
    try:
        trainer.critic_strategies = critic_strategies(trainer.cfg, len(trainer.plans))
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None


def _critic_holder(critic):
    """The TensorDictModule of ``critic`` that holds its strategy network."""
    return next(m for m in critic.modules() if hasattr(getattr(m, "module", None), "strategy_name"))


def adopt_critic(trainer, index: int) -> None:
    """Switch the critic to phase ``index``'s strategy (values unchanged), in place: the loss built
    next and every holder of ``trainer.critic`` see the new network."""
    previous, strategy = trainer.critic_strategies[index - 1], trainer.critic_strategies[index]
    if strategy is previous:
        return
    holder = _critic_holder(trainer.critic)
    try:
        net = strategy.adopt(previous, holder.module)
    except ValueError as err:
        raise ConfigError(f"schedule phase {index}: critic: {err}") from None
    holder.module = net.to(trainer.device)
    trainer.state.fits.setdefault(trainer.plan.label, {})["critic_strategy"] = strategy.name


def restore_critic(trainer) -> None:
    """A resumed run's critic structure: the switches of the phases up to the checkpoint's, before its
    values are loaded."""
    for index in range(1, trainer.state.phase_index + 1):
        previous, strategy = trainer.critic_strategies[index - 1], trainer.critic_strategies[index]
        if strategy is not previous:
            holder = _critic_holder(trainer.critic)
            holder.module = strategy.adopt(previous, holder.module).to(trainer.device)
