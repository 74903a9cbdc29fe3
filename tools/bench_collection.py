"""Where collection's time goes: VMAS's raw batched step, TorchRL's wrapped step, the policy's forward
and marlshare's collection, per frame, side by side in one process.

    python -m tools.bench_collection                          # make_run and benchmarl settings, 5 repeats
    python -m tools.bench_collection --settings benchmarl --repeats 7 --threads 1
    python -m tools.bench_collection --profile                # also cProfile the collection loop
    python -m tools.bench_collection --quick                  # smoke run

A frame is one step of one env copy (``frames_per_batch`` frames per iteration). For a setting (the
recipe's env, copies, networks), each repeat times, in turn, one iteration's worth of steps of:

* ``raw``: ``vmas.make_env`` and ``env.step`` with random actions drawn in advance (the copies are
  reset together every ``max_steps`` steps, what the wrapped env does when every copy ends at once);
* ``wrapped``: marlshare's ``VmasEnv`` (envs/vmas.py) driven by ``step_and_maybe_reset``, random actions;
* ``torchrl``: TorchRL's own ``VmasEnv``, the same way (what marlshare used before issue 22);
* ``policy``: the actor's forward (sampling an action) on one step's observations, ``no_grad``;
* ``collection``: one iteration of marlshare's collector (``torchrl.collectors.Collector`` over the
  trainer's env and actor, as ``Trainer.run`` builds it); ``collection_torchrl``: the same over the env
  built on TorchRL's own ``VmasEnv`` (marlshare's collection before issue 22).

Repeats interleave the six, so load from other work hits all alike; reported: the median microseconds
per frame of each, and the ratios ``collection / (raw + policy)`` (the issue's target: <= 1.2) and
``wrapped / raw``. ``--iteration`` adds a sixth part, one PPO update (GAE and every epoch) on the
latest collected batch, and the share of an iteration (collection + update) that collection takes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import tempfile
import time

import torch

from tools.reports import write_json

SETTINGS = {
    "make_run": ["env=vmas/navigation"],
    "benchmarl": ["env=vmas/balance", "algorithm=benchmarl", "env.num_envs=10", "env.options.n_agents=4",
                  "strategy.append_id=false"],
}
QUICK = ["algorithm.frames_per_batch=600", "env.num_envs=6", "algorithm.minibatch_size=200",
         "algorithm.network.actor_hidden=[16,16]", "algorithm.network.critic_hidden=[16,16]"]


def build(name: str, threads: int, quick: bool, device: str = "cpu"):
    from marlshare.components.trainer import Trainer
    from marlshare.recipes.train import compose

    overrides = SETTINGS[name] + [f"threads={threads}", "logger=csv", "logger.progress=false", "algorithm.compile=false",
                                  "total_frames=1000000", f"device={device}"] + (QUICK if quick else [])
    return Trainer(compose(overrides), run_dir=tempfile.mkdtemp(prefix="bench_collection_"))


def _task(cfg):
    options = dict(cfg.env.options)
    options.setdefault("max_steps", cfg.env.max_steps or 100)
    return cfg.env.name.split("/", 1)[1], options


def raw_stepper(cfg, steps: int, device):
    """``() -> None``: ``steps`` raw VMAS steps of ``num_envs`` copies with random actions."""
    import vmas

    scenario, options = _task(cfg)
    max_steps = options.pop("max_steps")
    env = vmas.make_env(scenario, num_envs=cfg.env.num_envs, device=device, continuous_actions=True, seed=0,
                        max_steps=max_steps, **options)
    env.reset()
    generator = torch.Generator(device="cpu").manual_seed(0)
    bank = [[(torch.rand(cfg.env.num_envs, env.get_agent_action_size(a), generator=generator) * 2 - 1).to(device)
             for a in env.agents] for _ in range(steps)]
    state = {"t": 0}

    def run():
        for actions in bank:
            env.step(actions)
            state["t"] += 1
            if state["t"] % max_steps == 0:
                env.reset()
    return run


def wrapped_stepper(cfg, steps: int, device, torchrl_own: bool):
    """``() -> None``: ``steps`` steps of the wrapped env (marlshare's or TorchRL's ``VmasEnv``)."""
    from marlshare.envs import vmas as vmas_family

    scenario, options = _task(cfg)
    if torchrl_own:
        from torchrl.envs.libs.vmas import VmasEnv

        env = VmasEnv(scenario, num_envs=cfg.env.num_envs, continuous_actions=True, seed=0, device=device,
                      categorical_actions=True, **options)
    else:
        env = vmas_family.make(scenario, num_envs=cfg.env.num_envs, seed=0, device=device, **options)
    torch.manual_seed(0)
    actions = [env.full_action_spec.rand() for _ in range(steps)]
    state = {"td": env.reset()}

    def run():
        td = state["td"]
        for action in actions:
            td.update(action)
            _, td = env.step_and_maybe_reset(td)
        state["td"] = td
    return run


def policy_stepper(trainer, steps: int):
    """``() -> None``: ``steps`` actor forwards on one step's observations (no gradients)."""
    td = trainer.env.reset()

    def run():
        with torch.no_grad():
            for _ in range(steps):
                trainer.actor(td.clone(False))
    return run


def collection_stepper(trainer, torchrl_own: bool = False):
    """``() -> None``: one iteration of the collector ``Trainer.run`` builds; ``torchrl_own``: over the
    same env built on TorchRL's own ``VmasEnv`` (``lean=False``), marlshare's collection before issue 22."""
    import copy

    from torchrl.collectors import Collector

    from marlshare.components.run_envs import make_run_env

    a, env = trainer.cfg.algorithm, trainer.env
    if torchrl_own:
        env_cfg = copy.deepcopy(trainer.cfg.env)
        env_cfg.options = {**env_cfg.options, "lean": False}
        env = make_run_env(env_cfg, env_cfg.num_envs, trainer.cfg.seed, trainer.device, trainer.env_device)
    collector = Collector(env, trainer.actor, frames_per_batch=a.frames_per_batch, total_frames=-1,
                          reset_at_each_iter=a.reset_each_iteration, auto_register_policy_transforms=False)
    iterator = iter(collector)
    last = {}

    def run():
        last["batch"] = next(iterator)
    return run, last


def update_stepper(trainer, last):
    """``() -> None``: one PPO update (GAE and every epoch, as ``Trainer.run``) on the latest batch."""
    from marlshare.components.algorithms import actor_net

    def run():
        trainer.update(last["batch"].clone(), trainer.loss, trainer.optimiser, trainer.trainable, trainer.aux,
                       actor_net(trainer.actor))
    return run


def run(name: str, repeats: int, threads: int, quick: bool, profile: bool, device: str = "cpu",
        iteration: bool = False) -> dict:
    torch.set_num_threads(threads)
    trainer = build(name, threads, quick, device)
    cfg = trainer.cfg
    steps = cfg.algorithm.frames_per_batch // cfg.env.num_envs
    frames = steps * cfg.env.num_envs
    parts = {"raw": raw_stepper(cfg, steps, trainer.env_device),
             "wrapped": wrapped_stepper(cfg, steps, trainer.env_device, torchrl_own=False),
             "torchrl": wrapped_stepper(cfg, steps, trainer.env_device, torchrl_own=True),
             "policy": policy_stepper(trainer, steps)}
    parts["collection_torchrl"], _ = collection_stepper(trainer, torchrl_own=True)
    parts["collection"], last = collection_stepper(trainer)
    if iteration:
        parts["update"] = update_stepper(trainer, last)
    for fn in parts.values():  # warm-up: first calls allocate and fill caches
        fn()
    times = {k: [] for k in parts}
    for _ in range(repeats):
        for k, fn in parts.items():
            start = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - start) / frames * 1e6)
    us = {k: statistics.median(v) for k, v in times.items()}
    row = {"setting": name, "overrides": SETTINGS[name], "threads": threads, "device": device, "frames": frames,
           "repeats": repeats, **{f"{k}_us_per_frame": v for k, v in us.items()},
           "collection_over_raw_plus_policy": us["collection"] / (us["raw"] + us["policy"]),
           "collection_torchrl_over_raw_plus_policy": us["collection_torchrl"] / (us["raw"] + us["policy"]),
           "wrapped_over_raw": us["wrapped"] / us["raw"], "torchrl_over_raw": us["torchrl"] / us["raw"],
           "all_us": times}
    if iteration:  # the share of a training iteration (collection + update) that collection takes
        row["collection_share"] = us["collection"] / (us["collection"] + us["update"])
        row["collection_torchrl_share"] = us["collection_torchrl"] / (us["collection_torchrl"] + us["update"])
        row["iteration_s"] = (us["collection"] + us["update"]) * frames / 1e6
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(3):
            parts["collection"]()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(f"{name}: cProfile of 3 collection iterations (sorted by own time)\n{out.getvalue()}")
    return row


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--iteration", action="store_true", help="also time the update: collection's share of an iteration")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="outputs/bench_collection.json")
    args = parser.parse_args(argv)
    rows = []
    for name in args.settings:
        row = run(name, 1 if args.quick else args.repeats, args.threads, args.quick, args.profile, args.device,
                  args.iteration)
        rows.append(row)
        print(f"{name:10s} us/frame: raw {row['raw_us_per_frame']:.2f}  wrapped {row['wrapped_us_per_frame']:.2f}  "
              f"torchrl {row['torchrl_us_per_frame']:.2f}  policy {row['policy_us_per_frame']:.2f}  "
              f"collection {row['collection_us_per_frame']:.2f} (TorchRL's VmasEnv: "
              f"{row['collection_torchrl_us_per_frame']:.2f})  | collection/(raw+policy) "
              f"{row['collection_over_raw_plus_policy']:.2f} (TorchRL's VmasEnv: "
              f"{row['collection_torchrl_over_raw_plus_policy']:.2f})  wrapped/raw {row['wrapped_over_raw']:.2f}  "
              f"torchrl/raw {row['torchrl_over_raw']:.2f}"
              + (f"  | collection share of an iteration {row['collection_share']:.2f} (TorchRL's VmasEnv: "
                 f"{row['collection_torchrl_share']:.2f}) "
                 f"(iteration {row['iteration_s']:.2f} s)" if "collection_share" in row else ""), flush=True)
    write_json(args.out, rows)
    return rows


if __name__ == "__main__":
    main()
