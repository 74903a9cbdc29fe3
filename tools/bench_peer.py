"""Side by side with BenchMARL 1.5.2: MAPPO on ``vmas/balance`` (4 agents) at BenchMARL's default
on-policy config, marlshare (the ``benchmarl`` preset, MAPPO-PS) against BenchMARL itself.

    make bench-peer                                        # builds .venv-peer once, then runs this with --docs
    python -m tools.bench_peer --peer .venv-peer/bin/python                    # 60k frames, threads 1 and 2, defaults
    python -m tools.bench_peer --peer .venv-peer/bin/python --quick            # smoke test (< 2 min)
    python -m tools.bench_peer --peer .venv-peer/bin/python --bf16 --no-defaults  # also marlshare at bf16
    python -m tools.bench_peer --differences --docs        # only the settings table, into docs/benchmarks.md
    python -m tools.bench_peer --report outputs/bench_peer.json --docs        # re-render a finished run
    python -m tools.bench_training --peer .venv-peer/bin/python ...           # the same, from the training bench

Each run is its own process, so start-up, threads and peak memory belong to one library: marlshare's
``tools/peer/marlshare_run.py`` (this venv) and BenchMARL's ``tools/peer/benchmarl_run.py`` (the peer
venv, which BenchMARL needs: torchrl < 0.12). Both train ``--frames`` frames from the same seed and
print one JSON line (``tools/peer/_measure.py``): per-iteration wall and CPU time between the ends of
consecutive PPO updates, the return of the training episodes of each iteration, the process's CPU
seconds and peak RSS. Frames/s is over iterations 2..K (the first holds one-time costs and is
reported apart). Runs alternate (marlshare, BenchMARL, marlshare, ...), ``--repeats`` pairs per
thread setting with seeds ``seed + r``; reported are medians, and the frames/s ratio is the median of
the per-pair ratios. Thread settings: each ``--threads`` value for both libraries
(``torch.set_num_threads``), and "defaults": marlshare's ``TrainConfig.threads`` against BenchMARL's
torch default (every core).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tools.peer._measure import QUICK, RESULT_PREFIX
from tools.reports import write_json
from tools.peer.settings import (BENCHMARL, MARLSHARE_OVERRIDES, MISSING, PEER_KEYS, RECIPE, ROWS,
                                  TIMING_OVERRIDES)

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "recipes" / "conf" / "algorithm" / "benchmarl.yaml"
ENV_PRESET = ROOT / "recipes" / "conf" / "env" / "vmas" / "balance.yaml"
TRAIN_PRESET = ROOT / "recipes" / "conf" / "train.yaml"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench_peer:begin -->", "<!-- bench_peer:end -->"
LIBRARIES = ("marlshare", "benchmarl")  # the order of every pair of runs
TARGETS = {"equal": 2.0, "defaults": 1.5, "bf16": 2.0}  # issues 13, 22: marlshare frames/s >= this x BenchMARL's


# --- configs ---------------------------------------------------------------------------------------------

def _load(path: Path):
    from omegaconf import OmegaConf

    data = OmegaConf.load(path)
    for key in ("defaults", "hydra"):
        data.pop(key, None)
    return data


def marlshare_config(seed: int, threads: int, frames: int, run_dir: str, quick: bool = False):
    """The Trainer config of the marlshare side: the preset, MARLSHARE_OVERRIDES and TIMING_OVERRIDES
    (read as data: tools do not import the recipes). ``threads=0`` keeps TrainConfig's default."""
    from omegaconf import OmegaConf

    from marlshare.components.config import TrainConfig

    cfg = OmegaConf.structured(TrainConfig)
    cfg.algorithm = OmegaConf.merge(cfg.algorithm, _load(PRESET))
    extra = [f"seed={seed}", f"total_frames={frames}", f"run_dir={run_dir}"]
    extra += [f"threads={threads}"] if threads else []
    if quick:
        extra += [f"algorithm.{k}={v}" for k, v in QUICK.items()]
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(MARLSHARE_OVERRIDES + TIMING_OVERRIDES + extra))


def plain_configs() -> dict:
    """Plain dicts (no schema, so settings the schema does not have yet still show) of what ``marlshare
    train env=vmas/balance strategy=ps algorithm=mappo`` runs and of the recipe command RECIPE."""
    import dataclasses

    from omegaconf import OmegaConf

    from marlshare.components.config import TrainConfig

    base = OmegaConf.merge(OmegaConf.create(dataclasses.asdict(TrainConfig())), _load(TRAIN_PRESET))
    default = OmegaConf.merge(base, {"env": _load(ENV_PRESET)})
    preset = OmegaConf.merge(base, {"algorithm": _load(PRESET)}, OmegaConf.from_dotlist(MARLSHARE_OVERRIDES))
    return {"default": OmegaConf.to_container(default), "preset": OmegaConf.to_container(preset)}


def lookup(cfg: dict, key: str, fallback=None):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return fallback
        node = node[part]
    return node


def preset_mismatches(preset: dict) -> dict:
    """``{key: (preset value, BenchMARL value)}`` for every declared BenchMARL setting the preset misses."""
    missing = object()
    out = {}
    for key, want in BENCHMARL.items():
        got = lookup(preset, key, missing)
        if got is missing or got != want:
            out[key] = (None if got is missing else got, want)
    return out


def peer_mismatches(peer_settings: dict) -> dict:
    """The declared BENCHMARL values that differ from what the installed BenchMARL reports."""
    out = {}
    for key, (section, name) in PEER_KEYS.items():
        got = peer_settings[section][name]
        got = list(got) if isinstance(got, (list, tuple)) else got
        if got != BENCHMARL[key]:
            out[key] = (BENCHMARL[key], got)
    return out


def _show(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def _cell(cfg: dict, key: str) -> str:
    a = cfg["algorithm"]
    net = a["network"]
    special = {
        "envs": lambda: f"{cfg['env']['num_envs']} x {a['frames_per_batch'] // cfg['env']['num_envs']}",
        "value_loss": lambda: "l2" if a.get("huber_delta") is None else f"huber {a['huber_delta']}",
        "envmax": lambda: f"{cfg['env']['max_steps']}, {cfg['env']['options'].get('n_agents')}",
        "eval": lambda: f"every {cfg['eval_every']} frames, {cfg['env']['eval_num_envs']} episodes",
        "threads": lambda: str(cfg["threads"]),
        "algorithm.compile": lambda: _show(a.get("compile", "n/a (eager)")),
        "strategy.append_id": lambda: _show(cfg["strategy"].get("append_id", True)),
        "algorithm.clip_grad_per_network": lambda: _show(a.get("clip_grad_per_network", False)),
        "env.options.clamp_actions": lambda: _show(cfg["env"]["options"].get("clamp_actions", False)),
        "algorithm.network.critic_agent_id": lambda: ("a value per agent (id appended)" if net["critic_agent_id"]
                                                      else "one value per sample"),
        "algorithm.network.head_gain": lambda: ("nn.Linear default" if net["head_gain"] is None
                                                else f"head gain {net['head_gain']}"),
        "algorithm.network.log_std": lambda: ("state-dependent" if net["log_std"] == "state"
                                              else f"state-independent ({net['log_std']})"),
        "algorithm.network.log_std_init": lambda: (
            "the head's drawn bias" if net["log_std_init"] is None
            else f"log-std {net['log_std_init']} (scale {math.exp(net['log_std_init']):.2g})"),
    }
    return special[key]() if key in special else _show(lookup(cfg, key))


def differences_markdown(configs: dict | None = None) -> str:
    configs = configs or plain_configs()
    lines = ["| setting | marlshare default | BenchMARL 1.5.2 | `benchmarl` preset | note |", "|---|---|---|---|---|"]
    for name, key, peer, note in ROWS:
        if key.startswith("="):
            ours = preset = key[1:]
        else:
            ours, preset = _cell(configs["default"], key), _cell(configs["preset"], key)
        lines.append(f"| {name} | {ours} | {peer} | {preset} | {note} |")
    return "\n".join(lines)




# --- running --------------------------------------------------------------------------------------------

def parse_result(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise RuntimeError("no result line in the runner's output")


def run_command(cmd: list[str], timeout: float, env: dict | None = None) -> dict:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return parse_result(proc.stdout)


def subprocess_runner(peer_python: str, frames: int, quick: bool, timeout: float):
    """``run_one(library, threads, seed) -> result`` running each side in a fresh process."""
    peer_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the peer never sees marlshare

    def run_one(library: str, threads: int, seed: int, precision: str = "fp32") -> dict:
        tail = ["--frames", str(frames), "--seed", str(seed), "--threads", str(threads)]
        tail += ["--quick"] if quick else []
        if library == "marlshare":  # BenchMARL has no precision setting: it always trains in float32
            tail += ["--precision", precision] if precision != "fp32" else []
            return run_command([sys.executable, "-m", "tools.peer.marlshare_run"] + tail, timeout)
        return run_command([peer_python, str(ROOT / "tools" / "peer" / "benchmarl_run.py")] + tail, timeout, peer_env)

    return run_one


def thread_modes(threads: list[int], defaults: bool, bf16: bool = False) -> list[dict]:
    """Each equal thread count (``bf16``: also with marlshare at ``algorithm.precision=bf16``), and
    each library's defaults."""
    modes = [{"label": f"{t} thread{'s' * (t > 1)} each", "kind": "equal", "marlshare": t, "benchmarl": t}
             for t in threads]
    modes += [{"label": f"{t} thread{'s' * (t > 1)} each, marlshare bf16", "kind": "bf16", "marlshare": t,
               "benchmarl": t, "precision": "bf16"} for t in (threads if bf16 else [])]
    if defaults:
        modes.append({"label": "each library's defaults", "kind": "defaults", "marlshare": 0, "benchmarl": 0})
    return modes


def compare(run_one, modes: list[dict], repeats: int, seed: int, log=print) -> list[dict]:
    """For each mode, ``repeats`` pairs of alternating runs (LIBRARIES order), seed ``seed + r``."""
    out = []
    for mode in modes:
        pairs = []
        for r in range(repeats):
            pair = {}
            for library in LIBRARIES:
                res = run_one(library, mode[library], seed + r, *([mode["precision"]] if "precision" in mode else []))
                pair[library] = res
                log(f"  [{mode['label']}, seed {seed + r}] {library:<9} {res['fps']:8.1f} frames/s, "
                    f"{res['cpu_s_per_iteration']:6.2f} CPU s/iter, {res['torch_threads']} thread(s), "
                    f"peak {res['peak_rss_mb']:6.0f} MB, return {res['final_return']:.3f} at {res['frames']} frames")
            pairs.append(pair)
        out.append({"mode": mode, "pairs": pairs, "summary": summarise(pairs, mode)})
    return out


def summarise(pairs: list[dict], mode: dict) -> dict:
    med = statistics.median
    s = {lib: {k: med([p[lib][k] for p in pairs]) for k in ("fps", "cpu_s_per_iteration", "process_cpu_s",
                                                           "peak_rss_mb", "final_return", "first_iteration_s",
                                                           "startup_s", "torch_threads")}
         for lib in LIBRARIES}
    s["frames"] = pairs[0]["marlshare"]["frames"]
    s["parameters"] = {lib: pairs[0][lib].get("parameters") for lib in LIBRARIES}
    s["fps_ratio"] = med([p["marlshare"]["fps"] / p["benchmarl"]["fps"] for p in pairs])
    s["fps_ratio_of_medians"] = s["marlshare"]["fps"] / s["benchmarl"]["fps"]
    s["cpu_ratio"] = med([p["benchmarl"]["cpu_s_per_iteration"] / p["marlshare"]["cpu_s_per_iteration"] for p in pairs])
    target = TARGETS[mode["kind"]]
    s["target"] = {"value": s["fps_ratio"], "target": f">= {target}", "pass": s["fps_ratio"] >= target}
    return s


# --- reporting ------------------------------------------------------------------------------------------

def results_markdown(report: dict) -> str:
    head = ("| threads | marlshare frames/s | BenchMARL frames/s | ratio (paired; CPU time) "
            "| CPU s / iteration (m / B) | peak RSS MB (m / B) | return at {frames} frames (m / B) | target |")
    lines = [head.format(frames=report["results"][0]["summary"]["frames"]), "|---|---:|---:|---:|---:|---:|---:|---|"]
    for item in report["results"]:
        s, m, b = item["summary"], item["summary"]["marlshare"], item["summary"]["benchmarl"]
        threads = f"{item['mode']['label']} ({m['torch_threads']:.0f} / {b['torch_threads']:.0f})"
        verdict = f"{'PASS' if s['target']['pass'] else 'MISS'} ({s['target']['target']}x)"
        lines.append(f"| {threads} | {m['fps']:.1f} | {b['fps']:.1f} | **{s['fps_ratio']:.2f}x** "
                     f"(CPU {s['cpu_ratio']:.2f}x) | "
                     f"{m['cpu_s_per_iteration']:.2f} / {b['cpu_s_per_iteration']:.2f} | {m['peak_rss_mb']:.0f} / "
                     f"{b['peak_rss_mb']:.0f} | {m['final_return']:.3f} / {b['final_return']:.3f} | {verdict} |")
    return "\n".join(lines)


def docs_section(report: dict | None, configs: dict | None = None) -> str:
    parts = []
    if report is None:
        parts.append("Not measured yet: `make bench-peer` writes the results here.")
    else:
        mach, peer, ours = report["machine"], report.get("peer_versions", {}), report["ours_versions"]
        parts += [f"```\n{report['command']}\n```", "",
                  f"Machine: {mach['cpu']}, {mach['cores']} cores, load average {mach['loadavg_start']} at the start "
                  f"and {mach['loadavg_end']} at the end; marlshare at {report['code']['commit']} with torch "
                  f"{ours.get('torch')}, torchrl {ours.get('torchrl')}; BenchMARL "
                  f"{peer.get('benchmarl')} with torch {peer.get('torch')}, torchrl {peer.get('torchrl')}, tensordict "
                  f"{peer.get('tensordict')}, vmas {peer.get('vmas')}. Medians of {report['repeats']} alternating "
                  f"pairs "
                  f"per row" + (" (--quick: smoke settings, not the benchmark)" if report["quick"] else "") + ".", "",
                  results_markdown(report)]
        params = report["results"][0]["summary"].get("parameters") or {}
        if all(params.get(lib) for lib in LIBRARIES):
            m, b = params["marlshare"], params["benchmarl"]
            parts += ["", f"Parameters (marlshare / BenchMARL): actor {m['actor']} / {b['actor']}, critic "
                          f"{m['critic']} / {b['critic']}."]
    missing = MISSING
    if "clip_grad_per_network" not in (configs or plain_configs())["default"]["algorithm"]:
        missing += ("\n- **clip scope**: `algorithm.clip_grad_per_network` is in the preset but not yet in "
                    "marlshare's `AlgorithmConfig`.")
    parts += ["", "Every setting, and what the `benchmarl` preset does with it. The recipe command:", "",
              f"```\n{RECIPE}\n```", "", differences_markdown(configs), "", missing]
    return "\n".join(parts)


def write_docs(section: str, path: Path = DOCS) -> None:
    """Replace the text between the markers (or append a new section with them)."""
    text = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{section}\n{END}"
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        text = before + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## 5. Side by side with BenchMARL (issue 13)\n\n" + block + "\n"
    path.write_text(text)


def code_version() -> dict:
    """The commit and whether the measured code (components, envs, recipes) differs from it (read-only git)."""
    try:
        git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True,  # noqa: E731
                                        timeout=10).stdout
        dirty = git("status", "--porcelain", "--", "components", "envs", "recipes").splitlines()
        return {"root": str(ROOT), "commit": git("rev-parse", "--short", "HEAD").strip() or None,
                "modified": [d for d in dirty if d.strip()]}
    except (OSError, subprocess.SubprocessError):
        return {"root": str(ROOT), "commit": None, "modified": []}


def machine() -> dict:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "loadavg_start": os.getloadavg()}


def main(argv=None) -> dict | None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m tools.bench_peer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", help="the peer venv's python (BenchMARL 1.5.2): make bench-peer-install")
    parser.add_argument("--frames", type=int, default=None, help="frames per run (default 60000; --quick 3600)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating pairs per thread setting (default 3)")
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2], help="equal thread counts (default 1 2)")
    parser.add_argument("--no-defaults", action="store_true", help="skip the each-library's-defaults setting")
    parser.add_argument("--bf16", action="store_true", help="also marlshare at algorithm.precision=bf16 per thread count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny iterations, 1 pair, 1 thread")
    parser.add_argument("--out", default="outputs/bench_peer.json", help="JSON report path")
    parser.add_argument("--docs", action="store_true", help=f"rewrite the section of {DOCS.relative_to(ROOT)}")
    parser.add_argument("--report", help="render an earlier JSON report instead of running")
    parser.add_argument("--differences", action="store_true", help="print the settings table only (no runs)")
    args = parser.parse_args(argv)
    if args.differences:
        section = docs_section(None)
        print(section)
        if args.docs:
            write_docs(section)
        return None
    if args.report:
        report = json.loads(Path(args.report).read_text())
    else:
        if not args.peer:
            parser.error("--peer PYTHON is needed to run (make bench-peer-install builds .venv-peer)")
        if args.quick:
            args.repeats, args.threads, args.no_defaults = 1, [1], True
        frames = args.frames or (3600 if args.quick else 60_000)
        report = run(args, frames, argv)
    print(results_markdown(report))
    if args.docs:
        write_docs(docs_section(report))
        print(f"wrote {DOCS.relative_to(ROOT)}")
    return report


def run(args, frames: int, argv: list[str]) -> dict:
    def log(line=""):
        print(line, flush=True)

    peer = run_command([args.peer, str(ROOT / "tools" / "peer" / "benchmarl_run.py"), "--check"], 600,
                       {k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    if not args.quick and (wrong := peer_mismatches(peer["settings"])):
        raise SystemExit(f"BenchMARL's defaults differ from tools/bench_peer.py's BENCHMARL: {wrong}")
    if not args.quick and (wrong := preset_mismatches(plain_configs()["preset"])):
        raise SystemExit(f"the benchmarl preset no longer matches BenchMARL: {wrong} (preset, BenchMARL)")
    info, start = machine(), time.perf_counter()
    log(f"bench_peer: MAPPO on vmas/balance, {frames} frames per run, {args.repeats} pair(s) per setting; "
        f"{info['cpu']}, {info['cores']} cores; BenchMARL {peer['versions']}")
    modes = thread_modes(args.threads, not args.no_defaults, args.bf16)
    run_one = subprocess_runner(args.peer, frames, args.quick, args.timeout)
    results = compare(run_one, modes, args.repeats, args.seed, log)
    info["loadavg_end"] = os.getloadavg()
    report = {"command": "python -m tools.bench_peer " + " ".join(argv), "frames": frames, "repeats": args.repeats,
              "quick": args.quick, "machine": info, "code": code_version(), "peer_versions": peer["versions"],
              "ours_versions": results[0]["pairs"][0]["marlshare"]["versions"], "results": results,
              "total_wall_s": time.perf_counter() - start}
    out = write_json(args.out, report)
    log(f"wrote {out} (total {report['total_wall_s']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
