"""Environment throughput: each adapter against its raw simulator, side by side in one process.

    python -m tools.bench_envs                      # full run (~5-8 min on 2 cores), table + JSON
    python -m tools.bench_envs --quick              # fewer envs and repeats (~1-2 min)
    python -m tools.bench_envs --only lbf,mamujoco  # some families
    python -m tools.bench_envs --out outputs/bench_envs.json --threads 1 --repeats 5 --seconds 0.5

For every non-vectorised env it measures, interleaved repeat by repeat so machine noise hits
both alike:

* ``raw``: the simulator driven by a plain Python loop, single copy (``gymnasium.make(id)`` for
  LBF/RWARE, ``mamujoco_v1.parallel_env`` for MaMuJoCo, ``<module>.parallel_env`` for PettingZoo),
  actions drawn in advance from a bank, reset when an episode ends;
* ``adapter``: our TorchRL env with ``num_envs=1``, driven by ``env.step_and_maybe_reset`` (what a
  collector does), same action bank; ``overhead`` = adapter time per step / raw time per step
  (median over repeats of the per-repeat ratio);
* ``batched``: ``num_envs=8`` copies stepped in one process (plain loop), and the same 8 copies
  split over 2 worker processes (``num_workers=2``); total env steps/s, and the loop's total
  against the raw single copy (per-repeat ratio, median).
* SMAX: env steps/s at 64 and 512 parallel envs through the adapter, and the jitted vmapped
  JaxMARL step alone; compile time is excluded (reported separately).

Medians over ``--repeats`` windows of ``--seconds`` each. torch uses ``--threads`` threads
(default 1); XLA picks its own CPU threads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore")

BANK = 256  # actions drawn in advance, cycled


# ------------------------------------------------------------------------------------------------
# raw drivers: each returns step() -> None, running one raw step (reset included when done)


def raw_lbf_rware(env_id: str):
    import gymnasium as gym
    import lbforaging  # noqa: F401
    import rware  # noqa: F401

    env = gym.make(env_id)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    bank = [tuple(int(rng.integers(0, s.n)) for s in env.action_space.spaces) for _ in range(BANK)]
    k = [0]

    def step():
        _, _, done, truncated, _ = env.step(bank[k[0] % BANK])
        k[0] += 1
        if done or truncated:
            env.reset()

    return step


def raw_parallel(make_env):
    env = make_env()
    env.reset(seed=0)
    agents = list(env.possible_agents)
    rng = np.random.default_rng(0)
    bank = []
    for _ in range(BANK):
        acts = {}
        for a in agents:
            space = env.action_space(a)
            if hasattr(space, "n"):
                acts[a] = int(rng.integers(0, space.n))
            else:
                acts[a] = rng.uniform(space.low, space.high).astype(space.dtype)
        bank.append(acts)
    k = [0]

    def step():
        _, _, terms, truncs, _ = env.step(bank[k[0] % BANK])
        k[0] += 1
        if any(terms.values()) or any(truncs.values()) or not env.agents:
            env.reset()

    return step


def raw_mamujoco(scenario: str, conf: str):
    from gymnasium_robotics import mamujoco_v1

    return raw_parallel(lambda: mamujoco_v1.parallel_env(scenario, conf))


def raw_pettingzoo(task: str, **options):
    import importlib

    from marlshare.envs.pettingzoo import TASKS

    return raw_parallel(lambda: importlib.import_module(TASKS[task]).parallel_env(**options))


# ------------------------------------------------------------------------------------------------
# adapter driver


def adapter_driver(name: str, num_envs: int = 1, **options):
    from marlshare.envs import GROUP, env_info, make_env

    env = make_env(name, num_envs=num_envs, seed=0, **options)
    info = env_info(env)
    gen = torch.Generator().manual_seed(0)
    if info.discrete:
        bank = [torch.randint(0, info.action_dim, (num_envs, info.n_agents), generator=gen) for _ in range(BANK)]
        if info.has_action_mask and name.startswith(("smax/", "smac/")):
            bank = [torch.randint(0, 5, (num_envs, info.n_agents), generator=gen) for _ in range(BANK)]
    else:
        low, high = info.action_low, info.action_high
        bank = [low + (high - low) * torch.rand(num_envs, info.n_agents, info.action_dim, generator=gen)
                for _ in range(BANK)]
    state = {"td": env.reset(), "k": 0}

    def step():
        td = state["td"]
        td.set((GROUP, "action"), bank[state["k"] % BANK])
        state["k"] += 1
        _, state["td"] = env.step_and_maybe_reset(td)

    step.close = env.close  # type: ignore[attr-defined]
    return step


class NoopSim:
    """A simulator that does nothing: the adapter's steps/s with it is TorchRL's own per-step cost
    (EnvBase.step, step_mdp, done checks) plus the adapter's packing, the floor under every row."""

    def __init__(self):
        from marlshare.envs._sim import SimSpec

        self.spec = SimSpec(n_agents=2, obs_dim=12, discrete=False, action_dim=3, state_dim=17,
                            action_low=-np.ones((2, 3), np.float32), action_high=np.ones((2, 3), np.float32))

    def reset(self, seed, obs, state, action_mask):
        obs[...] = 0.0
        state[...] = 0.0

    def step(self, action, obs, state, action_mask, reward):
        obs[...] = 0.0
        state[...] = 0.0
        reward[...] = 0.0
        return False, False, False

    def close(self):
        pass


def floor_driver():
    from marlshare.envs import GROUP
    from marlshare.envs._batched import BatchedSimEnv

    env = BatchedSimEnv(NoopSim, 1)
    state = {"td": env.reset()}
    action = torch.zeros(1, 2, 3)

    def step():
        td = state["td"]
        td.set((GROUP, "action"), action)
        _, state["td"] = env.step_and_maybe_reset(td)

    return step


def timed(step, seconds: float) -> float:
    """Steps per second of ``step`` over a window of ``seconds`` (after one warm-up call)."""
    step()
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(8):
            step()
        n += 8
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


# ------------------------------------------------------------------------------------------------
# cases

CASES = [
    # name, raw factory, adapter options, quick?
    ("lbf/8x8-2p-2f-coop", lambda: raw_lbf_rware("Foraging-8x8-2p-2f-coop-v3"), {}, True),
    ("lbf/2s-10x10-4p-3f", lambda: raw_lbf_rware("Foraging-2s-10x10-4p-3f-v3"), {}, False),
    ("rware/tiny-2ag", lambda: raw_lbf_rware("rware-tiny-2ag-v2"), {}, False),
    ("mamujoco/halfcheetah-2x3", lambda: raw_mamujoco("HalfCheetah", "2x3"), {}, True),
    ("mamujoco/ant-4x2", lambda: raw_mamujoco("Ant", "4x2"), {}, True),
    ("mamujoco/walker2d-2x3", lambda: raw_mamujoco("Walker2d", "2x3"), {}, False),
    ("mamujoco/humanoid-9_8", lambda: raw_mamujoco("Humanoid", "9|8"), {}, True),
    ("pettingzoo/simple_spread", lambda: raw_pettingzoo("simple_spread"), {}, True),
    ("pettingzoo/simple_speaker_listener", lambda: raw_pettingzoo("simple_speaker_listener"), {}, False),
    ("pettingzoo/multiwalker", lambda: raw_pettingzoo("multiwalker"), {}, False),
    ("pettingzoo/pursuit", lambda: raw_pettingzoo("pursuit"), {}, False),
]
SMAX_MAPS = ["3m", "3s5z"]
SMAX_BATCHES = [64, 512]


def bench_case(name, raw_factory, options, repeats, seconds, batch, log):
    """All four drivers exist at once and are timed one after the other in every repeat, so a
    burst of load on the (shared) machine hits each of them in turn; ratios are per repeat."""
    drivers = {
        "raw": raw_factory(),
        "adapter": adapter_driver(name, 1, **options),
        "loop": adapter_driver(name, batch, num_workers=0, **options),
        "workers": adapter_driver(name, batch, num_workers=2, **options),
    }
    per_step = {"raw": 1, "adapter": 1, "loop": batch, "workers": batch}
    sps = {k: [] for k in drivers}
    for _ in range(repeats):
        for k, drv in drivers.items():
            sps[k].append(timed(drv, seconds) * per_step[k])
    for k in ("adapter", "loop", "workers"):
        drivers[k].close()
    med = {k: statistics.median(v) for k, v in sps.items()}
    row = {
        "env": name,
        "raw_steps_per_s": med["raw"],
        "adapter_steps_per_s": med["adapter"],
        "overhead_x": statistics.median(r / a for r, a in zip(sps["raw"], sps["adapter"])),
        f"batched{batch}_workers0_steps_per_s": med["loop"],
        f"batched{batch}_workers2_steps_per_s": med["workers"],
        f"batched{batch}_loop_vs_raw": statistics.median(b / r for b, r in zip(sps["loop"], sps["raw"])),
        "repeats": sps,
    }
    log(f"  {name:36s} raw {med['raw']:8.0f}  adapter {med['adapter']:8.0f}  x{row['overhead_x']:.2f}  "
        f"batched{batch} loop {med['loop']:8.0f} ({row[f'batched{batch}_loop_vs_raw']:.2f} of raw)  "
        f"2 workers {med['workers']:8.0f}")
    return row


def bench_smax(map_name, num_envs, repeats, seconds, log):
    import jax

    t0 = time.perf_counter()
    step = adapter_driver(f"smax/{map_name}", num_envs)
    step()
    step()  # compiles reset and step (or loads them from the on-disk cache)
    compile_s = time.perf_counter() - t0
    env_sps = [timed(step, seconds) * num_envs for _ in range(repeats)]
    # the jitted vmapped SMAX step alone (fused with the next battle's reset), no TorchRL
    from marlshare.envs.smax import SmaxEnv

    env = SmaxEnv(map_name, num_envs=num_envs, seed=0)
    env.reset()
    action = env._jnp.asarray(np.random.default_rng(0).integers(0, 5, (num_envs, env.n_agents)).astype(np.int32))

    j = env._j

    def raw():  # what JaxMARL users time: one auto-resetting vmapped step, no TorchRL
        j["keys"], current, reward, flags, fresh = env._step_all(j["keys"], j["current"][0], action)
        jax.block_until_ready(current)
        j["current"] = current

    raw()
    raw_sps = [timed(raw, seconds) * num_envs for _ in range(repeats)]
    row = {"env": f"smax/{map_name}", "num_envs": num_envs, "adapter_env_steps_per_s": statistics.median(env_sps),
           "jax_step_env_steps_per_s": statistics.median(raw_sps), "startup_and_compile_s": compile_s,
           "adapter_repeats": env_sps}
    log(f"  smax/{map_name:10s} x{num_envs:4d}  adapter {row['adapter_env_steps_per_s']:9.0f} env steps/s   "
        f"jitted step alone {row['jax_step_env_steps_per_s']:9.0f}   startup+compile {compile_s:5.1f}s")
    return row


def table(results: dict, batch: int) -> str:
    lines = [
        f"| env | raw steps/s (1 copy) | adapter steps/s (1 copy) | overhead (adapter/raw time) | "
        f"{batch} copies, loop (x raw) | {batch} copies, 2 workers |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results["adapters"]:
        lines.append(f"| `{r['env']}` | {r['raw_steps_per_s']:.0f} | {r['adapter_steps_per_s']:.0f} | "
                     f"{r['overhead_x']:.2f}x | {r[f'batched{batch}_workers0_steps_per_s']:.0f} "
                     f"({r[f'batched{batch}_loop_vs_raw']:.2f}x) | "
                     f"{r[f'batched{batch}_workers2_steps_per_s']:.0f} |")
    if results["smax"]:
        lines += ["", "| SMAX map | parallel envs | adapter env steps/s | jitted step alone | startup + compile (s) |",
                  "|---|---:|---:|---:|---:|"]
        for r in results["smax"]:
            lines.append(f"| `{r['env']}` | {r['num_envs']} | {r['adapter_env_steps_per_s']:.0f} | "
                         f"{r['jax_step_env_steps_per_s']:.0f} | {r['startup_and_compile_s']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/bench_envs.json")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one timing window")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--batch", type=int, default=8, help="copies in the batched measurements")
    parser.add_argument("--quick", action="store_true", help="fewer envs, 3 repeats of 0.3 s")
    parser.add_argument("--only", default="", help="comma-separated families or env names")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.seconds = 3, 0.3
    torch.set_num_threads(args.threads)
    only = [s for s in args.only.split(",") if s]

    def wanted(name: str) -> bool:
        return not only or any(name == o or name.startswith(o.rstrip("/") + "/") for o in only)

    def log(msg: str) -> None:
        print(msg, flush=True)

    results = {
        "command": "python -m tools.bench_envs " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
        "repeats": args.repeats, "seconds_per_window": args.seconds, "batch": args.batch,
        "adapters": [], "smax": [],
    }
    start = time.perf_counter()
    floor = floor_driver()
    results["floor_us_per_step"] = 1e6 / statistics.median(timed(floor, args.seconds) for _ in range(args.repeats))
    log(f"adapter floor (no simulator, TorchRL step_and_maybe_reset + packing): "
        f"{results['floor_us_per_step']:.0f} us/step")
    log(f"torch threads: {torch.get_num_threads()}, cpus: {os.cpu_count()}, repeats: {args.repeats} x {args.seconds}s")
    for name, raw_factory, options, quick in CASES:
        if (args.quick and not quick) or not wanted(name):
            continue
        try:
            results["adapters"].append(bench_case(name, raw_factory, options, args.repeats, args.seconds, args.batch, log))
        except Exception as err:  # keep going: one missing simulator should not hide the rest
            log(f"  {name}: FAILED {type(err).__name__}: {err}")
    if wanted("smax"):
        for map_name in SMAX_MAPS[:1] if args.quick else SMAX_MAPS:
            for num_envs in SMAX_BATCHES:
                try:
                    results["smax"].append(bench_smax(map_name, num_envs, args.repeats, args.seconds, log))
                except Exception as err:
                    log(f"  smax/{map_name} x{num_envs}: FAILED {type(err).__name__}: {err}")
        try:
            import jax

            results["machine"]["jax"] = jax.__version__
        except ImportError:
            pass
    results["wall_time_s"] = time.perf_counter() - start
    print()
    print(f"adapter floor (no simulator): {results['floor_us_per_step']:.0f} us/step\n")
    print(table(results, args.batch))
    print(f"\nwall time {results['wall_time_s']:.0f}s")
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
