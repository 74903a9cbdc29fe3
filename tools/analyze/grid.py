"""The results grid, shared by running it (:mod:`tools.analyze.results`) and reporting it
(:mod:`tools.analyze.report`): a definition's trials, their run directories, and whether a run is done.

A module of its own so that the two import it and not each other.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def load_definition(path: str | Path) -> dict:
    spec = yaml.safe_load(Path(path).read_text())
    missing = {"name", "overrides", "seeds", "configs"} - set(spec)
    if missing:
        raise ValueError(f"{path}: a results definition needs the keys {sorted(missing)}")
    return spec


def run_dir(out: Path, spec: dict, config: str, seed: int) -> Path:
    return out / spec["name"] / config / f"seed-{seed}"


def trials(spec: dict, out: Path):
    for config, overrides in spec["configs"].items():  # config-major: every config gets seeds early
        for seed in spec["seeds"]:
            yield config, seed, [*spec["overrides"], *overrides, f"seed={seed}",
                                 f"run_dir={run_dir(out, spec, config, seed)}"]


def finished(directory: Path, args: list[str]) -> bool:
    """Trained to the end with exactly these overrides (a run stopped early also writes a summary)."""
    try:
        summary = json.loads((directory / "summary.json").read_text())
        recorded = json.loads((directory / "results_args.json").read_text())
        total = yaml.safe_load((directory / "config.yaml").read_text())["total_frames"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return recorded == args and summary.get("frames", 0) >= total
