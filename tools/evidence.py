"""The evidence report: ``python -m tools.evidence GROUP ... --sweeps DIR --figures DIR --docs FILE``.

``make evidence`` runs the sweeps of ``recipes/sweeps/evidence/<group>/`` and ``marlshare compare``
per group; this tool then writes one section per group into ``docs/evidence.md``, between the markers
``<!-- evidence:GROUP -->`` and ``<!-- /evidence:GROUP -->`` (replaced on every run, so a rerun on the
same finished trials writes the same text). A section holds compare's table (IQM and mean of the final
evaluation return with 95% stratified bootstrap CIs, parameters per agent) plus the mean wall time per
run of each method, a seed-paired comparison with PS with id (on how many seeds a method ended
above it, and the median per-seed difference), on BPS the across / within-group action distance of each method's final policies
(:mod:`tools.bps_roles`: whether its agents act on their hidden groups) and the K and ARI of every
cluster fit, the scripted references of a BPS group (:mod:`tools.bps_reference`: standing still,
best identity-blind, oracle) as rows, links to compare's figures, and ``learning_curves_refs.png``:
compare's learning curves with the references as horizontal lines.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path
from unittest import mock

import numpy as np

REFERENCE_STYLE = {"still": ":", "blind": "--", "oracle": "-."}
# compare labels a sweep's methods by their axes; the evidence tables and curves read better in words
# (the specs say which rank and switch each two-phase cell has: docs/evidence.md)
LABELS = {"ps": "ps (with id)", "ps append_id=false": "ps without id", "ps schedule=two_phase": "ps -> ps_lora",
          "seps schedule=two_phase": "seps -> seps_lora", "rank=4": "ps -> ps_lora, rank 4",
          "rank=16": "ps -> ps_lora, rank 16", "switch_at=30000": "ps -> ps_lora, switch 30k",
          "switch_at=90000": "ps -> ps_lora, switch 90k"}


def runs_of(group_dir: Path):
    from marlshare.components.analysis.compare import load_runs

    return load_runs(sorted(p for p in group_dir.iterdir() if p.is_dir()))


def bps_references(runs, cache: Path) -> dict | None:
    """Scripted references for the BPS grouping of ``runs`` (None for other envs); cached as JSON."""
    import yaml

    bps = [r for r in runs if r.task == "vmas/bps"]
    if not bps:
        return None
    env = yaml.safe_load((bps[0].run_dir / "config.yaml").read_text()).get("env", {})
    groups = list((env.get("options") or {}).get("groups", [3, 3, 3]))
    path = cache / f"bps_reference_{'-'.join(map(str, groups))}.json"
    if path.exists():
        return json.loads(path.read_text())["rows"]
    from tools.bps_reference import reference_table

    rows = reference_table(groups, seeds=[0, 1, 2, 3, 4], episodes=20, max_steps=int(env.get("max_steps") or 50))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"groups": groups, "max_steps": 50, "rows": rows}, indent=2))
    return rows


def curves_with_references(runs, references: dict | None, out: Path) -> Path:
    """compare's learning curves, the references drawn over every panel before the figure is saved."""
    from marlshare.components.analysis import compare

    save = compare._save

    def save_with_lines(fig, path, tight_box=False):
        for ax in fig.axes:
            for name, row in (references or {}).items():
                ax.axhline(row["mean"], color="grey", linestyle=REFERENCE_STYLE.get(name, ":"), linewidth=1,
                           label=f"{name} (scripted)")
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return save(fig, path.with_name("learning_curves_refs.png"), True)

    with mock.patch.object(compare, "_save", save_with_lines):
        return compare.plot_learning_curves(runs, out)


def roles(runs) -> dict[str, str]:
    """``{method: across / within-group action distance}`` of BPS runs (:mod:`tools.bps_roles`)."""
    from tools.bps_roles import ratio_text, role_distances

    pairs = {}
    for run in runs:
        pairs.setdefault(run.method, []).append(role_distances(run.run_dir))
    return {method: ratio_text(p)[1] for method, p in pairs.items()}


PAIRED_WITH = "ps (with id)"  # the seed-paired column compares every method with this one


def paired(runs, method: str) -> str:
    """``"wins/seeds, median difference"`` of ``method``'s final returns against :data:`PAIRED_WITH`'s
    on the seeds both ran. A seed fixes the evaluation episodes (and the task draw, e.g. het_mass's
    masses), so a per-seed difference removes what the seed alone explains, which the unpaired
    intervals keep."""
    finals = {}
    for run in runs:
        finals.setdefault(run.method, {})[run.seed] = float(run.summary["final_eval_return"])
    if method == PAIRED_WITH or PAIRED_WITH not in finals:
        return "-"
    seeds = sorted(set(finals[method]) & set(finals[PAIRED_WITH]))
    diffs = [finals[method][s] - finals[PAIRED_WITH][s] for s in seeds]
    return f"{sum(d > 0 for d in diffs)}/{len(diffs)}, {float(np.median(diffs)):+.1f}" if diffs else "-"


def cluster_fits(runs) -> list[str]:
    """One line per method whose runs fitted clusters (SePS, AdaPS, SePS+LoRA): the K each seed's fit
    chose and the adjusted Rand index of its clusters against BPS's groups."""
    import yaml
    from sklearn.metrics import adjusted_rand_score

    fits = {}
    for run in sorted(runs, key=lambda r: r.seed):
        env = yaml.safe_load((run.run_dir / "config.yaml").read_text()).get("env", {})
        groups = list((env.get("options") or {}).get("groups", [3, 3, 3]))
        truth = [g for g, size in enumerate(groups) for _ in range(size)]
        for fit in (run.summary.get("fits") or {}).values():
            if fit.get("clusters") is not None:
                fits.setdefault(run.method, []).append((fit["k"], adjusted_rand_score(truth, fit["clusters"])))
    return [f"- {method}: K = {', '.join(str(k) for k, _ in got)}; ARI mean {np.mean([a for _, a in got]):.2f} "
            f"(min {min(a for _, a in got):.2f})" for method, got in fits.items()]


def section(group: str, runs, table: list[dict], references: dict | None, figures: Path, docs: Path,
            role_text: dict | None = None) -> str:
    wall = {}
    for run in runs:
        wall.setdefault(run.method, []).append(float(run.summary.get("wall_time_s", float("nan"))))
    extra = " across / within-group action distance |" if role_text is not None else ""
    lines = [f"<!-- evidence:{group} -->", f"#### {group}", "",
             "| method | seeds | final return IQM [95% CI] | mean [95% CI] | seeds above ps (with id), median difference "
             "| params per agent | wall time per run (s) |" + extra, "|---|---|---|---|---|---|---|" + ("---|" if extra else "")]
    for row in table:
        times = wall.get(row["method"], [])
        seconds = f"{sum(times) / len(times):.0f}" if times else "-"
        lines.append(f"| {row['method']} | {row['seeds']} | {float(row['iqm']):.1f} [{float(row['iqm_low']):.1f}, "
                     f"{float(row['iqm_high']):.1f}] | {float(row['mean']):.1f} [{float(row['mean_low']):.1f}, "
                     f"{float(row['mean_high']):.1f}] | {paired(runs, row['method'])} | {row['per_agent'] or '-'} | "
                     f"{seconds} |" + (f" {role_text.get(row['method'], '-')} |" if extra else ""))
    for name, ref in (references or {}).items():
        lines.append(f"| *scripted: {name}* | {ref['n']} episodes | | {ref['mean']:.1f} [{ref['low']:.1f}, "
                     f"{ref['high']:.1f}] | | | |" + (" |" if extra else ""))
    fitted = cluster_fits(runs) if references is not None else []
    if fitted:
        lines += ["", "Cluster fits (the K each seed's fit chose; adjusted Rand index against the hidden groups):", *fitted]
    rel = Path("figures/evidence") / group if docs.parent.name == "docs" else figures / group
    lines += ["", f"Figures: [learning curves with references]({rel}/learning_curves_refs.png), "
                  f"[aggregates]({rel}/aggregates.png), [probability of improvement]({rel}/probability_of_improvement.png), "
                  f"[performance profile]({rel}/performance_profile.png).", f"<!-- /evidence:{group} -->"]
    return "\n".join(lines)


def write_section(docs: Path, group: str, text: str) -> None:
    current = docs.read_text() if docs.exists() else "# Evidence\n"
    pattern = re.compile(rf"<!-- evidence:{re.escape(group)} -->.*?<!-- /evidence:{re.escape(group)} -->", re.S)
    new = pattern.sub(lambda _: text, current) if pattern.search(current) else current.rstrip() + "\n\n" + text + "\n"
    docs.write_text(new)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="+")
    parser.add_argument("--sweeps", type=Path, default=Path("sweeps/evidence"))
    parser.add_argument("--figures", type=Path, default=Path("docs/figures/evidence"))
    parser.add_argument("--docs", type=Path, default=Path("docs/evidence.md"))
    parser.add_argument("--references", type=Path, default=Path("docs/data"), help="where BPS references are cached")
    args = parser.parse_args(argv)
    for group in args.groups:
        group_dir = args.sweeps / group
        table_csv = args.figures / group / "table.csv"
        if not group_dir.is_dir() or not table_csv.exists():
            print(f"{group}: no sweeps in {group_dir} or no compare table {table_csv}; run `make evidence` first")
            continue
        runs = runs_of(group_dir)
        with open(table_csv) as f:
            table = list(csv.DictReader(f))
        for run in runs:
            run.method = LABELS.get(run.method, run.method)
        for row in table:
            row["method"] = LABELS.get(row["method"], row["method"])
        references = bps_references(runs, args.references)
        curves_with_references(runs, references, args.figures / group)
        role_text = roles(runs) if references is not None else None  # BPS: do the agents act on their groups?
        write_section(args.docs, group, section(group, runs, table, references, args.figures, args.docs, role_text))
        print(f"{group}: {len(runs)} runs -> {args.docs}")


if __name__ == "__main__":
    main()
