"""The marlshare side of ``tools.bench_peer``: MAPPO-PS at BenchMARL's setting (the ``benchmarl``
algorithm preset plus ``tools.bench_peer.MARLSHARE_OVERRIDES``) on ``vmas/balance``, trained for
``--frames`` frames by :class:`components.trainer.Trainer`, timed as the BenchMARL side is
(``_measure``), printed as one JSON line.

    python -m tools.peer.marlshare_run --frames 60000 --seed 0 --threads 1
    python -m tools.peer.marlshare_run --frames 60000 --seed 0 --threads 1 --precision bf16

One ``Trainer.run()`` over the whole run. Changed for the timing only: no CSV / W&B / TensorBoard
logger, no progress bar, no periodic evaluation or checkpoint (``metrics.csv`` is always written; the
initial evaluation and the final evaluation and checkpoint fall outside the timed iterations). The end
of each iteration is marked when the PPO update returns; the return per iteration is the trainer's
``train_return`` (mean return of the training episodes that ended in the batch), read from
``metrics.csv`` after the run.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time

PROCESS_START = time.perf_counter()

from tools.peer import _measure  # noqa: E402


def versions() -> dict:
    import tensordict
    import torch
    import torchrl
    import vmas

    from tools.bench_peer import code_version

    return {"marlshare": code_version(), "torch": torch.__version__, "torchrl": torchrl.__version__,
            "tensordict": tensordict.__version__, "vmas": vmas.__version__}


class Timed:
    """The trainer's update step, marking the clock when it returns; every other attribute (read or set)
    is the update step's own."""

    def __init__(self, inner, clock):
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_clock", clock)

    def __call__(self, *args, **kwargs):
        row = self._inner(*args, **kwargs)
        self._clock.mark()
        return row

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def __setattr__(self, name, value):
        setattr(self._inner, name, value)


def run(args) -> dict:
    import torch

    from marlshare.components.algorithms.ppo import actor_net
    from marlshare.components.config import config_to_dict
    from marlshare.components.trainer import Trainer
    from tools.bench_peer import marlshare_config

    clock = _measure.IterationClock()
    with tempfile.TemporaryDirectory(prefix="bench_peer_marlshare_") as run_dir:
        cfg = marlshare_config(seed=args.seed, threads=args.threads, frames=args.frames, run_dir=run_dir,
                               quick=args.quick)
        cfg.algorithm.precision = args.precision  # the update's forwards (components/algorithms/precision.py)
        trainer = Trainer(cfg)
        trainer.update = Timed(trainer.update, clock)
        startup_s = time.perf_counter() - PROCESS_START
        clock.start()
        trainer.run()
        with open(trainer.run_dir / "metrics.csv", newline="") as f:
            # iteration 0 is the frame-0 evaluation, no update; "" where no training episode ended
            clock.returns = [float(row["train_return"] or "nan") for row in csv.DictReader(f)
                             if int(row["iteration"]) > 0][: len(clock.marks)]
        result = clock.result(cfg.algorithm.frames_per_batch)
        settings = {k: v for k, v in config_to_dict(trainer.cfg).items() if k in ("env", "strategy", "algorithm")}
        params = {"actor": sum(p.numel() for p in actor_net(trainer.actor).net.parameters()),
                  "critic": sum(p.numel() for p in trainer.critic.parameters())}
    result.update(library="marlshare", precision=args.precision, seed=args.seed, threads_requested=args.threads,
                  torch_threads=torch.get_num_threads(), startup_s=startup_s, parameters=params, versions=versions(),
                  settings=settings, quick=args.quick, **_measure.process_usage())
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60_000, help="frames to train (whole iterations of 6000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: marlshare's default, TrainConfig.threads)")
    parser.add_argument("--quick", action="store_true", help="smoke test: a tiny iteration (not BenchMARL's setting)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"], help="algorithm.precision")
    _measure.emit(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
