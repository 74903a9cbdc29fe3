"""Tables and figures of the reproductions (``python -m tools.analyze.results report ...``).

Each claim of ``CLAIMS`` compares some (definition, config) cells of the results grid. For every cell:
the final evaluation return of each seed (``summary.json: final_eval_return``, the mean episode return
per agent of the deterministic policy), aggregated with rliable: interquartile mean (IQM) and mean with
95% stratified bootstrap confidence intervals (``rly.get_interval_estimates``, percentile method; with
one task per table the strata are that task's runs). Learning curves: IQM over seeds of the evaluation
return at each evaluation, shaded 95% bootstrap CI, same method. Parameters are those of the final
phase's actor (``summary.json: parameters``).

For the Prism / AdaPS diversity claim, each run's last checkpoint is also analysed (as
:func:`marlshare.components.analysis.run_analysis.analyse_behaviour` does): the mean over agent pairs
of the distance between their action distributions on the same inputs.

Writes ``<docs>/data/results_<claim>.csv``, ``<docs>/data/results.md`` (the tables, pasted into
docs/results.md), ``<docs>/data/results.json`` and ``<docs>/figures/results_<claim>.png``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from tools.analyze.grid import finished, load_definition, run_dir, trials

SL, ABL, HC = "speaker_listener", "speaker_listener_ablations", "halfcheetah"

# (definition, config, label in tables)
CLAIMS = [
    dict(id="strategies", title="All eight strategies, speaker-listener (heterogeneous roles)",
         cells=[(SL, c, c) for c in ("ps", "nps", "mtl", "seps", "adaps", "prism", "ps_lora", "seps_lora")]),
    dict(id="lora_vs_ps_nps", title="PS+LoRA vs PS and NPS (return and parameters)",
         cells=[(SL, "ps", "ps"), (SL, "ps_lora", "ps_lora"), (SL, "nps", "nps"),
                (HC, "ps", "ps"), (HC, "ps_lora", "ps_lora"), (HC, "nps", "nps")]),
    dict(id="rank", title="PS+LoRA rank (speaker-listener)",
         cells=[(ABL, "rank4", "rank 4"), (SL, "ps_lora", "rank 8"), (ABL, "rank16", "rank 16"), (SL, "ps", "PS only")]),
    dict(id="layers", title="PS+LoRA adapted layers (speaker-listener)",
         cells=[(SL, "ps_lora", "all layers"), (ABL, "head_only", "head only"), (SL, "ps", "PS only")]),
    dict(id="switch", title="PS+LoRA switch time (speaker-listener)",
         cells=[(ABL, "switch12k", "switch 12k"), (SL, "ps_lora", "switch 24k"), (ABL, "switch36k", "switch 36k"),
                (SL, "ps", "PS only")]),
    dict(id="diversity", title="Diversity with PS-sized memory: Prism and AdaPS (speaker-listener)",
         cells=[(SL, c, c) for c in ("ps", "prism", "adaps", "ps_lora", "nps")], diversity=True),
]


def _evals(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    from marlshare.components.analysis.plots import _evals as plot_evals  # initial evaluation + every eval_return in metrics.csv

    frames, returns = plot_evals(directory)
    return np.asarray(frames), np.asarray(returns)


def collect(definitions: dict, out: Path, definition: str, config: str) -> dict | None:
    spec = definitions.get(definition)
    if spec is None or config not in spec["configs"]:
        return None
    runs = []
    for name, seed, args in trials(spec, out):
        d = run_dir(out, spec, config, seed)
        if name != config or not finished(d, args):  # only runs trained to the end with these overrides
            continue
        s = json.loads((d / "summary.json").read_text())
        frames, returns = _evals(d)
        counts = s["parameters"][s["phases"][-1]["name"]]
        runs.append(dict(seed=seed, dir=d, final=s["final_eval_return"], frames=frames, returns=returns,
                         params=counts, switch=[p["end_frame"] for p in s["phases"][:-1]]))
    return dict(task=spec.get("task", definition), runs=runs, expected=len(spec["seeds"]))


def _per_method(scores: dict[str, np.ndarray], func, reps: int, seed: int):
    """``rly.get_interval_estimates`` one method at a time, each with the same seeded generator, so a
    cell that appears in several tables gets the same interval in all of them."""
    from rliable import library as rly

    point, ci = {}, {}
    for name, x in scores.items():
        # arch (rliable's bootstrap) draws from numpy's global generator despite the random_state it is
        # given (deprecated there): seed both, or the intervals change from call to call
        np.random.seed(seed)
        p, c = rly.get_interval_estimates({name: x}, func, reps=reps, random_state=np.random.RandomState(seed))
        point[name], ci[name] = p[name], c[name]
    return point, ci


def interval_estimates(scores: dict[str, np.ndarray], reps: int, seed: int = 0):
    """rliable IQM and mean with 95% stratified bootstrap CIs; ``scores[method]: [runs, tasks]``."""
    from rliable import metrics

    func = lambda x: np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])  # noqa: E731
    return _per_method(scores, func, reps, seed)


def curve_estimates(curves: dict[str, np.ndarray], reps: int, seed: int = 0):
    """IQM over runs at each evaluation with 95% CIs; ``curves[method]: [runs, 1, T]``."""
    from rliable import metrics

    func = lambda x: np.array([metrics.aggregate_iqm(x[..., t]) for t in range(x.shape[-1])])  # noqa: E731
    return _per_method(curves, func, reps, seed)


def diversity(directory: Path, n_states: int = 128) -> float:
    from marlshare.components.analysis.measures import pairwise_wasserstein
    from marlshare.components.analysis.states import collect_states, policy_outputs, same_inputs
    from marlshare.components.runs import load_run

    run = load_run(directory, "last")
    x, h, m = same_inputs(*collect_states(run, n_states, seed=0))
    w = pairwise_wasserstein(policy_outputs(run.net, x, h), "discrete", m)
    return float(w[~np.eye(len(w), dtype=bool)].mean())


def _fmt(v: float) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.2f}"


def report(paths: list[str], out: Path, docs: Path, reps: int = 2000) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, module="arch")  # rliable's RandomState use
    torch.set_num_threads(1)
    definitions = {}
    for p in paths:
        spec = load_definition(p)
        definitions[spec["name"]] = spec
    (docs / "data").mkdir(parents=True, exist_ok=True)
    (docs / "figures").mkdir(parents=True, exist_ok=True)
    md, everything = [], {}
    for claim in CLAIMS:
        cells = []
        for definition, config, label in claim["cells"]:
            got = collect(definitions, out, definition, config)
            if got and got["runs"]:
                cells.append(dict(definition=definition, config=config, label=label, **got))
        if not cells:
            continue
        tasks = list(dict.fromkeys(c["task"] for c in cells))
        fig, axes = plt.subplots(len(tasks), 2, figsize=(12, 4.2 * len(tasks)), squeeze=False,
                                 gridspec_kw=dict(width_ratios=[1.6, 1]))
        md.append(f"#### {claim['title']}\n")
        rows = []
        for t, task in enumerate(tasks):
            here = [c for c in cells if c["task"] == task]
            scores = {c["label"]: np.array([[r["final"]] for r in c["runs"]]) for c in here}
            point, ci = interval_estimates(scores, reps)
            # evaluation points per config (a switch adds one): every seed of a config shares them
            n_eval = {c["label"]: min(len(r["returns"]) for r in c["runs"]) for c in here}
            curves = {c["label"]: np.stack([r["returns"][:n_eval[c["label"]]] for r in c["runs"]])[:, None, :]
                      for c in here}
            cpoint, cci = curve_estimates(curves, max(200, reps // 4))
            ax = axes[t][0]
            zoom = []
            for i, c in enumerate(here):
                frames = c["runs"][0]["frames"][:n_eval[c["label"]]]
                ax.plot(frames, cpoint[c["label"]], color=f"C{i}", label=c["label"])
                ax.fill_between(frames, cci[c["label"]][0], cci[c["label"]][1], color=f"C{i}", alpha=0.2)
                late = frames >= 0.25 * frames[-1]
                zoom += [cci[c["label"]][0][late].min(), cci[c["label"]][1][late].max()]
                for s in c["runs"][0]["switch"]:
                    ax.axvline(s, color=f"C{i}", ls=":", lw=1)
            pad = 0.05 * (max(zoom) - min(zoom) + 1e-9)
            ax.set_ylim(min(zoom) - pad, max(zoom) + pad)  # the first quarter (random policy) is off scale
            ax.set(xlabel="environment frames", ylabel="eval return (mean per agent)",
                   title=f"{task.split('/')[-1]}: IQM over seeds, 95% CI (dotted: switch; y from 25% of training)")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
            ax = axes[t][1]
            labels = [c["label"] for c in here]
            for i, label in enumerate(labels):
                ax.errorbar(point[label][0], i, xerr=[[point[label][0] - ci[label][0][0]], [ci[label][1][0] - point[label][0]]],
                            fmt="o", color=f"C{i}", capsize=4)
            ax.set_yticks(range(len(labels)), labels)
            ax.invert_yaxis()
            ax.set(xlabel="final eval return: IQM, 95% CI", title=f"{task.split('/')[-1]}: final eval return")
            ax.grid(alpha=0.3, axis="x")
            md.append(f"`{task}`\n")
            header = "| config | seeds | IQM [95% CI] | mean [95% CI] | params total | per agent | trainable |"
            extra = claim.get("diversity")
            if extra:
                header += " action distance between agents (mean over seeds) |"
            md.append(header)
            md.append("|" + "---|" * (header.count("|") - 1))
            for c in here:
                label, p = c["label"], c["runs"][0]["params"]
                row = dict(claim=claim["id"], task=task, config=c["config"], label=label, seeds=len(c["runs"]),
                           expected_seeds=c["expected"], iqm=float(point[label][0]), iqm_low=float(ci[label][0][0]),
                           iqm_high=float(ci[label][1][0]), mean=float(point[label][1]),
                           mean_low=float(ci[label][0][1]), mean_high=float(ci[label][1][1]),
                           params_total=p["total"], params_per_agent=p["per_agent"], params_trainable=p["trainable"],
                           finals=[float(r["final"]) for r in c["runs"]],
                           curve_frames=[float(f) for f in c["runs"][0]["frames"][:n_eval[label]]],
                           curve_iqm=[float(v) for v in cpoint[label]])
                line = (f"| {label} | {row['seeds']}/{row['expected_seeds']} | {_fmt(row['iqm'])} "
                        f"[{_fmt(row['iqm_low'])}, {_fmt(row['iqm_high'])}] | {_fmt(row['mean'])} "
                        f"[{_fmt(row['mean_low'])}, {_fmt(row['mean_high'])}] | {p['total']:,} | {p['per_agent']:,} "
                        f"| {p['trainable']:,} |")
                if extra:
                    row["action_distance"] = [diversity(r["dir"]) for r in c["runs"]]
                    line += f" {np.mean(row['action_distance']):.3f} |"
                rows.append(row)
                md.append(line)
            md.append("")
        fig.suptitle(claim["title"])
        fig.tight_layout()
        fig.savefig(docs / "figures" / f"results_{claim['id']}.png", dpi=100)
        plt.close(fig)
        from marlshare.components.analysis.run_analysis import write_csv

        write_csv(docs / "data" / f"results_{claim['id']}.csv",
                  [{k: v for k, v in r.items() if k not in ("finals", "action_distance", "curve_frames", "curve_iqm")} |
                   {"finals": " ".join(f"{v:.3f}" for v in r["finals"])} for r in rows])
        md.append(f"![{claim['title']}](figures/results_{claim['id']}.png)\n")
        everything[claim["id"]] = rows
    (docs / "data" / "results.md").write_text("\n".join(md))
    (docs / "data" / "results.json").write_text(json.dumps(everything, indent=1))
    print("\n".join(md))
    return everything
