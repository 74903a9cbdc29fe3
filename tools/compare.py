"""Compare runs: ``python -m tools.compare RUN_DIR [RUN_DIR ...] [--plot comparison.png]``.

Groups runs by (env, strategy, final strategy, algorithm) and prints, per group, the number of seeds
and the mean and standard deviation of the final and best evaluation returns (and win rate where
the env reports one), plus parameter counts. A sweep directory (``multirun/<date>``) can be passed
as a whole: every run directory below it with a ``summary.json`` is read.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def find_runs(paths) -> list[Path]:
    runs = []
    for path in map(Path, paths):
        if (path / "summary.json").exists():
            runs.append(path)
        else:
            runs += sorted(p.parent for p in path.rglob("summary.json"))
    return runs


def compare(paths) -> list[dict]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in find_runs(paths):
        s = json.loads((run / "summary.json").read_text())
        groups[(s["env"], s["strategy"], s["final_strategy"], s["algorithm"])].append(s)
    rows = []
    for (env, strategy, final, algorithm), runs in sorted(groups.items()):
        final_ret = np.array([r["final_eval_return"] for r in runs], dtype=float)
        best_ret = np.array([r["best_eval_return"] for r in runs], dtype=float)
        wins = [r["win_rate"] for r in runs if "win_rate" in r]
        counts = runs[0]["parameters"].get(runs[0]["phases"][-1]["name"], {})
        rows.append({"env": env, "strategy": strategy if final == strategy else f"{strategy}->{final}",
                     "algorithm": algorithm, "seeds": len(runs), "final_mean": final_ret.mean(),
                     "final_std": final_ret.std(), "best_mean": best_ret.mean(),
                     "win_rate": float(np.mean(wins)) if wins else None,
                     "params": counts.get("total"), "trainable": counts.get("trainable")})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--plot", default=None, help="also plot the evaluation curves to this PNG")
    args = parser.parse_args(argv)
    rows = compare(args.runs)
    if not rows:
        raise SystemExit(f"no run directories with a summary.json under {args.runs}")
    from rich.console import Console
    from rich.table import Table

    table = Table(title="runs")
    for col in ("env", "strategy", "algorithm", "seeds", "final eval (mean ± std)", "best eval", "win rate",
                "params", "trainable"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["env"], r["strategy"], r["algorithm"], str(r["seeds"]),
                      f"{r['final_mean']:.3g} ± {r['final_std']:.2g}", f"{r['best_mean']:.3g}",
                      "-" if r["win_rate"] is None else f"{r['win_rate']:.2f}", f"{r['params']:,}",
                      f"{r['trainable']:,}")
    Console(width=160).print(table)
    if args.plot:
        from tools.plots import plot_comparison

        print(plot_comparison(find_runs(args.runs), args.plot))


if __name__ == "__main__":
    main()
