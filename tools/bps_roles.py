"""Have a BPS team's agents learnt their hidden roles? ``python -m tools.bps_roles DIR ... [--checkpoint last]``

For every finished run under the ``DIR``s (run or sweep directories, as ``marlshare compare`` reads
them): ``marlshare eval``'s pairwise distances between the agents' action distributions, every agent
given the same observations visited in 8 deterministic evaluation episodes
(``components/policy_eval.action_distances``: the 2-Wasserstein distance of the Gaussians before
tanh), averaged over the pairs of agents of the same group and of different groups. On Blind-Particle
Spread an agent's group is not in its observation, so a team that acts on its roles has a ratio
across / within well above 1 (NPS, which has nothing shared); a team that cannot tell its agents apart
(PS without the id) has a ratio of 1, or acts as one (every distance 0). Printed per method (the method as compare labels it): the runs,
the mean within-group and across-group distance and the ratio, mean [min, max] over the runs.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np


def role_distances(run_dir, checkpoint: str = "last", episodes: int = 8) -> tuple[float, float]:
    """``(within-group, across-group)`` mean action distance of the BPS run at ``run_dir``."""
    from marlshare.components.policy_eval import evaluate_run
    from marlshare.components.policy_io import load_run

    run = load_run(run_dir)
    groups = list((run.cfg.env.options or {}).get("groups", [3, 3, 3]))
    group_of = np.array([g for g, size in enumerate(groups) for _ in range(size)])
    report = evaluate_run(run_dir, episodes=episodes, checkpoint=checkpoint, per_agent=True, out=False, reps=10)
    d = np.array(report["action_distance"])  # [N, N]
    same = (group_of[:, None] == group_of[None, :]) & ~np.eye(len(group_of), dtype=bool)
    return float(d[same].mean()), float(d[group_of[:, None] != group_of[None, :]].mean())


def ratio_text(pairs) -> tuple[float, str]:
    """``(sort key, "mean [min, max]" of across / within)`` over runs' ``(within, across)`` pairs."""
    within, across = np.array(pairs).T
    if (within > 0).all():
        ratio = across / within
        return ratio.mean(), f"{ratio.mean():.2f} [{ratio.min():.2f}, {ratio.max():.2f}]"
    # a group's agents act identically (one network per group, or per team): no ratio
    order = np.inf if (across > 0).all() else 0.0
    return order, "groups act as one (within = 0)" if order else "all agents act as one"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--checkpoint", default="last", help="last (the end of training) or best")
    parser.add_argument("--episodes", type=int, default=8)
    args = parser.parse_args(argv)
    import torch

    from marlshare.components.analysis.compare import load_runs

    torch.set_num_threads(1)
    by_method = defaultdict(list)
    for run in load_runs(args.paths):
        if run.task != "vmas/bps":
            raise SystemExit(f"{run.run_dir}: env {run.task!r}, not vmas/bps (the groups are BPS's option)")
        by_method[run.method].append(role_distances(run.run_dir, args.checkpoint, args.episodes))
    print("| method | runs | within group | across groups | across / within, mean [min, max] |")
    print("|---|---|---|---|---|")
    rows = []
    for method, pairs in by_method.items():
        within, across = np.array(pairs).T
        order, text = ratio_text(pairs)
        rows.append((order, f"| {method} | {len(pairs)} | {within.mean():.3f} | {across.mean():.3f} | {text} |"))
    for _, line in sorted(rows, reverse=True):
        print(line)
    return by_method


if __name__ == "__main__":
    main()
