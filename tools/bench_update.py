"""The compiled update step against the eager one, per minibatch, at the settings of real recipes.

    python -m tools.bench_update                      # every setting below, 5 repeats (about 6 min on 2 cores)
    python -m tools.bench_update --settings make_run --repeats 3 --threads 1
    python -m tools.bench_update --quick              # smoke run
    python -m tools.bench_update --settings benchmarl --bf16   # also bfloat16 autocast, eager and compiled
    python -m tools.bench_update --matmul             # one [1600, 256] x [256, 256] matmul: fp32, bf16 routes

For each setting: a Trainer is built as the recipe composes it, one batch is collected and GAE'd,
and the same minibatches (fixed indices) go through the PPO step (loss, backward, clip, fused Adam
step, as ``PPOUpdate.step_in_flight`` runs it)
of two updaters in one process: ``algorithm.compile=false`` and ``true``. The compiled one's first
call (the compile) is timed on its own; then blocks of all minibatches alternate between eager and
compiled ``--repeats`` times, so load from other work hits both alike. Reported: median ms per
minibatch step of each, their ratio, and the compile time. Both updaters train their own copy of
the parameters from the same start, and after the timing the two copies' losses on one minibatch
are compared (how far compiled and eager drift after the same steps). Last, the optimiser step
alone: ``Adam(foreach=True)`` against ``Adam(fused=True)`` (the trainer's) over copies of the
setting's trainable parameters. ``--bf16`` adds two more updaters, eager and compiled, at
``algorithm.precision=bf16`` (components/algorithms/precision.py) to the same alternation; ratios are
against the eager float32 step. ``--device cuda`` runs the steps on a GPU (tools/gpu_check.sh).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch

from tools.reports import write_json

# name -> recipe overrides: the default recipe's PS phase and its PS+LoRA phase, BenchMARL's default
# MAPPO setting (tools/bench_peer.py), and the LoRASA MaMuJoCo preset's GRU actor (chunks of 10 steps,
# one minibatch of the whole 4000-frame batch)
SETTINGS = {
    "make_run": ["env=vmas/navigation"],
    "make_run_lora": ["env=vmas/navigation", "schedule.switch_at=6000"],
    "benchmarl": ["env=vmas/balance", "algorithm=benchmarl", "env.num_envs=10", "env.options.n_agents=4",
                  "strategy.append_id=false"],
    "lorasa_gru": ["env=mamujoco/halfcheetah-2x3", "algorithm=lorasa_mamujoco", "schedule=single"],
}
QUICK = ["algorithm.frames_per_batch=600", "env.num_envs=6", "algorithm.minibatch_size=200",
         "algorithm.network.actor_hidden=[16,16]", "algorithm.network.critic_hidden=[16,16]"]


def build(name: str, threads: int, quick: bool, device: str = "cpu"):
    """A trainer at ``name``'s setting (in its last phase when the setting has a switch) and one batch."""
    from torchrl.collectors import Collector

    from marlshare.components.algorithms import actor_net
    from marlshare.components.algorithms.ppo import expand_done
    from marlshare.components.trainer import Trainer
    from marlshare.recipes.train import compose

    overrides = SETTINGS[name] + [f"threads={threads}", "logger=csv", "logger.progress=false", "algorithm.compile=false",
                                  "total_frames=1000000", f"device={device}"] + (QUICK if quick else [])
    trainer = Trainer(compose(overrides), run_dir=tempfile.mkdtemp(prefix="bench_update_"))
    if len(trainer.plans) > 1 and any("switch_at" in o for o in overrides):
        trainer.enter_phase(1, "bench")  # the fine-tuning phase: adapters on a frozen backbone
    collector = Collector(trainer.env, trainer.actor, frames_per_batch=trainer.cfg.algorithm.frames_per_batch,
                          total_frames=-1, auto_register_policy_transforms=False)
    batch = next(iter(collector))
    collector.shutdown()
    expand_done(batch)
    loss = trainer.loss
    with torch.no_grad():
        loss.value_estimator(batch, params=loss.critic_network_params, target_params=loss.target_critic_network_params)
    chunk = trainer.cfg.algorithm.chunk_length if trainer.cfg.algorithm.network.recurrent else 1
    holder = actor_net(trainer.actor)
    holder.sequence_mode = chunk > 1  # as PPOUpdate runs a recurrent actor: chunks [E T / L, L]
    items = batch.reshape(batch.shape[0], -1, chunk).reshape(-1, chunk) if chunk > 1 else batch.reshape(-1)
    return trainer, items, holder


def copies(trainer):
    """An independent (actor, critic, loss, optimiser, trainable, aux) from the trainer's current state."""
    from marlshare.components.algorithms import actor_net, make_loss, ppo_settings

    actor, critic = copy.deepcopy(trainer.actor), copy.deepcopy(trainer.critic)
    a = trainer.cfg.algorithm
    loss = make_loss(actor, critic, ppo_settings(a, trainer.plan))
    net = actor_net(actor).net
    params = trainer.strategy.trainable(net) + [p for p in critic.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=a.lr, eps=a.adam_eps, fused=True)
    strategy = trainer.strategy
    return loss, optimiser, params, (lambda: strategy.aux_loss(net))


def adam_step_us(params, repeats: int, steps: int = 200) -> dict:
    """Microseconds per ``Adam.step`` over copies of ``params`` (random gradients), ``foreach`` and
    ``fused`` in alternating blocks (medians), and how far apart the two copies are after them."""
    sides = {}
    for kind in ("foreach", "fused"):
        copies_ = [torch.nn.Parameter(p.detach().clone()) for p in params]
        generator = torch.Generator().manual_seed(0)
        for c in copies_:
            c.grad = torch.randn(c.shape, generator=generator).to(c.device)
        sides[kind] = (copies_, torch.optim.Adam(copies_, lr=1e-3, eps=1e-5, **{kind: True}))
    times = {kind: [] for kind in sides}
    for _ in range(repeats):
        for kind, (_, optimiser) in sides.items():
            start = time.perf_counter()
            for _ in range(steps):
                optimiser.step()
            times[kind].append((time.perf_counter() - start) / steps * 1e6)
    apart = max((a - b).abs().max().item() for a, b in zip(sides["foreach"][0], sides["fused"][0]))
    return {"adam_foreach_us": statistics.median(times["foreach"]), "adam_fused_us": statistics.median(times["fused"]),
            "adam_max_difference": apart}


def matmul_ms(repeats: int, shape=(1600, 256, 256)) -> dict:
    """Milliseconds per ``[m, k] x [k, n]`` matmul (forward) in float32, under bfloat16 autocast, and
    with oneDNN's float32 matmuls computed in bfloat16 (``torch.backends.mkldnn.matmul.fp32_precision``),
    interleaved, medians."""
    m, k, n = shape
    a, b = torch.randn(m, k), torch.randn(k, n)
    mkldnn = torch.backends.mkldnn.matmul

    def fp32():
        return a @ b

    def autocast():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return a @ b

    def onednn_bf16():
        before = mkldnn.fp32_precision
        mkldnn.fp32_precision = "bf16"
        try:
            return a @ b
        finally:
            mkldnn.fp32_precision = before

    routes = {"fp32": fp32, "autocast_bf16": autocast, "mkldnn_fp32_precision_bf16": onednn_bf16}
    times = {name: [] for name in routes}
    for _ in range(repeats):
        for name, fn in routes.items():
            fn()
            start = time.perf_counter()
            for _ in range(20):
                fn()
            times[name].append((time.perf_counter() - start) / 20 * 1e3)
    row = {f"{name}_ms": statistics.median(t) for name, t in times.items()}
    return {**row, **{f"{name}_speedup": row["fp32_ms"] / row[f"{name}_ms"] for name in routes}, "shape": list(shape)}


def run(name: str, repeats: int, threads: int, quick: bool, profile: bool = False, bf16: bool = False,
        device: str = "cpu") -> dict:
    from marlshare.components.algorithms.update import PPOUpdate

    torch.set_num_threads(threads)
    trainer, items, _ = build(name, threads, quick, device)
    a = trainer.cfg.algorithm
    chunk = items.shape[1] if items.batch_dims > 1 else 1
    mb = a.minibatch_size // chunk  # rows of items: steps, or chunks of steps
    generator = torch.Generator().manual_seed(0)
    perm = torch.randperm(items.shape[0], generator=generator)
    minibatches = [perm[i * mb:(i + 1) * mb] for i in range(items.shape[0] // mb)]  # row indices
    sides = {}
    cuda = torch.device(device).type == "cuda"
    modes = ("eager", "compiled") + (("eager_bf16", "compiled_bf16") if bf16 else ())
    for mode in modes:
        compiled_mode = ("reduce-overhead" if cuda else "default") if mode.startswith("compiled") else None
        update = PPOUpdate(a.frames_per_batch, a.minibatch_size, 1, a.max_grad_norm, chunk, on_nonfinite=print,
                           on_finite=lambda: None, compile=compiled_mode,
                           precision="bf16" if mode.endswith("bf16") else "fp32")
        loss, optimiser, params, aux = copies(trainer)
        objective = update.objective(loss, aux)
        sides[mode] = (update, objective, optimiser, params, loss, aux)

    def step(mode, index):
        update, objective, optimiser, params, _, _ = sides[mode]
        total, _, _ = update.evaluate(objective, items, index)
        update.step_in_flight(total, optimiser, params)  # as the trainer steps (fused Adam, no synchronisation)

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    step("eager", minibatches[0])  # first: an eager step registers the types TorchRL checks (a compile guard)
    compile_times = {}
    for mode in modes[1:]:
        start = time.perf_counter()
        step(mode, minibatches[0])
        sync()
        compile_times[mode] = time.perf_counter() - start
    compile_s = compile_times["compiled"]
    times = {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode in modes:
            start = time.perf_counter()
            for index in minibatches:
                step(mode, index)
            sync()
            times[mode].append((time.perf_counter() - start) / len(minibatches) * 1e3)
    with torch.no_grad():  # both copies took the same steps: how far apart are they now?
        values = [float(sides[m][4](items[minibatches[0]])["loss_objective"]) for m in ("eager", "compiled")]
    eager, compiled = statistics.median(times["eager"]), statistics.median(times["compiled"])
    extra = {}
    for mode in modes[2:]:
        extra.update({f"{mode}_ms": statistics.median(times[mode]), f"{mode}_ms_all": times[mode],
                      f"{mode}_speedup": eager / statistics.median(times[mode]), f"{mode}_first_s": compile_times[mode]})
    if profile:  # where a compiled step's time goes: inductor's kernels by name, ATen's ops, guards
        import torch._inductor.config as inductor_config

        torch._dynamo.reset()  # a recompile with named kernels, outside the timing above; the setting is
        with inductor_config.patch({"cpp.enable_kernel_profile": True}):  # undone for the next settings
            update, _, optimiser, params, loss, aux = sides["compiled"]
            update._objective_for = (None, None)
            sides["compiled"] = (update, update.objective(loss, aux), optimiser, params, loss, aux)
            step("compiled", minibatches[0])
            with torch.profiler.profile() as prof:
                for index in minibatches:
                    step("compiled", index)
        print(f"{name}: torch.profiler over {len(minibatches)} compiled steps (self CPU time)")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=60))
    adam = adam_step_us(sides["eager"][3], repeats)
    return {**adam, **extra, "device": device, "setting": name, "overrides": SETTINGS[name], "threads": threads, "minibatch": a.minibatch_size,
            "minibatches": len(minibatches), "repeats": repeats, "eager_ms": eager, "compiled_ms": compiled,
            "speedup": eager / compiled, "compile_s": compile_s, "loss_after_eager": values[0],
            "loss_after_compiled": values[1], "eager_ms_all": times["eager"], "compiled_ms_all": times["compiled"]}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true", help="also print a torch.profiler table of the compiled steps")
    parser.add_argument("--bf16", action="store_true", help="also algorithm.precision=bf16, eager and compiled")
    parser.add_argument("--matmul", action="store_true", help="only the matmul routes to bfloat16, then stop")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", default="outputs/bench_update.json")
    args = parser.parse_args(argv)
    if args.matmul:
        torch.set_num_threads(args.threads)
        row = matmul_ms(args.repeats)
        print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
        write_json(args.out, [row])
        return [row]
    rows = []
    for name in args.settings:
        row = run(name, 1 if args.quick else args.repeats, args.threads, args.quick, args.profile, args.bf16,
                  args.device)
        rows.append(row)
        print(f"{name:14s} eager {row['eager_ms']:7.2f} ms  compiled {row['compiled_ms']:7.2f} ms  "
              f"speedup {row['speedup']:.2f}x  compile {row['compile_s']:.1f} s  "
              f"loss after the steps: eager {row['loss_after_eager']:.6f} compiled {row['loss_after_compiled']:.6f}; "
              f"Adam step foreach {row['adam_foreach_us']:.0f} us, fused {row['adam_fused_us']:.0f} us "
              f"(apart by {row['adam_max_difference']:.1e} after the same steps)", flush=True)
        for mode in ("eager_bf16", "compiled_bf16"):
            if f"{mode}_ms" in row:
                print(f"{name:14s} {mode} {row[f'{mode}_ms']:7.2f} ms  {row[f'{mode}_speedup']:.2f}x eager fp32 "
                      f"(first call {row[f'{mode}_first_s']:.1f} s)", flush=True)
    write_json(args.out, rows)
    return rows


if __name__ == "__main__":
    main()
