"""Reproductions of the papers' claims at CPU scale: run a results definition, then report it.

    python -m tools.analyze.results run recipes/results/speaker_listener.yaml [--out outputs/results] [--jobs 2]
    python -m tools.analyze.results report recipes/results/*.yaml [--out outputs/results] [--docs docs]
    make results                       # both, for every recipes/results/*.yaml

A definition (``recipes/results/*.yaml``) names a task, the overrides every run gets, the seeds and a
set of named configs (each a list of ``marlshare train`` overrides). ``run`` trains every
(config, seed) into ``OUT/<name>/<config>/seed-<s>/`` as its own ``marlshare train`` process, at most
``--jobs`` at once, under ``nice``; a run that finished with the same overrides is skipped, so a rerun resumes
the grid (an unfinished or redefined run directory is started again from scratch). ``report`` aggregates the final
evaluation returns with rliable (IQM, 95% stratified bootstrap CIs) per claim of ``CLAIMS`` and
writes tables (CSV, Markdown) and figures (learning curves with shaded CIs, IQM bars) under
``--docs`` (``figures/results_*.png``, ``data/results_*.csv``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tools.analyze.grid import finished, load_definition, run_dir, trials

ROOT = Path(__file__).resolve().parents[2]


def _train(args: list[str], directory: Path, nice: int, threads: int = 1) -> tuple[str, float, int]:
    if directory.exists():  # an interrupted or redefined run starts again: its files would mix two runs
        shutil.rmtree(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    log = directory.parent / f"{directory.name}.log"
    with open(log, "w") as f:
        cmd = ["nice", "-n", str(nice), sys.executable, "-m", "marlshare.recipes.train", *args]
        # ``jobs`` runs share the cores: each gets its share of threads (the trainer's threads=auto reads it)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    if rc == 0:
        (directory / "results_args.json").write_text(json.dumps(args))
    return str(directory), time.time() - start, rc


def run(paths: list[str], out: Path, jobs: int = 2, nice: int = 10) -> int:
    todo = []
    for path in paths:
        spec = load_definition(path)
        for config, seed, args in trials(spec, out):
            directory = run_dir(out, spec, config, seed)
            if finished(directory, args):
                continue
            todo.append((args, directory))
    print(f"{len(todo)} runs to do (finished ones skipped), {jobs} at a time", flush=True)
    failed = 0
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        threads = max(1, len(os.sched_getaffinity(0)) // jobs)
        for i, (directory, seconds, rc) in enumerate(pool.map(lambda t: _train(*t, nice, threads), todo), 1):
            failed += rc != 0
            print(f"[{i}/{len(todo)}] {'ok' if rc == 0 else f'FAILED rc={rc}'} {directory} ({seconds:.0f}s)",
                  flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.analyze.results", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("run", "report"))
    parser.add_argument("definitions", nargs="+", help="recipes/results/*.yaml")
    parser.add_argument("--out", default="outputs/results", help="where the runs go (default outputs/results)")
    parser.add_argument("--jobs", type=int, default=2, help="training processes at once (default 2)")
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--docs", default="docs", help="report: where tables and figures go")
    parser.add_argument("--reps", type=int, default=2000, help="report: bootstrap resamples")
    args = parser.parse_args(argv)
    if args.command == "run":
        sys.exit(run(args.definitions, Path(args.out), args.jobs, args.nice))
    from tools.analyze.report import report

    report(args.definitions, Path(args.out), Path(args.docs), reps=args.reps)


if __name__ == "__main__":
    main()
