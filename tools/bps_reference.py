"""Scripted reference returns on Blind-Particle Spread: ``python -m tools.bps_reference [--groups 3 3 3]``.

Three policies, each a steering controller ``u = clip(KP * (target - p) - KD * v, -1, 1)`` on the true
state (read from the VMAS scenario, so they work with ``shuffle_obs`` too):

- ``still``: no action (every agent stays where it starts);
- ``blind``: the best identity-blind policy: every agent heads for the same point, the geometric median
  of the landmarks weighted by group size (what minimises an agent's expected distance when it does
  not know its group: it is in group g with probability ``n_g / N``). A shared policy without the
  agent id, or any policy that cannot tell the groups apart, cannot do better in expectation;
- ``oracle``: every agent heads for its own group's landmark (what a policy that knows the groups can
  reach; the upper reference).

A row is the mean episode return per agent (the number ``evaluate`` reports for a trained policy)
over ``--episodes`` episodes for each of ``--seeds``, with a 95% percentile bootstrap CI over the
episodes (scipy). ``--json`` writes the rows for result tables (``make evidence`` draws them as
horizontal lines).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from marlshare.envs import GROUP, make_env

KP, KD = 8.0, 1.0  # steering gains: near-best for both oracle and blind on a grid kp in {1..16}, kd in {0..2}
POLICIES = ("still", "blind", "oracle")


def weighted_median(points: torch.Tensor, weights: torch.Tensor, iterations: int = 100) -> torch.Tensor:
    """Weiszfeld's geometric median of ``points [B, L, 2]`` with ``weights [L]``: ``[B, 2]``."""
    estimate = (points * weights[None, :, None]).sum(1) / weights.sum()
    for _ in range(iterations):
        distance = torch.linalg.vector_norm(points - estimate[:, None], dim=-1).clamp_min(1e-8)
        w = weights[None] / distance
        estimate = (points * w[..., None]).sum(1) / w.sum(1, keepdim=True)
    return estimate


def targets(scenario, policy: str) -> torch.Tensor | None:
    """``[B, N, 2]`` target position of every agent (None: stand still)."""
    if policy == "still":
        return None
    landmarks = scenario.landmark_positions()
    if policy == "oracle":
        return landmarks[:, scenario.group_of]
    if policy == "blind":
        sizes = torch.tensor(scenario.groups, dtype=landmarks.dtype, device=landmarks.device)
        centre = weighted_median(landmarks, sizes)
        return centre[:, None].expand(-1, len(scenario.group_of), -1)
    raise ValueError(f"unknown reference policy {policy!r}; valid policies: {list(POLICIES)}")


def scripted_policy(env, policy: str, kp: float = KP, kd: float = KD):
    """A TorchRL policy (TensorDict -> TensorDict with the agents' continuous actions) for ``env``
    (a ``vmas/bps`` env built with ``continuous_actions=True``)."""
    scenario = env._env.scenario
    if policy not in POLICIES:
        raise ValueError(f"unknown reference policy {policy!r}; valid policies: {list(POLICIES)}")

    def act(td):
        pos = torch.stack([a.state.pos for a in scenario.world.agents], dim=1)
        vel = torch.stack([a.state.vel for a in scenario.world.agents], dim=1)
        goal = targets(scenario, policy)
        action = torch.zeros_like(pos) if goal is None else (kp * (goal - pos) - kd * vel).clamp(-1.0, 1.0)
        td.set((GROUP, "action"), action)
        return td

    return act


def episode_returns(policy: str, groups, seed: int, episodes: int, max_steps: int = 50, shuffle_obs: bool = False,
                    kp: float = KP, kd: float = KD) -> np.ndarray:
    """``[episodes]`` mean return per agent of each episode (all episodes run side by side)."""
    env = make_env("vmas/bps", num_envs=episodes, seed=seed, max_steps=max_steps, groups=list(groups),
                   shuffle_obs=shuffle_obs)
    with torch.no_grad():
        rollout = env.rollout(max_steps, scripted_policy(env, policy, kp, kd), break_when_any_done=False)
    env.close()
    return rollout.get(("next", GROUP, "reward")).sum(dim=1).mean(dim=(-2, -1)).numpy()


def reference_table(groups, seeds, episodes: int = 20, max_steps: int = 50, shuffle_obs: bool = False) -> dict:
    """``{policy: {"mean", "low", "high", "n"}}`` over ``episodes x seeds`` episodes."""
    from scipy.stats import bootstrap

    rows = {}
    for policy in POLICIES:
        values = np.concatenate([episode_returns(policy, groups, s, episodes, max_steps, shuffle_obs) for s in seeds])
        ci = bootstrap((values,), np.mean, confidence_level=0.95, method="percentile",
                       random_state=0).confidence_interval
        rows[policy] = {"mean": float(values.mean()), "low": float(ci.low), "high": float(ci.high), "n": len(values)}
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[3, 3, 3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=50)
    parser.add_argument("--shuffle-obs", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = reference_table(args.groups, args.seeds, args.episodes, args.max_steps, args.shuffle_obs)
    print(f"vmas/bps groups={args.groups}{' shuffled' if args.shuffle_obs else ''}, {args.max_steps}-step episodes, "
          f"{args.episodes} episodes x seeds {args.seeds}: mean return per agent [95% bootstrap CI]")
    for policy, row in rows.items():
        print(f"  {policy:7s} {row['mean']:8.2f} [{row['low']:.2f}, {row['high']:.2f}]")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"groups": args.groups, "max_steps": args.max_steps, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
