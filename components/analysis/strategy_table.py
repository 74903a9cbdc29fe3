"""Parameter table of every strategy: ``marlshare strategies --agents 8 --obs 18 --actions 2``.

For one network shape, prints total / shared / per-cluster / per-agent / trainable parameters of
each strategy (those that declare ``needs_clusters`` get ``--clusters`` clusters assigned round-robin).
"""

from __future__ import annotations

import argparse

from marlshare.components.strategies import STRATEGIES, make_strategy
from marlshare.components.networks import count_parameters


def table(n_agents=8, obs=18, actions=2, hidden=(64, 64), clusters=2, recurrent=False) -> list[dict]:
    rows = []
    for name, cls in STRATEGIES.items():
        hp = {"clusters": [i % clusters for i in range(n_agents)]} if cls.needs_clusters else {}
        net = make_strategy(name, **hp).make_network(n_agents, obs, actions, hidden=hidden, head="normal",
                                                     recurrent=recurrent)
        rows.append({"strategy": name, **count_parameters(net), "agent_specific": cls.agent_specific})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="marlshare strategies", description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=8, help="number of agents N (default 8)")
    parser.add_argument("--obs", type=int, default=18, help="observation size per agent (default 18)")
    parser.add_argument("--actions", type=int, default=2,
                        help="action size: continuous dimensions or discrete choices (default 2)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64], metavar="WIDTH",
                        help="hidden layer widths, as algorithm.network.actor_hidden (default 64 64)")
    parser.add_argument("--clusters", type=int, default=2,
                        help="clusters for the strategies that need them (seps, seps_lora, adaps...), agents "
                             "assigned round-robin (default 2)")
    parser.add_argument("--recurrent", action="store_true", help="the GRU actor (algorithm.network.recurrent=true)")
    args = parser.parse_args(argv)
    if args.agents < 1 or not 1 <= args.clusters <= args.agents:
        parser.error(f"--clusters={args.clusters} must be in [1, --agents={args.agents}] (and --agents >= 1)")
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{args.agents} agents, obs {args.obs}, actions {args.actions}, hidden {tuple(args.hidden)}"
              + (", GRU" if args.recurrent else ""))
    for col in ("strategy", "total", "shared", "clustered", "per_agent", "trainable", "agent-specific"):
        t.add_column(col, justify="left" if col in ("strategy", "agent-specific") else "right")
    for r in table(args.agents, args.obs, args.actions, tuple(args.hidden), args.clusters, args.recurrent):
        t.add_row(r["strategy"], *(f"{r[k]:,}" for k in ("total", "shared", "clustered", "per_agent", "trainable")),
                  r["agent_specific"])
    Console(width=200).print(t)


if __name__ == "__main__":
    main()
