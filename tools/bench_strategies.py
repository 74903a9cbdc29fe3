"""Speed of every sharing strategy's network: batched (ours) vs PS, vs TorchRL's MultiAgentMLP, and
vs a per-agent Python loop.

    python -m tools.bench_strategies                      # full run (1 thread, ~13 min on 2 cores)
    python -m tools.bench_strategies --quick              # smoke run + equivalence checks (~10 s)
    python -m tools.bench_strategies --report outputs/bench_strategies.json --markdown [--clock cpu]

For every configuration (agents N, per-agent batch B, hidden (h, h)) the script builds, with
``IN_FEATURES = 32`` inputs and ``OUT_FEATURES = 8`` outputs per agent (input ``[B, N, 32]``):

- every strategy's network, ``make_strategy(name, **hp).make_network(n_agents=N, in_features=32,
  out_features=8, hidden=(h, h))``, linear head, each strategy's default hyperparameters
  (SePS, SePS+LoRA, AdaPS: ``K = max(1, N // 4)`` clusters, ``clusters = [i % K for i in range(N)]``);
- TorchRL's ``MultiAgentMLP(share_params=False, centralized=False, depth=2, num_cells=h, ReLU)``, the
  reference for NPS (weights copied from the NPS network);
- a per-agent Python-loop reference of each strategy (``LOOP_REFERENCES``): one call per agent on
  ``x[..., i, :]`` with per-agent modules / parameters, the way the LoRASA reference code runs, with
  the weights copied from the batched network;
- ``ps_lora`` after :func:`components.transforms.merge_adapters` (forward only), compared to NPS.

and times two things per implementation:

- ``fwd+bwd``: ``zero_grad(set_to_none=True); model(x).sum().backward()`` (training);
- ``fwd``: ``model(x)`` under ``torch.no_grad()`` (collection / acting).

Timing: all implementations of one configuration are built in the same process; after warm-up,
each (implementation, mode) item is timed over ``k`` back-to-back calls (``k`` calibrated so one
measurement lasts about ``--min-time`` seconds), the items are interleaved within every repeat (the
order rotates from repeat to repeat), and the reported time is the median over repeats of the
per-call time. Repeats are ``--repeats``, cut down to fit ``--budget`` seconds per configuration
(never below ``--min-repeats``), which is what shortens the large configurations. Both wall-clock
and process CPU time are recorded; ``--clock`` picks the one the tables and targets use (wall by
default; CPU time leaves out the time spent waiting for a core on a shared machine). The JSON has both.

Allocator: tensors over 32 MB (``N * B * h`` floats, e.g. N=128, B=1024, h=64) are served by
glibc with a fresh ``mmap`` on every call, so their page faults are part of the batched times; the
per-agent loop's small tensors are recycled. The header records ``MALLOC_*`` settings so a run with
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736`` (no page faults) is labelled as such.

Ratios: ``x PS`` = time / time of PS (lower is better); ``loop speedup`` = loop time / batched
time (higher is better); ``NPS / MAMLP`` = NPS time / MultiAgentMLP time; ``merged / NPS`` =
merged ps_lora forward / NPS forward.

The loop references live in :mod:`tools.bench_loops`, the timing in :mod:`tools.bench_timing`; the
agent id's cost over N is :mod:`tools.bench_id`. Targets include issue 13's: PS+LoRA, SePS+LoRA and
Prism within 1.5x of PS (fwd+bwd) at N=32, B=64, h=64.

With ``--quick`` each loop reference's output is checked against its batched network (and NPS
against MultiAgentMLP, merged against unmerged LoRA) before timing; a mismatch aborts the run.
The only deliberate difference: MTL's loop reference does not scale its heads' gradients by N (the
batched MTL does, a ``grad * N`` in the backward pass); forward outputs are identical.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

from marlshare.components.analysis.scaling import clusters_for  # one cluster rule for benchmarks and analyses
from marlshare.components.layers import LowRankLinear, SpectralLinear
from marlshare.components.strategies import STRATEGIES, make_strategy
from marlshare.components.transforms import merge_adapters
from tools.bench_loops import LOOP_REFERENCES, agent_layers
from tools.bench_timing import make_step, measure
from tools.reports import write_json

IN_FEATURES, OUT_FEATURES = 32, 8
MODES = ("fwd+bwd", "fwd")
SMALL_BATCH_STRATEGIES = ("ps_lora", "seps_lora", "prism")  # issue 13 named these in its small-batch target


def build_network(name: str, n_agents: int, hidden: int, seed: int = 0) -> nn.Module:
    hp = {"clusters": clusters_for(n_agents)} if STRATEGIES[name].needs_clusters else {}
    torch.manual_seed(seed)
    net = make_strategy(name, **hp).make_network(
        n_agents=n_agents, in_features=IN_FEATURES, out_features=OUT_FEATURES, hidden=(hidden, hidden))
    # Zero-initialised LoRA factors and uniform Prism masks would make the equivalence checks blind to
    # the agent-specific part: randomise them (the timing does not depend on the values).
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, LowRankLinear):
                m.lora_B.copy_(0.1 * torch.randn(m.lora_B.shape, generator=gen))
            if isinstance(m, SpectralLinear):
                m.mask_logits.copy_(torch.randn(m.mask_logits.shape, generator=gen))
    return net


def multi_agent_mlp(nps: nn.Module, n_agents: int, hidden: int) -> nn.Module:
    """TorchRL's MultiAgentMLP (no sharing, decentralised) with the NPS network's weights."""
    from torchrl.modules import MultiAgentMLP

    ref = MultiAgentMLP(n_agent_inputs=IN_FEATURES, n_agent_outputs=OUT_FEATURES, n_agents=n_agents,
                        centralized=False, share_params=False, depth=2, num_cells=hidden,
                        activation_class=nn.ReLU)
    with torch.no_grad():
        for key, layer in zip(("0", "2", "4"), agent_layers(nps)):
            ref.params[key, "weight"].copy_(layer.weight)
            ref.params[key, "bias"].copy_(layer.bias)
    return ref


# --- equivalence checks (--quick) ---------------------------------------------------------------

def check_equivalence(nets: dict, loops: dict, extra: dict, x: torch.Tensor) -> list[str]:
    lines = []
    with torch.no_grad():
        for name, net in nets.items():
            y = net(x)
            y_loop = loops[name](x)
            err = (y - y_loop).abs().max().item()
            ok = torch.allclose(y, y_loop, rtol=1e-4, atol=1e-5)
            lines.append(f"  loop[{name}] vs {name}: max|diff| = {err:.2e} {'ok' if ok else 'MISMATCH'}")
            if not ok:
                raise AssertionError(lines[-1])
        for label, (ref, net) in extra.items():
            y, y_ref = net(x), ref(x)
            err = (y - y_ref).abs().max().item()
            ok = y.shape == y_ref.shape and torch.allclose(y, y_ref, rtol=1e-4, atol=1e-5)
            lines.append(f"  {label}: max|diff| = {err:.2e} {'ok' if ok else 'MISMATCH'}")
            if not ok:
                raise AssertionError(lines[-1])
    # every implementation's backward runs
    for model in [*nets.values(), *loops.values()]:
        make_step(model, x, "fwd+bwd")()
    return lines


# --- one configuration ---------------------------------------------------------------------------

def run_config(strategies, n_agents, batch, hidden, args, verify: bool) -> dict:
    nets = {name: build_network(name, n_agents, hidden) for name in strategies}
    loops = {name: LOOP_REFERENCES[name](net) for name, net in nets.items()}
    extra_models = {}
    if "nps" in nets:
        extra_models["mamlp"] = multi_agent_mlp(nets["nps"], n_agents, hidden)
    if "ps_lora" in nets:
        extra_models["ps_lora_merged"] = merge_adapters(nets["ps_lora"])
    x = torch.randn(batch, n_agents, IN_FEATURES, generator=torch.Generator().manual_seed(2))
    checks = []
    if verify:
        pairs = {}
        if "mamlp" in extra_models:
            pairs["nps vs MultiAgentMLP (copied weights)"] = (extra_models["mamlp"], nets["nps"])
        if "ps_lora_merged" in extra_models:
            pairs["merge_adapters(ps_lora) vs ps_lora"] = (nets["ps_lora"], extra_models["ps_lora_merged"])
        checks = check_equivalence(nets, loops, pairs, x[: min(batch, 16)])

    items = {}
    for name in strategies:
        for mode in MODES:
            items[(name, mode)] = make_step(nets[name], x, mode)
            items[(f"loop:{name}", mode)] = make_step(loops[name], x, mode)
    if "mamlp" in extra_models:
        for mode in MODES:
            items[("mamlp", mode)] = make_step(extra_models["mamlp"], x, mode)
    if "ps_lora_merged" in extra_models:
        items[("ps_lora_merged", "fwd")] = make_step(extra_models["ps_lora_merged"], x, "fwd")

    start = time.perf_counter()
    wall, cpu, n_rep = measure(items, args.repeats, args.min_repeats, args.min_time, args.budget, args.warmup)
    primary, secondary = (wall, cpu) if args.clock == "wall" else (cpu, wall)
    ms, ms_other = {}, {}
    for (impl, mode), sec in primary.items():
        ms.setdefault(impl, {})[mode] = 1e3 * sec
        ms_other.setdefault(impl, {})[mode] = 1e3 * secondary[(impl, mode)]
    other = "cpu" if args.clock == "wall" else "wall"
    return dict(n_agents=n_agents, batch=batch, hidden=hidden, repeats=n_rep,
                seconds=round(time.perf_counter() - start, 1), ms=ms, **{f"ms_{other}": ms_other},
                checks=checks)


# --- derived ratios, targets, tables ---------------------------------------------------------------

def ratios(cfg: dict) -> dict:
    ms, out = cfg["ms"], {}
    for impl, t in ms.items():
        if impl.startswith("loop:") or impl in ("mamlp", "ps_lora_merged"):
            continue
        row = {}
        for mode in MODES:
            if "ps" in ms:
                row[f"{mode} x PS"] = t[mode] / ms["ps"][mode]
            row[f"{mode} loop speedup"] = ms[f"loop:{impl}"][mode] / t[mode]
        out[impl] = row
    if "mamlp" in ms and "nps" in ms:
        out["nps vs mamlp"] = {f"{m} NPS/MAMLP": ms["nps"][m] / ms["mamlp"][m] for m in MODES}
    if "ps_lora_merged" in ms and "nps" in ms:
        out["merged vs nps"] = {"fwd merged/NPS": ms["ps_lora_merged"]["fwd"] / ms["nps"]["fwd"],
                                "fwd merged/unmerged": ms["ps_lora_merged"]["fwd"] / ms["ps_lora"]["fwd"]}
    return out


def evaluate_targets(results: list[dict]) -> list[dict]:
    """The benchmark targets of issue 2, item 7; each with its worst measured ratio."""
    targets = []

    def add(text, values, limit, higher_is_better):
        if not values:
            return
        worst = min(values, key=lambda v: v[1]) if higher_is_better else max(values, key=lambda v: v[1])
        ok = worst[1] >= limit if higher_is_better else worst[1] <= limit
        targets.append(dict(target=text, passed=ok, worst=worst[1], where=worst[0], limit=limit,
                            values={k: round(v, 4) for k, v in values}))

    def cfgs(**fix):
        return [c for c in results if all(c[k] == v for k, v in fix.items())]

    def tag(c, *rest):
        return f"N={c['n_agents']} B={c['batch']} h={c['hidden']}" + "".join(f" {r}" for r in rest)

    names = [s for s in results[0]["ms"] if not s.startswith("loop:") and s not in ("mamlp", "ps_lora_merged")] \
        if results else []
    for name in names:
        if name == "ps":
            continue
        vals = [(tag(c), c["ms"][name]["fwd+bwd"] / c["ms"]["ps"]["fwd+bwd"])
                for c in cfgs(n_agents=8, batch=1024) if "ps" in c["ms"]]
        add(f"N=8 B=1024: {name} fwd+bwd within 2x of PS", vals, 2.0, False)
    for name in SMALL_BATCH_STRATEGIES:  # issue 13, item 5
        vals = [(tag(c), c["ms"][name]["fwd+bwd"] / c["ms"]["ps"]["fwd+bwd"])
                for c in cfgs(n_agents=32, batch=64, hidden=64) if name in c["ms"] and "ps" in c["ms"]]
        add(f"N=32 B=64 h=64: {name} fwd+bwd within 1.5x of PS", vals, 1.5, False)
    vals = [(tag(c), c["ms"]["ps_lora_merged"]["fwd"] / c["ms"]["nps"]["fwd"])
            for c in results if "ps_lora_merged" in c["ms"] and "nps" in c["ms"]]
    add("merge_adapters(ps_lora) fwd within 1.2x of NPS fwd (all configs)", vals, 1.2, False)
    for mode in MODES:
        vals = [(tag(c), c["ms"]["nps"][mode] / c["ms"]["mamlp"][mode]) for c in results if "mamlp" in c["ms"]]
        add(f"NPS {mode} at least as fast as MultiAgentMLP (all configs)", vals, 1.0, False)
    hiddens = sorted({c["hidden"] for c in results})
    for h in hiddens:  # the loop numbers were measured at h=64; h=256 is reported separately
        for name in names:
            vals = [(f"{mode}", c["ms"][f"loop:{name}"][mode] / c["ms"][name][mode])
                    for c in cfgs(n_agents=32, batch=64, hidden=h) for mode in MODES]
            add(f"N=32 B=64 h={h}: {name} >= 2.5x faster than its loop", vals, 2.5, True)
    for h in hiddens:
        for name in names:
            vals = [(f"N={c['n_agents']} {mode}", c["ms"][f"loop:{name}"][mode] / c["ms"][name][mode])
                    for c in cfgs(batch=1024, hidden=h) for mode in MODES]
            add(f"B=1024 h={h}: {name} never slower than its loop (all N)", vals, 1.0, True)
    return targets


def format_targets(targets: list[dict]) -> list[str]:
    """One line per target: PASS/MISS on the worst ratio, then every measured value (or, over many
    configurations, the ones that miss)."""
    lines = []
    for t in targets:
        higher = "loop" in t["target"]
        rel, kind = (">=", "loop/batched") if higher else ("<=", "ratio")
        missing = {k: v for k, v in t["values"].items() if (v < t["limit"] if higher else v > t["limit"])}
        if len(t["values"]) <= 4:
            detail = ", ".join(f"{k}: {v:.2f}" for k, v in t["values"].items())
        elif missing:
            detail = f"{len(missing)}/{len(t['values'])} cases miss: " + ", ".join(
                f"{k}: {v:.2f}" for k, v in missing.items())
        else:
            detail = f"all {len(t['values'])} cases pass"
        lines.append(f"{'PASS' if t['passed'] else 'MISS'}  {t['target']} [{kind} {rel} {t['limit']}]: "
                     f"worst {t['worst']:.2f} at {t['where']}; {detail}")
    return lines


def format_table(cfg: dict) -> list[str]:
    ms, rat = cfg["ms"], ratios(cfg)
    lines = [f"N={cfg['n_agents']}  batch={cfg['batch']}  hidden=({cfg['hidden']}, {cfg['hidden']})  "
             f"repeats={cfg['repeats']}  ({cfg['seconds']} s)",
             f"  {'impl':<16}{'fwd+bwd ms':>11}{'x PS':>7}{'loop ms':>10}{'loop/us':>9}"
             f"{'fwd ms':>10}{'x PS':>7}{'loop ms':>10}{'loop/us':>9}"]
    for impl, row in rat.items():
        if impl not in ms:
            continue
        cells = []
        for mode in MODES:
            xps = row.get(f"{mode} x PS", float("nan"))
            cells += [f"{ms[impl][mode]:11.3f}", f"{xps:7.2f}", f"{ms['loop:' + impl][mode]:10.3f}",
                      f"{row[f'{mode} loop speedup']:9.2f}"]
        lines.append(f"  {impl:<16}" + "".join(cells))
    if "mamlp" in ms:
        r = rat["nps vs mamlp"]
        lines.append(f"  {'MultiAgentMLP':<16}{ms['mamlp']['fwd+bwd']:11.3f}   NPS/MAMLP {r['fwd+bwd NPS/MAMLP']:.2f}"
                     f"{'':>9}{ms['mamlp']['fwd']:10.3f}   NPS/MAMLP {r['fwd NPS/MAMLP']:.2f}")
    if "merged vs nps" in rat:
        r = rat["merged vs nps"]
        lines.append(f"  {'ps_lora merged':<16}{'-':>11}{'':>36}{ms['ps_lora_merged']['fwd']:10.3f}"
                     f"   merged/NPS {r['fwd merged/NPS']:.2f}  merged/unmerged {r['fwd merged/unmerged']:.2f}")
    return lines


def _ms(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.3g}"


def markdown(report: dict) -> str:
    """Compact markdown tables (one row per configuration) for docs/benchmarks-strategies.md."""
    results = report["results"]
    names = [s for s in report["strategies"]]
    others = [s for s in names if s != "ps"]
    out = []
    for mode in MODES:
        out.append(f"\n**{mode}: PS time (ms) and each strategy's time as a multiple of PS**\n")
        head = ["N", "B", "h", "PS ms"] + others + ["MAMLP ms", "NPS/MAMLP"]
        if mode == "fwd":
            head += ["merged LoRA / NPS"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for c in results:
            ms = c["ms"]
            row = [str(c["n_agents"]), str(c["batch"]), str(c["hidden"]), _ms(ms['ps'][mode])]
            row += [f"{ms[s][mode] / ms['ps'][mode]:.2f}" for s in others]
            if "mamlp" in ms:
                row += [_ms(ms['mamlp'][mode]), f"{ms['nps'][mode] / ms['mamlp'][mode]:.2f}"]
            if mode == "fwd" and "ps_lora_merged" in ms and "nps" in ms:
                row += [f"{ms['ps_lora_merged']['fwd'] / ms['nps']['fwd']:.2f}"]
            out.append("| " + " | ".join(row) + " |")
        out.append(f"\n**{mode}: speedup over the per-agent Python loop (loop time / batched time)**\n")
        head = ["N", "B", "h"] + names
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for c in results:
            ms = c["ms"]
            row = [str(c["n_agents"]), str(c["batch"]), str(c["hidden"])]
            row += [f"{ms['loop:' + s][mode] / ms[s][mode]:.2f}" for s in names]
            out.append("| " + " | ".join(row) + " |")
    out.append("\n**Absolute times (ms, median): batched / loop**\n")
    head = ["N", "B", "h", "mode"] + names
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for c in results:
        for mode in MODES:
            ms = c["ms"]
            row = [str(c["n_agents"]), str(c["batch"]), str(c["hidden"]), mode]
            row += [f"{_ms(ms[s][mode])} / {_ms(ms['loop:' + s][mode])}" for s in names]
            out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def print_report(report: dict) -> None:
    print(report["header"])
    for cfg in report["results"]:
        print()
        print("\n".join(format_table(cfg)))
    print("\nTargets (issue 2, item 7; issue 13, item 5):")
    print("\n".join(format_targets(report["targets"])))


# --- main ----------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.bench_strategies", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", type=int, nargs="+", default=[2, 8, 32, 128])
    p.add_argument("--batch", type=int, nargs="+", default=[64, 1024], help="per-agent batch size")
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 256], help="width h of hidden=(h, h)")
    p.add_argument("--repeats", type=int, default=15, help="repeats per configuration (median over them)")
    p.add_argument("--min-repeats", type=int, default=3, help="floor when --budget cuts repeats")
    p.add_argument("--budget", type=float, default=40.0,
                   help="seconds of timed work per configuration; repeats are cut to fit (large configs)")
    p.add_argument("--min-time", type=float, default=0.02,
                   help="seconds per measurement; calls per measurement are calibrated to reach it")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls per item before calibration")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="which medians the tables and targets use (the JSON has both): wall-clock, or "
                        "CPU time of this process (immune to waiting for a core on a shared machine; "
                        "meaningful with --threads 1)")
    # every registered strategy: LOOP_REFERENCES (tools/bench_loops.py) picks each network's loop reference
    # from its layer types, and a network it has no reference for stops the benchmark naming its layers
    timed = [name for name in STRATEGIES if name in LOOP_REFERENCES]
    p.add_argument("--strategies", nargs="+", default=timed, choices=timed)
    p.add_argument("--out", default="outputs/bench_strategies.json")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: N=2 8, B=64, h=64, 3 repeats, and check every loop reference's outputs")
    p.add_argument("--check", action="store_true", help="check equivalences before timing (implied by --quick)")
    p.add_argument("--report", metavar="JSON", help="print the report of an earlier run instead of running")
    p.add_argument("--markdown", action="store_true", help="with --report: print markdown tables")
    args = p.parse_args(argv)
    if args.quick:
        args.agents, args.batch, args.hidden = [2, 8], [64], [64]
        args.repeats, args.min_repeats, args.min_time, args.warmup, args.check = 3, 3, 0.005, 2, True
        if args.out == p.get_default("out"):
            args.out = "outputs/bench_strategies_quick.json"
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.report:
        report = json.loads(Path(args.report).read_text())
        if args.clock != report.get("clock", "wall"):  # re-read the other clock's medians
            for cfg in report["results"]:
                cfg[f"ms_{report['clock']}"], cfg["ms"] = cfg["ms"], cfg.pop(f"ms_{args.clock}")
            report["header"] = report["header"].replace(f"clock={report['clock']}", f"clock={args.clock}")
            report["clock"] = args.clock
        report["targets"] = evaluate_targets(report["results"])
        if args.markdown:
            print(markdown(report))
            print()
            print("\n".join("- " + line for line in format_targets(report["targets"])))
        else:
            print_report(report)
        return report
    if "ps" not in args.strategies:
        args.strategies = ["ps"] + args.strategies  # every ratio is against PS
    torch.set_num_threads(args.threads)
    import torchrl

    malloc_env = "".join(f", {k}={v}" for k, v in sorted(os.environ.items()) if k.startswith(("MALLOC_", "GLIBC_TUN", "LD_PRELOAD")))
    header = (f"bench_strategies: torch {torch.__version__}, torchrl {torchrl.__version__}, "
              f"python {platform.python_version()}, {platform.machine()} CPU, os.cpu_count()={os.cpu_count()}, "
              f"torch threads={torch.get_num_threads()}, clock={args.clock}{malloc_env}\n"
              f"in_features={IN_FEATURES}, out_features={OUT_FEATURES}, hidden=(h, h), per-agent batch B "
              f"(input [B, N, {IN_FEATURES}]), clusters K=max(1, N//4) round-robin; "
              f"median of repeats, interleaved; times in ms per call\n"
              f"x PS = time / PS time; loop/us = per-agent-loop time / batched time (speedup)")
    print(header, flush=True)
    results, t0 = [], time.perf_counter()
    for hidden in args.hidden:
        for batch in args.batch:
            for n_agents in args.agents:
                cfg = run_config(args.strategies, n_agents, batch, hidden, args, verify=args.check)
                if cfg["checks"]:
                    print(f"\nequivalence checks, N={n_agents} B={batch} h={hidden}:")
                    print("\n".join(cfg["checks"]))
                print()
                print("\n".join(format_table(cfg)), flush=True)
                results.append(cfg)
                gc.collect()
    targets = evaluate_targets(results)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s\n\nTargets (issue 2, item 7; issue 13, item 5):")
    print("\n".join(format_targets(targets)))
    report = dict(header=header, argv=sys.argv[1:], threads=torch.get_num_threads(), clock=args.clock,
                  torch=torch.__version__, torchrl=torchrl.__version__, in_features=IN_FEATURES,
                  out_features=OUT_FEATURES, strategies=args.strategies, results=results, targets=targets,
                  total_seconds=round(time.perf_counter() - t0, 1))
    print(f"\nwrote {write_json(args.out, report, indent=1)}")
    return report


if __name__ == "__main__":
    main()
