"""A run's evaluation curve, and runs exported in marl-eval's JSON layout (``marlshare compare
--marl-eval FILE``; the layout is described in :mod:`components.analysis.compare`). Runs are
:class:`components.analysis.compare.Run` records (``run_dir``, ``summary``, ``task``, ``method``, ``seed``)."""

from __future__ import annotations


def eval_curve(run) -> dict[float, float]:
    """``{frames: eval_return}`` of one run: metrics.csv's evaluations and the frame-0 one."""
    from marlshare.components.analysis.plots import read_metrics

    m = read_metrics(run.run_dir)
    curve = {f: r for f, r in zip(m.get("frames", []), m.get("eval_return", [])) if r == r}
    if run.summary.get("initial_eval_return") is not None:
        curve[0.0] = run.summary["initial_eval_return"]
    return curve


def marl_eval_json(runs: list) -> dict:
    """Runs in marl-eval's raw-data layout."""
    data: dict = {}
    for run in sorted(runs, key=lambda r: (r.task, r.method, r.seed)):
        family, _, task = run.task.partition("/")
        by_run = data.setdefault(family, {}).setdefault(task or family, {}).setdefault(run.method, {})
        key, k = f"seed_{run.seed}", 1
        while key in by_run:  # two runs with one seed (outside a sweep): keep both
            key, k = f"seed_{run.seed}_{k}", k + 1
        curve = eval_curve(run)
        steps = {f"step_{i}": {"step_count": int(frames), "return": [float(curve[frames])]}
                 for i, frames in enumerate(sorted(curve))}
        by_run[key] = {**steps, "absolute_metrics": {"return": [float(run.summary["best_eval_return"])]}}
    return data
