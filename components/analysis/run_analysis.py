"""``marlshare analyze RUN_DIR``: look inside a trained team, the way the LoRASA paper does.

Writes into ``RUN_DIR/analysis/`` (or ``--out``) PNG figures and the numbers behind them:

=====================  ================================================  =============================
file                   what                                              when
=====================  ================================================  =============================
``scaling.*``          parameters, train-step and inference time of      always (``--no-scaling`` skips)
                       every strategy vs agents N = 2..128 (Fig. 3)
``sparsity.*``         % of ``|theta_shared|`` and ``|delta theta|`` at  LoRA checkpoint
                       or above 100 thresholds (Fig. 8)
``norms.*``            Frobenius norms per layer: shared, merged (mean   LoRA checkpoint; ``norms_
                       over agents), delta (Tables 10-13)                checkpoints.*`` over all of them
``wasserstein.*``      agent x agent distance between action             always
                       distributions on the same states (Figs. 6-7)
``activations.*``      per-layer mean activation, agent x unit, on the   always
                       same states (Figs. 9-20)
``masks.*``            Prism spectral masks (agent x direction) or AdaPS Prism / AdaPS checkpoint
                       unit masks (cluster x unit), with kept fractions
``analysis.json``      every number above, and what was skipped and why  always
=====================  ================================================  =============================

**The same states.** States come from rolling out the checkpoint's own stochastic policy in the run's
env (``--envs`` copies, ``--seed``). With ``inputs="shared"`` (default) every collected observation
of every agent is fed to *all* agents' policies (with that agent's GRU state), so agent i and agent j
are compared on identical inputs and a difference can only come from their parameters (and, for PS,
the appended agent id). ``inputs="own"`` keeps each agent's own observation of the same env state
(differences then also reflect what each agent sees); see :mod:`.states`. Measures are defined in
:mod:`.measures`, the scaling rows in :mod:`.scaling`.

From Python::

    from marlshare.components.analysis.run_analysis import analyze
    report = analyze("outputs/vmas/navigation/ps/<date>_seed0")     # -> dict, files in <run>/analysis
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

from marlshare.components.analysis import measures
from marlshare.components.analysis import scaling as scaling_mod
from marlshare.components.analysis.states import collect_states, policy_outputs, same_inputs


# --- files ------------------------------------------------------------------------------------------------
def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(run) -> str:
    s = run.state
    return f"{run.cfg.env.name} · {run.strategy.name} · {int(s.get('frames', 0)):,} frames"


# --- the analyses -------------------------------------------------------------------------------------------
def analyse_scaling(run, out: Path, agents=scaling_mod.AGENTS, timing: bool = True) -> dict:
    shape = scaling_mod.run_shape(run)
    rows = scaling_mod.measure(shape, agents=agents, timing=timing)
    write_csv(out / "scaling.csv", rows)
    plt = _plt()
    panels = [("total", "parameters (count)")] + ([("train_ms", "train step (ms)"), ("inference_ms",
                                                   "inference, LoRA merged (ms)")] if timing else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    names = list(dict.fromkeys(r["strategy"] for r in rows))
    for ax, (key, label) in zip(axes[0], panels):
        for i, name in enumerate(names):
            pts = [(r["n_agents"], r[key]) for r in rows if r["strategy"] == name]
            ax.plot(*zip(*pts), "o-", ms=3, color=f"C{i}", label=name)
            if key == "total":
                pts = [(r["n_agents"], r["trainable"]) for r in rows if r["strategy"] == name]
                ax.plot(*zip(*pts), ":", color=f"C{i}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(agents), [str(a) for a in agents])
        ax.set_yscale("log")
        ax.set(xlabel="number of agents N", ylabel=label, title=label.split(" (")[0] + " vs N")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_title("parameters vs N (solid: total, dotted: trainable)")
    axes[0][-1].legend(fontsize=7, ncol=2)
    batch = 256
    fig.suptitle(f"actor of {run.cfg.env.name}: in {shape['in_features']}, hidden {list(shape['hidden'])}"
                 f"{', GRU' if shape.get('recurrent') else ''}; batch {batch} states per agent, 1 thread")
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=110)
    plt.close(fig)
    return {"rows": rows, "shape": {k: list(v) if isinstance(v, tuple) else v for k, v in shape.items()}}


def analyse_weights(run, out: Path, checkpoints: list[tuple[str, object]]) -> dict:
    """Sparsity and norms of this run's LoRA checkpoint, and norms across all its LoRA checkpoints."""
    if not measures.lora_layers(run.net):
        return {"skipped": f"checkpoint's strategy {run.strategy.name!r} has no LoRA adapters "
                           f"({' or '.join(scaling_mod.adapter_strategies())} needed)"}
    plt = _plt()
    shared, delta = measures.shared_and_delta(run.net)
    t_s, p_s = measures.sparsity_curve(shared)
    t_d, p_d = measures.sparsity_curve(delta)
    write_csv(out / "sparsity.csv", [dict(index=i, shared_threshold=a, shared_percent=b, delta_threshold=c,
                                          delta_percent=d) for i, (a, b, c, d) in enumerate(zip(t_s, p_s, t_d, p_d))])
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    frac = np.linspace(0, 1, len(t_s))
    ax.plot(frac, p_s, label=f"|θ_shared| ({shared.size:,} weights, range {t_s[0]:.2g}–{t_s[-1]:.2g})")
    ax.plot(frac, p_d, label=f"|δθ| ({delta.size:,} weights, range {t_d[0]:.2g}–{t_d[-1]:.2g})")
    ax.set(xlabel="threshold, as a fraction of the range [min |w|, max |w|] of each set",
           ylabel="weights with |w| ≥ threshold (%)", title=f"sparsity (LoRASA Fig. 8)\n{_title(run)}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "sparsity.png", dpi=110)
    plt.close(fig)

    norms = measures.frobenius_norms(run.net)
    write_csv(out / "norms.csv", norms)
    fig, ax = plt.subplots(figsize=(max(6.5, 1.1 * len(norms) + 2), 4.2))
    x = np.arange(len(norms))
    for j, (key, label) in enumerate((("shared", "θ_shared"), ("merged", "θ' = θ_shared + δθ (mean over agents)"),
                                      ("delta", "δθ (mean over agents)"))):
        ax.bar(x + (j - 1) * 0.27, [r[key] for r in norms], 0.27, label=label)
    ax.set_xticks(x, [f"{r['layer']}\n{r['shape']}" for r in norms], fontsize=7)
    ax.set_yscale("log")
    ax.set(ylabel="Frobenius norm (log scale)", title=f"Frobenius norms per layer (LoRASA Tables 10-13)\n{_title(run)}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "norms.png", dpi=110)
    plt.close(fig)

    history = []
    for label, net, frames in checkpoints:
        for row in measures.frobenius_norms(net):
            history.append(dict(checkpoint=label, frames=frames, **row))
    if history:
        write_csv(out / "norms_checkpoints.csv", history)
        layers = list(dict.fromkeys(r["layer"] for r in history))
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for i, layer in enumerate(layers):
            pts = sorted((r["frames"], r["delta"], r["delta"] / r["shared"]) for r in history if r["layer"] == layer)
            axes[0].plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=f"C{i}", label=layer)
            axes[1].plot([p[0] for p in pts], [100 * p[2] for p in pts], "o-", color=f"C{i}", label=layer)
        axes[0].set(xlabel="frames at checkpoint", ylabel="mean ||δθ_i||_F", title="adapter norm over checkpoints")
        axes[1].set(xlabel="frames at checkpoint", ylabel="mean ||δθ_i||_F / ||θ_shared||_F (%)",
                    title="adapter size relative to the shared weight")
        for ax in axes:
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{run.cfg.env.name} · {len({r['checkpoint'] for r in history})} LoRA checkpoints")
        fig.tight_layout()
        fig.savefig(out / "norms_checkpoints.png", dpi=110)
        plt.close(fig)
    return {"norms": norms, "norms_checkpoints": history,
            "sparsity": {"shared_threshold": t_s.tolist(), "shared_percent": p_s.tolist(),
                         "delta_threshold": t_d.tolist(), "delta_percent": p_d.tolist()}}


def _heatmap(ax, fig, data, xlabel, ylabel, title, cbar, cmap="viridis", vmin=None, vmax=None, annotate=False,
             yticks=None, xticks=None):
    im = ax.imshow(data, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, fontsize=10)
    if yticks is not None:
        ax.set_yticks(range(len(yticks)), yticks)
    if xticks is not None:
        ax.set_xticks(range(len(xticks)), xticks)
    fig.colorbar(im, ax=ax, label=cbar)
    if annotate:
        for (i, j), v in np.ndenumerate(data):
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=7,
                    color="white" if v < (np.nanmax(data) + np.nanmin(data)) / 2 else "black")


def analyse_behaviour(run, out: Path, n_states: int, inputs: str, metric: str, seed: int) -> dict:
    plt = _plt()
    obs, hidden, mask = collect_states(run, n_states, seed=seed)
    x, h, m = same_inputs(obs, hidden, mask, inputs)
    n = run.info.n_agents
    outputs = policy_outputs(run.net, x, h)
    w = measures.pairwise_wasserstein(outputs, metric, m)
    gaussian = isinstance(outputs, tuple)
    what = ("2-Wasserstein of the diagonal Gaussians (pre-tanh action units)" if gaussian else
            "W1, 0-1 ground cost (= total variation)" if metric == "discrete" else "W1 over action indices")
    write_csv(out / "wasserstein.csv", [dict(agent_i=i, agent_j=j, distance=float(w[i, j]))
                                        for i in range(n) for j in range(n)])
    fig, ax = plt.subplots(figsize=(6.4 + 0.15 * n, 4.8 + 0.15 * n))
    _heatmap(ax, fig, w, "agent j", "agent i", f"distance between agents' action distributions\n"
             f"{_title(run)}\nmean over {x.shape[0]:,} inputs ({inputs})",
             what, cmap="magma", vmin=0, annotate=n <= 12, yticks=list(range(n)) if n <= 16 else None,
             xticks=list(range(n)) if n <= 16 else None)
    fig.tight_layout()
    fig.savefig(out / "wasserstein.png", dpi=110)
    plt.close(fig)
    off = w[~np.eye(n, dtype=bool)]

    acts = measures.layer_activations(run.net, x, h)
    rows, summary = [], {}
    fig, axes = plt.subplots(len(acts), 1, figsize=(10, 1.2 + 0.25 * n * len(acts) + 0.8 * len(acts)), squeeze=False)
    for ax, (layer, a) in zip(axes[:, 0], acts.items()):
        mean = a.mean(0).numpy()  # [N, units]
        diff = (a[:, :, None] - a[:, None]).abs().mean((0, 3)).numpy()  # [N, N] mean |a_i - a_j| per unit
        scale = a.abs().mean().item()
        summary[layer] = dict(units=int(a.shape[-1]), mean_abs_activation=scale,
                              mean_pairwise_abs_difference=float(diff[~np.eye(n, dtype=bool)].mean()) if n > 1 else 0.0,
                              dead_unit_fraction=float((a.abs().amax((0, 1)) == 0).float().mean()))
        rows += [dict(layer=layer, agent=i, unit=u, mean_activation=float(mean[i, u]))
                 for i in range(n) for u in range(mean.shape[1])]
        _heatmap(ax, fig, mean, "unit", "agent", f"{layer}: mean activation over {a.shape[0]:,} inputs; mean |a_i - a_j| "
                 f"= {summary[layer]['mean_pairwise_abs_difference']:.3g} (mean |a| = {scale:.3g})",
                 "mean activation", yticks=list(range(n)) if n <= 16 else None)
    fig.suptitle(f"per-layer activations across agents (LoRASA Figs. 9-20) · {_title(run)}")
    fig.tight_layout()
    fig.savefig(out / "activations.png", dpi=110)
    plt.close(fig)
    write_csv(out / "activations.csv", rows)
    return {"inputs": inputs, "n_inputs": int(x.shape[0]), "n_states": int(obs.shape[0]), "distance": what,
            "wasserstein": w.tolist(), "wasserstein_mean_off_diagonal": float(off.mean()) if off.size else 0.0,
            "activations": summary}


def analyse_masks(run, out: Path) -> dict:
    spectral, units = measures.spectral_masks(run.net), measures.unit_masks(run.net)
    if not spectral and not units:
        return {"skipped": f"checkpoint's strategy {run.strategy.name!r} has no Prism or AdaPS masks"}
    plt = _plt()
    layers = {**spectral, **units}
    fig, axes = plt.subplots(len(layers), 1, figsize=(10, 1.6 + 2.3 * len(layers)), squeeze=False)
    result, rows = {}, []
    for ax, (layer, value) in zip(axes[:, 0], layers.items()):
        if layer in spectral:
            kept = (value > 0.5).mean(1)
            n = value.shape[0]
            spread = float(np.abs(value[:, None] - value[None]).mean(-1)[~np.eye(n, dtype=bool)].mean()) if n > 1 else 0.0
            result[layer] = dict(kind="prism", kept_fraction=kept.tolist(), mean_mask=value.mean(1).tolist(),
                                 mean_pairwise_abs_difference=spread)
            rows += [dict(layer=layer, kind="prism", row=i, column=k, mask=float(value[i, k]))
                     for i in range(value.shape[0]) for k in range(value.shape[1])]
            # colour over the data's own range: masks that moved little from their start (sigmoid(3) = 0.95)
            # would otherwise be one flat colour
            _heatmap(ax, fig, value, "singular direction k (by initial singular value)", "agent",
                     f"Prism {layer}: kept (mask > 0.5) per agent " + ", ".join(f"{f:.2f}" for f in kept)
                     + "\nmean mask per agent " + ", ".join(f"{m:.3f}" for m in value.mean(1))
                     + f"; mean |m_i - m_j| = {spread:.3g}", "mask σ(l_ik)",
                     yticks=list(range(n)) if n <= 16 else None)
        else:
            masks, clusters = value
            kept = masks.mean(1)
            result[layer] = dict(kind="adaps", clusters=clusters, kept_fraction=kept.tolist())
            rows += [dict(layer=layer, kind="adaps", row=c, column=u, mask=float(masks[c, u]))
                     for c in range(masks.shape[0]) for u in range(masks.shape[1])]
            labels = [f"cluster {c}: agents {[i for i, k in enumerate(clusters) if k == c]}" for c in range(len(masks))]
            _heatmap(ax, fig, masks, "hidden unit", "", f"AdaPS {layer}: kept fraction per cluster "
                     + ", ".join(f"{f:.2f}" for f in kept), "unit kept (1) / dropped (0)", cmap="Greys",
                     vmin=0, vmax=1, yticks=labels)
    fig.suptitle(f"strategy masks · {_title(run)}")
    fig.tight_layout()
    fig.savefig(out / "masks.png", dpi=110)
    plt.close(fig)
    write_csv(out / "masks.csv", rows)
    return result


def lora_checkpoints(run_dir: Path) -> list[tuple[str, object, int]]:
    """(name, network, frames) of every checkpoint of the run whose network has LoRA adapters."""
    from marlshare.components.runs import load_run

    found = {}
    # named checkpoints first: a rotated copy (last.1) saved at the same frame as phase_switch is a duplicate
    for path in sorted((run_dir / "checkpoints").glob("*.pt"), key=lambda p: (p.stem.startswith("last"), p.stem)):
        r = load_run(run_dir, checkpoint=str(path))
        frames = int(r.state.get("frames", 0))
        if measures.lora_layers(r.net) and frames not in found:
            found[frames] = (path.stem, r.net, frames)
    return [found[f] for f in sorted(found)]


def analyze(run_dir, checkpoint: str = "last", out=None, n_states: int = 256, inputs: str = "shared",
            metric: str = "discrete", scaling: bool = True, timing: bool = True, agents=scaling_mod.AGENTS,
            seed: int = 12345, threads: int = 1, progress: bool = False) -> dict:
    """Every analysis of one checkpoint of ``run_dir``; files in ``out`` (default ``RUN_DIR/analysis``).
    ``threads``: torch threads (1, as training: tiny layers lose more to thread hand-offs than they gain);
    ``progress``: a progress line on stderr naming the current analysis."""
    from marlshare.components.analysis.steps import Steps
    from marlshare.components.runs import load_run

    torch.set_num_threads(threads)
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    step = Steps("analyze", ["load run", "weights", "behaviour", "masks"] + (["scaling"] if scaling else []),
                 enabled=progress)
    try:
        with step("load run"):
            run = load_run(run_dir, checkpoint)
        report = dict(run_dir=str(run_dir), checkpoint=checkpoint, frames=int(run.state.get("frames", 0)),
                      env=run.cfg.env.name, strategy=run.strategy.name, n_agents=run.info.n_agents)
        with step("weights"):
            report["weights"] = analyse_weights(run, out, lora_checkpoints(run_dir))
        with step(f"behaviour ({n_states} states)"):
            report["behaviour"] = analyse_behaviour(run, out, n_states, inputs, metric, seed)
        with step("masks"):
            report["masks"] = analyse_masks(run, out)
        if scaling:
            with step("scaling" + ("" if timing else " (counts only)")):
                report["scaling"] = analyse_scaling(run, out, agents=agents, timing=timing)
    finally:
        step.close()
    report["files"] = sorted(p.name for p in out.iterdir())
    (out / "analysis.json").write_text(json.dumps(report, indent=1, default=float))
    return report


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="marlshare analyze", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--checkpoint", default="last", help="last | phase_switch | a path to a .pt (default last)")
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/analysis)")
    p.add_argument("--states", type=int, default=256, help="env states collected for the behaviour analyses")
    p.add_argument("--inputs", choices=("shared", "own"), default="shared",
                   help="shared: every observation fed to every agent (default); own: each agent's own")
    p.add_argument("--metric", choices=("discrete", "ordered"), default="discrete",
                   help="ground cost for categorical actions (default discrete: W1 = total variation)")
    p.add_argument("--agents", default=",".join(map(str, scaling_mod.AGENTS)), help="N values for the scaling figure")
    p.add_argument("--no-scaling", action="store_true", help="skip parameters/time vs N")
    p.add_argument("--no-timing", action="store_true", help="count parameters vs N but do not time")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    a = p.parse_args(argv)
    report = analyze(a.run_dir, a.checkpoint, a.out, a.states, a.inputs, a.metric, scaling=not a.no_scaling,
                     timing=not a.no_timing, agents=tuple(int(v) for v in a.agents.split(",")), seed=a.seed,
                     threads=a.threads, progress=not a.quiet)
    out = Path(a.out) if a.out else Path(a.run_dir) / "analysis"
    print(f"{report['env']} · {report['strategy']} · {report['frames']:,} frames -> {out}")
    for key in ("weights", "masks"):
        if "skipped" in report[key]:
            print(f"  {key}: skipped ({report[key]['skipped']})")
    print(f"  mean off-diagonal action distance: {report['behaviour']['wasserstein_mean_off_diagonal']:.4g} "
          f"({report['behaviour']['distance']})")
    print("  files: " + ", ".join(report["files"]))
    return report


if __name__ == "__main__":
    main()
