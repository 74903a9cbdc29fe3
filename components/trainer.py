"""The on-policy trainer: a loop over the phases of a schedule.

One iteration, in order: TorchRL's ``Collector`` returns ``frames_per_batch`` frames; the algorithm's
update runs GAE and the PPO epochs; every ``eval_every`` frames a deterministic evaluation runs in a
forked RNG (and may end the phase by the automatic rule); a phase that ends enters the next one
(:mod:`~marlshare.components.phases`: inherit, fit, adopt, optimiser); checkpoints are written
periodically, at each phase boundary and at the end. The frame counter runs on across phases, so
curves are continuous. What the run has done lives in one :class:`RunState` (``trainer.state``);
resuming is :func:`~marlshare.components.resume.restore`, the summary
:func:`~marlshare.components.summary.run_summary`. A trainer holds its run directory's lock
(:mod:`~marlshare.components.run_lock`); stops, write errors and their summaries: :mod:`~marlshare.components.run_end`.
"""

from __future__ import annotations

import contextlib
import math
import time
import weakref
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torchrl.collectors import Collector

from marlshare.components import checkpoint as ckpt
from marlshare.components import phases
from marlshare.components.algorithms import actor_net, make_actor, make_critic, make_update
from marlshare.components.algorithms.ppo import recurrent_env_transforms
from marlshare.components.algorithms.precision import resolve_precision
from marlshare.components.config import ConfigError, as_train_config, auto_threads, config_to_dict
from marlshare.components.config_checks import check_strategy_networks, validate_config
from marlshare.components.evaluation import evaluate, train_return
from marlshare.components.interrupts import RunInterrupted, StopRequested, StopSignals
from marlshare.components.progress import Progress
from marlshare.components.resume import checkpoint_meta, open_run, restore
from marlshare.components import run_lock
from marlshare.components.run_end import (LastGood, UpdateAbandoned, WriteFailed, classify, finish_pending,
                                          interruption, switch_phase, write_run_summary)
from marlshare.components.run_envs import devices, make_run_env
from marlshare.components.run_state import RunState
from marlshare.components.runs import network_kwargs
from marlshare.components.schedule import plan_phases
from marlshare.components.strategies import strategy_from_config
from marlshare.components.summary import run_summary
from marlshare.components.tracking import RunLogger
from marlshare.components.video import maybe_record_video
from marlshare.envs import env_info

__all__ = ["ConfigError", "RunDirBusy", "RunInterrupted", "Trainer", "TrainingDiverged", "WriteFailed",
           "as_train_config", "config_to_dict", "validate_config"]
RunDirBusy = run_lock.RunDirBusy


def _release(held: list) -> None:
    if held:
        run_lock.release(held.pop())


class TrainingDiverged(RuntimeError):
    """Too many consecutive non-finite losses or gradients."""


class Trainer:
    """Trains one run described by a :class:`TrainConfig` into ``run_dir``. Every configuration error,
    including those that need the env (agent counts, cluster lists), is raised as ConfigError before
    the run directory is created."""

    def __init__(self, cfg, run_dir: str | Path | None = None, resume_changes: dict | None = None):
        """``cfg.resume = RUN`` continues that run as configured; ``resume_changes`` may change the
        settings in :data:`marlshare.components.resume.RESUMABLE` (e.g. ``{"total_frames": N}`` to extend it)."""
        cfg = as_train_config(cfg)
        resume_state, resume_path = None, None
        # one writer per run directory (components/run_lock.py), held until run() ends
        self._lock: list = []
        self._finalizer = weakref.finalize(self, _release, self._lock)
        self._stop, self.last_good, self._compiling = None, None, False
        if cfg.resume:
            if Path(cfg.resume).is_dir():  # before reading anything: another writer may be changing it
                self._lock.append(run_lock.acquire(cfg.resume))
        try:
            if cfg.resume:
                cfg, run_dir, resume_state, resume_path = open_run(cfg.resume, resume_changes)
            validate_config(cfg)
            self.cfg, self.resume_state, self.resume_path = cfg, resume_state, resume_path
            self.plans = plan_phases(cfg)
            if cfg.threads != 0:  # 0: torch's default
                torch.set_num_threads(cfg.threads or auto_threads())
            self.device, self.env_device = devices(cfg)
            self._build_envs()
            self._check_phases()
            self._build()
        except BaseException:
            self.release_lock()
            raise
        default_dir = (f"outputs/{cfg.env.name}/{self.plans[0].strategy['name']}/"
                       f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_seed{cfg.seed}")
        self.run_dir = Path(run_dir or cfg.run_dir or default_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self._lock:
            self._lock.append(run_lock.acquire(self.run_dir))
        (self.run_dir / "checkpoints").mkdir(exist_ok=True)
        ckpt.remove_stale_temporaries(self.run_dir / "checkpoints")  # only the lock holder may: they may be ours
        if resume_state is not None:
            self.last_good = LastGood.after_save(self, resume_path)

    def release_lock(self) -> None:
        """Let another process write the run directory (run() does this when it ends)."""
        _release(self._lock)

    # --- construction ----------------------------------------------------------------------------
    def make_env(self, num_envs: int, seed: int):
        """An env of the run (``num_envs`` copies), with the GRU state transforms of a recurrent actor."""
        return self._recurrent(make_run_env(self.cfg.env, num_envs, seed, self.device, self.env_device))

    def _recurrent(self, env):
        if self.cfg.algorithm.network.recurrent:  # carry the GRU state from step to step, zero at episode starts
            env.append_transform(recurrent_env_transforms(self.info.n_agents, self.hidden_size))
        return env

    def _build_envs(self):
        cfg, a = self.cfg, self.cfg.algorithm.network
        # Envs first, in this order: some simulators (VMAS) reseed torch's global RNG when built.
        self.eval_env = make_run_env(cfg.env, cfg.env.eval_num_envs, cfg.seed + 1_000_003, self.device, self.env_device)
        self.env = make_run_env(cfg.env, cfg.env.num_envs, cfg.seed, self.device, self.env_device)
        ckpt.seed_everything(cfg.seed)
        self.info = env_info(self.env)
        self.hidden_size = int(a.gru_hidden or a.actor_hidden[-1]) if a.recurrent else None
        self._recurrent(self.eval_env)
        self._recurrent(self.env)

    def _check_phases(self):
        """The checks that need the agent count, for every phase, before any training."""
        previous = None
        for i, plan in enumerate(self.plans):
            try:
                strategy = strategy_from_config(plan.strategy)
                if previous is not None:
                    strategy.inherit(previous)  # e.g. seps_lora takes given seps clusters: no fit to check
                strategy.check_config(self.info.n_agents)
                previous = strategy
            except ValueError as err:
                raise ConfigError(f"schedule phase {i} ({plan.strategy['name']}): {err}") from None
        check_strategy_networks(self.cfg, self.plans, self.info.obs_dim, self.info.n_agents)  # input layer too
        phases.plan_critic(self)  # the critic's strategy in each phase (critic_strategy), checked

    def _build(self):
        """The run state, actor, critic and update: new, or as the resumed checkpoint left them."""
        a, net_cfg = self.cfg.algorithm, self.cfg.algorithm.network
        self.net_kwargs = network_kwargs(self.cfg, self.info)
        self.entered = False  # whether the current phase has its network and optimiser
        # the phase's loss, optimiser, parameters that train and auxiliary loss: phases.build_optimiser
        self.loss = self.optimiser = self.trainable = self.aux = None
        self.nonfinite_streak = 0
        if self.resume_state is not None:
            net, self.state = restore(self.resume_state, self.net_kwargs, self.cfg.schedule, self.plans,
                                      self.resume_path)
        else:
            first = strategy_from_config(self.plans[0].strategy)
            self.state = RunState.start(first, self.plans[0].label)
            # a strategy that must fit first acts with its initial policy until the fit (run start)
            net = (first.initial_policy() if first.needs_fit() else first).make_network(**self.net_kwargs)
        self.actor = make_actor(net.to(self.device), self.info, net_cfg.action_dist, device=self.device)
        self.critic = make_critic(self.info, a.name, net_cfg.critic_sharing, tuple(net_cfg.critic_hidden),
                                  net_cfg.activation, agent_id=net_cfg.critic_agent_id,
                                  value_norm=a.value_norm).to(self.device)
        chunk = a.chunk_length if net_cfg.recurrent else 1
        self.update = make_update(a, chunk, on_nonfinite=self._nonfinite, on_finite=self._finite)
        self.update.precision = resolve_precision(a.precision, self.device)  # the loss's forwards (bf16: autocast)
        self._compile_noticed = None
        if self.resume_state is not None:
            phases.restore_critic(self)  # the critic's switches up to the checkpoint's phase, then its values
            self.critic.load_state_dict(self.resume_state["critic"])
            self.entered = True
            phases.build_optimiser(self)
            self.optimiser.load_state_dict(self.resume_state["optimiser"])
        elif not self.state.strategy.needs_fit():
            phases.finish_entering(self, net)

    # --- phases ------------------------------------------------------------------------------------
    @property
    def plan(self):
        return self.plans[self.state.phase_index]

    @property
    def strategy(self):
        return self.state.strategy

    def enter_phase(self, index: int, reason: str | None = None) -> None:
        """Start phase ``index`` from the current network (:func:`marlshare.components.phases.enter_phase`)."""
        phases.enter_phase(self, index, reason)

    # --- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        holder, run = actor_net(self.actor), self.state
        meta = checkpoint_meta(self.cfg, self.plans, run.phase_index, self.info.n_agents, run.frames)
        return {"version": 2, **run.state_dict(), "meta": meta, "actor": holder.net.state_dict(),
                "trainable": {n: p.requires_grad for n, p in holder.net.named_parameters()},
                "critic": self.critic.state_dict(), "optimiser": self.optimiser.state_dict(),
                "rng": ckpt.rng_state()}

    def _deferred(self):
        """A second Ctrl-C waits for the checkpoint being written (the last good one stays whole)."""
        return self._stop.deferred() if self._stop is not None else contextlib.nullcontext()

    def save_checkpoint(self, name: str = "last") -> Path:
        """``last.pt`` (keeping the previous ``checkpoint_keep - 1`` as ``last.1.pt`` ...), and for any
        other name also ``<name>.pt`` (e.g. ``phase_switch.pt``)."""
        state = self.state_dict()
        with self._deferred():
            last = ckpt.save_rotating(state, self.run_dir / "checkpoints", self.cfg.checkpoint_keep)
            path = last if name == "last" else ckpt.save_atomic(state, self.run_dir / "checkpoints" / f"{name}.pt")
        self.last_good = LastGood.after_save(self, last)
        return path

    # --- training ----------------------------------------------------------------------------------
    def evaluate(self) -> tuple[float, float]:
        return evaluate(self.eval_env, self.actor, self.cfg.seed + 1_000_003,
                        self.cfg.env.max_steps or self.cfg.env.eval_max_steps)

    def _record_eval(self, ret: float, win: float) -> None:
        """Record an evaluation; a new best writes ``best.pt`` (never rotated away by checkpoint_keep)."""
        if self.state.record_eval(ret, win, self.plan.label):
            with self._deferred():
                ckpt.save_atomic(self.state_dict(), self.run_dir / "checkpoints" / "best.pt")
            self.state.best = {"frame": self.state.frames, "eval_return": ret}

    def _nonfinite(self, what: str):
        self.nonfinite_streak += 1
        if self.nonfinite_streak >= self.cfg.max_nonfinite:
            last = self.run_dir / "checkpoints" / "last.pt"
            kept = f"the last good checkpoint is {last}" if last.exists() else "no training checkpoint (last.pt) had been written yet"
            self.state.stopped = (f"{self.nonfinite_streak} consecutive updates had a non-finite {what} at frame "
                                  f"{self.state.frames} (iteration {self.state.iteration}); stopping. {kept}. Try a "
                                  f"lower learning rate or max_grad_norm.")
            raise TrainingDiverged(self.state.stopped)

    def _finite(self):
        self.nonfinite_streak = 0

    def run(self, max_iterations: int | None = None) -> dict:
        """Train until ``total_frames`` (or ``max_iterations`` more iterations: tests use it to stop a
        run as a crash would). Returns the summary (also written to ``summary.json``, also when the
        run diverges, stops on a signal or cannot write: then TrainingDiverged / RunInterrupted /
        WriteFailed follow; :mod:`~marlshare.components.run_end` says which summary each leaves)."""
        cfg, a, run = self.cfg, self.cfg.algorithm, self.state
        run_start = self._run_start = time.perf_counter() - run.wall_time  # covers fits, evaluations, compiles
        exp_name = f"{cfg.env.name.replace('/', '-')}_{self.plans[0].strategy['name']}_seed{cfg.seed}"
        collector = logger = None
        progress = Progress(cfg.logger.progress, cfg.total_frames, run.frames, cfg.eval_every, a.frames_per_batch)
        stop = self._stop = StopSignals(notice=progress.notice, stage=lambda: progress.current,
                                        abandon=lambda: self._compiling)
        ended, failure = None, None  # ended: why the run ended without a new checkpoint; failure: to raise
        try:
            with stop:
                # a resume may extend it; written whole or not at all (the run cannot be read without it)
                ckpt.write_text_atomic(OmegaConf.to_yaml(OmegaConf.create(config_to_dict(cfg))),
                                       self.run_dir / "config.yaml")
                logger = RunLogger(self.run_dir, cfg.logger, exp_name, config_to_dict(cfg),
                                   resume_frames=None if self.resume_state is None else run.frames)
                if cfg.total_frames % a.frames_per_batch:
                    progress.notice(f"total_frames={cfg.total_frames} is not a multiple of frames_per_batch="
                                    f"{a.frames_per_batch}: training runs {-(-cfg.total_frames // a.frames_per_batch) * a.frames_per_batch} frames")
                if not self.entered:  # the first phase fits on its initial policy's trajectories
                    progress.stage("fit")
                    self.enter_phase(0)
                    progress.notice(f"{self.plan.label}: fitted {self.strategy.name}: {run.fits.get(self.plan.label)}")
                if run.frames < cfg.total_frames or run.pending:
                    collector = Collector(self.env, self.actor, frames_per_batch=a.frames_per_batch,
                                          total_frames=-1, reset_at_each_iter=a.reset_each_iteration,
                                          auto_register_policy_transforms=False)  # feed-forward actors need none
                    if self.resume_state is not None:
                        ckpt.set_rng_state(self.resume_state["rng"])
                    elif run.iteration == 0:  # the learning curve's start: metrics.csv's first row
                        progress.stage("evaluate")
                        ret, win = self.evaluate()
                        self._record_eval(ret, win)
                        logger.log(dict(iteration=0, frames=0, phase=self.plan.label, strategy=self.strategy.name,
                                        eval_return=ret, win_rate=win, wall_time_s=time.perf_counter() - run_start))
                    self._t_prev = time.perf_counter()
                    if not finish_pending(self, logger, progress, stop) and run.frames < cfg.total_frames:
                        self._loop(collector, logger, progress, stop, max_iterations)
        except BaseException as err:  # noqa: BLE001 - run_end.classify re-raises what is not a stop or a write error
            ended, failure = classify(err, self, stop)
        finally:
            progress.close()
            if collector is not None:
                collector.shutdown()
            with contextlib.suppress(OSError):  # a full disk refuses the last flush too; what was written stays
                logger is not None and logger.close()
            summary = write_run_summary(self, ended, stop)
            self.release_lock()
        interrupted = interruption(self, stop, ended)
        if failure is not None or interrupted is not None:
            raise (failure or interrupted) from None
        return summary

    def _loop(self, collector, logger, progress, stop, max_iterations):
        """collect -> update -> evaluate (may end the phase) -> log -> enter the next phase or checkpoint.
        A stop that arrives while collecting skips the update (the batch is dropped; a compile never starts)."""
        cfg, run = self.cfg, self.state
        done_iterations, ended_episodes = 0, 0
        progress.stage("collect")
        for batch in collector:
            if stop.received:
                self.save_checkpoint("last")
                return
            # the first update of a phase with compile on compiles: a stop abandons it at once
            compiling = getattr(self.update, "compile", None) is not None and self._compile_noticed is not self.loss
            run.frames += batch.numel()
            run.iteration += 1
            try:
                progress.stage("compile" if compiling else "update")
                self._compiling = compiling  # only while the call runs: never inside a checkpoint write
                row = self.update(batch, self.loss, self.optimiser, self.trainable, self.aux, actor_net(self.actor))
                self._compiling = False
            except Exception as err:
                self._compiling = False
                if stop.received is None or isinstance(err, TrainingDiverged):
                    raise
                # e.g. torch.compile's C++ compiler killed by the same Ctrl-C: hundreds of lines that say nothing
                raise UpdateAbandoned(f"{type(err).__name__} after {stop.received}") from None
            row.update(self.strategy.after_update(actor_net(self.actor), batch, run.frames))
            self._notice_compile(row, progress)
            row.update(iteration=run.iteration, frames=run.frames, phase=self.plan.label,
                       strategy=self.strategy.name, train_return=train_return(batch))
            done_iterations += 1
            ended_episodes += 0 if math.isnan(row["train_return"]) else 1
            if done_iterations == 3 and not ended_episodes:
                steps = cfg.algorithm.frames_per_batch // cfg.env.num_envs
                progress.notice(f"no training episode has ended in 3 iterations of {steps} steps per env copy "
                                f"(frames_per_batch / env.num_envs), so train_return stays empty; raise "
                                f"algorithm.frames_per_batch or lower env.num_envs")
            if self._finish_iteration(row, batch.numel(), logger, progress, stop):
                return
            if max_iterations is not None and done_iterations >= max_iterations:
                return
            progress.stage("collect")

    def _finish_iteration(self, row, n, logger, progress, stop) -> bool:
        """evaluate (may end the phase) -> log -> enter the next phase or checkpoint; True to stop.
        An interrupted evaluation is not logged: the checkpoint keeps the iteration's row to finish
        on resume."""
        cfg, run = self.cfg, self.state
        try:
            reason = self._evaluate_and_maybe_end_phase(row, progress)
        except StopRequested:
            run.pending = {"row": row}
            self.save_checkpoint("last")
            raise
        now = time.perf_counter()
        run.wall_time = now - self._run_start
        # frames/s of this iteration: collection, updates and evaluation together
        row.update(eval_return=row.get("eval_return", math.nan), win_rate=row.get("win_rate", math.nan),
                   wall_time_s=run.wall_time, fps=n / max(now - self._t_prev, 1e-9) if n else row.get("fps"))
        self._t_prev = now
        logger.log(row)
        progress.update(n, row)
        maybe_record_video(self, logger)  # logger.video_every
        finished = run.frames >= cfg.total_frames
        if reason:
            return switch_phase(self, reason, progress) or finished
        if finished or stop.received or (cfg.checkpoint_every and self._crossed(cfg.checkpoint_every,
                                                                               cfg.algorithm.frames_per_batch)):
            self.save_checkpoint("last")
        return finished or stop.received is not None

    def _notice_compile(self, row: dict, progress) -> None:
        if row.get("compile_s") is not None and self._compile_noticed is not self.loss:  # once per phase
            self._compile_noticed = self.loss
            self.state.compile_times[self.plan.label] = round(row["compile_s"], 2)
            progress.notice(f"{self.plan.label}: compiled the update step ({self.update.compile}) in "
                            f"{row['compile_s']:.1f} s")

    def _crossed(self, every: int, step: int) -> bool:
        return self.state.frames // every > (self.state.frames - step) // every

    def _evaluate_and_maybe_end_phase(self, row: dict, progress) -> str | None:
        """Evaluate when due (always at a phase's end frame); returns why the phase ends now, or None."""
        cfg, plan, run = self.cfg, self.plan, self.state
        last = run.phase_index == len(self.plans) - 1 or run.frames >= cfg.total_frames
        due = not last and run.frames >= plan.until
        if self._crossed(cfg.eval_every, cfg.algorithm.frames_per_batch) or run.frames >= cfg.total_frames or due:
            progress.stage("evaluate")
            ret, win = self.evaluate()
            self._record_eval(ret, win)
            row.update(eval_return=ret, win_rate=win)
            if not last and run.auto_switch is not None and run.auto_switch.update(run.frames, ret):
                return f"auto rule: {run.auto_switch.reason}"
        return None if last or run.auto_switch is not None or not due else f"until={plan.until}"

    def summary(self) -> dict:
        return run_summary(self.cfg, self.state, self.run_dir)
