"""The evidence suite's sweep specs (recipes/sweeps/evidence/<group>/*.yaml, run by ``make evidence``):
every registered strategy is in one of them, every trial of every spec composes, and the first trial
of each spec trains two iterations at tiny frame counts (one fast case; the rest are slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from marlshare.components.strategies import STRATEGIES
from marlshare.recipes.sweep_spec import SWEEPS_DIR, build_sweep, compose_trials, load_spec

SPECS = sorted((SWEEPS_DIR / "evidence").glob("*/*.yaml"))
TINY = ["env.num_envs=4", "env.eval_num_envs=2", "algorithm.frames_per_batch=100", "algorithm.minibatch_size=50",
        "algorithm.epochs=1", "total_frames=200", "eval_every=100", "checkpoint_every=100", "logger.wandb=false"]
FAST = "het_mass/two_phase.yaml"
# 10 seeds where the issue asks for them (het_mass varies a lot; the LoRASA claims' three cells); 5 elsewhere
TEN_SEEDS = {"het_mass": 10, "bps333_120k/baselines.yaml": 10, "bps333_120k/lora.yaml": 10}  # two agents and two phases: the cheapest spec that covers a switch


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_every_registered_strategy_is_in_the_bps_evidence():
    """A newly registered strategy fails here until it is added to an evidence spec (the lists are
    written out so that a spec is a fixed record of what ran)."""
    covered = set()
    for path in (SWEEPS_DIR / "evidence").glob("bps333_60k/*.yaml"):
        spec = yaml.safe_load(path.read_text())
        names = spec.get("axes", {}).get("strategy", [])
        two_phase = "two_phase" in spec.get("axes", {}).get("schedule", []) or "schedule=two_phase" in spec["overrides"]
        covered.update(STRATEGIES[n].successor if two_phase else n for n in names)
    assert set(STRATEGIES) <= covered, f"not in recipes/sweeps/evidence/bps333_60k: {sorted(set(STRATEGIES) - covered)}"


def test_specs_are_grouped_and_fix_their_budgets():
    groups = {p.parent.name for p in SPECS}
    assert {"bps333_60k", "bps333_120k", "bps555_60k", "het_mass"} <= groups
    for path in SPECS:
        sweep = build_sweep(load_spec(str(path)), [])
        seeds = sweep.axes["seed"]
        assert len(seeds) == TEN_SEEDS.get(_id(path), TEN_SEEDS.get(path.parent.name, 5)), _id(path)
        frames = {t.overrides[[o.split("=")[0] for o in t.overrides].index("total_frames")] for t in sweep.trials}
        assert len(frames) == 1, (_id(path), frames)  # one budget per group: compare never mixes budgets


@pytest.mark.slow
@pytest.mark.parametrize("path", SPECS, ids=_id)
def test_every_trial_composes(path):
    sweep = build_sweep(load_spec(str(path)), [])
    assert len(compose_trials(sweep)) == len(sweep.trials)


def _two_iterations(path: Path, tmp_path: Path):
    from marlshare.recipes.sweep import run_trial

    spec = yaml.safe_load(path.read_text())
    two_phase = "schedule=two_phase" in spec["overrides"] or "two_phase" in spec["axes"].get("schedule", [])
    cli = TINY + (["schedule.switch_at=100"] if two_phase else [])
    sweep = build_sweep(load_spec(str(path)), cli)
    sweep.trials = sweep.trials[:1]
    config = compose_trials(sweep)[sweep.trials[0].name]
    result = run_trial(config, str(tmp_path / "trial"), False)
    assert result["state"] == "finished", result
    summary = json.loads((tmp_path / "trial" / "summary.json").read_text())
    assert summary["frames"] == 200 and summary["iterations"] == 2
    assert summary["env"] == config["env"]["name"]
    return summary, config


def test_the_cheapest_spec_trains_two_iterations(tmp_path):
    summary, config = _two_iterations(SWEEPS_DIR / "evidence" / FAST, tmp_path)
    assert summary["env"] == "vmas/het_mass" and summary["final_strategy"] == "ps_lora"


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in SPECS if _id(p) != FAST], ids=_id)
def test_every_spec_trains_two_iterations(path, tmp_path):
    summary, config = _two_iterations(path, tmp_path)
    if config["env"]["name"] == "vmas/bps":
        assert config["env"]["max_steps"] == 50 and config["env"]["options"]["groups"] in ([3, 3, 3], [5, 5, 5])
