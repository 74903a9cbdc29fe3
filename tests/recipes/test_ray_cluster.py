"""A sweep on an existing two-node Ray cluster (``RAY_ADDRESS``), one node killed mid-sweep: the
killed node's trial is recorded as failed, the others finish, and a rerun finishes it (resuming from
its checkpoint) with nothing lost or duplicated. Slow (real ``ray start`` processes, ~2-4 minutes on
a loaded 2-core machine); docs/sweeps.md's "Running on a cluster" section comes from this run."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PORT = "6399"  # not Ray's default, so a Ray instance someone else started is left alone
TINY = ["env=vmas/navigation", "env.num_envs=4", "env.eval_num_envs=2", "env.max_steps=25",
        "algorithm.frames_per_batch=100", "algorithm.minibatch_size=50", "algorithm.epochs=1",
        "total_frames=2000", "eval_every=1000", "checkpoint_every=100", "schedule=single", "logger=csv",
        "logger.progress=false", "strategy=ps,nps", "seed=0,1"]


# Ray >= 2.5x: `ray start --head` turns token authentication on (token in ~/.ray/auth_token); every
# other process that joins or connects (`ray start --address`, the sweep's ray.init) needs
# RAY_AUTH_MODE=token too, else it fails with "InvalidAuthToken" (found in this run; docs/sweeps.md)
ENV = {**os.environ, "RAY_AUTH_MODE": "token"}


def _ray(*args):
    ray = Path(sys.executable).with_name("ray")
    result = subprocess.run([str(ray), *args], capture_output=True, text=True, timeout=180, env=ENV)
    print(f"$ ray {' '.join(args)}\n" + "\n".join(line for line in (result.stdout + result.stderr).splitlines()
                                               if "SUCC" in line or "--address=" in line or "Error" in line))
    return result


def _pids(pattern: str) -> set[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _manifest(sweep_dir: Path) -> dict:
    path = sweep_dir / "manifest.json"
    return json.loads(path.read_text())["trials"] if path.exists() else {}


@pytest.mark.slow
def test_sweep_survives_a_killed_node_and_a_rerun_completes_it(tmp_path):
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, "-m", "marlshare.recipes.cli", "sweep", *TINY, "--out", str(sweep_dir)]
    head = _ray("start", "--head", f"--port={PORT}", "--num-cpus=1", "--include-dashboard=false",
                "--disable-usage-stats")
    assert head.returncode == 0, head.stderr
    session = Path("/tmp/ray/session_latest").resolve().name  # every process of this cluster names it
    address = re.search(r"ray start --address='([^']+)'", head.stdout + head.stderr).group(1)
    env = {**ENV, "RAY_ADDRESS": address}
    try:
        before = _pids("raylet")
        worker = _ray("start", f"--address={address}", "--num-cpus=1")
        assert worker.returncode == 0, worker.stderr
        second = _pids("raylet") - before
        assert len(second) == 1, f"expected one new raylet, got {second}"
        sweep = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 600
        # two trials run at once, one per node (1 CPU each): kill the second node once both have
        # checkpointed, so the killed trial has something to resume from
        while time.time() < deadline:
            trials = _manifest(sweep_dir)
            running = [n for n, e in trials.items() if e.get("state") == "running"]
            if len(running) == 2 and all((sweep_dir / n / "checkpoints" / "last.pt").exists() for n in running):
                break
            time.sleep(1)
        else:
            pytest.fail("two trials never ran at once on the two nodes")
        print(f"two trials running, one per node: {running}; killing the second node's raylet {second}")
        for pid in second:
            os.kill(pid, signal.SIGKILL)
        output, _ = sweep.communicate(timeout=900)
        print(f"$ RAY_ADDRESS={address} marlshare sweep ...\n{output[-1500:]}")
        first = _manifest(sweep_dir)
        states = sorted(e["state"] for e in first.values())
        assert states.count("failed") == 1 and states.count("finished") == 3, (states, output)
        failed = next(n for n, e in first.items() if e["state"] == "failed")
        assert "died" in first[failed]["error"].lower() or "node" in first[failed]["error"].lower(), first[failed]

        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        print(f"$ RAY_ADDRESS={address} marlshare sweep ... (rerun)\n{rerun.stdout[-1500:]}\n{rerun.stderr[-1500:]}")
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert "4 trials, 3 already finished, 1 to run" in rerun.stderr
        final = _manifest(sweep_dir)
        assert sorted(final) == sorted(first) and all(e["state"] == "finished" for e in final.values())
        assert final[failed]["resumed"] is True and final[failed]["attempts"] == 2
        for name in final:  # every trial trained exactly its frames, each iteration logged once
            with open(sweep_dir / name / "metrics.csv") as f:
                frames = [int(float(row["frames"])) for row in csv.DictReader(f)]
            assert frames == sorted(set(frames)) and frames[-1] == 2000, (name, frames)
            assert json.loads((sweep_dir / name / "summary.json").read_text())["frames"] == 2000
    finally:  # only this cluster's processes (by their session), not every Ray process on the machine
        for pid in _pids(session):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
