"""Compare runs: ``marlshare compare SWEEP_DIR | RUN_DIR ... [--out DIR] [--marl-eval FILE]``.

Reads every finished run (a directory with ``summary.json``) under the given paths. For a sweep
directory (``marlshare sweep``, with a ``manifest.json``) runs are grouped by their axis values:
the task is ``env``, the seed is ``seed``, and every other axis (usually ``strategy``) names the
method. Outside a sweep the method is the strategy (``ps->ps_lora`` for a two-phase run).

Printed, and written to ``OUT/table.csv``: per task and method, the number of seeds, the IQM and the
mean of the final evaluation return with 95% stratified bootstrap confidence intervals, the mean best
evaluation return, the win rate where the env reports one, and parameter counts (``per agent``: the
agent-specific parameters of one agent; ``total = shared + clustered + n_agents * per agent``).

Figures in ``OUT`` (default ``SWEEP_DIR/compare``), all statistics from ``rliable``:
``learning_curves.png`` (IQM of the evaluation return against frames, shaded 95% CIs, one panel per
task), ``aggregates.png`` (IQM and mean with CIs), ``performance_profile.png`` (fraction of runs
above each score) and ``probability_of_improvement.png`` (P(X > Y) for every pair of methods). With
several tasks, aggregates and profiles use scores min-max normalised per task over all runs of that
task, so tasks with large returns do not dominate.

``--marl-eval FILE`` exports the runs in marl-eval's JSON layout, the one BenchMARL writes and its
plotting scripts read: ``{env: {task: {method: {"seed_<s>": {"step_<i>": {"step_count": frames,
"return": [...]}, "absolute_metrics": {"return": [best]}}}}}}``. marlshare keeps the mean over the
evaluation episodes, not each episode, so each list holds that one mean.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from marlshare.components.analysis.marl_eval import eval_curve as _eval_curve, marl_eval_json
from marlshare.components.analysis.steps import Steps
from marlshare.components.runs import read_summary

TASK_AXES = ("env", "env.name")
MIN_SEEDS = 5  # fewer seeds per method: compare warns that the intervals are not useful
SEED_AXES = ("seed",)


@dataclass
class Run:
    run_dir: Path
    summary: dict
    task: str  # env name, e.g. vmas/navigation
    method: str  # what is compared: the strategy, or a sweep's non-seed, non-env axis values
    seed: int


def find_runs(paths) -> list[Path]:
    runs = []
    for path in map(Path, paths):
        if (path / "summary.json").exists():
            runs.append(path)
        else:
            runs += sorted(p.parent for p in path.rglob("summary.json"))
    return runs


def _strategy_label(summary: dict) -> str:
    s, final = summary["strategy"], summary["final_strategy"]
    return s if final == s else f"{s}->{final}"


def _axes_label(axes: dict[str, str]) -> str | None:
    parts = []
    for key, value in axes.items():
        bare = key.lstrip("+~")
        if bare in TASK_AXES or bare in SEED_AXES:
            continue
        parts.append(value if bare == "strategy" else f"{bare.split('.')[-1]}={value}")
    return " ".join(parts) or None


def load_runs(paths) -> list[Run]:
    """Every finished run under ``paths``; sweep directories name methods by their axes."""
    runs, seen = [], set()
    for path in map(Path, paths):
        manifest = path / "manifest.json"
        axes_of = {}
        if manifest.exists():
            for name, entry in json.loads(manifest.read_text())["trials"].items():
                axes_of[(path / name).resolve()] = entry.get("axes", {})
        for run_dir in find_runs([path]):
            if run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            summary = read_summary(run_dir)  # damaged: one error naming the file
            label = _axes_label(axes_of.get(run_dir.resolve(), {})) or _strategy_label(summary)
            runs.append(Run(run_dir, summary, summary["env"], label, int(summary["seed"])))
    if len({r.summary["algorithm"] for r in runs}) > 1:  # say which algorithm when several are mixed
        for r in runs:
            r.method = f"{r.method} ({r.summary['algorithm']})"
    return runs


# --- statistics (all through rliable) -----------------------------------------------------------

@contextmanager
def _numpy_seed(seed: int):
    """rliable's stratified bootstrap draws its resampling indices from NumPy's global generator
    (its ``random_state`` argument does not reach them): seed that for reproducible intervals and
    put the caller's state back afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def iqm_and_mean(scores: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.aggregate_iqm(scores), metrics.aggregate_mean(scores)])


def interval_estimates(score_dict: dict[str, np.ndarray], reps: int = 2000, seed: int = 0):
    """IQM and mean of each ``(runs x tasks)`` score matrix with 95% stratified bootstrap CIs:
    ``({method: [iqm, mean]}, {method: [[iqm_lo, mean_lo], [iqm_hi, mean_hi]]})``."""
    with _numpy_seed(seed):
        return rliable_estimates(score_dict, iqm_and_mean, reps)


def rliable_estimates(score_dict, func, reps):
    from rliable import library as rly

    return rly.get_interval_estimates(score_dict, func, reps=reps, confidence_interval_size=0.95)


def _by_task_method(runs: list[Run]) -> dict[tuple[str, str], list[Run]]:
    groups = defaultdict(list)
    for run in runs:
        groups[(run.task, run.method)].append(run)
    for group in groups.values():
        group.sort(key=lambda r: r.seed)
    return dict(sorted(groups.items()))


def compare(paths, reps: int = 2000, seed: int = 0) -> list[dict]:
    """One row per (task, method): final-return IQM and mean with 95% CIs, parameter counts."""
    runs = paths if paths and isinstance(paths[0], Run) else load_runs(paths)
    rows = []
    for (task, method), group in _by_task_method(runs).items():
        final = np.array([[r.summary["final_eval_return"]] for r in group], dtype=float)
        points, intervals = interval_estimates({method: final}, reps=reps, seed=seed)
        (iqm, mean), ci = points[method], intervals[method]
        wins = [r.summary["win_rate"] for r in group if "win_rate" in r.summary]
        last = group[0].summary
        counts = last["parameters"].get(last["phases"][-1]["name"], {})
        rows.append({"task": task, "method": method, "algorithm": last["algorithm"], "seeds": len(group),
                     "iqm": float(iqm), "iqm_low": float(ci[0][0]), "iqm_high": float(ci[1][0]),
                     "mean": float(mean), "mean_low": float(ci[0][1]), "mean_high": float(ci[1][1]),
                     "best_mean": float(np.mean([r.summary["best_eval_return"] for r in group])),
                     "win_rate": float(np.mean(wins)) if wins else None, "params": counts.get("total"),
                     "per_agent": counts.get("per_agent"), "trainable": counts.get("trainable")})
    return rows


def score_matrices(runs: list[Run]) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """``{method: (runs x tasks)}`` of final returns for the aggregate figures. With several tasks
    the scores are min-max normalised per task; a method missing a task is left out, and a method
    with unequal seed counts across tasks keeps its first ``min`` seeds (both reported in notes)."""
    groups = _by_task_method(runs)
    tasks = sorted({t for t, _ in groups})
    methods = sorted({m for _, m in groups}, key=[m for _, m in groups].index)
    notes, matrices = [], {}
    bounds = {}
    for task in tasks:
        values = [r.summary["final_eval_return"] for (t, _), g in groups.items() if t == task for r in g]
        bounds[task] = (min(values), max(values))
    for method in methods:
        missing = [t for t in tasks if (t, method) not in groups]
        if missing:
            notes.append(f"{method}: no finished run on {missing}, left out of the aggregates")
            continue
        n = min(len(groups[(t, method)]) for t in tasks)
        if any(len(groups[(t, method)]) != n for t in tasks):
            notes.append(f"{method}: unequal seeds across tasks, aggregates use the first {n} of each")
        columns = []
        for task in tasks:
            scores = np.array([r.summary["final_eval_return"] for r in groups[(task, method)][:n]], dtype=float)
            if len(tasks) > 1:
                low, high = bounds[task]
                scores = (scores - low) / (high - low) if high > low else np.zeros_like(scores)
            columns.append(scores)
        matrices[method] = np.stack(columns, axis=1)
    return matrices, tasks, notes


# --- figures ------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, tight_box: bool = False) -> Path:
    """Write one figure (tight layout, or a tight bounding box for rliable's own layouts) and free it."""
    if not tight_box:
        fig.tight_layout()
    fig.savefig(path, dpi=110, **({"bbox_inches": "tight"} if tight_box else {}))
    _plt().close(fig)
    return path


def plot_learning_curves(runs: list[Run], out: Path, reps: int = 2000, seed: int = 0) -> Path:
    """Per task, the IQM over seeds of the evaluation return at each evaluation, 95% CIs shaded."""
    from rliable import metrics, plot_utils

    plt = _plt()
    tasks = sorted({r.task for r in runs})
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    groups = _by_task_method(runs)
    for ax, task in zip(axes[0], tasks):
        points, intervals, frames_of = {}, {}, {}
        for (t, method), group in groups.items():
            if t != task:
                continue
            curves = [_eval_curve(r) for r in group]
            frames = sorted(set.intersection(*(set(c) for c in curves)))  # evaluations every seed has
            if not frames:
                continue
            scores = np.array([[[c[f] for f in frames]] for c in curves])  # runs x 1 task x frames
            per_frame = lambda s: np.array([metrics.aggregate_iqm(s[..., i]) for i in range(s.shape[-1])])  # noqa: E731
            with _numpy_seed(seed):
                p, i = rliable_estimates({method: scores}, per_frame, reps)
            points.update(p), intervals.update(i)
            frames_of[method] = np.array(frames)
        # more methods than the 10 default colours: tab20, so no two curves share a colour
        palette = [f"C{i}" for i in range(10)] if len(points) <= 10 else list(plt.get_cmap("tab20").colors)
        for method in points:  # frames can differ between methods: one call per method
            plot_utils.plot_sample_efficiency_curve(frames_of[method], {method: points[method]},
                                                    {method: intervals[method]}, algorithms=[method],
                                                    colors={method: palette[list(points).index(method) % len(palette)]},
                                                    ax=ax,
                                                    xlabel="frames", ylabel="eval return (IQM over seeds)",
                                                    labelsize="medium", ticklabelsize="small", marker="o",
                                                    linewidth=1.5)
        ax.set_title(task)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: curves stay visible
    return _save(fig, out / "learning_curves.png", True)


def plot_aggregates(matrices: dict[str, np.ndarray], out: Path, normalised: bool, reps: int, seed: int) -> Path:
    from rliable import plot_utils

    _plt()  # the Agg backend, before rliable draws
    points, intervals = interval_estimates(matrices, reps=reps, seed=seed)
    row_height = 0.7  # inches per method; the x label goes 0.6 inches below the axes
    fig, _ = plot_utils.plot_interval_estimates(points, intervals, metric_names=["IQM", "Mean"],
                                                algorithms=list(matrices), subfigure_width=4, row_height=row_height,
                                                xlabel_y_coordinate=-0.6 / (row_height * len(matrices)),
                                                xlabel="normalised final return" if normalised else "final return")
    return _save(fig, out / "aggregates.png", tight_box=True)


def plot_performance_profile(matrices: dict[str, np.ndarray], out: Path, normalised: bool, reps: int,
                             seed: int) -> Path:
    from rliable import library as rly, plot_utils

    plt = _plt()
    values = np.concatenate([m.ravel() for m in matrices.values()])
    tau = np.linspace(values.min(), values.max(), 101) if values.max() > values.min() else values[:1]
    with _numpy_seed(seed):
        profiles, cis = rly.create_performance_profile(matrices, tau, reps=reps)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_utils.plot_performance_profiles(profiles, tau, performance_profile_cis=cis, ax=ax,
                                         xlabel=r"final return $\tau$" + (" (normalised)" if normalised else ""),
                                         ylabel=r"fraction of runs with score > $\tau$", labelsize="medium",
                                         ticklabelsize="small")
    ax.legend(fontsize="small")
    return _save(fig, out / "performance_profile.png")


def plot_probability_of_improvement(matrices: dict[str, np.ndarray], out: Path, reps: int, seed: int) -> Path:
    """P(X > Y) for every pair (rliable averages the per-task probabilities, so scores need no
    normalisation here)."""
    from rliable import metrics, plot_utils

    _plt()  # the Agg backend, before rliable draws
    pairs = {f"{x};{y}": [matrices[x], matrices[y]] for x, y in itertools.combinations(matrices, 2)}
    with _numpy_seed(seed):
        points, intervals = rliable_estimates(pairs, metrics.probability_of_improvement, reps)
    ax = plot_utils.plot_probability_of_improvement(points, intervals, pair_separator=";",
                                                    figsize=(5, 1 + 0.6 * len(pairs)), labelsize="medium",
                                                    ticklabelsize="small")
    ax.set_xlim(0, 1)  # a probability: rliable fits the axis to the intervals (-0.04..0.04 on 2 seeds)
    return _save(ax.figure, out / "probability_of_improvement.png", tight_box=True)


# --- command line -------------------------------------------------------------------------------

def _ci(row, key) -> str:
    return f"{row[key]:.3g} [{row[key + '_low']:.3g}, {row[key + '_high']:.3g}]"


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="final evaluation return: IQM and mean over seeds, 95% stratified bootstrap CIs (rliable)")
    for col in ("task", "method", "algorithm", "seeds", "IQM [95% CI]", "mean [95% CI]", "best eval (mean)",
                "win rate", "params", "per agent", "trainable"):
        table.add_column(col, justify="right" if col not in ("task", "method", "algorithm") else "left")
    for r in rows:
        table.add_row(r["task"], r["method"], r["algorithm"], str(r["seeds"]), _ci(r, "iqm"), _ci(r, "mean"),
                      f"{r['best_mean']:.3g}", "-" if r["win_rate"] is None else f"{r['win_rate']:.2f}",
                      *("-" if r[k] is None else f"{r[k]:,}" for k in ("params", "per_agent", "trainable")))
    Console(width=180).print(table)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="marlshare compare", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="sweep directories and/or run directories")
    parser.add_argument("--out", default=None, help="where table.csv and the figures go "
                                                    "(default: PATH/compare for one path, else ./compare)")
    parser.add_argument("--marl-eval", default=None, metavar="FILE", help="also export marl-eval JSON to FILE")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument("--no-figures", action="store_true", help="print the table only")
    parser.add_argument("--plot", default=None, help="also plot every run's evaluation curve to this PNG")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    steps = Steps("compare", ["read runs", "bootstrap CIs"] + ([] if args.no_figures else ["figures"]),
                  enabled=not args.quiet)
    with steps("read runs"):
        runs = load_runs(args.runs)
    if not runs:
        steps.close()
        raise SystemExit(f"no finished runs (directories with a summary.json) under {args.runs}")
    with steps(f"bootstrap CIs ({args.reps} resamples)"):
        rows = compare(runs, reps=args.reps, seed=args.seed)
    if args.no_figures:
        steps.close()
    print_table(rows)
    few = sorted({r["seeds"] for r in rows if r["seeds"] < MIN_SEEDS})
    if few:
        print(f"warning: {'/'.join(map(str, few))} seed(s) per method: below {MIN_SEEDS} seeds the 95% bootstrap "
              f"intervals are not useful (they cannot cover the spread of a few values); run more seeds")
    out = Path(args.out) if args.out else (Path(args.runs[0]) / "compare" if len(args.runs) == 1 else Path("compare"))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "table.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else v)
                          for k, v in r.items()} for r in rows)
    written = [out / "table.csv"]
    if not args.no_figures:
        matrices, tasks, notes = score_matrices(runs)
        for note in notes:
            print(f"note: {note}")
        with steps("figures"):
            written.append(plot_learning_curves(runs, out, reps=args.reps, seed=args.seed))
            if matrices:
                normalised = len(tasks) > 1
                written.append(plot_aggregates(matrices, out, normalised, args.reps, args.seed))
                written.append(plot_performance_profile(matrices, out, normalised, args.reps, args.seed))
                if len(matrices) > 1:
                    written.append(plot_probability_of_improvement(matrices, out, args.reps, args.seed))
        steps.close()
    if args.marl_eval:
        Path(args.marl_eval).write_text(json.dumps(marl_eval_json(runs), indent=2))
        written.append(Path(args.marl_eval))
    if args.plot:
        from marlshare.components.analysis.plots import plot_comparison

        written.append(plot_comparison([r.run_dir for r in runs], args.plot))
    print("wrote " + ", ".join(map(str, written)))


if __name__ == "__main__":
    main()
