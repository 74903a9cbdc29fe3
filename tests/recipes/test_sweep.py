"""marlshare sweep: trials as Ray tasks on a local 2-CPU instance, failures recorded, reruns skip."""

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from marlshare.recipes.sweep import SweepError, build_sweep, run_sweep

# Tiny trials: 2 iterations of 100 frames each.
TINY = ["env=vmas/navigation", "env.num_envs=4", "env.eval_num_envs=2", "env.max_steps=25",
        "algorithm.frames_per_batch=100", "algorithm.minibatch_size=50", "algorithm.epochs=1",
        "total_frames=200", "eval_every=100", "checkpoint_every=100", "schedule=single", "logger.wandb=false"]
GRID = ["strategy=ps,nps", "seed=0,1,2"]
# The deliberately failing trial: a valid config whose run cannot write its checkpoints, because a
# plain file sits where its checkpoints/ directory goes. It fails at run time, in the worker, in any
# trainer that honours the run-directory layout, like a full or broken disk would; config
# validation cannot (and should not) see it coming.
BROKEN = "strategy-nps_seed-2"


def test_command_line_axes_and_overrides_replace_the_specs():
    spec = {"name": "s", "overrides": ["total_frames=100", "seed=5"], "axes": {"strategy": ["ps", "nps", "mtl"]}}
    sweep = build_sweep(spec, ["seed=0,1", "strategy=ps", "+env.options.n_agents=2"])
    assert sweep.axes == {"seed": ["0", "1"]}
    assert [t.name for t in sweep.trials] == ["seed-0", "seed-1"]
    assert sweep.trials[1].overrides == ["total_frames=100", "strategy=ps", "+env.options.n_agents=2", "seed=1"]


def test_a_config_error_in_any_trial_stops_the_sweep_before_it_starts(tmp_path):
    sweep = build_sweep({"name": "bad"}, TINY + ["strategy=ps,no_such_strategy", "seed=0,1"])
    with pytest.raises(SweepError) as err:
        run_sweep(sweep, tmp_path / "sweep", progress=False)
    message = str(err.value)
    assert "2 of 4 trials" in message and "strategy-no_such_strategy_seed-0" in message
    assert "no_such_strategy" in message and "seps_lora" in message  # the bad value and the valid choices
    assert not (tmp_path / "sweep").exists()  # nothing started, nothing written


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    out = tmp_path_factory.mktemp("sweep") / "tiny"
    (out / BROKEN).mkdir(parents=True)
    (out / BROKEN / "checkpoints").write_text("not a directory")
    log = io.StringIO()  # stderr as a log file sees it (not a terminal)
    try:
        with contextlib.redirect_stderr(log):
            run_sweep(build_sweep({"name": "tiny"}, TINY + GRID), out, progress=True)
        (out.parent / "stderr.log").write_text(log.getvalue())
        yield out
    finally:
        ray.shutdown()


def _manifest(sweep_dir):
    return json.loads((sweep_dir / "manifest.json").read_text())


def test_trials_run_in_parallel_and_a_failing_trial_does_not_stop_the_others(sweep_dir):
    manifest = _manifest(sweep_dir)
    trials = manifest["trials"]
    finished = {n: t for n, t in trials.items() if t["state"] == "finished"}
    failed = {n: t for n, t in trials.items() if t["state"] == "failed"}
    assert sorted(finished) == ["strategy-nps_seed-0", "strategy-nps_seed-1", "strategy-ps_seed-0",
                                "strategy-ps_seed-1", "strategy-ps_seed-2"]
    assert list(failed) == [BROKEN]
    assert "checkpoints" in failed[BROKEN]["error"], failed[BROKEN]["error"]  # the error names what broke
    assert "Traceback" in (sweep_dir / BROKEN / "error.txt").read_text()
    for name, entry in finished.items():
        run = sweep_dir / name
        summary = json.loads((run / "summary.json").read_text())
        assert entry["final_eval_return"] == summary["final_eval_return"] and summary["frames"] == 200
        assert (run / "checkpoints" / "last.pt").exists() and (run / "trial.log").exists()
        cfg = OmegaConf.load(run / "config.yaml")
        assert (cfg.strategy.name, cfg.seed) == (entry["axes"]["strategy"], int(entry["axes"]["seed"]))
        assert cfg.logger.progress is False  # one sweep-wide progress line instead of one bar per trial
        assert cfg.logger.wandb_group == manifest["wandb_group"] and manifest["wandb_group"].startswith("tiny-")
        assert list(cfg.logger.wandb_tags) == ["sweep:tiny", f"strategy:{cfg.strategy.name}", f"seed:{cfg.seed}"]
    # two workers: some pair of finished trials overlapped in time
    spans = [(json.loads((sweep_dir / n / "started.json").read_text())["time"], t["ended"]) for n, t in finished.items()]
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:])


def test_a_rerun_skips_finished_trials_and_resumes_interrupted_ones(sweep_dir):
    manifest = _manifest(sweep_dir)
    kept, crashed = sweep_dir / "strategy-ps_seed-0", sweep_dir / "strategy-nps_seed-1"
    kept_mtime = (kept / "summary.json").stat().st_mtime_ns
    crashed_metrics = (crashed / "metrics.csv").read_bytes()
    # as if the sweep had been killed after the trial's last checkpoint, before it finished
    (crashed / "summary.json").unlink()
    manifest["trials"][crashed.name]["state"] = "running"
    (sweep_dir / "manifest.json").write_text(json.dumps(manifest))

    trials = run_sweep(build_sweep({"name": "tiny"}, TINY + GRID), sweep_dir, progress=False).trials
    assert (kept / "summary.json").stat().st_mtime_ns == kept_mtime and trials[kept.name]["attempts"] == 1
    assert (trials[crashed.name]["state"], trials[crashed.name]["resumed"], trials[crashed.name]["attempts"]) == (
        "finished", True, 2)
    # resumed from checkpoints/last.pt at 200 of 200 frames: no iteration re-run, metrics untouched
    assert (crashed / "metrics.csv").read_bytes() == crashed_metrics
    assert json.loads((crashed / "summary.json").read_text())["frames"] == 200
    assert "resume on" in (crashed / "trial.log").read_text()
    assert (trials[BROKEN]["state"], trials[BROKEN]["attempts"]) == ("failed", 2)  # failed trials are retried


def test_compare_groups_a_sweep_by_its_axes(sweep_dir):
    from marlshare.components.analysis.compare import compare

    rows = compare([sweep_dir], reps=50)
    trials = _manifest(sweep_dir)["trials"]
    assert [(r["method"], r["seeds"]) for r in rows] == [("nps", 2), ("ps", 3)]  # the failed trial is left out
    for row in rows:
        finals = [t["final_eval_return"] for t in trials.values()
                  if t["state"] == "finished" and t["axes"]["strategy"] == row["method"]]
        assert row["mean"] == pytest.approx(sum(finals) / len(finals))


def test_trials_of_a_sweep_share_a_wandb_group_and_tags(tmp_path, monkeypatch):
    import torchrl.record.loggers as loggers

    from marlshare.components.config import LoggerConfig
    from marlshare.components.tracking import RunLogger

    seen = {}
    monkeypatch.setattr(loggers, "WandbLogger", lambda **kwargs: seen.update(kwargs) or object())
    cfg = LoggerConfig(csv=False, wandb=True, wandb_mode="offline", wandb_group="tiny-1",
                       wandb_tags=["sweep:tiny", "strategy:ps"])
    RunLogger(tmp_path, cfg, "run", {}).close()
    assert seen["group"] == "tiny-1" and seen["tags"] == ["sweep:tiny", "strategy:ps"]


def test_a_log_file_gets_a_progress_line_per_change_not_per_second(sweep_dir):
    log = (sweep_dir.parent / "stderr.log").read_text()
    assert log.startswith("sweep tiny: 6 trials, 0 already finished, 6 to run")
    states = [line.split(" [")[0] for line in re.split(r"[\r\n]+", log) if line.startswith("tiny · ")]
    assert states[-1] == "tiny · 5 finished, 0 running, 0 queued, 1 failed: 6/6 trials done"
    # redrawn when a count changes; the same line twice only around the failure message and at the close
    # (a redraw every second, as on a terminal, repeats a line for every second a trial runs)
    assert len(states) - len(set(states)) <= 2, states
