"""Plots of runs: ``marlshare plot RUN_DIR [RUN_DIR ...] [--out FILE]``.

One run: its learning curve (evaluation and training return against frames, the phase switch
marked) written to ``RUN_DIR/learning_curve.png``. Several runs: their evaluation curves on one
figure, for comparing strategies.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def read_metrics(run_dir: str | Path) -> dict[str, list[float]]:
    """``metrics.csv`` as columns of floats (empty cells become NaN; text columns are kept as text)."""
    with open(Path(run_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, list] = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value) if value != "" else float("nan"))
            except ValueError:
                columns.setdefault(key, []).append(value)
    return columns


def _evals(run_dir: Path) -> tuple[list[float], list[float]]:
    """Evaluation points from summary/checkpoint-independent metrics.csv plus the initial evaluation."""
    m = read_metrics(run_dir)
    pts = [(f, r) for f, r in zip(m.get("frames", []), m.get("eval_return", [])) if r == r]
    summary = run_dir / "summary.json"
    if summary.exists():
        first = json.loads(summary.read_text()).get("initial_eval_return")
        if first is not None and not any(f == 0 for f, _ in pts):  # runs before metrics.csv had the frame-0 row
            pts.insert(0, (0.0, first))
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_learning_curve(run_dir: str | Path, out: str | Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    m = read_metrics(run_dir)
    fig, ax = plt.subplots(figsize=(7, 4))
    if m.get("frames"):
        ax.plot(m["frames"], m["train_return"], color="0.6", lw=1, label="train (episodes in batch)")
    frames, returns = _evals(run_dir)
    ax.plot(frames, returns, "o-", color="C0", label="eval (deterministic)")
    phases = m.get("phase", [])
    for i in range(1, len(phases)):
        if phases[i] != phases[i - 1]:
            ax.axvline(m["frames"][i - 1], color="C3", ls="--", lw=1)
            ax.text(m["frames"][i - 1], ax.get_ylim()[1], f" {m['strategy'][i]}", color="C3", va="top")
    title = run_dir.name
    summary = run_dir / "summary.json"
    if summary.exists():
        s = json.loads(summary.read_text())
        title = f"{s['env']} · {s['algorithm']} · {s['strategy']}" + (
            f" → {s['final_strategy']}" if s["final_strategy"] != s["strategy"] else "")
    ax.set(xlabel="frames", ylabel="mean episode return per agent", title=title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out) if out else run_dir / "learning_curve.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_comparison(run_dirs: list[str | Path], out: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for run_dir in map(Path, run_dirs):
        frames, returns = _evals(run_dir)
        s = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
        label = f"{s.get('strategy', run_dir.name)}" + (f"→{s['final_strategy']}" if s.get("final_strategy") not in
                                                         (None, s.get("strategy")) else "") + f" s{s.get('seed', '')}"
        ax.plot(frames, returns, "o-", ms=3, label=label)
    ax.set(xlabel="frames", ylabel="eval return per agent")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="marlshare plot", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if len(args.runs) == 1:
        print(plot_learning_curve(args.runs[0], args.out))
    else:
        print(plot_comparison(args.runs, args.out or "comparison.png"))


if __name__ == "__main__":
    main()
