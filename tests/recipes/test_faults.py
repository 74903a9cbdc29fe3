"""Fault injection: each way a run or a user can go wrong, reproduced, and what marlshare now does."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from marlshare.components import checkpoint as ckpt
from marlshare.components.trainer import ConfigError, Trainer
from tests.components.test_trainer import ITER, rows, tiny

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(ROOT)}
TINY = ["env.num_envs=8", "env.eval_num_envs=2", "env.max_steps=20", "env.options.n_agents=2",
        "algorithm.frames_per_batch=160", "algorithm.minibatch_size=80", "algorithm.epochs=1",
        "algorithm.network.actor_hidden=[16,16]", "algorithm.network.critic_hidden=[16,16]", "total_frames=640",
        "eval_every=320", "checkpoint_every=160", "schedule=single", "logger=csv", "logger.progress=false"]


def marlshare(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "marlshare.recipes.cli", *args], cwd=cwd or ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def frames_column(run_dir):
    return [int(r["frames"]) for r in rows(run_dir)]


# --- resume is exact for everything a run writes ---------------------------------------------------
def test_crash_then_resume_logs_each_iteration_once(tmp_path):
    crashed = Trainer(tiny(**{"logger.csv": True}), run_dir=tmp_path)
    crashed.run(max_iterations=3)  # iteration 3 is logged but the last checkpoint is from iteration 2...
    ckpt.save_rotating(ckpt.load(tmp_path / "checkpoints" / "last.1.pt"), tmp_path / "checkpoints", 1)
    assert frames_column(tmp_path) == [0, ITER, 2 * ITER, 3 * ITER]  # ...as after a kill -9 between the two
    resumed = Trainer(tiny(resume=str(tmp_path)))
    assert resumed.state.frames == 2 * ITER
    resumed.run()
    assert frames_column(tmp_path) == [0, ITER, 2 * ITER, 3 * ITER, 4 * ITER]  # the frame-0 evaluation first
    steps = [int(line.split(",")[0]) for line in (tmp_path / "torchrl/scalars/loss_critic.csv").read_text().split()]
    assert steps == [ITER, 2 * ITER, 3 * ITER, 4 * ITER]


def test_resume_continues_the_same_wandb_run(tmp_path):
    first = Trainer(tiny(**{"logger.wandb": True, "logger.wandb_mode": "offline"}), run_dir=tmp_path)
    first.run(max_iterations=2)
    run_id = (tmp_path / "wandb_run_id.txt").read_text()
    Trainer(tiny(resume=str(tmp_path))).run()
    assert (tmp_path / "wandb_run_id.txt").read_text() == run_id
    assert {p.name.rsplit("-", 1)[-1] for p in (tmp_path / "wandb").glob("offline-run-*")} == {run_id}


def test_resume_extends_a_finished_run_and_refuses_other_changes(tmp_path):
    Trainer(tiny(), run_dir=tmp_path).run()
    extended = Trainer(tiny(resume=str(tmp_path)), resume_changes={"total_frames": 6 * ITER})
    assert extended.run()["frames"] == 6 * ITER
    assert frames_column(tmp_path) == [k * ITER for k in range(0, 7)]
    with pytest.raises(ConfigError, match=r"cannot change \['seed'\]\. A resume may change only \['total_frames'"):
        Trainer(tiny(resume=str(tmp_path)), resume_changes={"seed": 3})
    proc = marlshare("train", f"resume={tmp_path}", "algorithm.lr=0.1")
    assert proc.returncode == 2 and "cannot change ['algorithm.lr']" in proc.stderr and "Traceback" not in proc.stderr


# --- checkpoints: keep the last K, verify, fall back, clean up -------------------------------------
@pytest.mark.parametrize("damage", [b"", b"garbage\x00\x01", "truncate"], ids=["empty", "garbage", "truncated"])
def test_damaged_last_checkpoint_falls_back_to_the_previous_one(tmp_path, damage, capfd):
    Trainer(tiny(), run_dir=tmp_path).run(max_iterations=3)
    last = tmp_path / "checkpoints" / "last.pt"
    assert sorted(p.name for p in last.parent.glob("last*.pt")) == ["last.1.pt", "last.pt"]  # checkpoint_keep=2
    content = last.read_bytes()
    last.write_bytes(content[: len(content) // 2] if damage == "truncate" else damage)
    (last.parent / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")  # an interrupted save
    resumed = Trainer(tiny(resume=str(tmp_path)))
    assert resumed.state.frames == 2 * ITER  # last.1.pt: the checkpoint before the damaged one
    err = capfd.readouterr().err
    assert f"{last} is damaged" in err and "resuming from last.1.pt instead" in err
    assert not list(last.parent.glob(".*.tmp"))  # stale temporaries removed at start


def test_no_usable_checkpoint_is_one_clear_error(tmp_path):
    Trainer(tiny(), run_dir=tmp_path).run(max_iterations=1)
    for path in (tmp_path / "checkpoints").glob("last*.pt"):
        path.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"no usable checkpoint in .*last\.pt is damaged"):
        Trainer(tiny(resume=str(tmp_path)))


# --- processes: env workers die with the trainer, shared memory is released ------------------------
def test_kill_9_leaves_no_env_workers_or_shared_memory(tmp_path):
    before = {n for n in os.listdir("/dev/shm") if n.startswith("psm_")}
    proc = subprocess.Popen([sys.executable, "-m", "marlshare.recipes.cli", "train", "env=pettingzoo/simple_spread",
                             "env.options.num_workers=2", "env.num_envs=4", "algorithm.frames_per_batch=400",
                             "algorithm.minibatch_size=200", "total_frames=100000000", "schedule=single",
                             "logger=csv", "logger.progress=false", f"run_dir={tmp_path}"],
                            cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = []
    for _ in range(240):
        time.sleep(0.5)
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True).stdout
        children = [int(p) for p in out.split()]
        if len(children) >= 4 and (tmp_path / "metrics.csv").exists():
            break
    created = {n for n in os.listdir("/dev/shm") if n.startswith("psm_")} - before
    assert len(children) >= 4 and created, "the run should have started its env workers"
    proc.kill()
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and (any(Path(f"/proc/{c}").exists() for c in children)
                                      or created & set(os.listdir("/dev/shm"))):
        time.sleep(0.2)
    survivors = [c for c in children if Path(f"/proc/{c}").exists()]
    for c in survivors:
        os.kill(c, signal.SIGKILL)
    assert not survivors and not created & set(os.listdir("/dev/shm"))


# --- Ctrl-C and SIGTERM: finish the update, save, say how to resume -------------------------------
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_a_checkpoint_and_the_summary_and_exits_with_one_line(tmp_path, sig):
    proc = subprocess.Popen([sys.executable, "-m", "marlshare.recipes.cli", "train", *TINY, "total_frames=100000000",
                             f"run_dir={tmp_path}"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        time.sleep(0.1)
        if (tmp_path / "metrics.csv").exists() and len(rows(tmp_path)) >= 3:  # frame 0 and two iterations
            break
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(f"marlshare: stopped by {sig.name}")
    assert f"marlshare train resume={tmp_path}" in err
    state = ckpt.load(tmp_path / "checkpoints" / "last.pt")
    logged = int(rows(tmp_path)[-1]["frames"])
    if state["pending"]:  # the signal came during an evaluation: its iteration is logged when a resume finishes it
        assert state["pending"]["row"]["frames"] == state["frames"] == logged + ITER
    else:
        assert state["frames"] == logged  # the checkpoint has every logged iteration
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stopped"] == {"signal": sig.name, "frame": state["frames"]}


# --- one line, no traceback, no directory --------------------------------------------------------
@pytest.mark.parametrize("bad,message", [
    (["strategy=seps", "strategy.clusters=[0,1,0]"], "clusters has 3 labels but the network has n_agents=2"),
    (["strategy=seps", "strategy.clusters=[0,2]"], "cluster labels must be 0..K-1"),
    (["logger.wandb_mode=foo"], "logger.wandb_mode='foo' is not valid; choose one of ['auto', 'offline'"),
    (["env.options.n_agents=0"], "env.options.n_agents=0 must be an integer >= 1"),
    (["algorithm.gamma=1.5"], "algorithm.gamma=1.5 must be in (0, 1]"),
    (["env.max_steps=0"], "env.max_steps=0 must be an integer >= 1"),
    (["env.options.num_workers=-2"], "env.options.num_workers=-2 must be an integer >= 0"),
    (["+totl_frames=1200"], "unknown setting totl_frames; did you mean total_frames?"),
    (["env.options.not_an_option=1", "env=pettingzoo/simple_spread"], "not_an_option"),
    (["env.options.nagents=3"], "vmas/navigation does not take the option(s) {'nagents': 3}"),
    (["env=foo/bar"], "unknown env family 'foo'"),
    (["algorithm.actor_hidden=[128,128]"], "algorithm.actor_hidden moved to algorithm.network.actor_hidden "
                                           "(write algorithm.network.actor_hidden=[128,128])"),
    (["algorithm=a2po", "algorithm.a2po_loop=ppo"], "algorithm.a2po_loop moved to algorithm.a2po.loop"),
    (["-m", "algorithm.others_clip=0.2,0.3"], "algorithm.others_clip moved to algorithm.a2po.others_clip"),
    (["algorithm.network.actor_hidden=[16,0]"], "algorithm.network.actor_hidden entry=0 must be an integer >= 1"),
    (["algorithm=a2po", "algorithm.a2po.loop=turns"], "algorithm.a2po.loop='turns' is not valid"),
])
def test_user_mistakes_are_one_line_before_any_directory(tmp_path, bad, message, monkeypatch, capsys):
    from marlshare.recipes.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *TINY, *bad])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("marlshare: invalid configuration: ") and message in lines[0]
    assert not (tmp_path / "outputs").exists()


def test_divergence_stops_with_a_message_keeping_the_summary_and_checkpoint(tmp_path, monkeypatch, capsys):
    from marlshare.components.strategies.ps import PS
    from marlshare.recipes.cli import main

    calls = {"n": 0}

    def poisoned(self, net):  # from the third update on, every loss is NaN
        calls["n"] += 1
        return torch.tensor(float("nan")) if calls["n"] > 2 else torch.zeros(())

    monkeypatch.setattr(PS, "aux_loss", poisoned)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *TINY, "max_nonfinite=2", f"run_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 3 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("marlshare: training diverged: 2 consecutive updates had a non-finite")

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "non-finite" in summary["stopped"]


def test_short_iterations_and_rounded_frames_are_reported(tmp_path, capsys):
    from marlshare.recipes.cli import main

    main(["train", *TINY, "env.max_steps=100", "total_frames=700", f"run_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert "total_frames=700 is not a multiple of frames_per_batch=160: training runs 800 frames" in err
    assert "no training episode has ended in 3 iterations of 20 steps per env copy" in err


# --- the command line --------------------------------------------------------------------------------
def test_help_lists_commands_groups_choices_and_settings(capsys):
    from marlshare.recipes.cli import main

    main(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: marlshare COMMAND") and all(f"  {c} " in out for c in ("train", "envs", "sweep"))
    main(["train", "--help"])
    out = capsys.readouterr().out
    assert "  schedule   single, three_phase, two_phase, two_phase_auto" in out
    assert "  strategy   ps, nps, seps, mtl, ps_lora, seps_lora, adaps, prism" in out
    assert "algorithm.gamma" in out and "schedule.phases.<i>.<key>" in out
    assert "  algorithm.network.actor_hidden     [64, 64]" in out and "  algorithm.a2po.loop                agent" in out


def test_envs_lists_families_and_shows_sizes(capfd):
    from marlshare.recipes.cli import main

    main(["envs", "--limit", "3"])
    out = capfd.readouterr().out
    assert "vmas  42 tasks: asym_joint, balance, ball_passage, ..." in out and "smax  16 tasks:" in out  # 14 SMAX maps + the 2 LoRASA substitutes
    main(["envs", "rware", "--match", "tiny-2ag", "--limit", "1"])
    out = capfd.readouterr().out
    assert "rware/tiny-2ag" in out and "discrete 5" in out and "│      2 │" in out


def test_strategies_table_rejects_a_bad_cluster_count(capsys):
    from marlshare.recipes.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["strategies", "--clusters", "0"])
    assert exit_info.value.code == 2 and "--clusters=0 must be in [1, --agents=8]" in capsys.readouterr().err
