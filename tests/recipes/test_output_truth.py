"""Output that tells the truth (issue 18): help shows the recipe's defaults, the saved config the phases
that ran, compare warns about few seeds and draws probabilities on 0..1, envs prints clean and whole
error texts, the gradient-norm warning, the network check of a LoRA rank, Ray's noise off the console."""

import json
import logging
import os

import pytest
from omegaconf import OmegaConf

from marlshare.components.config import TrainConfig, as_train_config, config_to_dict
from marlshare.components.schedule import plan_phases, resolve_shorthands
from marlshare.recipes.compose import compose


# --- marlshare train --help ----------------------------------------------------------------------
def test_help_shows_the_defaults_the_recipe_runs_not_the_dataclass_defaults():
    from marlshare.recipes.cli import help_text

    lines = {line.split()[0]: line.split(None, 1)[1] for line in help_text().splitlines()
             if line.startswith("  ") and len(line.split()) > 1}
    recipe = as_train_config(compose([]))
    assert (recipe.total_frames, recipe.eval_every, recipe.schedule.name) == (240000, 20000, "two_phase")
    assert lines["total_frames"] == "240000" != str(TrainConfig().total_frames)
    assert lines["eval_every"] == "20000" != str(TrainConfig().eval_every)
    assert lines["schedule.name"] == "two_phase"
    assert lines["schedule.phases"].startswith("[{until: 60000}, {strategy: {'rank': 8")
    assert lines["threads"].startswith("null (auto")


# --- config.yaml: the shorthands resolved --------------------------------------------------------
def test_saved_config_writes_switch_at_into_the_phases():
    cfg = as_train_config(compose(["schedule.switch_at=1200", "total_frames=2400"]))
    saved = config_to_dict(cfg)["schedule"]
    assert [p["until"] for p in saved["phases"]] == [1200, None]  # not the preset's 60000
    assert saved["switch_at"] is None and saved["chain"] is None
    assert plan_phases(as_train_config(OmegaConf.create(config_to_dict(cfg)))) == plan_phases(cfg)


def test_saved_config_writes_the_chain_into_the_phases_and_plans_the_same():
    cfg = as_train_config(compose(["schedule.chain=[ps,seps,seps_lora]", "schedule.switch_at=[800,1600]",
                                   "total_frames=2400", "schedule.phases.1.strategy.rank=4"]))
    saved = config_to_dict(cfg)["schedule"]
    assert [p["strategy"].get("name") for p in saved["phases"]] == ["ps", "seps", "seps_lora"]
    assert [p["until"] for p in saved["phases"]] == [800, 1600, None]
    # phase 1 was ps_lora's in the preset: renamed to seps, it keeps only the hyperparameters seps has
    assert "rank" not in saved["phases"][1]["strategy"]
    assert plan_phases(as_train_config(OmegaConf.create(config_to_dict(cfg)))) == plan_phases(cfg)


def test_an_old_config_with_shorthands_still_plans_and_an_invalid_one_is_left_alone():
    old = config_to_dict(TrainConfig())
    old["schedule"].update(phases=[{"until": 60000}, {}], chain=["ps", "ps_lora"], switch_at=1200, name="two_phase")
    old["total_frames"] = 2400
    cfg = as_train_config(old)  # a config.yaml written before the shorthands were resolved
    assert [p.until for p in plan_phases(cfg)] == [1200, None]
    bad = {"phases": [{"until": None}], "chain": ["nope"], "switch_at": None}
    assert resolve_shorthands(bad) is bad


def test_a_run_saves_the_resolved_schedule(tmp_path):
    from marlshare.components.trainer import Trainer
    from tests.components.test_trainer import ITER, tiny, two_phase

    cfg = tiny(schedule=two_phase(until=3 * ITER))
    cfg.schedule.switch_at = ITER
    Trainer(cfg, run_dir=tmp_path).run(max_iterations=1)
    saved = OmegaConf.load(tmp_path / "config.yaml")
    assert [p.until for p in saved.schedule.phases] == [ITER, None] and saved.schedule.switch_at is None


# --- the gradient-norm warning -------------------------------------------------------------------
def test_grad_norm_warning_after_five_iterations_far_above_the_clip_once():
    from marlshare.components.grad_watch import GradNormWatch

    written = []
    watch = GradNormWatch(max_grad_norm=1.0, write=written.append)
    for norm in (20, 20, 20, 20, 0.5, 20, 20, 20, 20):  # the streak is broken once: no warning yet
        assert watch.observe(norm) is None
    message = watch.observe(20.0)
    assert written == [message] and "above 10 for 5 iterations" in message and "max_grad_norm=1" in message
    assert all(watch.observe(50.0) is None for _ in range(10)) and len(written) == 1  # once
    huge = GradNormWatch(max_grad_norm=1e9, write=written.append)  # clipping off: 1e5 is the ceiling
    assert huge.threshold == 1e5
    assert [huge.observe(2e6) for _ in range(5)][-1].endswith("try a lower algorithm.lr")
    assert GradNormWatch(1.0).observe(float("nan")) is None


def test_the_update_warns_through_the_progress_line(capfd):
    from marlshare.components.grad_watch import GradNormWatch

    watch = GradNormWatch(max_grad_norm=0.5)
    for _ in range(5):
        watch.observe(100.0)
    err = capfd.readouterr().err
    assert err.count("marlshare: warning: the gradient norm has stayed above 5") == 1


# --- compare ---------------------------------------------------------------------------------------
@pytest.fixture
def two_seed_runs(tmp_path):
    for strategy, finals in {"ps": [1.0, 2.0], "nps": [0.5, 0.7]}.items():
        for seed, final in enumerate(finals):
            run_dir = tmp_path / "runs" / f"{strategy}_{seed}"
            run_dir.mkdir(parents=True)
            (run_dir / "summary.json").write_text(json.dumps({
                "env": "vmas/navigation", "strategy": strategy, "final_strategy": strategy, "algorithm": "mappo",
                "seed": seed, "frames": 200, "initial_eval_return": 0.0, "final_eval_return": final,
                "best_eval_return": final, "wall_time_s": 1.0,
                "phases": [{"name": "train", "strategy": strategy, "start_frame": 0, "end_frame": 200}],
                "parameters": {"train": {"total": 7, "shared": 1, "clustered": 0, "per_agent": 3, "trainable": 7}}}))
            (run_dir / "metrics.csv").write_text(f"iteration,frames,eval_return\n1,100,{final / 2}\n2,200,{final}\n")
    return tmp_path / "runs"


def test_compare_warns_below_five_seeds_and_draws_probabilities_on_0_to_1(two_seed_runs, tmp_path, capsys,
                                                                          monkeypatch):
    from marlshare.components.analysis import compare

    limits = {}
    save = compare._save

    def keep_limits(fig, path, tight_box=False):
        limits[path.name] = fig.axes[0].get_xlim()
        return save(fig, path, tight_box)

    monkeypatch.setattr(compare, "_save", keep_limits)
    compare.main([str(two_seed_runs), "--out", str(tmp_path / "out"), "--reps", "50", "--quiet"])
    out = capsys.readouterr().out
    assert "warning: 2 seed(s) per method: below 5 seeds the 95% bootstrap intervals are not useful" in out
    assert limits["probability_of_improvement.png"] == (0.0, 1.0)


# --- envs, strategies, sweeps ----------------------------------------------------------------------
def test_envs_shows_the_whole_error_and_keeps_simulator_noise_out(monkeypatch, capfd):
    import marlshare.envs
    from marlshare.components.analysis import env_table

    long = "vmas/drone has agent groups ['drone']; marlshare trains one group of alike agents, " + "x" * 100

    def noisy(name, **kwargs):
        print("Importing submoduled environments...")
        os.write(1, b"a C extension writes here\n")
        raise ValueError(long)

    monkeypatch.setattr(marlshare.envs, "make_env", noisy)
    row = env_table.describe("vmas/drone")
    assert row["error"] == f"ValueError: {long}"  # not cut at 80 characters ("group of ali")
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_strategies_help_explains_each_option(capsys):
    from marlshare.components.analysis.strategy_table import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("--agents AGENTS number of agents", "--obs OBS observation size", "hidden layer widths",
                   "--recurrent the GRU actor"):
        assert phrase in text


def test_sweeps_keep_rays_token_warning_off_the_console(monkeypatch):
    import ray

    from marlshare.recipes.sweep import _init_ray

    auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
    monkeypatch.setattr(auth, "level", logging.NOTSET)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: None)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert _init_ray(None, 1)
    assert not auth.isEnabledFor(logging.WARNING)


# --- the network check of strategy hyperparameters -----------------------------------------------
def test_lora_rank_is_checked_against_each_adapted_layer_width():
    from marlshare.components.config_checks import actor_layers
    from marlshare.components.network_config import NetworkConfig
    from marlshare.components.strategies import make_strategy

    net = NetworkConfig(actor_hidden=[64, 32])
    assert actor_layers(net) == [("hidden", 64, 32)]
    assert actor_layers(net, in_features=10, n_agents=3, append_id=True) == [("hidden", 13, 64), ("hidden", 64, 32)]
    recurrent = NetworkConfig(actor_hidden=[16], recurrent=True, gru_hidden=8)
    assert actor_layers(recurrent) == [("gru_ih", 16, 24), ("gru_hh", 8, 24), ("post", 8, 8)]
    make_strategy("ps_lora", rank=32).check_network(actor_layers(net))  # 32 <= min(64, 32)
    with pytest.raises(ValueError, match=r"rank=33 exceeds min\(d_in, d_out\)=32 of the adapted hidden layer"):
        make_strategy("ps_lora", rank=33).check_network(actor_layers(net))
    make_strategy("ps_lora", rank=33, layers=["head"]).check_network(actor_layers(net))  # hidden not adapted
    make_strategy("nps").check_network(actor_layers(net))  # the base class: no constraint


def test_the_env_time_check_adds_the_input_layer():
    from marlshare.components.config import ConfigError
    from marlshare.components.config_checks import check_strategy_networks

    cfg = as_train_config(compose(["strategy=ps_lora", "schedule=single", "strategy.rank=8",
                                   "algorithm.network.actor_hidden=[16,16]"]))
    plans = plan_phases(cfg)
    check_strategy_networks(cfg, plans)  # the hidden layers are wide enough
    assert cfg.strategy["append_id"] is True  # PS's default: the input layer takes obs + one-hot id
    check_strategy_networks(cfg, plans, in_features=6, n_agents=2)  # 6 + 2 inputs: rank 8 fits
    with pytest.raises(ConfigError, match=r"strategy.rank=8 exceeds min\(d_in, d_out\)=7 .*observation size 5"):
        check_strategy_networks(cfg, plans, in_features=5, n_agents=2)
