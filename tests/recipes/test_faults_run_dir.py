"""Fault injection, part two (issue 18): one writer per run directory, checkpoints that say which run
they belong to, damaged run files, a full disk, signals during a fit, an evaluation or a compile,
the progress bar's stage and ETA, the frame-0 row and the best checkpoint."""

import io
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from marlshare.components import checkpoint as ckpt
from marlshare.components import run_lock
from marlshare.components.config import PhaseConfig, ScheduleConfig
from marlshare.components.interrupts import RunInterrupted, StopSignals, stop_requested
from marlshare.components.trainer import ConfigError, RunDirBusy, Trainer
from tests.components.test_trainer import ITER, rows, tiny
from tests.recipes.test_faults import ENV, ROOT, TINY, frames_column


def run_cli(args, capsys):
    """``marlshare ARGS`` in this process: (exit code, stderr lines)."""
    from marlshare.recipes.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


def strip(table):
    return [{k: v for k, v in r.items() if k != "fps"} for r in table]


# --- one writer per run directory --------------------------------------------------------------------
def test_a_second_writer_exits_2_naming_the_holders_pid(tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom marlshare.components import run_lock\n"
                               f"run_lock.acquire({str(tmp_path)!r}); print('held', flush=True); time.sleep(120)"],
                              cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, err = run_cli(["train", *TINY, f"run_dir={tmp_path}"], capsys)  # a second train
        assert code == 2 and len(err) == 1
        assert err[0] == (f"marlshare: run directory {tmp_path} is in use by pid {holder.pid} (lock "
                          f"{tmp_path / '.lock'}): one process writes a run at a time; wait for it to end or stop "
                          f"it (kill {holder.pid})")
        (tmp_path / "config.yaml").write_text("seed: 0\n")
        code, err = run_cli(["train", f"resume={tmp_path}", "total_frames=3000"], capsys)  # a second resume
        assert code == 2 and f"in use by pid {holder.pid}" in err[0] and len(err) == 1
    finally:
        holder.kill()  # kill -9: the OS releases the lock, nothing stale is left
        holder.wait()
    run_lock.acquire(tmp_path)
    run_lock.release(tmp_path)


def test_the_lock_is_held_while_training_and_released_after(tmp_path):
    trainer = Trainer(tiny(), run_dir=tmp_path)
    probe = [sys.executable, "-c", f"from marlshare.components import run_lock\nrun_lock.acquire({str(tmp_path)!r})"]
    busy = subprocess.run(probe, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert busy.returncode == 1 and f"in use by pid {os.getpid()}" in busy.stderr
    trainer.run(max_iterations=1)
    assert subprocess.run(probe, cwd=ROOT, env=ENV, capture_output=True, text=True).returncode == 0
    with run_lock.hold(tmp_path):  # in-process holds count: a trainer inside a held directory is fine
        Trainer(tiny(resume=str(tmp_path))).release_lock()


# --- checkpoints say which run they belong to --------------------------------------------------------
def test_a_checkpoint_of_another_run_is_refused_naming_both(tmp_path, capfd):
    ours, theirs = tmp_path / "ps", tmp_path / "nps"
    Trainer(tiny(), run_dir=ours).run(max_iterations=2)  # last.pt (frame 320), last.1.pt (160)
    Trainer(tiny(**{"strategy": {"name": "nps"}, "env.options": {"n_agents": 3}}), run_dir=theirs).run(max_iterations=1)
    foreign = ckpt.load(theirs / "checkpoints" / "last.pt")
    shutil.copy(theirs / "checkpoints" / "last.pt", ours / "checkpoints" / "last.pt")
    resumed = Trainer(tiny(resume=str(ours)))
    assert resumed.strategy.name == "ps" and resumed.state.frames == ITER  # fell back to last.1.pt
    resumed.release_lock()
    err = capfd.readouterr().err
    ours_hash = ckpt.load(ours / "checkpoints" / "last.1.pt")["meta"]["config_hash"]
    assert (f"marlshare: {ours / 'checkpoints' / 'last.pt'} belongs to another run: it holds strategy nps (phase "
            f"train), env vmas/navigation, 3 agents, config {foreign['meta']['config_hash']} at frame {ITER}; this "
            f"run is strategy ps (phase train), env vmas/navigation, config {ours_hash} (they differ in "
            f"['env.options', 'phases']); resuming from last.1.pt instead") in err

    del foreign["meta"]  # a checkpoint from before the metadata: its recorded phases still tell
    torch.save(foreign, ours / "checkpoints" / "last.1.pt")
    with pytest.raises(ConfigError, match=r"no usable checkpoint .*its phases are \['train: nps'\], this run's are "
                                          r"\['train: ps'\]"):
        Trainer(tiny(resume=str(ours)))


def test_an_old_checkpoint_without_metadata_still_resumes(tmp_path):
    Trainer(tiny(), run_dir=tmp_path).run(max_iterations=1)
    state = ckpt.load(tmp_path / "checkpoints" / "last.pt")
    del state["meta"], state["best"], state["pending"]
    torch.save(state, tmp_path / "checkpoints" / "last.pt")
    assert Trainer(tiny(resume=str(tmp_path))).run()["frames"] == 4 * ITER


# --- damaged run files: one line naming the file, never the defaults ---------------------------------
@pytest.mark.parametrize("content,problem", [
    ("", "is empty"), ("env: {name: [unclosed\n", "is not valid YAML (expected ',' or ']', but got '<stream end>' at "
                                                  "line 2)"),
    ("- a list\n", "holds no settings (a list, not a mapping)"),
    ("total_frames: lots\n", "total_frames"),
], ids=["empty", "broken", "list", "bad_value"])
def test_a_damaged_config_yaml_is_one_line_naming_it(tmp_path, content, problem, capsys):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.yaml").write_text(content)
    code, err = run_cli(["train", f"resume={tmp_path}"], capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"marlshare: {tmp_path / 'config.yaml'}") and problem in err[0]
    assert "restore it from a copy, or start a new run in another run_dir" in err[0]


def test_a_damaged_summary_or_manifest_is_one_line_naming_it(tmp_path):
    from marlshare.components.runs import RunFileError, read_summary
    from marlshare.recipes.sweep import Manifest, SweepError

    (tmp_path / "summary.json").write_text('{"frames": 12')
    with pytest.raises(RunFileError, match=rf"^{tmp_path / 'summary.json'} is not valid JSON \(Expecting ',' "
                                           rf"delimiter at line 1\); resume the run to rewrite it"):
        read_summary(tmp_path)
    (tmp_path / "manifest.json").write_text("")
    with pytest.raises(SweepError, match=rf"^{tmp_path / 'manifest.json'} is empty; move it away and run the sweep"):
        Manifest(tmp_path)


# --- a full disk --------------------------------------------------------------------------------------
def test_a_full_disk_is_one_line_with_exit_4_keeping_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):  # as torch reports it: a RuntimeError raised while handling Errno 28
        if isinstance(obj, dict) and obj.get("frames", 0) >= 3 * ITER:
            f.write(b"half a checkpoint")
            try:
                raise OSError(28, "No space left on device")
            except OSError:
                raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    code, err = run_cli(["train", *TINY, f"run_dir={tmp_path}"], capsys)
    last = tmp_path / "checkpoints" / "last.pt"
    assert code == 4 and err[-1] == f"marlshare: no space left on {tmp_path}; last good checkpoint: {last} at frame 320"
    assert "Traceback" not in "\n".join(err)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == ckpt.load(last)["frames"] == 2 * ITER
    assert summary["stopped"]["frame"] == 2 * ITER and "no space left" in summary["stopped"]["write_error"]
    assert not [p.name for p in tmp_path.rglob("*.tmp")]  # nothing half-written left


# --- signals: at once, and a fit or an evaluation stops at its next step -----------------------------
def test_a_signal_during_an_evaluation_stops_it_unlogged_and_resume_finishes_it(tmp_path, monkeypatch, capsys):
    from marlshare.components import trainer as trainer_module

    Trainer(tiny(), run_dir=tmp_path / "full").run()
    real, checks = trainer_module.evaluate, []

    def signalled(env, actor, seed, max_steps):
        checks.append(0)
        if interrupted.state.frames == 2 * ITER:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the evaluation runs

        def should_stop():  # count the env steps the evaluation takes
            checks[-1] += 1
            return stop_requested()

        return real(env, actor, seed, max_steps, should_stop=should_stop)

    monkeypatch.setattr(trainer_module, "evaluate", signalled)
    interrupted = Trainer(tiny(), run_dir=tmp_path / "cut")
    with pytest.raises(RunInterrupted, match=r"^stopped by SIGINT at frame 320 after saving a checkpoint and the "
                                             r"summary; continue with: marlshare train resume="):
        interrupted.run()
    err = capsys.readouterr().err
    assert "marlshare: SIGINT received during evaluate: stopping after the current step" in err
    assert checks == [19, 1]  # frame 0: asked after each of 20 steps but the last; then stopped after one step
    assert frames_column(tmp_path / "cut") == [0, ITER]  # the interrupted evaluation is not logged
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["stopped"] == {"signal": "SIGINT", "frame": 2 * ITER} and len(summary["phases"]) == 1
    monkeypatch.setattr(trainer_module, "evaluate", real)
    Trainer(tiny(resume=str(tmp_path / "cut"))).run()
    assert strip(rows(tmp_path / "cut")) == strip(rows(tmp_path / "full"))  # as if never interrupted


def test_a_signal_during_the_cluster_fit_stops_it_and_the_fit_restarts_on_resume(tmp_path, monkeypatch, capsys):
    from marlshare.components import phases

    schedule = ScheduleConfig(name="two_phase", phases=[PhaseConfig(until=2 * ITER), PhaseConfig(
        strategy={"name": "seps", "n_clusters": 2, "fit_frames": 320, "vae_epochs": 2})])
    real = phases.agent_transitions

    def signalled(*args, **kwargs):  # Ctrl-C just before the identity VAE trains
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(phases, "agent_transitions", signalled)
    with pytest.raises(RunInterrupted, match="stopped by SIGINT at frame 320"):
        Trainer(tiny(schedule=schedule), run_dir=tmp_path).run()
    assert "SIGINT received during fit: stopping" in capsys.readouterr().err
    state = ckpt.load(tmp_path / "checkpoints" / "last.pt")
    assert state["pending"] == {"switch": "until=320"} and state["phase_index"] == 0 and "finetune" not in state["fits"]
    monkeypatch.setattr(phases, "agent_transitions", real)
    summary = Trainer(tiny(resume=str(tmp_path))).run()
    assert [p["strategy"] for p in summary["phases"]] == ["ps", "seps"] and summary["frames"] == 4 * ITER
    assert summary["fits"]["finetune"]["clusters"] == [0, 1] and summary["stopped"] is None


@pytest.mark.parametrize("compiling", [True, False], ids=["compile_in_progress", "compiler_killed"])
def test_a_signal_during_a_compile_abandons_it_cleanly(tmp_path, compiling):
    import time

    trainer = Trainer(tiny(), run_dir=tmp_path)
    real = trainer.update

    class Compiling:
        compile = "default" if compiling else None  # the trainer shows the stage "compile" for a first compiled call

        def __getattr__(self, name):
            return getattr(real, name)

        def __call__(self, *args):
            if trainer.state.frames == 2 * ITER:
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(600):  # a compile taking a minute: abandoned at once, not awaited
                    time.sleep(0.1) if compiling else None
                # what a compile whose C++ compiler died with the signal raises: 871 lines of it
                raise RuntimeError("CppCompileError: C++ compile error\n" + "g++: fatal error: Killed\n" * 800)
            return real(*args)

    trainer.update = Compiling()
    start = time.perf_counter()
    with pytest.raises(RunInterrupted) as info:
        trainer.run()
    assert time.perf_counter() - start < 40
    last = tmp_path / "checkpoints" / "last.pt"
    assert str(info.value) == (f"stopped during the update (its compile abandoned) by SIGTERM; last good checkpoint: "
                               f"{last} at frame 160; continue with: marlshare train resume={tmp_path}")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == ckpt.load(last)["frames"] == ITER
    assert summary["stopped"]["signal"] == "SIGTERM" and summary["stopped"]["frame"] == ITER


def test_a_second_signal_stops_at_once_leaving_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(tiny(), run_dir=tmp_path)
    real = trainer.update

    def twice(*args):
        if trainer.state.frames == 3 * ITER:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # the second one interrupts the update at once
        return real(*args)

    trainer.update = twice
    with pytest.raises(RunInterrupted, match=rf"^stopped at once by a second SIGINT; last good checkpoint: "
                                             rf"{tmp_path / 'checkpoints' / 'last.pt'} at frame 320;"):
        trainer.run()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == ckpt.load(tmp_path / "checkpoints" / "last.pt")["frames"] == 2 * ITER
    assert summary["stopped"] == {"signal": "SIGINT", "at_once": True, "frame": 2 * ITER}


def test_a_second_signal_waits_for_the_checkpoint_being_written():
    lines = []
    stop = StopSignals(notice=lines.append, stage=lambda: "update")
    stop.request("SIGTERM")
    assert stop.received == "SIGTERM" and lines == [
        "marlshare: SIGTERM received during update: stopping after the current step, then saving a checkpoint and "
        "the summary (Ctrl-C again stops at once)"]
    with pytest.raises(KeyboardInterrupt):
        with stop.deferred():
            stop.request("SIGINT")  # not here: the checkpoint is written whole first
            written = True
    assert written and stop.at_once


# --- what a run shows and keeps ----------------------------------------------------------------------
def test_frame_0_evaluation_is_the_first_row_and_best_pt_is_kept(tmp_path):
    summary = Trainer(tiny(checkpoint_keep=1), run_dir=tmp_path).run()
    table = rows(tmp_path)
    assert table[0]["iteration"] == "0" and table[0]["frames"] == "0" and table[0]["loss_critic"] == ""
    assert float(table[0]["eval_return"]) == pytest.approx(summary["initial_eval_return"], rel=1e-5)
    evals = [(int(r["frames"]), float(r["eval_return"])) for r in table if r["eval_return"]]
    best_frame, best_return = max(evals, key=lambda e: e[1])
    assert summary["best"]["frame"] == best_frame and summary["best"]["path"] == "checkpoints/best.pt"
    assert summary["best"]["eval_return"] == pytest.approx(best_return, rel=1e-5)
    assert ckpt.load(tmp_path / "checkpoints" / "best.pt")["frames"] == best_frame  # not pruned by checkpoint_keep=1
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt")) == ["best.pt", "last.pt"]


def test_progress_shows_the_stage_and_counts_evaluations_in_the_eta():
    from marlshare.components.progress import Progress, eta, evaluations_left

    assert evaluations_left(frames=0, total=2400, every=1200, step=600) == 2  # at 1200 and at 2400
    assert evaluations_left(frames=0, total=2500, every=1200, step=600) == 3  # 1200, 2400 and the end (3000)
    assert eta(frames_left=10_000, train_s_per_frame=1e-3, evals_left=3, eval_s=2.0) == pytest.approx(16.0)
    out = io.StringIO()
    bar = Progress(True, total=2400, initial=0, eval_every=1200, frames_per_batch=600, file=out)
    bar.stage("evaluate")
    assert "evaluate:   0%" in out.getvalue()
    bar.stage("collect")
    bar.update(600, {"phase": "train", "train_return": 1.0})
    bar._train_s, bar._eval_times = 1.2, [5.0]  # measured: 2 ms per frame, 5 s per evaluation
    assert bar.eta() == pytest.approx(1800 * 0.002 + 2 * 5.0)  # two evaluations are still to come
    bar.update(0, {"phase": "train", "train_return": 1.0})
    assert "collect:  25%" in out.getvalue() and "eta=0:14" in out.getvalue()
    bar.close()
