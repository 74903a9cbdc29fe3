"""The recipe: Hydra composition, the command line, and one short end-to-end run (W&B offline)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from marlshare.components.config import MOVED, ConfigError
from marlshare.components.schedule import plan_phases
from marlshare.components.trainer import as_train_config
from marlshare.recipes.compose import compose, env_overrides

ROOT = Path(__file__).resolve().parents[2]
TINY = ["env.num_envs=8", "env.eval_num_envs=2", "env.max_steps=20", "env.options.n_agents=2",
        "algorithm.frames_per_batch=160", "algorithm.minibatch_size=80", "algorithm.epochs=1",
        "algorithm.network.actor_hidden=[16,16]", "algorithm.network.critic_hidden=[16,16]", "total_frames=640",
        "eval_every=320", "checkpoint_every=320", "schedule.switch_at=320"]


def test_default_config_is_the_two_phase_ps_lora_recipe():
    cfg = as_train_config(compose())
    assert cfg.env.name == "vmas/navigation" and cfg.strategy["name"] == "ps"
    assert cfg.schedule.name == "two_phase" and cfg.algorithm.name == "mappo"
    plans = plan_phases(cfg)
    assert [p.strategy["name"] for p in plans] == ["ps", "ps_lora"] and [p.label for p in plans] == ["pretrain", "finetune"]
    assert plans[0].until == 60_000 < cfg.total_frames and plans[1].strategy["rank"] == 8


def test_schedule_presets_and_shorthands_resolve_to_phase_lists():
    three = plan_phases(as_train_config(compose(["schedule=three_phase", "schedule.switch_at=[1000,2000]"])))
    assert [(p.strategy["name"], p.until) for p in three] == [("ps", 1000), ("seps", 2000), ("seps_lora", None)]
    seps = plan_phases(as_train_config(compose(["strategy=seps", "strategy.n_clusters=2"])))
    assert [p.strategy["name"] for p in seps] == ["seps", "seps_lora"] and seps[0].strategy["n_clusters"] == 2
    chain = plan_phases(as_train_config(compose(["schedule.chain=[ps,prism]", "schedule.phases.1.lr=1e-4"])))
    assert [p.strategy["name"] for p in chain] == ["ps", "prism"] and chain[1].lr == 1e-4
    assert "rank" not in chain[1].strategy  # the preset's LoRA settings do not leak into Prism


def test_groups_and_overrides_compose():
    cfg = as_train_config(compose(["env=vmas/balance", "strategy=ps_lora", "strategy.rank=4", "algorithm=ippo",
                                   "schedule=single", "seed=3"]))
    assert cfg.env.name == "vmas/balance" and cfg.env.options == {"n_agents": 4}
    assert cfg.strategy["name"] == "ps_lora" and cfg.strategy["rank"] == 4 and cfg.strategy["alpha"] == 8.0
    assert cfg.algorithm.name == "ippo" and cfg.schedule.name == "single" and cfg.seed == 3


def test_any_registered_env_name_works_without_a_preset():
    assert env_overrides(["env=vmas/dispersion", "seed=1"]) == ["env=default", "env.name=vmas/dispersion", "seed=1"]
    assert env_overrides(["env=vmas/balance"]) == ["env=vmas/balance"]
    assert as_train_config(compose(["env=vmas/dispersion"])).env.name == "vmas/dispersion"


@pytest.mark.parametrize("old,new", sorted(MOVED.items()))
def test_a_moved_key_on_the_command_line_is_one_error_naming_its_new_place(old, new):
    with pytest.raises(ConfigError, match=rf"^{re.escape(old)} moved to {re.escape(new)} \(write {re.escape(new)}=1\)$"):
        compose([f"{old}=1"])
    with pytest.raises(ConfigError, match=rf"^{re.escape(old)} moved to {re.escape(new)}"):
        env_overrides(["seed=1", f"++{old}=1"])
    composed = as_train_config(compose([f"{new}={override_text(MOVED_VALUES[new])}"]))
    value = composed
    for part in new.split("."):
        value = getattr(value, part)
    assert value == MOVED_VALUES[new]  # and the new key is an ordinary setting


def override_text(value) -> str:
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


#: a value (not the default) for each new key of MOVED
MOVED_VALUES = {f"algorithm.network.{k}": v for k, v in (
    ("action_dist", "normal"), ("actor_hidden", [128, 128]), ("critic_hidden", [32]), ("critic_sharing", "nps"),
    ("critic_agent_id", False), ("activation", "tanh"), ("recurrent", True), ("gru_hidden", 16), ("log_std", "agent"),
    ("log_std_init", 1.0), ("layer_norm", True), ("head_gain", 0.01), ("std_mapping", "sigmoid"))} | {
    f"algorithm.a2po.{k}": v for k, v in (("others_clip", 0.2), ("loop", "ppo"), ("clip_tuner", 0.5),
                                          ("advantage", "gae_trace"), ("two_stage", True))}


def test_unknown_group_option_lists_the_valid_ones():
    with pytest.raises(ConfigCompositionException, match="ps_lora"):
        compose(["strategy=nonsense"])


def test_recipe_command_trains_end_to_end(tmp_path):
    """`python -m recipes.train` with the default recipe (PS -> PS+LoRA, W&B offline), tiny budget."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "marlshare.recipes.train", *TINY, f"run_dir={run_dir}",
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


@pytest.mark.parametrize("bad,message", [
    (["schedule=two_phase", "schedule.switch_at=99999999"], "until=99999999 must be a frame count in (0, total_frames=640)"),
    (["strategy=seps", "strategy.clusters=[0,1,1]", "schedule=single"],
     "seps: clusters has 3 labels but the network has n_agents=2"),
    (["strategy=seps", "schedule=single"], "choosing K by a score needs K in [2, N-1], empty for N=2"),
    (["schedule.chain=[ps,nps,ps_lora]", "schedule.switch_at=[160,320]"],
     "nps -> ps_lora is not a valid phase chain; after nps choose one of ['nps']"),
])
def test_recipe_rejects_bad_config_with_one_line_and_no_run_directory(tmp_path, bad, message):
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    tiny = [a for a in TINY if not a.startswith("schedule.")]
    proc = subprocess.run([sys.executable, "-m", "marlshare.recipes.train", *tiny, *bad, f"hydra.run.dir={tmp_path / 'run'}",
                           "logger=csv"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("marlshare: invalid configuration: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_given_clusters_pass_to_the_next_phase_at_config_time(tmp_path):
    """2 agents: seps_lora alone could not choose K, but it inherits seps's given clusters."""
    from marlshare.components.trainer import Trainer

    cfg = compose([*TINY, "strategy=seps", "strategy.clusters=[0,1]", "schedule=two_phase", "schedule.switch_at=320",
                   "logger=csv", "logger.progress=false"])
    trainer = Trainer(cfg, run_dir=tmp_path)
    trainer.run(max_iterations=2)
    assert trainer.strategy.name == "seps_lora" and trainer.strategy.clusters == [0, 1] and not trainer.state.fits


def test_three_phase_chain_with_fitted_clusters_runs_from_the_command_line(tmp_path):
    """ps -> seps -> seps_lora with no clusters given: SePS fits them at its phase start."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    args = [a for a in TINY if not a.startswith(("schedule.", "env.options"))]
    proc = subprocess.run([sys.executable, "-m", "marlshare.recipes.train", *args, "env.options.n_agents=3",
                           "schedule=three_phase", "schedule.switch_at=[160,320]",
                           "schedule.phases.1.strategy.fit_frames=320", "schedule.phases.1.strategy.vae_epochs=2",
                           f"run_dir={run_dir}", "logger=csv", "logger.progress=false"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [(p["strategy"], p["start_frame"]) for p in summary["phases"]] == [("ps", 0), ("seps", 160), ("seps_lora", 320)]
    fit = summary["fits"]["phase1"]
    assert len(fit["clusters"]) == 3 and fit["k"] == 2 and fit["fit_frames"] == 320
    assert summary["strategies"][2]["clusters"] == fit["clusters"]  # SePS+LoRA took SePS's clusters, no refit
    assert "finetune" not in summary["fits"]
    assert f"clusters {fit['clusters']}" in proc.stdout  # the summary table reports the fit


def test_a_strategy_without_a_successor_runs_one_phase_under_the_default_recipe():
    """`marlshare train strategy=nps` (or hypermarl, dico...) runs NPS for the whole run instead of
    failing on the two-phase default; a strategy with a successor and an explicit schedule keep theirs."""
    from marlshare.components.strategies import STRATEGIES
    from marlshare.recipes.compose import compose

    for name, cls in STRATEGIES.items():
        expected = "two_phase" if cls.successor else "single"
        assert compose([f"strategy={name}"]).schedule.name == expected, name
    assert compose(["strategy=nps", "schedule=two_phase"]).schedule.name == "two_phase"
    assert compose([]).schedule.name == "two_phase"
