"""Timing helpers shared by the network benchmarks (:mod:`tools.bench_strategies`, :mod:`tools.bench_id`):
one step per implementation, items interleaved within every repeat, medians of wall and CPU time."""

from __future__ import annotations

import gc
import math
import statistics
import time

from torch import nn
import torch


def make_step(model: nn.Module, x: torch.Tensor, mode: str):
    if mode == "fwd":
        def step():
            with torch.no_grad():
                model(x)
    else:
        def step():
            model.zero_grad(set_to_none=True)
            model(x).sum().backward()
    return step


def _time_calls(step, k: int) -> tuple[float, float]:
    """Per-call (wall, CPU) seconds of ``k`` back-to-back calls. CPU time (user + sys of this
    process) excludes the time the process waits for a core, which wall time on a shared machine
    includes; with one torch thread it is a second, contention-free view of the same work."""
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(k):
        step()
    return (time.perf_counter() - w0) / k, (time.process_time() - c0) / k


def measure(items: dict, repeats: int, min_repeats: int, min_time: float, budget: float,
            warmup: int) -> tuple[dict, dict, int]:
    """Median per-call seconds (wall and CPU) of every item, items interleaved within each repeat.

    Warm-up: up to ``warmup`` untimed-for-the-result calls per item (one is enough when a call
    takes over 0.5 s); the last one calibrates how many calls one measurement makes.
    """
    calls, est = {}, 0.0
    for key, step in items.items():
        for _ in range(max(1, warmup)):
            t, _ = _time_calls(step, 1)
            if t > 0.5:
                break
        calls[key] = max(1, min(1000, math.ceil(min_time / max(t, 1e-7))))
        est += calls[key] * t
    n_rep = max(min_repeats, min(repeats, int(budget / max(est, 1e-9))))
    wall, cpu = {key: [] for key in items}, {key: [] for key in items}
    keys = list(items)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(n_rep):
            gc.collect()
            shift = (r * 7) % len(keys)  # rotate the order so no item always runs first / after the same one
            for key in keys[shift:] + keys[:shift]:
                w, c = _time_calls(items[key], calls[key])
                wall[key].append(w)
                cpu[key].append(c)
    finally:
        if gc_was_enabled:
            gc.enable()
    return ({key: statistics.median(v) for key, v in wall.items()},
            {key: statistics.median(v) for key, v in cpu.items()}, n_rep)
