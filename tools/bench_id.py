"""The appended agent id as a per-agent bias: does PS's cost still grow with the number of agents?

    python -m tools.bench_id                                   # N = 4 8 16 32 64, 64 rows per agent
    python -m tools.bench_id --agents 4 64 --batch 256 --out outputs/bench_id.json

PS appends each agent's one-hot id to its observation. Its input layer computes that as
``W_x x + W_id[:, i]`` (:meth:`components.layers.SharedLinear.forward_with_id`): the same function and
parameters as ``W [x, e_i]``, with no ``[*, N, d + N]`` input. For each N, in one process, items
interleaved, medians over repeats (``tools.bench_timing``), fwd+bwd
(``zero_grad; y.sum().backward()``) of

- ``bias``: PS as built (``make_strategy("ps").make_network``, input ``[B, N, 32]``, ``hidden=(h, h)``,
  8 outputs);
- ``onehot``: the same network and parameters with the id appended and fed through the full
  ``F.linear`` (:meth:`components.layers.AgentLinear.forward_with_id`, the reference path);
- ``no_id``: PS without the id (``append_id=False``): the floor the id adds to;

each for the input layer alone and for the whole actor. Reported: ms per call, ns per agent-row
(time / (B N)), and each id path over ``no_id``. Target (issue 13): with the id as a bias, what the
id adds to PS's input layer and actor does not grow with N: ``bias / no_id`` within 10% from the
smallest to the largest N (the appended one-hot's ratio grows with N). The per-agent-row cost is
reported too; at small N and B it is dominated by per-call overhead, not by the id.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from marlshare.components.layers import AgentLinear
from marlshare.components.strategies import make_strategy
from tools.bench_timing import measure
from tools.reports import write_json

IN_FEATURES, OUT_FEATURES = 32, 8
PATHS = ("bias", "onehot", "no_id")


class OneHotInput(nn.Module):
    """A PS network run with its id appended to the input (``AgentLinear.forward_with_id``: builds
    ``[x, one-hot]``), sharing the network's parameters."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        h = AgentLinear.forward_with_id(self.net.trunk[0], x)
        for module in list(self.net.trunk)[1:]:
            h = module(h)
        return self.net.head(h)


def _step(fn, params):
    def step():
        for p in params:
            p.grad = None
        fn().sum().backward()
    return step


def items_for(n_agents: int, batch: int, hidden: int) -> dict:
    torch.manual_seed(0)
    with_id = make_strategy("ps").make_network(n_agents, IN_FEATURES, OUT_FEATURES, hidden=(hidden, hidden))
    no_id = make_strategy("ps", append_id=False).make_network(n_agents, IN_FEATURES, OUT_FEATURES,
                                                              hidden=(hidden, hidden))
    x = torch.randn(batch, n_agents, IN_FEATURES)
    first, first_no_id = with_id.trunk[0], no_id.trunk[0]
    onehot = OneHotInput(with_id)
    p_id, p_no = list(with_id.parameters()), list(no_id.parameters())
    return {
        ("layer", "bias"): _step(lambda: first.forward_with_id(x), list(first.parameters())),
        ("layer", "onehot"): _step(lambda: AgentLinear.forward_with_id(first, x), list(first.parameters())),
        ("layer", "no_id"): _step(lambda: first_no_id(x), list(first_no_id.parameters())),
        ("actor", "bias"): _step(lambda: with_id(x), p_id),
        ("actor", "onehot"): _step(lambda: onehot(x), p_id),
        ("actor", "no_id"): _step(lambda: no_id(x), p_no),
    }


def run(agents, batch, hidden, repeats=15, min_time=0.02, budget=20.0, clock="cpu") -> dict:
    results = []
    for n in agents:
        wall, cpu, n_rep = measure(items_for(n, batch, hidden), repeats, 3, min_time, budget, warmup=3)
        sec = cpu if clock == "cpu" else wall
        row = dict(n_agents=n, batch=batch, hidden=hidden, repeats=n_rep,
                   ms={f"{part} {path}": 1e3 * sec[(part, path)] for part in ("layer", "actor") for path in PATHS})
        results.append(row)
        print(format_row(row), flush=True)
    return dict(batch=batch, hidden=hidden, clock=clock, results=results, targets=targets(results))


def format_row(row: dict) -> str:
    ms, rows = row["ms"], row["n_agents"] * row["batch"]
    cells = []
    for part in ("layer", "actor"):
        cells.append(f"{part}: bias {ms[part + ' bias']:.3f} ms ({1e6 * ms[part + ' bias'] / rows:.1f} ns/row), "
                     f"bias/no_id {ms[part + ' bias'] / ms[part + ' no_id']:.2f}, "
                     f"onehot/no_id {ms[part + ' onehot'] / ms[part + ' no_id']:.2f}")
    return f"N={row['n_agents']:3d}  " + " | ".join(cells)


def targets(results: list[dict]) -> list[dict]:
    """Issue 13: the id's cost does not grow with N. Measured as the growth over N of what the id adds
    (``bias / no_id`` at its largest over its smallest N; ``onehot`` for contrast), plus the
    per-agent-row cost of the bias form (max / min over N; per-call overhead weighs on small N)."""
    out = []
    for part in ("layer", "actor"):
        for path in ("bias", "onehot"):
            ratio = {r["n_agents"]: r["ms"][f"{part} {path}"] / r["ms"][f"{part} no_id"] for r in results}
            growth = max(ratio.values()) / min(ratio.values())
            target = path == "bias"
            out.append(dict(target=f"PS {part}, id {'as a bias' if target else 'appended one-hot (reference)'}: "
                                   f"cost over no id, max/min over N",
                            value=growth, limit=1.10 if target else None, passed=growth <= 1.10 if target else None))
        per_row = {r["n_agents"]: r["ms"][f"{part} bias"] / (r["n_agents"] * r["batch"]) for r in results}
        out.append(dict(target=f"PS {part}, id as a bias: cost per agent-row, max/min over N (informative)",
                        value=max(per_row.values()) / min(per_row.values()), limit=None, passed=None))
    return out


def markdown(report: dict) -> str:
    lines = ["| N | rows | layer: bias ms | ns/row | bias / no id | one-hot / no id | actor: bias ms | ns/row "
             "| bias / no id | one-hot / no id |", "|" + "---|" * 10]
    for r in report["results"]:
        ms, rows = r["ms"], r["n_agents"] * r["batch"]
        cells = [str(r["n_agents"]), str(rows)]
        for part in ("layer", "actor"):
            b = ms[f"{part} bias"]
            cells += [f"{b:.3f}", f"{1e6 * b / rows:.1f}", f"{b / ms[f'{part} no_id']:.2f}",
                      f"{ms[f'{part} onehot'] / ms[f'{part} no_id']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for t in report["targets"]:
        verdict = "" if t["passed"] is None else ("PASS " if t["passed"] else "MISS ")
        limit = "" if t["limit"] is None else f" (limit {t['limit']})"
        lines.append(f"- {verdict}{t['target']}: {t['value']:.2f}{limit}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m tools.bench_id", description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    p.add_argument("--batch", type=int, default=64, help="rows per agent")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--budget", type=float, default=20.0, help="seconds of timed work per N")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    p.add_argument("--out", default="outputs/bench_id.json")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"bench_id: torch {torch.__version__}, threads={torch.get_num_threads()}, clock={args.clock}, "
          f"{args.batch} rows per agent, hidden=({args.hidden}, {args.hidden}), input [B, N, {IN_FEATURES}]")
    report = run(args.agents, args.batch, args.hidden, args.repeats, budget=args.budget, clock=args.clock)
    report["argv"] = sys.argv[1:] if argv is None else list(argv)
    print(markdown(report))
    print(f"wrote {write_json(args.out, report, indent=1)}")
    return report


if __name__ == "__main__":
    main()
