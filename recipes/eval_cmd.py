"""``marlshare eval RUN`` and ``marlshare export RUN``: use a finished run's team from the command line.

    marlshare eval RUN [--episodes N] [--seed S] [--checkpoint best|last|PATH] [--merged]
                       [--env-override KEY=VALUE ...] [--per-agent] [--video [PATH]]
    marlshare export RUN --format exported-program|onnx|torchscript [--merged] [--checkpoint ...] [--out PATH]

The work is done by :mod:`marlshare.components.policy_eval`, :mod:`marlshare.components.video` and
:mod:`marlshare.components.export`; this module only reads arguments and prints.
"""

from __future__ import annotations

import argparse
import sys


def _overrides(pairs: list[str]) -> dict:
    from marlshare.recipes.cli import yaml_value

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"marlshare eval: --env-override takes KEY=VALUE (e.g. max_steps=200, n_agents=4), "
                             f"got {pair!r}")
        out[key] = yaml_value(value)
    return out


def eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="marlshare eval", description="Evaluate a trained run's deterministic team: "
                                "mean, IQM and 95%% bootstrap CIs of the return (and win rate); writes RUN/eval.json.")
    p.add_argument("run", help="a run directory (outputs/<env>/<strategy>/<date>_seed<k>)")
    p.add_argument("--episodes", type=int, default=32, help="episodes, one per env copy (default 32)")
    p.add_argument("--seed", type=int, default=0, help="env seed of the evaluation (default 0)")
    p.add_argument("--checkpoint", default="best", help="best (falls back to last), last, or a .pt path")
    p.add_argument("--merged", action="store_true", help="fold LoRA adapters into per-agent weights first")
    p.add_argument("--env-override", nargs="+", default=[], metavar="KEY=VALUE",
                   help="env settings: max_steps=200, or env options such as n_agents=4")
    p.add_argument("--per-agent", action="store_true",
                   help="each agent's return and the agent x agent action-distance matrix")
    p.add_argument("--video", nargs="?", const=True, default=None, metavar="PATH",
                   help="also render episodes to PATH (.mp4 or .gif; default RUN/videos/eval.mp4)")
    p.add_argument("--video-episodes", type=int, default=1)
    p.add_argument("--video-size", type=int, default=None, help="pixels on the video's longer side")
    p.add_argument("--device", default="cpu")
    return p


def main(argv: list[str] | None = None) -> None:
    args = eval_parser().parse_args(argv)
    from marlshare.components.policy_eval import evaluate_run, format_report

    try:
        report = evaluate_run(args.run, args.episodes, args.seed, args.checkpoint, args.merged,
                              _overrides(args.env_override), args.per_agent, args.video, args.video_episodes,
                              args.video_size, device=args.device)
    except (FileNotFoundError, ValueError) as err:
        print(f"marlshare eval: {err}", file=sys.stderr)
        sys.exit(2)
    print(format_report(report))
    print(f"written: {args.run.rstrip('/')}/eval.json")


def export_parser() -> argparse.ArgumentParser:
    from marlshare.components.export import FORMATS

    p = argparse.ArgumentParser(prog="marlshare export", description="Write the run's deterministic team policy "
                                "as a file that loads without marlshare (signatures: components/export.py).")
    p.add_argument("run", help="a run directory")
    p.add_argument("--format", default="exported-program", choices=list(FORMATS))
    p.add_argument("--checkpoint", default="best", help="best (falls back to last), last, or a .pt path")
    p.add_argument("--merged", action="store_true", help="fold LoRA adapters into per-agent weights first")
    p.add_argument("--out", default=None, help="output file (default RUN/export/policy[_merged]<ext>)")
    return p


def export_main(argv: list[str] | None = None) -> None:
    args = export_parser().parse_args(argv)
    from pathlib import Path

    from marlshare.components.export import FORMATS, export_policy
    from marlshare.components.policy_io import load_policy

    try:
        policy = load_policy(args.run, args.checkpoint, merged=args.merged)
    except (FileNotFoundError, ValueError) as err:
        print(f"marlshare export: {err}", file=sys.stderr)
        sys.exit(2)
    out = Path(args.out or Path(args.run) / "export" / f"policy{'_merged' if args.merged else ''}{FORMATS[args.format]}")
    path = export_policy(policy, out, args.format)
    info = policy.info
    signature = "(observation [B, N, obs]" + (", hidden [B, N, H]" if policy.recurrent else "") + (
        ", action_mask [B, N, A]" if info.discrete and info.has_action_mask else "") + ") -> action" + (
        ", next hidden" if policy.recurrent else "")
    print(f"wrote {path} ({args.format}, {path.stat().st_size / 1024:.0f} KiB): {signature} with N={info.n_agents}, "
          f"obs={info.obs_dim}" + (f", H={policy.hidden_size}" if policy.recurrent else ""))
