"""The recipe: Hydra composition, the command line, and one short end-to-end run (W&B offline)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from components.trainer import as_train_config
from recipes.train import compose, env_overrides

ROOT = Path(__file__).resolve().parents[2]
TINY = ["env.num_envs=8", "env.eval_num_envs=2", "env.max_steps=20", "env.options.n_agents=2",
        "algorithm.frames_per_batch=160", "algorithm.minibatch_size=80", "algorithm.epochs=1",
        "algorithm.actor_hidden=[16,16]", "algorithm.critic_hidden=[16,16]", "total_frames=640",
        "eval_every=320", "checkpoint_every=320", "schedule.switch_at=320"]


def test_default_config_is_the_two_phase_ps_lora_recipe():
    cfg = as_train_config(compose())
    assert cfg.env.name == "vmas/navigation" and cfg.strategy["name"] == "ps"
    assert cfg.schedule.kind == "two_phase" and cfg.algorithm.name == "mappo"
    assert 0 < cfg.schedule.switch_at < cfg.total_frames


def test_groups_and_overrides_compose():
    cfg = as_train_config(compose(["env=vmas/balance", "strategy=ps_lora", "strategy.rank=4", "algorithm=ippo",
                                   "schedule=single", "seed=3"]))
    assert cfg.env.name == "vmas/balance" and cfg.env.options == {"n_agents": 4}
    assert cfg.strategy["name"] == "ps_lora" and cfg.strategy["rank"] == 4 and cfg.strategy["alpha"] == 8.0
    assert cfg.algorithm.name == "ippo" and cfg.schedule.kind == "single" and cfg.seed == 3


def test_any_registered_env_name_works_without_a_preset():
    assert env_overrides(["env=vmas/dispersion", "seed=1"]) == ["env=default", "env.name=vmas/dispersion", "seed=1"]
    assert env_overrides(["env=vmas/balance"]) == ["env=vmas/balance"]
    assert as_train_config(compose(["env=vmas/dispersion"])).env.name == "vmas/dispersion"


def test_unknown_group_option_lists_the_valid_ones():
    with pytest.raises(ConfigCompositionException, match="ps_lora"):
        compose(["strategy=nonsense"])


def test_recipe_command_trains_end_to_end(tmp_path):
    """`python -m recipes.train` with the default recipe (PS -> PS+LoRA, W&B offline), tiny budget."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "recipes.train", *TINY, f"run_dir={run_dir}",
                           f"hydra.run.dir={tmp_path / 'hydra'}", "logger.progress=false"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["frames"] == 640 and summary["final_strategy"] == "ps_lora"
    assert [p["name"] for p in summary["phases"]] == ["pretrain", "finetune"]
    assert summary["phases"][1]["start_frame"] == 320
    assert summary["parameters"]["finetune"]["per_agent"] > 0
    for name in ("config.yaml", "metrics.csv", "learning_curve.png", "checkpoints/last.pt", "checkpoints/phase_switch.pt"):
        assert (run_dir / name).exists(), name
    assert list((run_dir / "wandb").glob("offline-run-*")), "W&B should have written an offline run"
    assert "ps_lora" in proc.stdout and "eval return" in proc.stdout  # the summary table


def test_recipe_rejects_bad_config_with_one_message(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "recipes.train", *TINY, "schedule.switch_at=99999999",
                           f"hydra.run.dir={tmp_path}", "logger=csv"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "switch_at=99999999 must be in (0, total_frames=640)" in proc.stderr
