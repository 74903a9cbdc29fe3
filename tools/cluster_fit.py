"""How well the SePS fit recovers known agent roles: ``python -m tools.cluster_fit ENV --types ...``
for one env, or ``python -m tools.cluster_fit --benchmark`` for the cluster-recovery table.

For each seed: collect ``--frames`` frames with a freshly initialised shared (PS) policy, the data a
single-phase SePS run fits on; train the identity VAE once; cluster with k-means under every K rule
of :data:`components.clustering.SELECTIONS` (and with the true K given, the ceiling of what the codes
allow); report the adjusted Rand index (scikit-learn) between each rule's clusters and the true roles.

``--fit-ignore`` drops observation features from the fit (the strategies' ``fit_ignore`` setting);
``--hide-unit-types`` (SMAX only) drops every unit-type bit (the agent's own type and those of the
units it sees), which otherwise tell the decoder each agent's role and leave the identity code
nothing to encode.

The benchmark (no training; docs/evidence.md, "Cluster recovery") runs the tasks of :data:`TASKS`:
BPS groupings, SMAX 3s5z with the unit-type bits dropped, and a hidden-types toy (agents of 3 types
that differ only in how far an action moves them and how much their distance to the origin costs,
the idea of the test suite's ``hidden/`` env, generated here as transitions under random actions).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

#: benchmark tasks: name -> (env name or "toy", env options, true role of every agent, fit_ignore spec)
TASKS = {
    "bps 3-3-3": ("vmas/bps", {"groups": [3, 3, 3], "max_steps": 50}, [0] * 3 + [1] * 3 + [2] * 3, None),
    "bps 5-5-5": ("vmas/bps", {"groups": [5, 5, 5], "max_steps": 50}, [0] * 5 + [1] * 5 + [2] * 5, None),
    "bps 3-3-3-12-9": ("vmas/bps", {"groups": [3, 3, 3, 12, 9], "max_steps": 50},
                       [0] * 3 + [1] * 3 + [2] * 3 + [3] * 12 + [4] * 9, None),
    "smax 3s5z (unit types dropped)": ("smax/3s5z", {}, [0, 0, 0, 1, 1, 1, 1, 1], "unit_type"),
    "hidden types 6": ("toy", {}, [0, 1, 2, 0, 1, 2], None),
}
TOY_GAIN, TOY_SCALE = np.array([0.05, 0.4, -0.25]), np.array([1.0, 0.2, 2.0])  # per type, as the test env


def smax_unit_type_features(task: str) -> list[int]:
    """Indices of the unit-type bits in a SMAX observation (JaxMARL's unit-list layout): the value to
    give SePS / AdaPS's ``fit_ignore`` to hide the unit types from the fit on ``smax/<task>``."""
    from jaxmarl.environments.smax import SMAX, map_name_to_scenario

    env = SMAX(scenario=map_name_to_scenario(task))
    unit, own = list(env.unit_features), list(env.own_features)
    sections = (env.obs_size - len(own)) // len(unit)
    names = unit * sections + own
    if len(names) != env.obs_size:
        raise RuntimeError(f"unexpected SMAX observation layout: {len(names)} names for {env.obs_size} features")
    return [i for i, name in enumerate(names) if "unit_type" in name]


def policy_transitions(env_name: str, seed: int, frames: int, num_envs: int, options: dict):
    """``(obs, action, next_obs, reward)`` ``[M, N, *]`` of a fresh PS policy on ``env_name``."""
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    from marlshare.components.algorithms import make_actor
    from marlshare.components.clustering import agent_transitions
    from marlshare.components.strategies import make_strategy
    from marlshare.envs import env_info, make_env

    env = make_env(env_name, num_envs=num_envs, seed=seed, **options)
    info = env_info(env)
    torch.manual_seed(seed)
    net = make_strategy("ps").make_network(info.n_agents, info.obs_dim, info.action_dim, hidden=(64, 64),
                                           head="linear" if info.discrete else "normal")
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        rollout = env.rollout(-(-frames // num_envs), make_actor(net, info), break_when_any_done=False)
    env.close()
    return agent_transitions(rollout, info.discrete, info.action_dim)


def toy_transitions(types, seed: int, frames: int, episode: int = 20):
    """Hidden-types transitions: positions restart uniform in ``[-1, 1]^2`` every ``episode`` steps,
    actions uniform in ``[-1, 1]^2``; ``p' = p + gain[t] a``, ``r = -scale[t] |p'|^2``."""
    rng = np.random.default_rng(seed)
    t = np.asarray(types)
    obs, act, nxt, rew = [], [], [], []
    pos = None
    for step in range(frames):
        if step % episode == 0:
            pos = rng.uniform(-1, 1, (len(t), 2))
        a = rng.uniform(-1, 1, (len(t), 2))
        new = pos + TOY_GAIN[t][:, None] * a
        obs.append(pos), act.append(a), nxt.append(new), rew.append(-TOY_SCALE[t][:, None] * (new**2).sum(-1, keepdims=True))
        pos = new
    return tuple(torch.tensor(np.stack(x), dtype=torch.float32) for x in (obs, act, nxt, rew))


def resolve_ignore(spec, env_name: str):
    """``"unit_type"`` -> SMAX's unit-type indices; anything else goes to ``fit_ignore`` as it is."""
    if spec == "unit_type":
        return smax_unit_type_features(env_name.split("/", 1)[1])
    return spec


def fit_all_rules(data, types, seed: int, vae_epochs: int, ignore=None) -> dict:
    """Train the identity VAE once; every K rule's (and the true K's) clusters, K and ARI."""
    from sklearn.metrics import adjusted_rand_score

    from marlshare.components.clustering import (SELECTIONS, VAESettings, canonical, choose_k, feature_indices,
                                                 kmeans_candidates, kmeans_clusters, train_identity_vae)

    obs, action, next_obs, reward = data
    drop = set(feature_indices(ignore, obs.shape[-1]))
    keep = [i for i in range(obs.shape[-1]) if i not in drop]
    start = time.perf_counter()
    latents, loss = train_identity_vae(obs[..., keep], action, next_obs[..., keep], reward,
                                       VAESettings(epochs=vae_epochs), seed)
    candidates = kmeans_candidates(latents, seed)
    rules = {}
    for rule in SELECTIONS:
        k, scores = choose_k(latents, candidates, rule) if candidates else (1, {})
        labels = canonical(candidates[k]) if candidates else [0] * len(types)
        rules[rule] = {"k": k, "clusters": labels, "ari": round(float(adjusted_rand_score(types, labels)), 4),
                       "scores": {str(kk): round(v, 4) for kk, v in scores.items()}}
    labels, _, _ = kmeans_clusters(latents, k=max(types) + 1, seed=seed)
    rules["true K given"] = {"k": max(types) + 1, "clusters": labels,
                             "ari": round(float(adjusted_rand_score(types, labels)), 4)}
    return {"seed": seed, "vae_loss": round(loss, 6), "dropped": len(drop), "fit_s": round(time.perf_counter() - start, 1),
            "rules": rules}


def task_data(task: str, seed: int, frames: int, num_envs: int):
    env_name, options, types, ignore = TASKS[task]
    if env_name == "toy":
        return toy_transitions(types, seed, frames), types, None
    return policy_transitions(env_name, seed, frames, num_envs, options), types, resolve_ignore(ignore, env_name)


def benchmark(tasks, seeds, frames: int, num_envs: int, vae_epochs: int, out: Path | None) -> dict:
    results = json.loads(out.read_text()) if out and out.exists() else {}  # a rerun skips finished (task, seed)
    for task in tasks:
        for seed in seeds:
            if str(seed) in results.get(task, {}):
                continue
            data, types, ignore = task_data(task, seed, frames, num_envs)
            row = fit_all_rules(data, types, seed, vae_epochs, ignore)
            results.setdefault(task, {})[str(seed)] = row
            print(f"{task} seed {seed}: " + ", ".join(f"{r} K={v['k']} ARI={v['ari']:.2f}" for r, v in row["rules"].items())
                  + f" ({row['fit_s']} s)", flush=True)
            if out:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(results, indent=1))
    return results


def markdown_table(results: dict) -> str:
    """One row per task: every rule's mean ARI [min, max] and the K it chose per seed."""
    rules = list(next(iter(next(iter(results.values())).values()))["rules"])
    lines = ["| task | seeds | " + " | ".join(rules) + " |", "|---|---|" + "---|" * len(rules)]
    for task, rows in results.items():
        cells = []
        for rule in rules:
            aris = [r["rules"][rule]["ari"] for r in rows.values()]
            ks = ",".join(str(r["rules"][rule]["k"]) for r in rows.values())
            cells.append(f"{statistics.mean(aris):.2f} [{min(aris):.2f}, {max(aris):.2f}]; K={ks}")
        lines.append(f"| {task} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", nargs="?", help="one env (with --types); leave out with --benchmark")
    parser.add_argument("--types", help="true role of each agent, e.g. 0,0,0,1,1,1,1,1")
    parser.add_argument("--benchmark", action="store_true", help="every task of TASKS (or --tasks)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), help=f"benchmark tasks, of {list(TASKS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--frames", type=int, default=10_000, help="fit frames (the strategies' fit_frames default)")
    parser.add_argument("--num-envs", type=int, default=20)
    parser.add_argument("--vae-epochs", type=int, default=10)
    parser.add_argument("--fit-ignore", nargs="+", default=None, help="feature indices or start:stop ranges to drop")
    parser.add_argument("--hide-unit-types", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="JSON report (the benchmark resumes from it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.benchmark:
        unknown = sorted(set(args.tasks) - set(TASKS))
        if unknown:
            parser.error(f"unknown tasks {unknown}; valid tasks: {list(TASKS)}")
        results = benchmark(args.tasks, args.seeds, args.frames, args.num_envs, args.vae_epochs, args.out)
        print(markdown_table(results))
        return
    if not args.env or not args.types:
        parser.error("give ENV and --types, or --benchmark")
    if args.hide_unit_types and not args.env.startswith("smax/"):
        parser.error("--hide-unit-types is for smax/ maps")
    types = [int(t) for t in args.types.split(",")]
    ignore = [int(i) if i.lstrip("-").isdigit() else i for i in args.fit_ignore or []]
    ignore += smax_unit_type_features(args.env.split("/", 1)[1]) if args.hide_unit_types else []
    rows = []
    for seed in args.seeds:
        data = policy_transitions(args.env, seed, args.frames, args.num_envs, {})
        if data[0].shape[1] != len(types):
            parser.error(f"--types has {len(types)} entries for {data[0].shape[1]} agents")
        row = fit_all_rules(data, types, seed, args.vae_epochs, ignore)
        rows.append(row)
        print(f"seed {seed}: " + ", ".join(f"{r} K={v['k']} ARI={v['ari']:.2f}" for r, v in row["rules"].items()), flush=True)
    print(markdown_table({args.env: {str(r["seed"]): r for r in rows}}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
