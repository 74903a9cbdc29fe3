"""Time per PPO update of the sequential methods (HAPPO, A2PO) against MAPPO at the same frames.

    python -m tools.bench_sequential                     # 2, 4, 8 agents, PS and NPS (a few minutes)
    python -m tools.bench_sequential --quick             # smoke run
    python -m tools.bench_sequential --agents 2 4 --strategies ps --rounds 5 --out outputs/bench_sequential.json

Setting: ``vmas/navigation`` with N agents, one batch of ``--frames`` frames (``--envs`` copies) collected
once per (strategy, N) by the MAPPO trainer's policy, then each algorithm's update
(:class:`~components.algorithms.update.PPOUpdate` or
:class:`~components.algorithms.sequential.SequentialUpdate`: GAE and ``--epochs`` epochs of
``--minibatch``-sample minibatches) run on a copy of that batch by a trainer of that algorithm built
from the same seed. MLP actor and critic 64x64, one torch thread. Rounds are interleaved (MAPPO,
HAPPO, A2PO, MAPPO, ...) so that load from other work hits all alike; reported are medians of the
wall and process-CPU seconds per update, the ratio to MAPPO, and the ratio per gradient step (a
sequential update takes N times MAPPO's gradient steps: a per-step ratio near 1 means the extra
cost is the extra steps, not per-agent Python overhead).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type

from marlshare.components.algorithms import actor_net
from marlshare.components.config import TrainConfig
from marlshare.components.trainer import Trainer

ALGORITHMS = ("mappo", "happo", "a2po")


def config(alg, strategy, n, args) -> TrainConfig:
    cfg = TrainConfig()
    cfg.env.name, cfg.env.num_envs, cfg.env.eval_num_envs, cfg.env.max_steps = "vmas/navigation", args.envs, 1, 100
    cfg.env.options = {"n_agents": n}
    a = cfg.algorithm
    a.name, a.frames_per_batch, a.minibatch_size, a.epochs = alg, args.frames, args.minibatch, args.epochs
    cfg.strategy = {"name": strategy}
    cfg.total_frames, cfg.threads = args.frames * 10, args.threads
    cfg.logger.wandb, cfg.logger.csv, cfg.logger.progress = False, False, False
    return cfg


def bench(strategy, n, args) -> dict:
    trainers = {alg: Trainer(config(alg, strategy, n, args), run_dir=tempfile.mkdtemp()) for alg in ALGORITHMS}
    steps_per_copy = args.frames // args.envs
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        batch = trainers["mappo"].env.rollout(steps_per_copy, trainers["mappo"].actor, break_when_any_done=False)
    times = {alg: {"wall": [], "cpu": []} for alg in ALGORITHMS}
    for r in range(args.rounds + 1):  # round 0: warm-up
        for alg in ALGORITHMS:
            t = trainers[alg]
            data = batch.clone()
            wall, cpu = time.perf_counter(), time.process_time()
            t.update(data, t.loss, t.optimiser, t.trainable, lambda: 0.0, actor_net(t.actor))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if r:
                times[alg]["wall"].append(wall)
                times[alg]["cpu"].append(cpu)
    for t in trainers.values():
        t.env.close()
        t.eval_env.close()
    steps = {alg: (args.frames // args.minibatch) * args.epochs * (n if alg != "mappo" else 1) for alg in ALGORITHMS}
    row = {"strategy": strategy, "n_agents": n, "gradient_steps": steps}
    for alg in ALGORITHMS:
        row[alg] = {k: statistics.median(v) for k, v in times[alg].items()}
    for alg in ALGORITHMS[1:]:
        ratio = statistics.median(a / m for a, m in zip(times[alg]["wall"], times["mappo"]["wall"]))
        row[f"{alg}_ratio"] = ratio
        row[f"{alg}_ratio_per_step"] = ratio * steps["mappo"] / steps[alg]
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--agents", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--strategies", nargs="+", default=["ps", "nps"])
    p.add_argument("--frames", type=int, default=1200)
    p.add_argument("--envs", type=int, default=60)
    p.add_argument("--minibatch", type=int, default=600)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.agents, args.strategies, args.frames, args.envs, args.minibatch, args.rounds = [2], ["ps"], 200, 10, 100, 1
    rows = []
    print("| strategy | N | MAPPO s | HAPPO s | A2PO s | HAPPO / MAPPO | A2PO / MAPPO | per step: HAPPO | A2PO |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for strategy in args.strategies:
        for n in args.agents:
            row = bench(strategy, n, args)
            rows.append(row)
            print(f"| {strategy} | {n} | {row['mappo']['wall']:.3f} | {row['happo']['wall']:.3f} | "
                  f"{row['a2po']['wall']:.3f} | {row['happo_ratio']:.2f}x | {row['a2po_ratio']:.2f}x | "
                  f"{row['happo_ratio_per_step']:.2f} | {row['a2po_ratio_per_step']:.2f} |", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
