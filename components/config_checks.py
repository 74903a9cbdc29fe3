"""Checks of a whole :class:`TrainConfig` before anything is built: one clear ConfigError for the
first invalid setting, naming the value and the choices. Checks that need the env (agent counts,
cluster list lengths) run when the env is built."""

from __future__ import annotations

import math

from marlshare.components.algorithms import ALGORITHMS
from marlshare.components.config import AUTO_THREADS_MAX, ConfigError, TrainConfig, config_to_dict, resolve_device


def _choice(name, value, valid):
    if value not in valid:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of {list(valid)}")


def _positive(name, value, allow_zero=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(f"{name}={value!r} must be {'>= 0' if allow_zero else '> 0'}")


def _integer(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name}={value!r} must be an integer >= {low}")


def _finite(values, path: str = "") -> None:
    """Every number of the config (strategy hyperparameters and env options included) is finite: an
    ``inf`` learning rate or entropy coefficient would create a run directory, then diverge."""
    if isinstance(values, dict):
        for key, value in values.items():
            _finite(value, f"{path}{key}.")
    elif isinstance(values, (list, tuple)):
        for i, value in enumerate(values):
            _finite(value, f"{path}{i}.")
    elif isinstance(values, float) and not math.isfinite(values):
        raise ConfigError(f"{path[:-1]}={values} must be a finite number")


def _threads(value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"threads={value!r} is not a thread count: give an integer >= 1, or threads=null for auto "
                          f"(OMP_NUM_THREADS when set, else the usable cores up to {AUTO_THREADS_MAX})")


def actor_layers(net, in_features: int | None = None, n_agents: int = 0, append_id: bool = False) -> list[tuple]:
    """``(role, d_in, d_out)`` of the actor's layers that ``algorithm.network`` (``net``) sizes: the hidden
    layers between widths, the GRU and post layers of a recurrent actor, and the input layer when the
    observation size ``in_features`` is known (the env is built). The head is left out: its output size
    is the env's action count."""
    hidden = [int(w) for w in net.actor_hidden]
    widths = ([in_features + (n_agents if append_id else 0)] if in_features is not None else []) + hidden
    layers = [("hidden", d_in, d_out) for d_in, d_out in zip(widths, widths[1:])]
    if net.recurrent and hidden:
        size = int(net.gru_hidden or hidden[-1])
        layers += [("gru_ih", hidden[-1], 3 * size), ("gru_hh", size, 3 * size), ("post", size, size)]
    return layers


def check_strategy_networks(cfg: TrainConfig, plans, in_features: int | None = None, n_agents: int = 0) -> None:
    """Each phase's strategy hyperparameters against the actor's layer widths (a LoRA rank above a
    layer's width): before the env with the hidden widths, at env build (``in_features``) with the
    input layer too. ConfigError names the setting (``strategy.rank`` for the first phase's
    strategy, else ``schedule.phases.<i>.strategy.rank``) and the widths."""
    from marlshare.components.strategies import strategy_from_config

    net = cfg.algorithm.network
    for i, plan in enumerate(plans):
        strategy = strategy_from_config(plan.strategy)
        layers = actor_layers(net, in_features, n_agents, strategy.append_id)
        try:
            strategy.check_network(layers)
        except ValueError as err:
            own = cfg.schedule.phases[i].strategy if i < len(cfg.schedule.phases) else {}
            where = "strategy." if i == 0 and "rank" not in (own or {}) else f"schedule.phases.{i}.strategy."
            source = f"algorithm.network.actor_hidden={[int(w) for w in net.actor_hidden]}" + (
                f", observation size {in_features}" if in_features is not None else "")
            raise ConfigError(f"{where}{err} ({source})") from None


def validate_config(cfg: TrainConfig) -> None:
    """Raise one clear ConfigError for the first invalid setting (names the value and the choices).
    Checks that need the env (agent counts, cluster list lengths) run when the env is built."""
    from marlshare.components.algorithms.ppo import ACTION_DISTS, CRITIC_SHARING
    from marlshare.components.algorithms.update import COMPILE_CHOICES
    from marlshare.components.networks import ACTIVATIONS, LOG_STD_MODES, STD_MAPPINGS
    from marlshare.components.schedule import plan_phases

    a, net = cfg.algorithm, cfg.algorithm.network
    _finite(config_to_dict(cfg))
    _choice("algorithm", a.name, ALGORITHMS)
    _choice("algorithm.network.activation", net.activation, sorted(ACTIVATIONS))
    _choice("algorithm.network.log_std", net.log_std, LOG_STD_MODES)
    _choice("algorithm.network.action_dist", net.action_dist, ACTION_DISTS)
    _choice("algorithm.compile", str(a.compile).lower(), COMPILE_CHOICES)
    _choice("algorithm.precision", str(a.precision).lower(), ("fp32", "bf16", "auto"))  # algorithms/precision.py
    _choice("algorithm.network.critic_sharing", net.critic_sharing, CRITIC_SHARING)
    _choice("logger.wandb_mode", cfg.logger.wandb_mode, ("auto", "offline", "online", "disabled"))
    _positive("total_frames", cfg.total_frames)
    for key in ("frames_per_batch", "epochs", "minibatch_size", "lr", "max_grad_norm", "gamma"):
        _positive(f"algorithm.{key}", getattr(a, key))
    _positive("env.num_envs", cfg.env.num_envs)
    _positive("env.eval_num_envs", cfg.env.eval_num_envs)
    _positive("eval_every", cfg.eval_every)
    _positive("checkpoint_every", cfg.checkpoint_every, allow_zero=True)
    _positive("max_nonfinite", cfg.max_nonfinite)
    for key in ("clip_epsilon", "entropy_coeff", "critic_coeff"):
        _positive(f"algorithm.{key}", getattr(a, key), allow_zero=True)
    _positive("algorithm.adam_eps", a.adam_eps)
    _positive("env.eval_max_steps", cfg.env.eval_max_steps)
    _threads(cfg.threads)
    if net.gru_hidden is not None:
        _integer("algorithm.network.gru_hidden", net.gru_hidden, low=1)
    _integer("seed", cfg.seed, low=0)
    for key, value in (("device", cfg.device), ("env.device", cfg.env.device)):
        if value is not None:
            resolve_device(value, key)
    if cfg.env.max_steps is not None:
        _integer("env.max_steps", cfg.env.max_steps, low=1)
    for key in ("total_frames", "eval_every", "checkpoint_every", "checkpoint_keep"):
        _integer(key, getattr(cfg, key), low=0 if key == "checkpoint_every" else 1)
    for key in ("frames_per_batch", "epochs", "minibatch_size"):
        _integer(f"algorithm.{key}", getattr(a, key), low=1)
    for key in ("actor_hidden", "critic_hidden"):
        for width in getattr(net, key):
            _integer(f"algorithm.network.{key} entry", width, low=1)
    for key, low in (("n_agents", 1), ("num_workers", 0), ("max_steps", 1)):  # common env options
        if key in cfg.env.options:
            _integer(f"env.options.{key}", cfg.env.options[key], low=low)
    if not 0 < a.gamma <= 1:
        raise ConfigError(f"algorithm.gamma={a.gamma!r} must be in (0, 1]")
    if a.huber_delta is not None:
        _positive("algorithm.huber_delta", a.huber_delta)
    if net.head_gain is not None:
        _positive("algorithm.network.head_gain", net.head_gain)
    _choice("algorithm.network.std_mapping", net.std_mapping, STD_MAPPINGS)
    for name, algorithm in ALGORITHMS.items():  # each algorithm's own settings check themselves
        settings = getattr(a, name, None) if algorithm.settings is not None else None
        try:
            getattr(settings, "check", lambda: None)()
        except ValueError as err:
            raise ConfigError(f"algorithm.{name}.{err}") from None
    if not 0 <= a.lmbda <= 1:
        raise ConfigError(f"algorithm.lmbda={a.lmbda!r} must be in [0, 1]")
    if a.frames_per_batch % cfg.env.num_envs:
        raise ConfigError(f"algorithm.frames_per_batch={a.frames_per_batch} must be a multiple of "
                          f"env.num_envs={cfg.env.num_envs}")
    if net.recurrent:
        _positive("algorithm.chunk_length", a.chunk_length)
        steps = a.frames_per_batch // cfg.env.num_envs
        if steps % a.chunk_length or a.minibatch_size % a.chunk_length:
            raise ConfigError(f"algorithm.chunk_length={a.chunk_length} must divide the steps per copy per "
                              f"iteration ({steps}) and algorithm.minibatch_size={a.minibatch_size}")
    if a.minibatch_size > a.frames_per_batch:
        raise ConfigError(f"algorithm.minibatch_size={a.minibatch_size} exceeds frames_per_batch={a.frames_per_batch}")
    try:
        plans = plan_phases(cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    check_strategy_networks(cfg, plans)
