"""Measurements shared by the two sides of ``tools.bench_peer`` (standard library only: the BenchMARL
side runs in its own venv and imports this file by path, never marlshare).

Both runners mark the end of every PPO update (``IterationClock.mark``): iteration ``i``'s time is the
gap between marks ``i - 1`` and ``i`` (collection, GAE, the gradient steps, and whatever each library
does between iterations). The first iteration has no earlier mark and holds the one-time costs (first
reset, allocator warm-up): its time is taken from the training loop's start and reported apart, and
the steady frames/s is over iterations 2..K.
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import sys
import time

# QUICK: a smoke test of the plumbing (both sides alike), not a benchmark: 1200 frames (10 envs x 120 steps,
# so 10 episodes end), 2 passes of 3 minibatches.
QUICK = {"frames_per_batch": 1200, "epochs": 2, "minibatch_size": 400}
RESULT_PREFIX = "BENCH_PEER_RESULT "  # the line the orchestrator parses


class IterationClock:
    """``start()`` before the training loop, ``mark(ret)`` after each PPO update with the mean return of
    the training episodes that ended in that iteration's batch."""

    def __init__(self):
        self.t0 = self.c0 = None
        self.marks: list[tuple[float, float]] = []
        self.returns: list[float] = []

    def start(self):
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def mark(self, ret: float = math.nan):
        self.marks.append((time.perf_counter(), time.process_time()))
        self.returns.append(float(ret))

    def result(self, frames_per_batch: int) -> dict:
        if self.t0 is None or not self.marks:
            raise RuntimeError("the training loop ran no iteration")
        points = [(self.t0, self.c0)] + self.marks
        wall = [b[0] - a[0] for a, b in zip(points, points[1:])]
        cpu = [b[1] - a[1] for a, b in zip(points, points[1:])]
        steady_wall, steady_cpu = sum(wall[1:]), sum(cpu[1:])
        k = len(wall)
        return {
            "iterations": k, "frames_per_batch": frames_per_batch, "frames": k * frames_per_batch,
            "iteration_s": wall, "iteration_cpu_s": cpu,
            "loop_s": sum(wall), "loop_cpu_s": sum(cpu), "first_iteration_s": wall[0],
            "fps_loop": k * frames_per_batch / sum(wall),
            # iterations 2..K: what the comparison uses (NaN with a single iteration)
            "fps": (k - 1) * frames_per_batch / steady_wall if k > 1 else math.nan,
            "cpu_s_per_iteration": steady_cpu / (k - 1) if k > 1 else math.nan,
            "s_per_iteration": statistics.median(wall[1:]) if k > 1 else math.nan,
            "returns": self.returns, "final_return": self.returns[-1],
        }


def process_usage() -> dict:
    """This process's CPU seconds (user + system, all threads) and peak resident memory."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"process_cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024.0}


def emit(result: dict) -> None:
    """Print the result as one JSON line the orchestrator finds among the libraries' own output."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
