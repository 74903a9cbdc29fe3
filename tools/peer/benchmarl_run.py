"""The BenchMARL side of ``tools.bench_peer``: BenchMARL 1.5.2's default MAPPO on ``vmas/balance``
(4 agents), trained for ``--frames`` frames, timed, and printed as one JSON line.

Runs with the peer venv's python (``make bench-peer-install`` builds ``.venv-peer``), as a script:

    .venv-peer/bin/python tools/peer/benchmarl_run.py --frames 60000 --seed 0 --threads 1
    .venv-peer/bin/python tools/peer/benchmarl_run.py --check      # the install works; versions

Everything comes from BenchMARL's own defaults through its Python API (``ExperimentConfig``,
``MappoConfig``, ``MlpConfig`` for actor and critic, ``VmasTask.BALANCE``, each ``get_from_yaml()``).
Changed, and only for the timing: ``max_n_frames`` (the run length), no loggers, no marl-eval json,
no evaluation, no rendering, no checkpoints, and the output folder a temporary directory. ``--quick``
also shrinks the iteration (``_measure.QUICK``): a smoke test, not BenchMARL's setting.

This file never imports marlshare; it imports ``_measure`` from its own directory.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TQDM_DISABLE", "1")  # BenchMARL's progress bar (tqdm reads this when created)

import _measure  # noqa: E402

PROCESS_START = time.perf_counter()


def versions() -> dict:
    import benchmarl
    import tensordict
    import torch
    import torchrl
    import vmas

    return {"benchmarl": benchmarl.__version__, "torch": torch.__version__, "torchrl": torchrl.__version__,
            "tensordict": tensordict.__version__, "vmas": vmas.__version__}


def configs(frames: int, save_folder: str, quick: bool):
    """BenchMARL's default configs, with only what the timing needs changed."""
    from benchmarl.algorithms import MappoConfig
    from benchmarl.environments import VmasTask
    from benchmarl.experiment import ExperimentConfig
    from benchmarl.models.mlp import MlpConfig

    experiment = ExperimentConfig.get_from_yaml()
    experiment.max_n_frames = frames
    experiment.max_n_iters = None
    experiment.loggers = []
    experiment.create_json = False
    experiment.evaluation = False
    experiment.render = False
    experiment.checkpoint_interval = 0
    experiment.checkpoint_at_end = False
    experiment.save_folder = save_folder
    if quick:
        experiment.on_policy_collected_frames_per_batch = _measure.QUICK["frames_per_batch"]
        experiment.on_policy_n_minibatch_iters = _measure.QUICK["epochs"]
        experiment.on_policy_minibatch_size = _measure.QUICK["minibatch_size"]
    return (VmasTask.BALANCE.get_from_yaml(), MappoConfig.get_from_yaml(), MlpConfig.get_from_yaml(),
            MlpConfig.get_from_yaml(), experiment)


def settings(task, algorithm, model, critic_model, experiment) -> dict:
    """The settings this run used, for the report (and the differences table's BenchMARL column)."""
    keys = ("gamma", "lr", "adam_eps", "adam_extra_kwargs", "clip_grad_norm", "clip_grad_val", "share_policy_params",
            "prefer_continuous_actions", "on_policy_collected_frames_per_batch", "on_policy_n_envs_per_worker",
            "on_policy_n_minibatch_iters", "on_policy_minibatch_size", "evaluation_interval", "evaluation_episodes",
            "evaluation_deterministic_actions", "max_n_frames", "sampling_device", "train_device")
    net = lambda m: {"num_cells": list(m.num_cells), "layer_class": m.layer_class.__name__,  # noqa: E731
                     "activation_class": m.activation_class.__name__, "norm_class": m.norm_class}
    return {"experiment": {k: getattr(experiment, k) for k in keys}, "algorithm": dict(vars(algorithm)),
            "actor_model": net(model), "critic_model": net(critic_model), "task": dict(task.config)}


def clock_callback(clock: _measure.IterationClock):
    """A BenchMARL callback that marks the end of each iteration's training (``on_train_end``; one agent
    group here) with the mean return of the episodes that ended in its batch (``experiment.mean_return``,
    what BenchMARL logs as the collection return). Its class lives at module level: BenchMARL pickles
    its callbacks into the experiment folder."""
    global Clock
    from benchmarl.experiment.callback import Callback

    class Clock(Callback):
        def __init__(self, clock):
            super().__init__()
            self.clock = clock

        def on_train_end(self, training_td, group):
            self.clock.mark(self.experiment.mean_return)

    Clock.__qualname__ = "Clock"
    return Clock(clock)


def run(args) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from benchmarl.experiment import Experiment

    clock = _measure.IterationClock()
    with tempfile.TemporaryDirectory(prefix="bench_peer_benchmarl_") as folder:
        parts = configs(args.frames, folder, args.quick)
        task, algorithm, model, critic_model, experiment_config = parts
        experiment = Experiment(task=task, algorithm_config=algorithm, model_config=model,
                                critic_model_config=critic_model, seed=args.seed, config=experiment_config,
                                callbacks=[clock_callback(clock)])
        loss = experiment.losses["agents"]
        params = {"actor": sum(p.numel() for p in loss.actor_network_params.values(True, True)),
                  "critic": sum(p.numel() for p in loss.critic_network_params.values(True, True))}
        startup_s = time.perf_counter() - PROCESS_START
        clock.start()
        experiment.run()
        result = clock.result(experiment_config.on_policy_collected_frames_per_batch)
    result.update(library="benchmarl", seed=args.seed, threads_requested=args.threads,
                  torch_threads=torch.get_num_threads(), startup_s=startup_s, parameters=params,
                  versions=versions(), settings=settings(*parts), quick=args.quick, **_measure.process_usage())
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60_000, help="frames to train (whole iterations of 6000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: BenchMARL's default, torch's own)")
    parser.add_argument("--quick", action="store_true", help="smoke test: a tiny iteration (not BenchMARL's setting)")
    parser.add_argument("--check", action="store_true", help="only check that BenchMARL imports and print versions")
    args = parser.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as folder:
            parts = configs(6000, folder, False)
        _measure.emit({"library": "benchmarl", "versions": versions(), "settings": settings(*parts)})
        return
    _measure.emit(run(args))


if __name__ == "__main__":
    main()
