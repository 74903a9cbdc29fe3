"""How well the SePS fit recovers known agent roles: ``python -m tools.cluster_fit ENV --types ...``.

For each seed: collect ``--frames`` frames with a freshly initialised shared (PS) policy, the data a
single-phase SePS run fits on; train the identity VAE; cluster with k-means (K given or chosen by
``--selection``); report the adjusted Rand index (scikit-learn) between the clusters and ``--types``.

``--hide-unit-types`` (SMAX only) zeroes every unit-type bit of the observation before the fit (the
agent's own type and those of the units it sees): a diagnostic of whether the observation already
tells the decoder each agent's role, which leaves the identity code nothing to encode.

Example (docs/results.md)::

    python -m tools.cluster_fit smax/3s5z --types 0,0,0,1,1,1,1,1 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch


def smax_unit_type_features(task: str) -> list[int]:
    """Indices of the unit-type bits in a SMAX observation (JaxMARL's unit-list layout)."""
    from jaxmarl.environments.smax import SMAX, map_name_to_scenario

    env = SMAX(scenario=map_name_to_scenario(task))
    unit, own = list(env.unit_features), list(env.own_features)
    sections = (env.obs_size - len(own)) // len(unit)
    names = unit * sections + own
    if len(names) != env.obs_size:
        raise RuntimeError(f"unexpected SMAX observation layout: {len(names)} names for {env.obs_size} features")
    return [i for i, name in enumerate(names) if "unit_type" in name]


def fit_once(env_name: str, seed: int, frames: int, num_envs: int, k, selection: str, vae_epochs: int,
             hide: list[int], options: dict) -> dict:
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    from marlshare.components.algorithms import make_actor
    from marlshare.components.clustering import VAESettings, agent_transitions, fit_clusters
    from marlshare.components.strategies import make_strategy
    from marlshare.envs import env_info, make_env

    env = make_env(env_name, num_envs=num_envs, seed=seed, **options)
    info = env_info(env)
    torch.manual_seed(seed)
    net = make_strategy("ps").make_network(info.n_agents, info.obs_dim, info.action_dim, hidden=(64, 64),
                                           head="linear" if info.discrete else "normal")
    actor = make_actor(net, info)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        rollout = env.rollout(-(-frames // num_envs), actor, break_when_any_done=False)
    env.close()
    obs, action, next_obs, reward = agent_transitions(rollout, info.discrete, info.action_dim)
    if hide:
        obs, next_obs = obs.clone(), next_obs.clone()
        obs[..., hide] = 0.0
        next_obs[..., hide] = 0.0
    fit = fit_clusters(obs, action, next_obs, reward, k=k, settings=VAESettings(epochs=vae_epochs), seed=seed,
                       selection=selection)
    return {"seed": seed, **fit.report(), "frames": int(rollout.numel())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env")
    parser.add_argument("--types", required=True, help="true role of each agent, e.g. 0,0,0,1,1,1,1,1")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--frames", type=int, default=10_000, help="fit frames (the strategies' fit_frames default)")
    parser.add_argument("--num-envs", type=int, default=20)
    parser.add_argument("--n-clusters", type=int, default=None)
    parser.add_argument("--selection", default="davies_bouldin", choices=["davies_bouldin", "silhouette"])
    parser.add_argument("--vae-epochs", type=int, default=10)
    parser.add_argument("--hide-unit-types", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="JSON report")
    args = parser.parse_args(argv)
    from sklearn.metrics import adjusted_rand_score

    types = [int(t) for t in args.types.split(",")]
    hide = smax_unit_type_features(args.env.split("/", 1)[1]) if args.hide_unit_types else []
    if args.hide_unit_types and not args.env.startswith("smax/"):
        parser.error("--hide-unit-types is for smax/ maps")
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        row = fit_once(args.env, seed, args.frames, args.num_envs, args.n_clusters, args.selection, args.vae_epochs,
                       hide, {})
        if len(row["clusters"]) != len(types):
            parser.error(f"--types has {len(types)} entries for {len(row['clusters'])} agents")
        row["ari"] = round(float(adjusted_rand_score(types, row["clusters"])), 4)
        rows.append(row)
        print(f"seed {seed}: K={row['k']} clusters={row['clusters']} ARI={row['ari']:.3f} "
              f"scores={row['scores']} VAE loss={row['vae_loss']:.4g}", flush=True)
    aris = [r["ari"] for r in rows]
    print(f"{args.env}: ARI mean {statistics.mean(aris):.3f}, median {statistics.median(aris):.3f}, "
          f"min {min(aris):.3f}, max {max(aris):.3f} over {len(aris)} seeds"
          + (" (unit-type bits hidden)" if hide else ""))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
