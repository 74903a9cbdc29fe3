"""Checks of a whole :class:`TrainConfig` before anything is built: one clear ConfigError for the
first invalid setting, naming the value and the choices. Checks that need the env (agent counts,
cluster list lengths) run when the env is built."""

from __future__ import annotations

from marlshare.components.algorithms import ALGORITHMS
from marlshare.components.config import ConfigError, TrainConfig, resolve_device


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


def validate_config(cfg: TrainConfig) -> None:
    """Raise one clear ConfigError for the first invalid setting (names the value and the choices).
    Checks that need the env (agent counts, cluster list lengths) run when the env is built."""
    from marlshare.components.algorithms.ppo import ACTION_DISTS, CRITIC_SHARING
    from marlshare.components.algorithms.update import COMPILE_CHOICES
    from marlshare.components.networks import STD_MAPPINGS
    from marlshare.components.schedule import plan_phases

    a, net = cfg.algorithm, cfg.algorithm.network
    _choice("algorithm", a.name, ALGORITHMS)
    _choice("algorithm.network.action_dist", net.action_dist, ACTION_DISTS)
    _choice("algorithm.compile", str(a.compile).lower(), COMPILE_CHOICES)
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
    if cfg.threads is not None:
        _integer("threads", cfg.threads, low=0)
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
        plan_phases(cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None
