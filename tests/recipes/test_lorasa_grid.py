"""The LoRASA grid (recipes/lorasa_grid.py, docs/lorasa_grid.md): every one of the 96 cells composes
into a valid config carrying the paper's numbers, the user's settings win over a cell's, a wrong name
is one clear error, and cells train two iterations (a subset here, all 96 under ``-m slow``)."""

import json

import pytest

from marlshare.components.config import ConfigError
from marlshare.components.schedule import plan_phases
from marlshare.components.trainer import Trainer, as_train_config
from marlshare.components.config_checks import validate_config
from marlshare.recipes import lorasa_grid
from marlshare.recipes.train import compose, main

CELLS = lorasa_grid.names()
GRID = lorasa_grid.grid()


def cell_config(name, *overrides):
    return as_train_config(compose([f"experiment={name}", *overrides]))


def test_the_grid_is_the_papers_two_algorithms_eight_scenarios_six_strategies():
    assert len(CELLS) == 96 == len(set(CELLS))
    assert GRID["algorithms"] == ["mappo", "a2po"]
    assert list(GRID["tasks"]) == ["halfcheetah-2x3", "walker2d-3x2", "ant-4x2", "humanoid-9_8",
                                   "3s5z", "1c3s5z", "3s5z_vs_3s6z", "MMM2"]
    assert list(GRID["strategies"]) == ["ps", "nps", "mtl", "seps", "ps_lora", "seps_lora"]


@pytest.mark.parametrize("name", CELLS)
def test_every_cell_composes_into_a_valid_config_with_its_scenarios_numbers(name):
    _, algorithm, task, strategy = name.split("/")
    t = GRID["tasks"][task]
    cfg = cell_config(name)
    validate_config(cfg)
    plans = plan_phases(cfg)
    assert cfg.env.name == t["env"] and cfg.env.num_envs == t["rollout_threads"]
    assert cfg.algorithm.name == algorithm and cfg.algorithm.epochs == t["epochs"] and cfg.algorithm.lmbda == t["lmbda"]
    assert cfg.algorithm.minibatch_size == cfg.algorithm.frames_per_batch  # one minibatch, as the code
    assert cfg.total_frames == GRID["total_frames"] and not cfg.algorithm.reset_each_iteration
    assert [p.strategy["name"] for p in plans] == GRID["strategies"][strategy]
    assert cfg.algorithm.network.critic_sharing == ("nps" if strategy == "nps" else "shared")
    if len(plans) == 2:
        assert plans[0].until == t["switch_at"][algorithm]
        assert plans[1].strategy["rank"] == t["rank"] and plans[1].strategy["alpha"] == t["rank"]


def test_cells_carry_the_papers_values():
    """Literal values from the paper's tables and the authors' scripts (recipes/lorasa_grid.yaml)."""
    humanoid = cell_config("lorasa/mappo/humanoid-9_8/ps_lora")
    plans = plan_phases(humanoid)
    assert humanoid.algorithm.lmbda == 0.9 and plans[1].strategy["rank"] == 16 and plans[1].strategy["alpha"] == 16
    assert plans[0].until == 1_000_000 and humanoid.env.options == {"full_observation": True}
    assert (humanoid.env.num_envs, humanoid.algorithm.frames_per_batch) == (25, 4000)  # 25 threads x 160 steps
    assert humanoid.algorithm.name == "mappo" and humanoid.algorithm.network.recurrent and humanoid.algorithm.lr == 3e-4
    ant = cell_config("lorasa/a2po/ant-4x2/nps")
    assert ant.algorithm.epochs == 8 and ant.algorithm.name == "a2po" and ant.algorithm.a2po.others_clip == 0.1
    cheetah = cell_config("lorasa/mappo/halfcheetah-2x3/seps_lora")
    assert cheetah.env.num_envs == 16 and cheetah.algorithm.lmbda == 0.93 and cheetah.algorithm.epochs == 5
    assert cheetah.strategy["n_clusters"] == 2 and plan_phases(cheetah)[0].until == 100_000
    for algorithm, switch in (("mappo", 4_000_000), ("a2po", 2_000_000)):
        hard = cell_config(f"lorasa/{algorithm}/3s5z_vs_3s6z/ps_lora")
        pre, fine = plan_phases(hard)
        assert hard.algorithm.lmbda == 0.9 and pre.until == switch
        assert (hard.algorithm.lr, hard.algorithm.clip_epsilon, hard.algorithm.entropy_coeff) == (5e-4, 0.2, 0.01)
        assert (fine.lr, fine.clip_epsilon, fine.entropy_coeff) == (3e-4, 0.05, 0.001)  # Table 9
    mmm2 = plan_phases(cell_config("lorasa/mappo/MMM2/seps_lora"))
    assert mmm2[0].until == 7_000_000 and (mmm2[1].lr, mmm2[1].clip_epsilon, mmm2[1].entropy_coeff) == (3e-4, 0.05, 0.001)
    easy = plan_phases(cell_config("lorasa/mappo/3s5z/ps_lora"))
    assert easy[0].until == 200_000 and easy[1].lr is None and easy[1].clip_epsilon is None  # pretraining's
    smac = cell_config("lorasa/mappo/1c3s5z/ps")
    assert smac.env.name == "smax/1h3s5z" and (smac.env.num_envs, smac.algorithm.frames_per_batch) == (10, 3200)
    assert smac.env.max_steps == 180 and cell_config("lorasa/a2po/MMM2/mtl").env.name == "smax/2M7m_vs_3M8m"


def test_user_settings_win_over_the_cells_wherever_they_stand():
    after = cell_config("lorasa/mappo/ant-4x2/ps_lora", "total_frames=8000", "algorithm.epochs=2",
                        "schedule.phases.1.lr=1e-3", "schedule.switch_at=4000")
    before = as_train_config(compose(["total_frames=8000", "experiment=lorasa/mappo/ant-4x2/ps_lora"]))
    assert after.total_frames == before.total_frames == 8000 and after.algorithm.epochs == 2
    plans = plan_phases(after)
    assert plans[0].until == 4000 and plans[1].lr == 1e-3 and plans[1].strategy["rank"] == 8
    other_env = cell_config("lorasa/mappo/ant-4x2/ps", "env=mamujoco/walker2d-2x3")
    assert other_env.env.name == "mamujoco/walker2d-2x3" and other_env.algorithm.epochs == 8


def test_a_wrong_cell_is_one_clear_error_listing_the_choices(capsys):
    with pytest.raises(ConfigError, match=r"algorithm one of \['mappo', 'a2po'\].*task one of .*humanoid-9_8"):
        compose(["experiment=lorasa/mappo/ant/ps"])
    for argv in (["experiment=lorasa/happo/ant-4x2/ps"], ["-m", "experiment=lorasa/mappo/ant-4x2/ps,lorasa/x"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is not a cell of the LoRASA grid" in err and "seps_lora" in err


# two iterations of a cell: batches, episodes, evaluation and the SePS fit shrunk; the switch after
# the first iteration so both phases run. SMAX cells keep SMAX's own time limit and the copies of
# tests/recipes/test_env_families.py, so their jitted programs are the ones JAX's disk cache holds
SHRINK = ["algorithm.epochs=1", "env.eval_num_envs=2", "checkpoint_every=0", "logger=csv", "logger.progress=false"]
COPIES = {"mamujoco": (2, ["env.max_steps=20"]), "smax": (8, ["env.max_steps=null"])}
STEPS = 20  # per copy and iteration (a multiple of the GRU chunk, 10)


def shrunk(name):
    _, _, task, strategy = name.split("/")
    copies, extra = COPIES[GRID["tasks"][task]["family"]]
    batch = copies * STEPS
    extra = [f"env.num_envs={copies}", f"algorithm.frames_per_batch={batch}", f"algorithm.minibatch_size={batch}",
             f"total_frames={2 * batch}", f"eval_every={2 * batch}", *extra]
    if strategy.endswith("_lora"):
        extra.append(f"schedule.switch_at={batch}")
    if strategy.startswith("seps"):
        extra += [f"strategy.fit_frames={batch}", "strategy.vae_epochs=1"]
    return [f"experiment={name}", *SHRINK, *extra]


def train_two_iterations(name, tmp_path):
    cfg = compose(shrunk(name))
    summary = Trainer(cfg, run_dir=tmp_path).run()
    assert summary["frames"] == 2 * cfg.algorithm.frames_per_batch and summary["iterations"] == 2
    chain = GRID["strategies"][name.rsplit("/", 1)[1]]
    assert [p["strategy"] for p in summary["phases"]] == chain
    return summary


# every MaMuJoCo scenario, every strategy and both algorithms once (ps in the command-line test); one
# SMAX map (a SMAX map costs a JAX compilation of tens of seconds on a fresh machine: the other three
# train under -m slow, and tests/envs/test_smax.py checks the substitutes' units)
SUBSET = ["lorasa/mappo/halfcheetah-2x3/seps_lora", "lorasa/a2po/walker2d-3x2/ps_lora",
          "lorasa/a2po/ant-4x2/seps", "lorasa/mappo/humanoid-9_8/mtl", "lorasa/mappo/3s5z/nps"]
CLI_CELL = "lorasa/a2po/walker2d-3x2/ps"


@pytest.mark.parametrize("name", SUBSET)
def test_a_cell_of_each_scenario_and_strategy_trains_two_iterations(name, tmp_path):
    train_two_iterations(name, tmp_path)


def test_the_trained_cells_cover_every_strategy_and_both_algorithms():
    cells = [n.split("/") for n in SUBSET + [CLI_CELL]]
    assert {c[3] for c in cells} == set(GRID["strategies"]) and {c[1] for c in cells} == set(GRID["algorithms"])
    assert {c[2] for c in cells if GRID["tasks"][c[2]]["family"] == "mamujoco"} == {
        t for t, v in GRID["tasks"].items() if v["family"] == "mamujoco"}


def test_a_cell_runs_from_the_command_line_and_in_a_sweep(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main([*shrunk(CLI_CELL), f"run_dir={tmp_path / 'one'}"])
    assert json.loads((tmp_path / "one" / "summary.json").read_text())["frames"] == 80
    main(["-m", "experiment=lorasa/a2po/walker2d-3x2/ps_lora,lorasa/mappo/walker2d-3x2/ps_lora",
          *shrunk("lorasa/mappo/walker2d-3x2/ps_lora")[1:], f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    summaries = [json.loads(p.read_text()) for p in sorted((tmp_path / "sweep").glob("*/summary.json"))]
    assert sorted(s["algorithm"] for s in summaries) == ["a2po", "mappo"]


@pytest.mark.slow
@pytest.mark.parametrize("name", CELLS)
def test_every_cell_trains_two_iterations(name, tmp_path):
    train_two_iterations(name, tmp_path)
