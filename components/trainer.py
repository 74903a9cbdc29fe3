"""The on-policy trainer: a loop over the phases of a schedule.

One iteration: TorchRL's ``Collector`` returns ``frames_per_batch`` frames, :class:`PPOUpdate` runs GAE
and the PPO epochs, every ``eval_every`` frames a deterministic evaluation runs in a forked RNG, and
checkpoints are written periodically, at each phase boundary and at the end.

A phase ends at its ``until`` frame or when the automatic rule fires. Entering a phase is the same
for every strategy, which owns what happens (see ``components/strategies/base.py``)::

    strategy.inherit(previous)        # e.g. SePS+LoRA takes SePS's clusters
    if strategy.needs_fit():          # SePS, SePS+LoRA, AdaPS without clusters
        strategy.fit(transitions of the current policy)
    net = strategy.adopt(previous, net)   # or make_network for the first phase

then the optimiser is rebuilt over ``strategy.trainable(net)`` with the phase's learning rates, clip
and entropy coefficients. The frame counter runs on, so curves are continuous across phases.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torchrl.collectors import Collector

from marlshare.components import checkpoint as ckpt
from marlshare.components.algorithms import actor_net, make_actor, make_critic, make_loss, make_update, ppo_settings
from marlshare.components.algorithms.ppo import recurrent_env_transforms
from marlshare.components.algorithms.sequential import SEQUENTIAL
from marlshare.components.algorithms.update import compile_mode
from marlshare.components.clustering import agent_transitions
from marlshare.components.config import ConfigError, as_train_config, auto_threads, config_to_dict, validate_config
from marlshare.components.evaluation import evaluate, train_return
from marlshare.components.interrupts import RunInterrupted, StopSignals
from marlshare.components.progress import Progress
from marlshare.components.resume import open_run
from marlshare.components.run_envs import devices, make_run_env
from marlshare.components.runs import load_network, network_kwargs
from marlshare.components.schedule import Phase, auto_switch_for, plan_phases
from marlshare.components.strategies import strategy_from_config
from marlshare.components.tracking import RunLogger
from marlshare.components.transforms import count_parameters
from marlshare.envs import env_info

__all__ = ["ConfigError", "RunInterrupted", "Trainer", "TrainingDiverged", "as_train_config", "config_to_dict",
           "validate_config"]


class TrainingDiverged(RuntimeError):
    """Too many consecutive non-finite losses or gradients."""


class Trainer:
    """Trains one run described by a :class:`TrainConfig` into ``run_dir``. Every configuration error,
    including those that need the env (agent counts, cluster lists), is raised as ConfigError before
    the run directory is created."""

    def __init__(self, cfg, run_dir: str | Path | None = None, resume_changes: dict | None = None):
        """``cfg.resume = RUN`` continues that run as configured; ``resume_changes`` may change the
        settings in :data:`components.resume.RESUMABLE` (e.g. ``{"total_frames": N}`` to extend it)."""
        cfg = as_train_config(cfg)
        self.resume_state = None
        if cfg.resume:
            cfg, run_dir, self.resume_state = open_run(cfg.resume, resume_changes)
        validate_config(cfg)
        self.cfg = cfg
        self.plans = plan_phases(cfg)
        if cfg.threads != 0:  # 0: torch's default
            torch.set_num_threads(cfg.threads or auto_threads())
        self.device, self.env_device = devices(cfg)
        self._compile_noticed, self.compile_times = None, {}
        self._build()
        default_dir = (f"outputs/{cfg.env.name}/{self.plans[0].strategy['name']}/"
                       f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_seed{cfg.seed}")
        self.run_dir = Path(run_dir or cfg.run_dir or default_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "checkpoints").mkdir(exist_ok=True)
        ckpt.remove_stale_temporaries(self.run_dir / "checkpoints")

    # --- construction ----------------------------------------------------------------------------
    def _make_env(self, num_envs, seed):
        return make_run_env(self.cfg.env, num_envs, seed, self.device, self.env_device)

    def _recurrent(self, env):
        if self.cfg.algorithm.recurrent:  # carry the GRU state from step to step, zero at episode starts
            env.append_transform(recurrent_env_transforms(self.info.n_agents, self.hidden_size))
        return env

    def _env(self, num_envs, seed):
        return self._recurrent(self._make_env(num_envs, seed))

    def _build_envs(self):
        cfg, a = self.cfg, self.cfg.algorithm
        # Envs first, in this order: some simulators (VMAS) reseed torch's global RNG when built.
        self.eval_env = self._make_env(cfg.env.eval_num_envs, cfg.seed + 1_000_003)
        self.env = self._make_env(cfg.env.num_envs, cfg.seed)
        ckpt.seed_everything(cfg.seed)
        self.info = env_info(self.env)
        self.hidden_size = int(a.gru_hidden or a.actor_hidden[-1]) if a.recurrent else None
        self._recurrent(self.eval_env)
        self._recurrent(self.env)

    def _build(self):
        cfg, a = self.cfg, self.cfg.algorithm
        self._build_envs()
        previous = None
        for i, plan in enumerate(self.plans):  # checks that need the agent count, before any training
            try:
                strategy = strategy_from_config(plan.strategy)
                if previous is not None:
                    strategy.inherit(previous)  # e.g. seps_lora takes given seps clusters: no fit to check
                strategy.check_config(self.info.n_agents)
                previous = strategy
            except ValueError as err:
                raise ConfigError(f"schedule phase {i} ({plan.strategy['name']}): {err}") from None
        self.net_kwargs = network_kwargs(cfg, self.info)
        self.strategies = [strategy_from_config(self.plans[0].strategy)]
        self.phase_index, self.entered = 0, False
        self.phases = [Phase(self.plans[0].label, self.plans[0].strategy["name"])]
        self.fits: dict[str, dict] = {}
        self.frames, self.iteration, self.wall_time = 0, 0, 0.0
        self.best_eval, self.last_eval, self.last_win = -math.inf, math.nan, math.nan
        self.evals: list[dict] = []
        self.nonfinite_streak = 0
        self.switch_reason = None
        self.param_counts: dict[str, dict] = {}
        if self.resume_state is not None:
            net = self._restore(self.resume_state)
        else:
            first = self.strategies[0]
            # a strategy that must fit first acts with its initial policy until the fit (run start)
            net = (first.initial_policy() if first.needs_fit() else first).make_network(**self.net_kwargs)
        self.actor = make_actor(net.to(self.device), self.info, a.action_dist, device=self.device)
        self.critic = make_critic(self.info, a.name, a.critic_sharing, tuple(a.critic_hidden), a.activation,
                                  agent_id=a.critic_agent_id, value_norm=a.value_norm).to(self.device)
        chunk = a.chunk_length if a.recurrent else 1
        self.update = make_update(a, chunk, on_nonfinite=self._nonfinite, on_finite=self._finite)
        if self.resume_state is not None:
            self.critic.load_state_dict(self.resume_state["critic"])
            self.entered = True
            self._build_optimiser()
            self.optimiser.load_state_dict(self.resume_state["optimiser"])
        elif not self.strategies[0].needs_fit():
            self._finish_entering(net)

    # --- phases ------------------------------------------------------------------------------------
    @property
    def plan(self):
        return self.plans[self.phase_index]

    @property
    def strategy(self):
        return self.strategies[self.phase_index]

    def _fit(self, strategy) -> None:
        """Collect ``fit_frames`` frames of the current policy on a separate env copy (inside a forked
        RNG: fitting does not change what training samples) and fit the strategy on them."""
        frames, seed = strategy.fit_frames, self.cfg.seed + 2_000_003 + self.phase_index
        num_envs = min(self.cfg.env.num_envs, frames)
        env = self._env(num_envs, seed)
        try:
            with ckpt.forked_rng(), torch.no_grad():
                rollout = env.rollout(max(1, -(-frames // num_envs)), self.actor, break_when_any_done=False)
        finally:
            env.close()
        data = agent_transitions(rollout.cpu(), self.info.discrete, self.info.action_dim)
        start = time.perf_counter()
        report = strategy.fit(data, seed=seed)
        report.update(fit_frames=int(rollout.numel()), fit_time_s=round(time.perf_counter() - start, 2))
        self.fits[self.plan.label] = report

    def _enter(self, index: int, reason: str | None = None) -> None:
        """Start phase ``index`` from the current network (the strategy owns what that means)."""
        previous, net = self.strategy, actor_net(self.actor).net
        if index > 0:
            self.phases[self.phase_index].end_frame = self.frames
            self.phase_index = index
            self.phases.append(Phase(self.plan.label, self.plan.strategy["name"], start_frame=self.frames))
            self.strategies.append(strategy_from_config(self.plan.strategy))
            self.switch_reason = reason
            self.strategy.inherit(previous)
        strategy = self.strategy
        if strategy.needs_fit():
            self._fit(strategy)
        try:
            net = strategy.adopt(previous, net) if index > 0 else strategy.make_network(**self.net_kwargs)
        except ValueError as err:
            raise ConfigError(f"schedule phase {index}: {err}") from None
        self._finish_entering(net)

    def _finish_entering(self, net):
        net = net.to(self.device)  # a new phase's parameters (adapters, masks) are made on the CPU
        actor_net(self.actor).net = net
        report = self.strategy.report(net)
        if report:
            self.fits.setdefault(self.plan.label, {}).update(report)
        self.param_counts[self.plan.label] = count_parameters(net)
        self.auto_switch = auto_switch_for(self.cfg.schedule, self.plan)
        self.entered = True
        self._build_optimiser()

    def _build_optimiser(self):
        """The phase's loss, optimiser (Adam over the parameters that train in it; ``fused``: one kernel
        per parameter, 2-3x faster than ``foreach`` on a CPU at these sizes and equal to it within
        1e-8 after 10 steps, tools/bench_update), auxiliary loss and compile mode."""
        a, plan = self.cfg.algorithm, self.plan
        pick = lambda value, default: default if value is None else value  # noqa: E731
        self.loss = make_loss(self.actor, self.critic, ppo_settings(a, plan))
        net = actor_net(self.actor).net
        actor_params = self.strategy.trainable(net)
        critic_params = [p for p in self.critic.parameters() if p.requires_grad]
        self.trainable = (actor_params, critic_params) if a.clip_grad_per_network else actor_params + critic_params
        self.optimiser = torch.optim.Adam([{"params": actor_params, "lr": pick(plan.lr, a.lr)},
                                           {"params": critic_params, "lr": pick(plan.critic_lr, a.lr)}],
                                          eps=a.adam_eps, fused=True)
        strategy = self.strategy
        self.aux = lambda: strategy.aux_loss(net)  # one callable per phase: compiled once with the loss
        if a.name not in SEQUENTIAL:  # the sequential updates stay eager
            self.update.compile = compile_mode(a.compile, self.device, self._phase_steps(), a.recurrent)

    def _phase_steps(self) -> int:
        """Gradient steps left in the current phase (to its ``until``, or the run's end)."""
        a, until = self.cfg.algorithm, self.plan.until
        end = self.cfg.total_frames if until is None else min(until, self.cfg.total_frames)
        iterations = max(0, -(-(end - self.frames) // a.frames_per_batch))
        return iterations * a.epochs * max(1, a.frames_per_batch // a.minibatch_size)

    # --- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        holder = actor_net(self.actor)
        return {
            "version": 2, "iteration": self.iteration, "frames": self.frames, "wall_time": self.wall_time,
            "phase_index": self.phase_index, "phases": [dataclasses.asdict(p) for p in self.phases],
            # each entered phase's strategy, fitted fields (clusters, centres) included: a resume does not refit
            "strategies": [{**s.hyperparameters(), "name": s.name} for s in self.strategies],
            "fits": self.fits, "actor": holder.net.state_dict(),
            "trainable": {n: p.requires_grad for n, p in holder.net.named_parameters()},
            "critic": self.critic.state_dict(), "optimiser": self.optimiser.state_dict(),
            "rng": ckpt.rng_state(), "best_eval": self.best_eval, "last_eval": self.last_eval,
            "last_win": self.last_win, "evals": self.evals, "param_counts": self.param_counts,
            "auto_switch": None if self.auto_switch is None else self.auto_switch.state_dict(),
            "switch_reason": self.switch_reason,
        }

    def save_checkpoint(self, name: str = "last") -> Path:
        """``last.pt`` (keeping the previous ``checkpoint_keep - 1`` as ``last.1.pt`` ...), and for any
        other name also ``<name>.pt`` (e.g. ``phase_switch.pt``)."""
        state = self.state_dict()
        last = ckpt.save_rotating(state, self.run_dir / "checkpoints", self.cfg.checkpoint_keep)
        return last if name == "last" else ckpt.save_atomic(state, self.run_dir / "checkpoints" / f"{name}.pt")

    def _restore(self, state) -> torch.nn.Module:
        """Rebuild the network of the checkpoint's phase by replaying the chain (no fit: the fitted
        hyperparameters are saved), then load every value."""
        net, self.strategies = load_network(state, self.net_kwargs)
        self.phase_index = state["phase_index"]
        self.phases = [Phase(**p) for p in state["phases"]]
        self.frames, self.iteration, self.wall_time = state["frames"], state["iteration"], state["wall_time"]
        self.best_eval, self.last_eval, self.last_win = state["best_eval"], state["last_eval"], state["last_win"]
        self.evals, self.param_counts, self.fits = state["evals"], state["param_counts"], state["fits"]
        self.switch_reason = state.get("switch_reason")
        self.auto_switch = auto_switch_for(self.cfg.schedule, self.plan)
        if self.auto_switch is not None and state["auto_switch"] is not None:
            self.auto_switch.load_state_dict(state["auto_switch"])
        return net

    # --- training ----------------------------------------------------------------------------------
    def evaluate(self) -> tuple[float, float]:
        return evaluate(self.eval_env, self.actor, self.cfg.seed + 1_000_003,
                        self.cfg.env.max_steps or self.cfg.env.eval_max_steps)

    def _nonfinite(self, what: str):
        self.nonfinite_streak += 1
        if self.nonfinite_streak >= self.cfg.max_nonfinite:
            last = self.run_dir / "checkpoints" / "last.pt"
            kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint had been written yet"
            self.stopped = (f"{self.nonfinite_streak} consecutive updates had a non-finite {what} at frame "
                            f"{self.frames} (iteration {self.iteration}); stopping. {kept}. Try a lower learning rate "
                            f"or max_grad_norm.")
            raise TrainingDiverged(self.stopped)

    def _finite(self):
        self.nonfinite_streak = 0

    def run(self, max_iterations: int | None = None) -> dict:
        """Train until ``total_frames`` (or ``max_iterations`` more iterations: tests use it to stop a
        run as a crash would). Returns the summary (also written to ``summary.json``, also when the
        run diverges or stops on a signal: then TrainingDiverged / RunInterrupted follow)."""
        cfg, a = self.cfg, self.cfg.algorithm
        run_start = time.perf_counter() - self.wall_time  # wall time covers fits, evaluations, compiles
        exp_name = f"{cfg.env.name.replace('/', '-')}_{self.plans[0].strategy['name']}_seed{cfg.seed}"
        OmegaConf.save(OmegaConf.create(config_to_dict(cfg)), self.run_dir / "config.yaml")  # a resume may extend it
        logger = RunLogger(self.run_dir, cfg.logger, exp_name, config_to_dict(cfg),
                           resume_frames=None if self.resume_state is None else self.frames)
        collector, stop = None, StopSignals()
        progress = Progress(cfg.logger.progress, cfg.total_frames, self.frames)
        if cfg.total_frames % a.frames_per_batch:
            progress.notice(f"total_frames={cfg.total_frames} is not a multiple of frames_per_batch="
                            f"{a.frames_per_batch}: training runs {-(-cfg.total_frames // a.frames_per_batch) * a.frames_per_batch} frames")
        try:
            with stop:
                if not self.entered:  # the first phase fits on its initial policy's trajectories
                    self._enter(0)
                    progress.notice(f"{self.plan.label}: fitted {self.strategy.name}: {self.fits.get(self.plan.label)}")
                if self.frames < cfg.total_frames:
                    collector = Collector(self.env, self.actor, frames_per_batch=a.frames_per_batch,
                                          total_frames=-1, reset_at_each_iter=a.reset_each_iteration,
                                          auto_register_policy_transforms=False)  # feed-forward actors need none
                    if self.resume_state is not None:
                        ckpt.set_rng_state(self.resume_state["rng"])
                    elif self.iteration == 0:
                        self._record_eval(*self.evaluate())  # the starting point of the learning curve
                    self._loop(collector, logger, progress, stop, run_start, max_iterations)
        finally:
            progress.close()
            if collector is not None:
                collector.shutdown()
            logger.close()
            if self.entered:
                summary = self.summary()
                (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        if stop.received:
            raise RunInterrupted(f"stopped by {stop.received} at frame {self.frames:,} after saving a checkpoint and "
                                 f"the summary; continue with: marlshare train resume={self.run_dir}")
        return summary

    def _loop(self, collector, logger, progress, stop, run_start, max_iterations):
        cfg = self.cfg
        done_iterations, t_prev, ended_episodes = 0, time.perf_counter(), 0
        for batch in collector:
            self.frames += batch.numel()
            self.iteration += 1
            row = self.update(batch, self.loss, self.optimiser, self.trainable, self.aux, actor_net(self.actor))
            if row.get("compile_s") is not None and self._compile_noticed is not self.loss:  # once per phase
                self._compile_noticed = self.loss
                self.compile_times[self.plan.label] = round(row["compile_s"], 2)
                progress.notice(f"{self.plan.label}: compiled the update step ({self.update.compile}) in "
                                f"{row['compile_s']:.1f} s")
            row.update(iteration=self.iteration, frames=self.frames, phase=self.plan.label,
                       strategy=self.strategy.name, train_return=train_return(batch))
            reason = self._evaluate_and_maybe_end_phase(row)
            now = time.perf_counter()
            self.wall_time = now - run_start
            # frames/s of this iteration: collection, updates and evaluation together
            row.update(eval_return=row.get("eval_return", math.nan), win_rate=row.get("win_rate", math.nan),
                       fps=batch.numel() / max(now - t_prev, 1e-9), wall_time_s=self.wall_time)
            t_prev = now
            logger.log(row)
            progress.update(batch.numel(), row)
            done_iterations += 1
            ended_episodes += 0 if math.isnan(row["train_return"]) else 1
            if done_iterations == 3 and not ended_episodes:
                steps = cfg.algorithm.frames_per_batch // cfg.env.num_envs
                progress.notice(f"no training episode has ended in 3 iterations of {steps} steps per env copy "
                                f"(frames_per_batch / env.num_envs), so train_return stays empty; raise "
                                f"algorithm.frames_per_batch or lower env.num_envs")
            finished = self.frames >= cfg.total_frames
            if reason:
                self._enter(self.phase_index + 1, reason)
                if self.plan.label in self.fits:
                    progress.notice(f"{self.plan.label}: {self.strategy.name}: {self.fits[self.plan.label]}")
                self.save_checkpoint("phase_switch")
            elif finished or stop.received or (cfg.checkpoint_every and self._crossed(cfg.checkpoint_every, batch.numel())):
                self.save_checkpoint("last")
            if finished or stop.received or (max_iterations is not None and done_iterations >= max_iterations):
                return

    def _crossed(self, every: int, step: int) -> bool:
        return self.frames // every > (self.frames - step) // every

    def _record_eval(self, ret: float, win: float):
        self.last_eval, self.last_win = ret, win
        self.best_eval = max(self.best_eval, ret)
        self.evals.append({"frames": self.frames, "eval_return": ret, "win_rate": win, "phase": self.plan.label})

    def _evaluate_and_maybe_end_phase(self, row: dict) -> str | None:
        """Evaluate when due (always at a phase's end frame); returns why the phase ends now, or None."""
        cfg, plan = self.cfg, self.plan
        last = self.phase_index == len(self.plans) - 1 or self.frames >= cfg.total_frames
        due = not last and self.frames >= plan.until
        if self._crossed(cfg.eval_every, cfg.algorithm.frames_per_batch) or self.frames >= cfg.total_frames or due:
            ret, win = self.evaluate()
            self._record_eval(ret, win)
            row.update(eval_return=ret, win_rate=win)
            if not last and self.auto_switch is not None and self.auto_switch.update(self.frames, ret):
                return f"auto rule: {self.auto_switch.reason}"
        return None if last or self.auto_switch is not None or not due else f"until={plan.until}"

    def summary(self) -> dict:
        cfg = self.cfg
        self.phases[self.phase_index].end_frame = self.frames
        starts = {p.start_frame for p in self.phases[1:]}
        switch = next((e for e in self.evals if len(self.phases) > 1 and e["frames"] == self.phases[1].start_frame
                       and e["frames"] in starts), None)
        out = {
            "env": cfg.env.name, "strategy": self.phases[0].strategy, "final_strategy": self.strategy.name,
            "algorithm": cfg.algorithm.name, "schedule": cfg.schedule.name, "seed": cfg.seed, "frames": self.frames,
            "iterations": self.iteration, "wall_time_s": round(self.wall_time, 2),
            "phases": [dataclasses.asdict(p) for p in self.phases],
            "strategies": [{**s.hyperparameters(), "name": s.name} for s in self.strategies],
            "fits": self.fits, "switch_reason": self.switch_reason, "stopped": getattr(self, "stopped", None),
            "initial_eval_return": self.evals[0]["eval_return"] if self.evals else None,
            "eval_return_at_switch": switch["eval_return"] if switch else None,
            "eval_return_at_phase_end": {p.name: next((e["eval_return"] for e in reversed(self.evals)
                                                      if e["frames"] <= (p.end_frame or 0)), None) for p in self.phases},
            "final_eval_return": self.last_eval, "best_eval_return": self.best_eval,
            "parameters": self.param_counts, "run_dir": str(self.run_dir),
            "compile_s": self.compile_times,  # per phase: the first (compiling) call of the update step
        }
        if not math.isnan(self.last_win):
            out["win_rate"] = self.last_win
        return out
