"""The on-policy trainer: collect with TorchRL's ``Collector``, GAE, PPO epochs over minibatches drawn
without replacement, evaluation, the phase switch, checkpoints and tracking.

One iteration:

1. the collector returns ``frames_per_batch`` frames ``[num_envs, T]`` from the (vectorised) env;
2. done flags are expanded to the agent shape and GAE fills advantages and value targets;
3. ``epochs`` passes over the batch in minibatches (``SamplerWithoutReplacement``), each step
   adding the strategy's auxiliary loss (Prism) to the actor loss, skipping the update when the loss
   or gradient norm is not finite, and clipping the gradient norm;
4. every ``eval_every`` frames a deterministic evaluation on a separate env inside a forked RNG
   (so evaluating never changes what training samples);
5. the schedule may switch phase (``to_lora``: outputs unchanged, optimiser rebuilt for the adapters,
   frame counter continues); checkpoints are written periodically, at the switch and at the end.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
from torchrl.envs import RewardSum, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from components import checkpoint as ckpt
from components.algorithms import PPOSettings, actor_net, expand_done, make_actor, make_critic, make_loss
from components.algorithms.ppo import ACTION_DISTS, ALGORITHMS, CRITIC_SHARING, recurrent_env_transforms
from components.config import TrainConfig
from components.schedule import SCHEDULES, AutoSwitch, Phase
from components.strategies import STRATEGIES, make_strategy
from components.tracking import RunLogger
from components.transforms import LORA_OF, check_lora_layers, count_parameters, to_lora
from envs import GROUP, env_info, make_env

EPISODE_REWARD = (GROUP, "episode_reward")
FINETUNE_BASES = {base: lora for base, lora in LORA_OF.items() if base != lora}  # ps -> ps_lora, seps -> seps_lora


class ConfigError(ValueError):
    """An invalid setting, caught before training starts."""


class TrainingDiverged(RuntimeError):
    """Too many consecutive non-finite losses or gradients."""


def _choice(name, value, valid):
    if value not in valid:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of {list(valid)}")


def _positive(name, value, allow_zero=False):
    ok = value >= 0 if allow_zero else value > 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok:
        raise ConfigError(f"{name}={value!r} must be {'>= 0' if allow_zero else '> 0'}")


def validate_config(cfg: TrainConfig) -> None:
    """Raise one clear ConfigError for the first invalid setting (names the value and the choices)."""
    strategy = dict(cfg.strategy)
    name = strategy.pop("name", None)
    _choice("strategy", name, STRATEGIES)
    try:
        make_strategy(name, **strategy)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"strategy: {err}") from None
    a, s = cfg.algorithm, cfg.schedule
    _choice("algorithm", a.name, ALGORITHMS)
    _choice("algorithm.action_dist", a.action_dist, ACTION_DISTS)
    _choice("algorithm.critic_sharing", a.critic_sharing, CRITIC_SHARING)
    _choice("schedule.kind", s.kind, SCHEDULES)
    for key in ("total_frames",):
        _positive(key, getattr(cfg, key))
    for key in ("frames_per_batch", "epochs", "minibatch_size", "lr", "max_grad_norm", "gamma"):
        _positive(f"algorithm.{key}", getattr(a, key))
    _positive("env.num_envs", cfg.env.num_envs)
    _positive("env.eval_num_envs", cfg.env.eval_num_envs)
    _positive("eval_every", cfg.eval_every)
    _positive("checkpoint_every", cfg.checkpoint_every, allow_zero=True)
    _positive("max_nonfinite", cfg.max_nonfinite)
    if not 0 <= a.lmbda <= 1:
        raise ConfigError(f"algorithm.lmbda={a.lmbda!r} must be in [0, 1]")
    if a.frames_per_batch % cfg.env.num_envs:
        raise ConfigError(f"algorithm.frames_per_batch={a.frames_per_batch} must be a multiple of "
                          f"env.num_envs={cfg.env.num_envs}")
    if a.recurrent:
        _positive("algorithm.chunk_length", a.chunk_length)
        steps = a.frames_per_batch // cfg.env.num_envs
        if steps % a.chunk_length or a.minibatch_size % a.chunk_length:
            raise ConfigError(f"algorithm.chunk_length={a.chunk_length} must divide the steps per copy per "
                              f"iteration ({steps}) and algorithm.minibatch_size={a.minibatch_size}")
    if a.minibatch_size > a.frames_per_batch:
        raise ConfigError(f"algorithm.minibatch_size={a.minibatch_size} exceeds frames_per_batch={a.frames_per_batch}")
    if s.kind == "two_phase":
        if name not in FINETUNE_BASES:
            raise ConfigError(f"schedule.kind=two_phase pretrains a shared policy: strategy={name!r} is not valid "
                              f"there; choose one of {list(FINETUNE_BASES)}")
        expected = FINETUNE_BASES[name]
        if s.finetune not in (None, expected):
            raise ConfigError(f"schedule.finetune={s.finetune!r} is not valid after strategy={name!r}; "
                              f"choose {expected!r}")
        if isinstance(s.rank, bool) or not isinstance(s.rank, int) or s.rank < 1:
            raise ConfigError(f"schedule.rank={s.rank!r} must be a positive integer")
        _positive("schedule.alpha", s.alpha)
        if s.finetune_lr is not None:
            _positive("schedule.finetune_lr", s.finetune_lr)
        try:
            check_lora_layers(OmegaConf.to_object(s.layers) if OmegaConf.is_config(s.layers) else s.layers)
        except ValueError as err:
            raise ConfigError(f"schedule.layers: {err}") from None
        if s.switch_at is None and not s.auto:
            raise ConfigError("schedule.kind=two_phase needs schedule.switch_at=<frames> or schedule.auto=true")
        if s.auto:
            try:
                AutoSwitch(window=s.auto_window, decel=s.auto_decel)
            except ValueError as err:
                raise ConfigError(f"schedule.auto_*: {err}") from None
        if s.switch_at is not None and not 0 < s.switch_at < cfg.total_frames:
            raise ConfigError(f"schedule.switch_at={s.switch_at} must be in (0, total_frames={cfg.total_frames})")
    elif s.switch_at is not None or s.auto:
        raise ConfigError("schedule.switch_at / schedule.auto only apply to schedule.kind=two_phase")


def config_to_dict(cfg) -> dict:
    if OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    return dataclasses.asdict(cfg)


def as_train_config(cfg) -> TrainConfig:
    """Accept a TrainConfig, a (structured) OmegaConf config or a plain dict."""
    if isinstance(cfg, TrainConfig):
        return cfg
    merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), cfg if OmegaConf.is_config(cfg) else OmegaConf.create(cfg))
    return OmegaConf.to_object(merged)


class Trainer:
    """Trains one run described by a :class:`TrainConfig` into ``run_dir``."""

    def __init__(self, cfg, run_dir: str | Path | None = None):
        cfg = as_train_config(cfg)
        self.resume_state = None
        if cfg.resume:
            resume_dir = Path(cfg.resume)
            if not (resume_dir / "config.yaml").exists():
                raise ConfigError(f"resume={cfg.resume!r}: no config.yaml there; point resume at a run directory")
            saved = as_train_config(OmegaConf.load(resume_dir / "config.yaml"))
            saved.resume, saved.run_dir = None, str(resume_dir)
            last = resume_dir / "checkpoints" / "last.pt"
            if not last.exists():
                raise ConfigError(f"resume={cfg.resume!r}: no checkpoints/last.pt to continue from")
            cfg, run_dir = saved, resume_dir
            self.resume_state = ckpt.load(last)
        validate_config(cfg)
        self.cfg = cfg
        default_dir = f"outputs/{cfg.env.name}/{cfg.strategy['name']}/{time.strftime('%Y-%m-%d_%H-%M-%S')}_seed{cfg.seed}"
        self.run_dir = Path(run_dir or cfg.run_dir or default_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "checkpoints").mkdir(exist_ok=True)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self._build()

    # --- construction ----------------------------------------------------------------------------
    def _env(self, num_envs, seed):
        cfg = self.cfg.env
        options = dict(cfg.options)
        if cfg.max_steps is not None:
            options.setdefault("max_steps", cfg.max_steps)
        try:
            env = make_env(cfg.name, num_envs=num_envs, seed=seed, **options)
        except ValueError as err:  # unknown family, task or option: a configuration error
            raise ConfigError(f"env.name={cfg.name!r}: {err}") from None
        return TransformedEnv(env, RewardSum(in_keys=[(GROUP, "reward")], out_keys=[EPISODE_REWARD]))

    def _build(self):
        cfg, a = self.cfg, self.cfg.algorithm
        # Envs first: some simulators (VMAS) reseed torch's global RNG when built.
        self.eval_env = self._env(cfg.env.eval_num_envs, cfg.seed + 1_000_003)
        self.env = self._env(cfg.env.num_envs, cfg.seed)
        ckpt.seed_everything(cfg.seed)
        self.info = env_info(self.env)
        strategy_hp = dict(cfg.strategy)
        self.strategy = make_strategy(strategy_hp.pop("name"), **strategy_hp)
        head = "linear" if self.info.discrete else "normal"
        extra = dict(recurrent=True, gru_hidden=a.gru_hidden) if a.recurrent else {}
        net = self.strategy.make_network(self.info.n_agents, self.info.obs_dim, self.info.action_dim,
                                         hidden=tuple(a.actor_hidden), head=head, log_std=a.log_std,
                                         log_std_init=a.log_std_init, activation=a.activation, **extra)
        if a.recurrent:  # carry the GRU state from step to step, zero at episode starts
            for env in (self.env, self.eval_env):
                env.append_transform(recurrent_env_transforms(self.info.n_agents, net.hidden_size))
        self.actor = make_actor(net, self.info, a.action_dist)
        self.critic = make_critic(self.info, a.name, a.critic_sharing, tuple(a.critic_hidden), a.activation,
                                  agent_id=a.critic_agent_id)
        self.phases = self._initial_phases()
        self.phase_index = 0
        self.auto_switch = None
        s = cfg.schedule
        if s.kind == "two_phase" and s.auto:
            self.auto_switch = AutoSwitch(window=s.auto_window, decel=s.auto_decel, noise_sigmas=s.auto_noise_sigmas,
                                          competence_sigmas=s.auto_competence_sigmas, patience=s.auto_patience,
                                          min_frames=s.auto_min_frames, max_frames=s.switch_at)
        self.frames, self.iteration, self.wall_time = 0, 0, 0.0
        self.best_eval, self.last_eval, self.last_win = -math.inf, math.nan, math.nan
        self.evals: list[dict] = []
        self.nonfinite_streak = 0
        self.param_counts = {self.phases[0].name: count_parameters(actor_net(self.actor).net)}
        if self.resume_state is not None:
            self._restore_networks(self.resume_state)
        self._build_optimiser()
        if self.resume_state is not None:
            self.optimiser.load_state_dict(self.resume_state["optimiser"])
        # recurrent actors learn from chunks of chunk_length consecutive steps
        self.chunk = a.chunk_length if a.recurrent else 1
        self.buffer = ReplayBuffer(storage=LazyTensorStorage(a.frames_per_batch // self.chunk),
                                   sampler=SamplerWithoutReplacement(), batch_size=a.minibatch_size // self.chunk)

    def _initial_phases(self):
        s, name = self.cfg.schedule, self.cfg.strategy["name"]
        if s.kind == "single":
            return [Phase("train", name)]
        return [Phase("pretrain", name), Phase("finetune", FINETUNE_BASES[name])]

    def _build_optimiser(self):
        a, s = self.cfg.algorithm, self.cfg.schedule
        self.loss = make_loss(self.actor, self.critic, PPOSettings(
            clip_epsilon=a.clip_epsilon, entropy_coeff=a.entropy_coeff, critic_coeff=a.critic_coeff, gamma=a.gamma,
            lmbda=a.lmbda, normalize_advantage=a.normalize_advantage))
        actor_lr = a.lr if self.phase_index == 0 or s.finetune_lr is None else s.finetune_lr
        actor_params = [p for p in actor_net(self.actor).parameters() if p.requires_grad]
        critic_params = [p for p in self.critic.parameters() if p.requires_grad]
        self.trainable = actor_params + critic_params
        self.optimiser = torch.optim.Adam([{"params": actor_params, "lr": actor_lr},
                                           {"params": critic_params, "lr": a.lr}], eps=a.adam_eps)

    def _switch_phase(self, reason: str):
        """The phase-switch transform: freeze the shared network, add adapters, rebuild the optimiser."""
        s = self.cfg.schedule
        holder = actor_net(self.actor)
        layers = OmegaConf.to_object(s.layers) if OmegaConf.is_config(s.layers) else s.layers
        holder.net = to_lora(holder.net, rank=s.rank, alpha=s.alpha, layers=layers)
        self.phases[self.phase_index].end_frame = self.frames
        self.phase_index += 1
        self.phases[self.phase_index].start_frame = self.frames
        self.switch_reason = reason
        self.param_counts[self.phases[self.phase_index].name] = count_parameters(holder.net)
        self._build_optimiser()

    # --- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "version": 1, "iteration": self.iteration, "frames": self.frames, "wall_time": self.wall_time,
            "phase_index": self.phase_index, "phases": [dataclasses.asdict(p) for p in self.phases],
            "strategy": dict(self.cfg.strategy), "actor": actor_net(self.actor).net.state_dict(),
            "trainable": {n: p.requires_grad for n, p in actor_net(self.actor).net.named_parameters()},
            "critic": self.critic.state_dict(), "optimiser": self.optimiser.state_dict(),
            "rng": ckpt.rng_state(), "best_eval": self.best_eval, "last_eval": self.last_eval,
            "last_win": self.last_win, "evals": self.evals, "param_counts": self.param_counts,
            "auto_switch": None if self.auto_switch is None else self.auto_switch.state_dict(),
            "switch_reason": getattr(self, "switch_reason", None),
        }

    def save_checkpoint(self, name: str = "last") -> Path:
        state = self.state_dict()
        path = ckpt.save_atomic(state, self.run_dir / "checkpoints" / f"{name}.pt")
        if name != "last":
            ckpt.save_atomic(state, self.run_dir / "checkpoints" / "last.pt")
        return path

    def _restore_networks(self, state):
        if state["phase_index"] > 0:
            self.phase_index = 0
            self._switch_phase(state.get("switch_reason") or "resumed")
        holder = actor_net(self.actor)
        holder.net.load_state_dict(state["actor"])
        for n, p in holder.net.named_parameters():
            p.requires_grad_(state["trainable"][n])
        self.critic.load_state_dict(state["critic"])
        self.phases = [Phase(**p) for p in state["phases"]]
        self.frames, self.iteration, self.wall_time = state["frames"], state["iteration"], state["wall_time"]
        self.best_eval, self.last_eval, self.last_win = state["best_eval"], state["last_eval"], state["last_win"]
        self.evals, self.param_counts = state["evals"], state["param_counts"]
        self.switch_reason = state.get("switch_reason")
        if self.auto_switch is not None and state["auto_switch"] is not None:
            self.auto_switch.load_state_dict(state["auto_switch"])

    # --- evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """Mean episode return per agent (and win rate, where the env reports wins) of the
        deterministic policy over ``eval_num_envs`` episodes. Runs inside a forked RNG so training's
        random stream is the same whether or not (and how often) it evaluates."""
        max_steps = self.cfg.env.max_steps or self.cfg.env.eval_max_steps
        with ckpt.forked_rng(), set_exploration_type(ExplorationType.DETERMINISTIC):
            self.eval_env.set_seed(self.cfg.seed + 1_000_003)
            rollout = self.eval_env.rollout(max_steps, self.actor, break_when_any_done=False,
                                            break_when_all_done=True)
        done = rollout.get(("next", "done")).squeeze(-1)  # [E, T]
        done[:, -1] = True  # an episode still running at the cap counts as ended there
        first = done.float().argmax(dim=1)  # first episode end of every copy
        envs = torch.arange(done.shape[0])
        returns = rollout.get(("next",) + EPISODE_REWARD)[envs, first]  # [E, N, 1]
        win = math.nan
        if ("next", "win") in rollout.keys(True):
            win = rollout.get(("next", "win"))[envs, first].float().mean().item()
        return returns.mean().item(), win

    # --- training ----------------------------------------------------------------------------------
    def _update(self, batch) -> dict:
        a = self.cfg.algorithm
        expand_done(batch)
        with torch.no_grad():
            self.loss.value_estimator(batch, params=self.loss.critic_network_params,
                                      target_params=self.loss.target_critic_network_params)
        self.buffer.empty()
        if self.chunk > 1:  # [E, T] -> [E * T / L, L]: chunks of consecutive steps
            self.buffer.extend(batch.reshape(batch.shape[0], -1, self.chunk).reshape(-1, self.chunk))
        else:
            self.buffer.extend(batch.reshape(-1))
        stats: dict[str, list] = {k: [] for k in ("loss_objective", "loss_critic", "loss_entropy", "loss_aux",
                                                  "entropy", "kl_approx", "clip_fraction", "grad_norm")}
        holder = actor_net(self.actor)
        net = holder.net
        steps = a.frames_per_batch // a.minibatch_size
        holder.sequence_mode = self.chunk > 1
        try:
            self._epochs(a, steps, net, stats)
        finally:
            holder.sequence_mode = False
        skipped = stats.pop("_skipped")
        row = {k: (float(np.mean(v)) if v else math.nan) for k, v in stats.items()}
        row["skipped_updates"] = skipped
        return row

    def _epochs(self, a, steps, net, stats):
        skipped = 0
        for _ in range(a.epochs):
            for _ in range(steps):
                minibatch = self.buffer.sample()
                out = self.loss(minibatch)
                aux = self.strategy_for_phase().aux_loss(net)
                total = out["loss_objective"] + out["loss_critic"] + out.get("loss_entropy", 0.0) + aux
                self.optimiser.zero_grad(set_to_none=True)
                if not torch.isfinite(total):
                    skipped += 1
                    self._nonfinite("loss")
                    continue
                total.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable, a.max_grad_norm)
                if not torch.isfinite(grad_norm):
                    skipped += 1
                    self.optimiser.zero_grad(set_to_none=True)
                    self._nonfinite("gradient")
                    continue
                self.optimiser.step()
                self.nonfinite_streak = 0
                for key in ("loss_objective", "loss_critic", "loss_entropy", "entropy", "kl_approx", "clip_fraction"):
                    if key in out.keys():
                        stats[key].append(out[key].detach().float().mean().item())
                stats["loss_aux"].append(float(aux))
                stats["grad_norm"].append(grad_norm.item())
        stats["_skipped"] = skipped

    def strategy_for_phase(self):
        """The strategy of the current phase (its auxiliary loss is added to the actor loss)."""
        if self.phase_index == 0:
            return self.strategy
        if getattr(self, "_finetune_strategy", None) is None:
            hp = {k: v for k, v in self.cfg.strategy.items() if k != "name"}
            s = self.cfg.schedule
            layers = OmegaConf.to_object(s.layers) if OmegaConf.is_config(s.layers) else s.layers
            self._finetune_strategy = make_strategy(self.phases[self.phase_index].strategy, rank=s.rank,
                                                    alpha=s.alpha, layers=layers, **hp)
        return self._finetune_strategy

    def _nonfinite(self, what: str):
        self.nonfinite_streak += 1
        if self.nonfinite_streak >= self.cfg.max_nonfinite:
            last = self.run_dir / "checkpoints" / "last.pt"
            kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint had been written yet"
            raise TrainingDiverged(
                f"{self.nonfinite_streak} consecutive updates had a non-finite {what} at frame {self.frames} "
                f"(iteration {self.iteration}); stopping. {kept}. Try a lower learning rate or max_grad_norm.")

    def _train_return(self, batch) -> float:
        done = batch.get(("next", "done")).squeeze(-1)
        if not done.any():
            return math.nan
        return batch.get(("next",) + EPISODE_REWARD)[done].mean().item()

    def run(self, max_iterations: int | None = None) -> dict:
        """Train until ``total_frames`` (or ``max_iterations`` more iterations: tests use it to stop a
        run as a crash would). Returns the summary (also written to ``summary.json``)."""
        cfg, a = self.cfg, self.cfg.algorithm
        remaining = cfg.total_frames - self.frames
        exp_name = f"{cfg.env.name.replace('/', '-')}_{cfg.strategy['name']}_seed{cfg.seed}"
        if self.resume_state is None:
            OmegaConf.save(OmegaConf.create(config_to_dict(cfg)), self.run_dir / "config.yaml")
        logger = RunLogger(self.run_dir, cfg.logger, exp_name, config_to_dict(cfg), append=self.resume_state is not None)
        collector = None
        progress = _progress(cfg, self.frames)
        try:
            if remaining > 0:
                collector = Collector(self.env, self.actor, frames_per_batch=a.frames_per_batch,
                                      total_frames=-1, reset_at_each_iter=a.reset_each_iteration,
                                      auto_register_policy_transforms=False)  # feed-forward actors need none
                if self.resume_state is not None:
                    ckpt.set_rng_state(self.resume_state["rng"])
                elif self.iteration == 0:
                    self._record_eval(*self.evaluate())  # the starting point of the learning curve
                done_iterations = 0
                start = time.perf_counter() - self.wall_time
                t_prev = time.perf_counter()
                for batch in collector:
                    self.frames += batch.numel()
                    self.iteration += 1
                    row = self._update(batch)
                    row.update(iteration=self.iteration, frames=self.frames, phase=self.phases[self.phase_index].name,
                               strategy=self.phases[self.phase_index].strategy,
                               train_return=self._train_return(batch))
                    switch_reason = self._maybe_evaluate_and_switch(row)
                    now = time.perf_counter()
                    self.wall_time = now - start
                    # frames/s of this iteration: collection, updates and evaluation together
                    row.update(eval_return=row.get("eval_return", math.nan), win_rate=row.get("win_rate", math.nan),
                               fps=batch.numel() / max(now - t_prev, 1e-9), wall_time_s=self.wall_time)
                    t_prev = now
                    logger.log(row)
                    progress.update(batch.numel(), row)
                    done_iterations += 1
                    finished = self.frames >= cfg.total_frames
                    if switch_reason:
                        self.save_checkpoint("phase_switch")
                    elif finished or (cfg.checkpoint_every and self._crossed(cfg.checkpoint_every, batch.numel())):
                        self.save_checkpoint("last")
                    if finished or (max_iterations is not None and done_iterations >= max_iterations):
                        break
        finally:
            progress.close()
            if collector is not None:
                collector.shutdown()
            logger.close()
        summary = self.summary()
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def _crossed(self, every: int, step: int) -> bool:
        return self.frames // every > (self.frames - step) // every

    def _record_eval(self, ret: float, win: float):
        self.last_eval, self.last_win = ret, win
        self.best_eval = max(self.best_eval, ret)
        self.evals.append({"frames": self.frames, "eval_return": ret, "win_rate": win,
                           "phase": self.phases[self.phase_index].name})

    def _maybe_evaluate_and_switch(self, row: dict) -> str | None:
        cfg = self.cfg
        step = cfg.algorithm.frames_per_batch
        s = cfg.schedule
        due_switch = (s.kind == "two_phase" and self.phase_index == 0 and s.switch_at is not None and not s.auto
                      and self.frames >= s.switch_at)
        evaluate = self._crossed(cfg.eval_every, step) or self.frames >= cfg.total_frames or due_switch
        reason = None
        if evaluate:
            ret, win = self.evaluate()
            self._record_eval(ret, win)
            row.update(eval_return=ret, win_rate=win)
            if self.auto_switch is not None and self.phase_index == 0 and self.auto_switch.update(self.frames, ret):
                reason = f"auto rule: {self.auto_switch.reason}"
        if due_switch:
            reason = f"switch_at={s.switch_at}"
        if reason and self.frames < cfg.total_frames:
            self._switch_phase(reason)
            return reason
        return None

    def summary(self) -> dict:
        cfg = self.cfg
        switch = next((e for e in self.evals if len(self.phases) > 1 and self.phases[1].start_frame
                       and e["frames"] == self.phases[1].start_frame), None)
        self.phases[self.phase_index].end_frame = self.frames
        out = {
            "env": cfg.env.name, "strategy": cfg.strategy["name"],
            "final_strategy": self.phases[self.phase_index].strategy, "algorithm": cfg.algorithm.name,
            "schedule": cfg.schedule.kind, "seed": cfg.seed, "frames": self.frames, "iterations": self.iteration,
            "wall_time_s": round(self.wall_time, 2),
            "phases": [dataclasses.asdict(p) for p in self.phases[:self.phase_index + 1]],
            "switch_reason": getattr(self, "switch_reason", None),
            "initial_eval_return": self.evals[0]["eval_return"] if self.evals else None,
            "eval_return_at_switch": switch["eval_return"] if switch else None,
            "final_eval_return": self.last_eval, "best_eval_return": self.best_eval,
            "parameters": self.param_counts, "run_dir": str(self.run_dir),
        }
        if not math.isnan(self.last_win):
            out["win_rate"] = self.last_win
        return out


class _progress:
    """A tqdm bar over frames showing frames/s and the current returns (a no-op when disabled)."""

    def __init__(self, cfg, initial):
        self.bar = None
        if cfg.logger.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=cfg.total_frames, initial=initial, unit="frames", unit_scale=True, dynamic_ncols=True)

    def update(self, n, row):
        if self.bar is not None:
            self.bar.update(n)
            post = {"phase": row["phase"], "train": f"{row['train_return']:.3g}"}
            if not math.isnan(row.get("eval_return", math.nan)):
                post["eval"] = f"{row['eval_return']:.3g}"
            self.bar.set_postfix(post, refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()
