"""The run summary (``summary.json``): final and best returns, the phases, fits and parameter counts;
:func:`print_summary` shows it as the table ``marlshare train`` ends with."""

from __future__ import annotations

import dataclasses
import math

from marlshare.components.run_state import RunState


def run_summary(cfg, run: RunState, run_dir) -> dict:
    """The summary of ``run`` (a :class:`RunState`) trained with config ``cfg`` into ``run_dir``; the
    current phase is shown closed at the current frame (``run`` itself is not changed).

    ``best``: ``{"frame", "eval_return", "path"}`` of ``checkpoints/best.pt`` (the policy of the best
    evaluation so far; ``path`` relative to the run directory), None before one is written.
    ``stopped``: None, or why the run ended early: a string (divergence), ``{"signal", "frame"}``
    (Ctrl-C / SIGTERM; ``"at_once": true`` for a second signal) or ``{"write_error", "frame"}``."""
    phases = [dataclasses.replace(p) for p in run.phases]
    phases[run.phase_index].end_frame = run.frames
    starts = {p.start_frame for p in phases[1:]}
    switch = next((e for e in run.evals if len(phases) > 1 and e["frames"] == phases[1].start_frame
                   and e["frames"] in starts), None)
    out = {
        "env": cfg.env.name, "strategy": run.phases[0].strategy, "final_strategy": run.strategy.name,
        "algorithm": cfg.algorithm.name, "schedule": cfg.schedule.name, "seed": cfg.seed, "frames": run.frames,
        "iterations": run.iteration, "wall_time_s": round(run.wall_time, 2),
        "phases": [dataclasses.asdict(p) for p in phases],
        "strategies": [{**s.hyperparameters(), "name": s.name} for s in run.strategies],
        "fits": run.fits, "switch_reason": run.switch_reason, "stopped": run.stopped,
        "initial_eval_return": run.evals[0]["eval_return"] if run.evals else None,
        "eval_return_at_switch": switch["eval_return"] if switch else None,
        "eval_return_at_phase_end": {p.name: next((e["eval_return"] for e in reversed(run.evals)
                                                  if e["frames"] <= (p.end_frame or 0)), None) for p in phases},
        "final_eval_return": run.last_eval, "best_eval_return": run.best_eval,
        "best": None if run.best is None else {**run.best, "path": "checkpoints/best.pt"},
        "parameters": run.param_counts, "run_dir": str(run_dir),
        "compile_s": run.compile_times,  # per phase: the first (compiling) call of the update step
    }
    if not math.isnan(run.last_win):
        out["win_rate"] = run.last_win
    return out


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 130))
    table = Table(title=f"{summary['env']} · {summary['algorithm']} · seed {summary['seed']}")
    table.add_column("phase")
    table.add_column("strategy")
    table.add_column("frames", justify="right")
    table.add_column("eval return at end", justify="right")
    table.add_column("params total", justify="right")
    table.add_column("shared", justify="right")
    table.add_column("per cluster (all)", justify="right")
    table.add_column("per agent", justify="right")
    table.add_column("trainable", justify="right")
    evals = dict(summary.get("eval_return_at_phase_end") or {})  # the last evaluation at each phase's end
    evals[summary["phases"][-1]["name"]] = summary["final_eval_return"]
    for phase in summary["phases"]:
        counts = summary["parameters"].get(phase["name"], {})
        ret = evals.get(phase["name"])
        table.add_row(phase["name"], phase["strategy"], f"{phase['start_frame']:,}–{phase['end_frame']:,}",
                      "-" if ret is None else f"{ret:.4g}", *(f"{counts.get(k, 0):,}" for k in
                                                             ("total", "shared", "clustered", "per_agent", "trainable")))
    console.print(table)
    for label, fit in (summary.get("fits") or {}).items():
        facts = []
        if "clusters" in fit:
            facts.append(f"clusters {fit['clusters']} (K={fit['k']}")
            facts[-1] += (f", {fit['selection']} {fit['scores']})" if fit.get("scores") else ")")
            facts.append(f"VAE loss {fit['vae_loss']:.4g} on {fit['fit_frames']:,} frames")
        if "keep_fractions" in fit:
            facts.append("units kept per cluster " + "; ".join(f"{k}: {v}" for k, v in fit["keep_fractions"].items()))
        if facts:
            console.print(f"{label}: " + ", ".join(facts))
    first = summary.get("initial_eval_return")
    console.print(f"eval return: start {first:.4g} -> best {summary['best_eval_return']:.4g} -> "
                  f"final {summary['final_eval_return']:.4g}" + (f", win rate {summary['win_rate']:.2f}"
                                                                 if "win_rate" in summary else ""))
    if summary.get("switch_reason"):
        console.print(f"switch: {summary['switch_reason']}")
    console.print(f"wall time {summary['wall_time_s']:.0f}s · run dir {summary['run_dir']}"
                  f" · learning curve {summary.get('learning_curve')}")
