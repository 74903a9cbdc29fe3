"""Sweeps on Ray: ``marlshare sweep [SPEC] [key=v1,v2 ...] [--out DIR] [--address ADDR]``.

A sweep is a grid of training trials. ``SPEC`` is a YAML file (or the name of one in
``recipes/sweeps/``) with fixed ``overrides`` and ``axes``; command-line arguments add to it in
Hydra's syntax: ``key=a,b`` (or ``key=range(0,3)``) is an axis, ``key=value`` a fixed override,
and a command-line key replaces the spec's axis or override of the same key. Every combination of
axis values is one trial, trained by ``recipes.train.train`` in one Ray task.

    marlshare sweep navigation_ps_nps                       # recipes/sweeps/navigation_ps_nps.yaml
    marlshare sweep strategy=ps,nps seed=0,1,2 schedule=single total_frames=24000 --out sweeps/mine
    RAY_ADDRESS=ray://head:10001 marlshare sweep navigation_ps_nps   # an existing cluster

Layout of the sweep directory (default ``sweeps/<spec name>``)::

    sweep.yaml          the expanded definition (overrides, axes, resources)
    manifest.json       one entry per trial: axes, overrides, state, error, times, final return
    <trial>/            one run directory per trial (config.yaml, metrics.csv, summary.json,
                        checkpoints/, trial.log with the trial's output, error.txt if it failed)

Every trial's configuration is composed and validated before Ray starts, so a typo in any trial
stops the sweep before any trial runs. A trial that raises is recorded as ``failed`` with its error
and the others go on. Running the same command again skips finished trials, resumes unfinished ones
that have ``checkpoints/last.pt`` (``resume=<trial dir>``) and starts the rest afresh.
"""


from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import sys
import time
import traceback
from pathlib import Path

from omegaconf import OmegaConf

from marlshare.recipes.sweep_spec import (
    STATES, SweepError, Trial, Sweep, load_spec, build_sweep, wandb_tags, compose_trials,
)


# --- the manifest -------------------------------------------------------------------------------

class Manifest:
    """``manifest.json``: the state of every trial, rewritten atomically on every change."""

    def __init__(self, sweep_dir: Path):
        from marlshare.components.runs import RunFileError, read_json

        self.path = Path(sweep_dir) / "manifest.json"
        try:  # damaged: one line naming it, never a fresh manifest that would forget the finished trials
            self.data = read_json(self.path, "move it away and run the sweep again: finished trials are then run "
                                             "again (resumed from their checkpoints)") if self.path.exists() else {"trials": {}}
        except RunFileError as err:
            raise SweepError(str(err)) from None

    @property
    def trials(self) -> dict[str, dict]:
        return self.data["trials"]

    def update(self, name: str, **fields) -> None:
        self.trials.setdefault(name, {}).update(fields)
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        os.replace(tmp, self.path)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for entry in self.trials.values():
            counts[entry["state"]] += 1
        return counts


# --- one trial (runs in a Ray worker) -----------------------------------------------------------

def run_trial(config: dict, trial_dir: str, resume: bool) -> dict:
    """Train one trial into ``trial_dir``; its output goes to ``trial_dir/trial.log``. Never raises:
    an error is returned (and its traceback written to ``error.txt``) so the sweep goes on."""
    from marlshare.components import run_lock

    trial_dir = Path(trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    try:  # one writer per run directory, for the whole trial (the trainer takes it again inside)
        run_lock.acquire(trial_dir, "trial directory")
    except run_lock.RunDirBusy as err:
        return {"state": "failed", "error": str(err)}
    (trial_dir / "started.json").write_text(json.dumps(
        {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time(), "resume": resume}))
    log = open(trial_dir / "trial.log", "a")
    log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {'resume' if resume else 'start'} on "
              f"{socket.gethostname()} pid {os.getpid()}\n")
    log.flush()
    # Redirect the file descriptors, not only sys.stdout: loggers that kept a handle on the original
    # stderr, and C extensions, write to fd 2 directly. The worker process is reused: restore them.
    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(log.fileno(), 1), os.dup2(log.fileno(), 2)
    start = time.time()
    try:
        from marlshare.recipes.train import train

        cfg = OmegaConf.create(config)
        if resume:
            cfg.resume = str(trial_dir)
        summary = train(cfg, run_dir=str(trial_dir), quiet=True)
        return {"state": "finished", "final_eval_return": summary.get("final_eval_return"),
                "frames": summary.get("frames"), "wall_time_s": time.time() - start}
    except BaseException as err:  # noqa: BLE001 - a trial's failure is data, not a crash of the sweep
        text = traceback.format_exc()
        (trial_dir / "error.txt").write_text(text)
        print(text, flush=True)
        frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
        where = f" (at {Path(frame.filename).name}:{frame.lineno})" if frame else ""
        message = " ".join(str(err).split())[:300]
        return {"state": "failed", "error": f"{type(err).__name__}{': ' + message if message else ''}{where}",
                "wall_time_s": time.time() - start}
    finally:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
        os.close(saved[0]), os.close(saved[1])
        log.close()
        run_lock.release(trial_dir)


# --- the sweep (the driver) ---------------------------------------------------------------------

def _init_ray(address: str | None, num_cpus: int | None) -> bool:
    """Connect to ``address`` / RAY_ADDRESS, or start a local instance. True if this call started it."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    # Ray warns on every start whether token authentication is on or off (its security note): keep it
    # off the console, which shows the sweep's progress; Ray's own log files still have it
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        # address="local": a fresh local instance even when `ray start` left /tmp/ray/ray_current_cluster
        # behind (ray.init would otherwise try to join that cluster, and refuse num_cpus)
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    return True


def _plan(sweep: Sweep, sweep_dir: Path, manifest: Manifest) -> tuple[list[Trial], dict[str, bool]]:
    """Which trials to run, and whether each resumes; finished ones are skipped."""
    todo, resume = [], {}
    for trial in sweep.trials:
        entry = manifest.trials.get(trial.name)
        trial_dir = sweep_dir / trial.name
        if entry is not None and entry.get("overrides") != trial.overrides:
            raise SweepError(
                f"trial {trial.name} in {sweep_dir} was run with overrides {entry.get('overrides')}, this sweep "
                f"gives it {trial.overrides}; use another --out directory for a changed sweep")
        if entry is not None and entry.get("state") == "finished" and (trial_dir / "summary.json").exists():
            continue
        todo.append(trial)
        resume[trial.name] = (trial_dir / "checkpoints" / "last.pt").exists() and (trial_dir / "config.yaml").exists()
    return todo, resume


def run_sweep(sweep: Sweep, sweep_dir: str | Path, address: str | None = None, num_cpus: int | None = None,
              progress: bool = True) -> Manifest:
    """Run every unfinished trial of ``sweep`` on Ray; returns the manifest (also on disk). One sweep
    writes a sweep directory at a time: a second one is a SweepError naming the first one's pid."""
    from marlshare.components import run_lock

    configs = compose_trials(sweep)  # every trial's config error shows before anything starts
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    try:
        run_lock.acquire(sweep_dir, "sweep directory")
    except run_lock.RunDirBusy as err:
        raise SweepError(str(err)) from None
    try:
        return _run_sweep(sweep, configs, sweep_dir, address, num_cpus, progress)
    finally:
        run_lock.release(sweep_dir)


def _run_sweep(sweep: Sweep, configs: dict, sweep_dir: str | Path, address: str | None, num_cpus: int | None,
               progress: bool) -> Manifest:
    sweep_dir = Path(sweep_dir).resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(sweep_dir)
    todo, resume = _plan(sweep, sweep_dir, manifest)
    group = manifest.data.get("wandb_group") or sweep.wandb_group or \
        f"{sweep.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    manifest.data.update(name=sweep.name, wandb_group=group)
    definition = {"name": sweep.name, "overrides": sweep.overrides, "axes": sweep.axes,
                  "cpus_per_trial": sweep.cpus_per_trial, "gpus_per_trial": sweep.gpus_per_trial,
                  "wandb_group": group}
    (sweep_dir / "sweep.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(definition)))
    for trial in sweep.trials:
        entry = manifest.trials.setdefault(trial.name, {"state": "pending", "attempts": 0})
        entry.update(axes=trial.axes, overrides=trial.overrides)
    manifest.save()
    skipped = len(sweep.trials) - len(todo)
    say = print if progress else (lambda *a, **k: None)
    title = "sweep" if sweep.name == "sweep" else f"sweep {sweep.name}"  # no spec: not "sweep sweep"
    say(f"{title}: {len(sweep.trials)} trials, {skipped} already finished, {len(todo)} to run -> {sweep_dir}",
        file=sys.stderr)
    if not todo:
        return manifest

    import ray
    from tqdm import tqdm

    started_ray = _init_ray(address, num_cpus)
    task = ray.remote(run_trial).options(num_cpus=sweep.cpus_per_trial, num_gpus=sweep.gpus_per_trial,
                                         max_retries=0)
    running: dict = {}  # object ref -> trial
    tty = sys.stderr.isatty()
    # one line for the whole sweep; the ETA comes from the rate at which trials end
    bar = tqdm(total=len(sweep.trials), initial=skipped, disable=not progress, dynamic_ncols=True,
               bar_format="{desc}: {n_fmt}/{total_fmt} trials done [{elapsed}<{remaining}]")
    try:
        for trial in todo:
            trial_dir = sweep_dir / trial.name
            trial_dir.mkdir(exist_ok=True)
            for stale in ("started.json", "error.txt"):
                (trial_dir / stale).unlink(missing_ok=True)
            config = dict(configs[trial.name])
            config["logger"] = {**config["logger"], "progress": False, "wandb_group": group,
                                "wandb_tags": wandb_tags(sweep.name, trial.axes)}
            attempts = manifest.trials[trial.name].get("attempts", 0) + 1
            manifest.trials[trial.name].update(state="pending", error=None, attempts=attempts,
                                               resumed=resume[trial.name])
            running[task.remote(config, str(trial_dir), resume[trial.name])] = trial
        manifest.save()
        while running:
            done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in done:
                trial = running.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as err:  # the worker itself died (killed, out of memory)
                    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines() or [""]
                    result = {"state": "failed", "error": f"{type(err).__name__}: {lines[-1][:300]}"}
                manifest.update(trial.name, **result, ended=time.time())
                bar.update(1)
                if result["state"] != "finished" and progress:
                    bar.write(f"trial {trial.name} failed: {result['error']} "
                              f"(log: {sweep_dir / trial.name / 'trial.log'})")
            for trial in running.values():  # a worker writes started.json when the trial starts
                entry = manifest.trials[trial.name]
                if entry["state"] == "pending" and (sweep_dir / trial.name / "started.json").exists():
                    manifest.update(trial.name, state="running", started=time.time())
            counts = manifest.counts()
            desc = (f"{sweep.name} · {counts['finished']} finished, {counts['running']} running, "
                    f"{counts['pending']} queued, {counts['failed']} failed")
            # a terminal redraws every second (the clock moves); a log file gets a line per change only
            if desc != getattr(bar, "desc", None) or tty:  # a disabled bar has no desc
                bar.set_description_str(desc, refresh=True)
    except KeyboardInterrupt:
        for ref, trial in running.items():
            ray.cancel(ref, force=True)
            manifest.trials[trial.name]["state"] = "interrupted"
        manifest.save()
        bar.write(f"interrupted: run the same command again to resume ({sweep_dir})")
        raise
    finally:
        bar.close()
        if started_ray:
            ray.shutdown()
    return manifest


def report(manifest: Manifest, sweep_dir: Path) -> str:
    counts = manifest.counts()
    lines = [f"{counts['finished']} finished, {counts['failed']} failed of {len(manifest.trials)} trials "
             f"in {sweep_dir} (manifest.json)"]
    for name, entry in manifest.trials.items():
        if entry["state"] == "failed":
            lines.append(f"  failed  {name}: {entry.get('error')}  (see {sweep_dir / name / 'error.txt'})")
    if counts["finished"]:
        lines.append(f"aggregate: marlshare compare {sweep_dir}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="marlshare sweep", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", metavar="SPEC | key=value",
                        help="a sweep spec (path or name in recipes/sweeps/), then Hydra overrides; "
                             "key=a,b is an axis")
    parser.add_argument("--out", default=None, help="sweep directory (default: sweeps/<spec name>)")
    parser.add_argument("--address", default=None, help="an existing Ray cluster (default: RAY_ADDRESS, "
                                                        "else a local Ray instance)")
    parser.add_argument("--cpus-per-trial", type=float, default=None, help="CPUs each trial reserves (default 1)")
    parser.add_argument("--gpus-per-trial", type=float, default=None, help="GPUs each trial reserves (default 0)")
    parser.add_argument("--num-cpus", type=int, default=None,
                        help="CPUs of the local Ray instance (default: all cores); ignored with a cluster")
    parser.add_argument("--dry-run", action="store_true", help="list and validate the trials, run nothing")
    args = parser.parse_args(argv)
    spec_arg = args.items[0] if args.items and "=" not in args.items[0] else None
    overrides = args.items[1:] if spec_arg else args.items
    try:
        spec = load_spec(spec_arg)
        if args.cpus_per_trial is not None:
            spec["cpus_per_trial"] = args.cpus_per_trial
        if args.gpus_per_trial is not None:
            spec["gpus_per_trial"] = args.gpus_per_trial
        sweep = build_sweep(spec, overrides)
        sweep_dir = Path(args.out or Path("sweeps") / sweep.name)
        if args.dry_run:
            compose_trials(sweep)
            print(f"{len(sweep.trials)} trials, every configuration valid; would write to {sweep_dir}")
            for trial in sweep.trials:
                print(f"  {trial.name}: {' '.join(trial.overrides)}")
            return
        manifest = run_sweep(sweep, sweep_dir, address=args.address, num_cpus=args.num_cpus)
    except SweepError as err:
        print(f"marlshare sweep: {err}", file=sys.stderr)
        sys.exit(2)
    print(report(manifest, sweep_dir.resolve()))
    if manifest.counts()["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
