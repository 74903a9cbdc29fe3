"""Using a trained team (issue 19): load, evaluate, watch, export, per agent; on two tiny VMAS runs
trained once per module: PS then PS+LoRA with an MLP actor, and PS+LoRA with a GRU actor that also
records a video during training (``logger.video_every``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import trim_mean
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

from marlshare.components.algorithms.keys import HIDDEN, OBS
from marlshare.components.policy_eval import episode_results, evaluate_run
from marlshare.components.policy_io import load_policy, load_run
from tests.components.test_trainer import ITER, tiny, two_phase


def _train(tmp_path_factory, name, **changes):
    from marlshare.components.trainer import Trainer

    cfg = tiny(**{"algorithm.epochs": 1, "algorithm.network.actor_hidden": [8, 8],
                  "algorithm.network.critic_hidden": [8, 8], "total_frames": 2 * ITER, "eval_every": 2 * ITER,
                  "schedule": two_phase(until=ITER), **changes})
    cfg.logger.csv = True  # TorchRL's CSV logger: it must not leave an empty torchrl/videos folder
    trainer = Trainer(cfg, run_dir=tmp_path_factory.mktemp(name))
    trainer.run()
    return trainer


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    return _train(tmp_path_factory, "mlp")


@pytest.fixture(scope="module")
def gru_run(tmp_path_factory):
    return _train(tmp_path_factory, "gru", **{"algorithm.network.recurrent": True, "algorithm.chunk_length": 10,
                                              "logger.video_every": 2 * ITER})


def _inputs(trainer, recurrent, batch=32):
    torch.manual_seed(3)
    n, d = trainer.info.n_agents, trainer.info.obs_dim
    td = TensorDict({OBS: torch.randn(batch, n, d)}, [batch])
    if recurrent:
        td.set(HIDDEN, torch.randn(batch, n, trainer.hidden_size))
        td.set("is_init", torch.rand(batch, 1) < 0.3)
    return td


@pytest.mark.parametrize("which", ["mlp_run", "gru_run"])
def test_loaded_policy_acts_as_the_training_actor(which, request):
    trainer = request.getfixturevalue(which)
    recurrent = which == "gru_run"
    td = _inputs(trainer, recurrent)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        expected = trainer.actor(td.clone())
    for merged in (False, True):
        policy = load_policy(trainer.run_dir, "last", merged=merged)
        assert policy.recurrent == recurrent and policy.net.__class__.__name__ == ("AgentGRUActor" if recurrent else "AgentMLP")
        with set_exploration_type(ExplorationType.RANDOM):  # the policy keeps its deterministic mode
            out = policy(td.clone())
        torch.testing.assert_close(out.get(("agents", "action")), expected.get(("agents", "action")),
                                   atol=1e-5, rtol=1e-5)
        if recurrent:
            torch.testing.assert_close(out.get(("next", HIDDEN)), expected.get(("next", HIDDEN)), atol=1e-5, rtol=1e-5)
    assert any("lora" in n for n, _ in load_policy(trainer.run_dir, "last").net.named_parameters())


def test_best_checkpoint_and_run_handle(mlp_run):
    run = load_run(mlp_run.run_dir)
    assert run.cfg.env.name == "vmas/navigation" and run.summary["frames"] == 2 * ITER
    policy = load_policy(mlp_run.run_dir, "best")
    best = mlp_run.run_dir / "checkpoints" / "best.pt"
    assert policy.checkpoint == str(best if best.exists() else mlp_run.run_dir / "checkpoints" / "last.pt")
    with pytest.raises(FileNotFoundError, match="checkpoint must be one of"):
        load_policy(mlp_run.run_dir, "nonexistent")
    env = run.make_env(3, seed=1, overrides={"max_steps": 7})
    rollout = env.rollout(50, policy)  # stops at the first episode end: the override's cap of 7 steps
    assert rollout.shape == (3, 7) and rollout.get(("next", "done"))[:, -1].all()


def test_eval_json_matches_a_recomputation(mlp_run, capsys):
    from marlshare.recipes.eval_cmd import main

    main([str(mlp_run.run_dir), "--episodes", "6", "--seed", "4", "--checkpoint", "last", "--per-agent"])
    printed = capsys.readouterr().out
    report = json.loads((mlp_run.run_dir / "eval.json").read_text())
    # recompute: the same episodes with the loaded policy, statistics by hand
    run, policy = load_run(mlp_run.run_dir), load_policy(mlp_run.run_dir, "last")
    env = run.make_env(6, seed=4)
    env.set_seed(4)
    rollout = env.rollout(20, policy, break_when_any_done=False, break_when_all_done=True)
    returns, win, _ = episode_results(rollout)
    team = returns.mean(-1).numpy()
    np.testing.assert_allclose(report["episode_returns"], team, rtol=1e-6)
    assert report["return"]["mean"] == pytest.approx(team.mean(), rel=1e-6)
    assert report["return"]["iqm"] == pytest.approx(trim_mean(team, 0.25), rel=1e-6)
    low, high = report["return"]["mean_ci"]
    assert team.min() <= low <= team.mean() <= high <= team.max()
    assert win is None and report["win_rate"] is None  # navigation has no win flag
    assert f"mean {team.mean():.4g}" in printed
    # per agent: the agents' returns average to the team's; the distance matrix is a distance's
    assert np.mean(report["per_agent_return"]) == pytest.approx(team.mean(), rel=1e-5)
    dist = np.array(report["action_distance"])
    assert dist.shape == (2, 2) and np.allclose(np.diag(dist), 0) and np.allclose(dist, dist.T)
    assert dist[0, 1] > 0  # PS with the agent id and per-agent adapters: the agents act differently


def test_merged_evaluation_equals_unmerged(mlp_run):
    kwargs = dict(episodes=3, seed=2, checkpoint="last", per_agent=True, reps=50, out=False)
    plain, merged = evaluate_run(mlp_run.run_dir, **kwargs), evaluate_run(mlp_run.run_dir, merged=True, **kwargs)
    np.testing.assert_allclose(merged["episode_returns"], plain["episode_returns"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(merged["action_distance"], plain["action_distance"], rtol=1e-4, atol=1e-6)


def test_video_has_one_frame_per_step_and_moving_pixels(gru_run, tmp_path):
    import imageio.v3 as iio

    report = evaluate_run(gru_run.run_dir, episodes=2, seed=1, checkpoint="last", reps=50, out=False,
                          video=tmp_path / "episode.gif", video_size=64)
    frames = iio.imread(tmp_path / "episode.gif", index=None)
    assert frames.shape == (21, 64, 64, 3) == (report["video_frames"], 64, 64, 3)  # reset + 20 steps (max_steps)
    assert frames.std() > 1.0 and np.abs(np.diff(frames.astype(int), axis=0)).sum() > 0  # the agents move


def test_training_records_videos_and_leaves_no_empty_folders(mlp_run, gru_run):
    import imageio.v3 as iio

    video = gru_run.run_dir / "videos" / f"frames_{2 * ITER}.mp4"  # video_every = 2 * ITER: once, at the end
    assert sorted(p.name for p in (gru_run.run_dir / "videos").iterdir()) == [video.name]
    frames = iio.imread(video, index=None)
    assert frames.shape[0] == 21 and frames.std() > 1.0
    assert not (mlp_run.run_dir / "videos").exists()  # video_every = 0
    for run in (mlp_run, gru_run):  # TorchRL's CSV logger made torchrl/videos up front; it is gone
        assert (run.run_dir / "torchrl" / "scalars").is_dir() and not (run.run_dir / "torchrl" / "videos").exists()


@pytest.mark.parametrize("which,fmt", [("mlp_run", "torchscript"), ("gru_run", "torchscript")])
def test_export_command_writes_a_file_that_acts_as_the_library(which, fmt, request, tmp_path):
    from marlshare.components.export import load_exported
    from marlshare.recipes.eval_cmd import export_main

    trainer = request.getfixturevalue(which)
    out = tmp_path / "policy.bin"
    export_main([str(trainer.run_dir), "--format", fmt, "--merged", "--checkpoint", "last", "--out", str(out)])
    f = load_exported(out, fmt)
    td = _inputs(trainer, which == "gru_run")
    td.set("is_init", torch.zeros(32, 1, dtype=torch.bool))
    expected = load_policy(trainer.run_dir, "last")(td.clone())  # unmerged library = merged file
    args = [td.get(OBS)] + ([td.get(HIDDEN)] if which == "gru_run" else [])
    got = f(*args)
    got = got if isinstance(got, tuple) else (got,)
    torch.testing.assert_close(got[0], expected.get(("agents", "action")), atol=1e-5, rtol=1e-5)


def test_readme_load_and_rollout_example_runs(mlp_run, capsys):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text[text.index("## Use a trained team"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code.replace("outputs/vmas/navigation/ps/<date>_seed0", str(mlp_run.run_dir)), "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith("torch.Size([4, ") and printed[-1].endswith(", 2, 2])")  # 2 agents, 2 actions
