"""Evaluating a finished run on more episodes, another seed or changed env settings (``marlshare eval``).

:func:`evaluate_run` rolls out the deterministic team (:func:`~marlshare.components.policy_io.load_policy`)
for ``episodes`` episodes, one per env copy, each cut at the run's episode cap, and reports:

- ``return``: each episode's return per agent (``("agents", "episode_reward")`` at its end, averaged
  over agents: the training curves' ``eval_return``), their mean, IQM and 95% stratified bootstrap
  intervals (rliable, through :func:`~marlshare.components.analysis.compare.interval_estimates`);
- ``win_rate`` where the env reports wins (SMAX, SMAC), with the same statistics;
- with ``per_agent=True``: each agent's mean return, and the agent x agent distance between the
  agents' action distributions on up to ``n_states`` visited states, every agent fed every
  observation (:func:`~marlshare.components.analysis.states.same_inputs`, the Wasserstein distances of
  :mod:`~marlshare.components.analysis.measures`).

The report is written to ``RUN/eval.json`` (atomically) unless ``out=False``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type

from marlshare.components.algorithms.keys import HIDDEN, MASK, OBS
from marlshare.components.evaluation import EPISODE_REWARD
from marlshare.components.policy_io import load_policy, load_run


def episode_results(rollout) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """From a rollout ``[E, T]`` run until every copy's first episode ended: per-agent returns ``[E, N]``,
    wins ``[E]`` (None without a ``win`` key) and the mask ``[E, T]`` of steps inside the first episode."""
    done = rollout.get(("next", "done")).reshape(rollout.shape).clone()
    done[:, -1] = True  # an episode still running at the cap counts as ended there
    first = done.float().argmax(dim=1)
    envs = torch.arange(done.shape[0])
    returns = rollout.get(("next",) + EPISODE_REWARD)[envs, first][..., 0]
    win = rollout.get(("next", "win"))[envs, first].reshape(-1).float() if ("next", "win") in rollout.keys(True) else None
    inside = torch.arange(done.shape[1])[None, :] <= first[:, None]
    return returns, win, inside


def summarise(scores, reps: int = 2000, seed: int = 0) -> dict:
    """Mean, IQM and their 95% bootstrap intervals of per-episode ``scores`` (one task, episodes as runs)."""
    from marlshare.components.analysis.compare import interval_estimates

    scores = np.asarray(scores, dtype=np.float64).reshape(-1, 1)
    points, intervals = interval_estimates({"eval": scores}, reps=reps, seed=seed)
    (iqm, mean), ci = points["eval"], intervals["eval"]
    return {"mean": float(mean), "mean_ci": [float(ci[0][1]), float(ci[1][1])], "iqm": float(iqm),
            "iqm_ci": [float(ci[0][0]), float(ci[1][0])], "std": float(scores.std()),
            "episodes": int(scores.shape[0])}


@torch.no_grad()
def action_distances(policy, rollout, inside, n_states: int = 256, seed: int = 0) -> np.ndarray:
    """``[N, N]``: mean distance between agents' action distributions on up to ``n_states`` states of the
    rollout (``inside`` its episodes), every agent given every visited observation."""
    from marlshare.components.analysis.measures import pairwise_wasserstein
    from marlshare.components.analysis.states import policy_outputs, same_inputs

    obs = rollout.get(OBS)[inside]  # [S, N, d]
    hidden = mask = None
    if policy.recurrent:  # the state the actor read at each step (zero where an episode started)
        hidden = (rollout.get(HIDDEN) * (~rollout.get("is_init")).unsqueeze(-1).to(torch.float32))[inside]
    if MASK in rollout.keys(True):
        mask = rollout.get(MASK)[inside]
    pick = torch.randperm(obs.shape[0], generator=torch.Generator().manual_seed(seed))[:n_states]
    obs, hidden, mask = same_inputs(obs[pick], None if hidden is None else hidden[pick],
                                    None if mask is None else mask[pick], "shared")
    out = policy_outputs(policy.net, obs, hidden)
    return pairwise_wasserstein(out, "discrete", mask)  # discrete actions: unordered labels (measures.py)


def write_json_atomic(obj, path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)
    return path


def evaluate_run(run_dir, episodes: int = 32, seed: int = 0, checkpoint: str = "best", merged: bool = False,
                 env_overrides: dict | None = None, per_agent: bool = False, video=None, video_episodes: int = 1,
                 video_size: int | None = None, n_states: int = 256, reps: int = 2000, out=True,
                 device: str = "cpu") -> dict:
    """Evaluate ``run_dir``'s team (module docstring); ``video``: also render ``video_episodes``
    episodes to that path (``.mp4`` / ``.gif``; True: ``RUN/videos/eval.mp4``). Returns the report."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    run = load_run(run_dir)
    if video:  # a family that cannot render says so before the evaluation runs
        from marlshare.components.video import check_renderable

        check_renderable(run.cfg.env.name)
    policy = load_policy(run_dir, checkpoint, merged=merged, device=device)
    env_cfg = run.env_config(env_overrides)
    max_steps = env_cfg.max_steps or run.cfg.env.eval_max_steps
    env = run.make_env(episodes, seed, device=device, overrides=env_overrides)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        env.set_seed(seed)
        rollout = env.rollout(max_steps, policy, break_when_any_done=False, break_when_all_done=True).cpu()
    env.close()
    returns, win, inside = episode_results(rollout)
    team = returns.mean(-1)
    report = {"run_dir": str(run.run_dir), "env": env_cfg.name, "env_overrides": dict(env_overrides or {}),
              "checkpoint": policy.checkpoint, "merged": merged, "seed": seed, "max_steps": max_steps,
              "strategy": (run.summary or {}).get("final_strategy", run.cfg.strategy.get("name")),
              "return": summarise(team.numpy(), reps, seed), "episode_returns": team.tolist(),
              "win_rate": None if win is None else summarise(win.numpy(), reps, seed)}
    if per_agent:
        report["per_agent_return"] = returns.mean(0).tolist()
        report["shared_reward"] = bool(torch.allclose(returns, returns[:, :1].expand_as(returns)))
        report["action_distance"] = action_distances(policy, rollout, inside, n_states, seed).tolist()
        report["action_distance_metric"] = ("2-Wasserstein of the Gaussians (before tanh)" if not policy.info.discrete
                                            else "total variation (W1 under the 0-1 cost)")
    if video:
        from marlshare.components.video import record_episodes

        path = Path(run.run_dir) / "videos" / "eval.mp4" if video is True else Path(video)
        path, frames = record_episodes(run, policy, path, video_episodes, seed, env_overrides, size=video_size)
        report["video"], report["video_frames"] = str(path), frames
    if out:
        write_json_atomic(report, Path(run.run_dir) / "eval.json" if out is True else Path(out))
    return report


def format_report(report: dict) -> str:
    """The lines ``marlshare eval`` prints."""
    r = report["return"]
    lines = [f"{report['env']}  {report['strategy']}  checkpoint {Path(report['checkpoint']).name}"
             f"{'  merged' if report['merged'] else ''}  seed {report['seed']}  {r['episodes']} episodes",
             f"return per agent: mean {r['mean']:.4g} [{r['mean_ci'][0]:.4g}, {r['mean_ci'][1]:.4g}]  "
             f"IQM {r['iqm']:.4g} [{r['iqm_ci'][0]:.4g}, {r['iqm_ci'][1]:.4g}]  (95% bootstrap CIs)"]
    if report["win_rate"] is not None:
        w = report["win_rate"]
        lines.append(f"win rate: {w['mean']:.3f} [{w['mean_ci'][0]:.3f}, {w['mean_ci'][1]:.3f}]")
    if "per_agent_return" in report:
        lines.append("per-agent return: " + "  ".join(f"{x:.4g}" for x in report["per_agent_return"])
                     + ("  (one shared team reward)" if report["shared_reward"] else ""))
        lines.append(f"action distance between agents ({report['action_distance_metric']}):")
        lines += ["  " + "  ".join(f"{x:6.3f}" for x in row) for row in report["action_distance"]]
    if "video" in report:
        lines.append(f"video: {report['video']} ({report['video_frames']} frames)")
    return "\n".join(lines)
