"""End-to-end training speed: marlshare's MAPPO-PS against a TorchRL-only MAPPO loop, and the time
per iteration of the PS phase against the PS+LoRA phase.

    python -m tools.bench_training                         # full run (1 thread, 7-12 min on 2 cores)
    python -m tools.bench_training --quick                 # smoke run with tiny settings (< 1 min)
    python -m tools.bench_training --iterations 5 --repeats 2 --threads 1 --out outputs/bench_training.json
    python -m tools.bench_training --peer .venv-peer/bin/python    # against BenchMARL itself: tools/bench_peer.py

Setting (BenchMARL's default on-policy setting, ``recipes/conf/algorithm/benchmarl.yaml`` plus
``tools.peer.settings.MARLSHARE_OVERRIDES``): MAPPO on ``vmas/balance`` with 4 agents (``max_steps=100``),
no appended agent id, 6000 frames per iteration (10 envs x 600 steps, episodes carried over iterations),
45 epochs of 400-sample minibatches (675 gradient steps per iteration), actor and critic MLPs
256x256 with tanh, lr 5e-5, clip 0.2, gamma 0.99, GAE lambda 0.9. The marlshare side is
:class:`components.trainer.Trainer` with the config composed exactly as the recipe does
(``env=vmas/balance strategy=ps algorithm=benchmarl schedule=two_phase``); evaluation is pushed
past the end of the run (``eval_every``), periodic checkpoints are off, W&B / CSV logger / progress
bar are off (``metrics.csv`` is always written: it is where the per-iteration time is read).

The reference (:class:`ReferenceMAPPO`) is a minimal TorchRL-only loop in the style of TorchRL's
multi-agent PPO tutorial: ``VmasEnv`` + ``RewardSum``; a ``MultiAgentMLP`` policy
(``share_params=True, centralized=False``) -> ``NormalParamExtractor`` -> ``TanhNormal``
``ProbabilisticActor``; a ``MultiAgentMLP`` critic (``share_params=True, centralized=True``);
``Collector``; GAE from ``ClipPPOLoss.make_value_estimator``; ``ReplayBuffer(LazyTensorStorage,
SamplerWithoutReplacement)``; Adam; ``clip_grad_norm_``. Every number it uses (envs, frames,
epochs, minibatch, widths, activation, lr, Adam eps, grad-norm clip, clip epsilon, entropy and
critic coefficients, gamma, lambda, advantage normalisation, reset at each iteration, per-network
gradient clipping, ``clamp_actions``) is read from the composed marlshare config, so the two loops
cannot drift apart. The critic loss is ``l2`` in both (marlshare's ``PPOSettings`` default). Both
actors have a state-dependent scale mapped by ``biased_softplus_1.0`` (marlshare's
``std_mapping=biased_softplus``, the reference's ``NormalParamExtractor``, as in BenchMARL); the
marlshare side compiles its loss (the preset's ``compile: true``; the compile falls in the warm-up). At commit
e2dfc33 marlshare's MAPPO critic appended the agent id and computed one value per agent, most of the
gap measured then (``docs/benchmarks-training.md``); the preset now computes one value per sample.

Protocol, per repeat (fresh trainer and reference, seed ``--seed + repeat``), one process,
interleaved so that load from other work on the machine hits both sides alike:

1. warm-up: one marlshare iteration (it also runs the initial evaluation), one reference iteration;
2. ``--iterations`` rounds of (marlshare PS iteration, reference iteration): the frames/s comparison;
3. one marlshare transition iteration (the switch happens at its end: an evaluation, ``to_lora`` with
   rank 8 and the optimiser rebuild) and one LoRA warm-up iteration, both excluded;
4. ``--iterations`` rounds of (marlshare LoRA iteration, reference iteration).

``schedule.switch_at`` is one frame past the warm-up plus the measured PS iterations, so the switch
falls in the transition iteration. A marlshare iteration is one ``Trainer.run(max_iterations=1)``
call; its time is the trainer's own per-iteration measurement (``metrics.csv`` ``fps``: collection,
GAE, the 675 updates and logging, from the first collector step to the end of the update); the
wall time of the whole call (which also builds a collector and a logger) is recorded as well. A
reference iteration is timed from the collector step to the end of its update.

Reported (medians over all measured rounds of all repeats):

- frames/s of each loop; the frames/s ratio marlshare / reference is the median of the per-round
  ratios (paired, the point of interleaving); the ratio of the medians is shown too;
- seconds per iteration of the PS and LoRA phases and their ratio (ratio of the medians); the
  reference-normalised ratio median(LoRA / reference) / median(PS / reference) is shown as a check
  against load drift between the two phases;
- the same from process CPU time (``time.process_time``, one thread): a cross-check that is not
  inflated by time spent descheduled on a loaded machine (cache and frequency effects remain).

PASS/MISS use the wall-clock figures (paired frames/s ratio; LoRA / PS ratio of medians). One
full run is 2 x 3 + 3 marlshare and 7 reference iterations of about 20-40 s each.

Targets: marlshare frames/s >= 1.0x the reference; LoRA time per iteration <= 1.3x PS.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tensordict.nn import TensorDictModule
from tensordict.nn.distributions import NormalParamExtractor
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
from torchrl.envs import RewardSum, TransformedEnv
from torchrl.envs.libs.vmas import VmasEnv
from torchrl.modules import MultiAgentMLP, ProbabilisticActor, TanhNormal
from torchrl.objectives import ClipPPOLoss, ValueEstimators

from marlshare.recipes.compose import CONF_DIR
from tools.bench_peer import code_version
from tools.reports import write_json
from tools.peer.settings import BENCHMARL as PEER_SETTING
from tools.peer.settings import MARLSHARE_OVERRIDES

ENV = "vmas/balance"
N_AGENTS = 4
LORA_RANK = 8
TARGET_FPS_RATIO = 1.0  # marlshare frames/s >= this x reference frames/s
TARGET_LORA_RATIO = 1.1  # LoRA seconds per iteration <= this x PS seconds per iteration (issue 13)
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}
# BenchMARL's default on-policy numbers (tools/peer/settings.py); the full run refuses to start if the
# preset drifts from them.
BENCHMARL = ({k: PEER_SETTING[f"algorithm.{k}"] for k in ("frames_per_batch", "epochs", "minibatch_size", "lr",
              "adam_eps", "max_grad_norm", "clip_grad_per_network", "clip_epsilon", "gamma", "lmbda",
              "reset_each_iteration")}
             | {k: PEER_SETTING[f"algorithm.network.{k}"] for k in ("actor_hidden", "critic_hidden")}
             | {k: PEER_SETTING[f"env.{k}"] for k in ("num_envs", "max_steps")})
# --quick: tiny networks and batches, only to check that the script runs end to end.
QUICK = ["env.num_envs=4", "env.eval_num_envs=2", "algorithm.frames_per_batch=400", "algorithm.epochs=2",
         "algorithm.minibatch_size=100", "algorithm.network.actor_hidden=[32,32]",
         "algorithm.network.critic_hidden=[32,32]"]


# --- the marlshare side ------------------------------------------------------------------------------

def compose_config(seed: int, iterations: int, threads: int, run_dir: str, quick: bool):
    """The recipe's config for MAPPO-PS at BenchMARL's setting (the ``benchmarl`` algorithm preset file,
    read as data: tools do not import the recipes), two-phase with the switch one frame after the
    warm-up and measured PS iterations, evaluation and periodic checkpoints out of the way."""
    from omegaconf import OmegaConf

    from marlshare.components.config import PhaseConfig, ScheduleConfig, TrainConfig

    cfg = OmegaConf.structured(TrainConfig)
    preset = OmegaConf.load(CONF_DIR / "algorithm" / "benchmarl.yaml")
    preset.pop("defaults", None)
    cfg.algorithm = OmegaConf.merge(cfg.algorithm, preset)
    overrides = MARLSHARE_OVERRIDES + [
                 "logger.csv=false", "logger.wandb=false", "logger.tensorboard=false", "logger.progress=false",
                 "checkpoint_every=0", f"threads={threads}", f"seed={seed}", f"run_dir={run_dir}"]
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides + (QUICK if quick else [])))
    fpb = cfg.algorithm.frames_per_batch
    cfg.schedule = OmegaConf.structured(ScheduleConfig(name="two_phase", phases=[
        PhaseConfig(until=(1 + iterations) * fpb + 1), PhaseConfig(strategy={"name": "ps_lora", "rank": LORA_RANK})]))
    cfg.total_frames = 10**12  # never reached: no final evaluation or checkpoint inside the timing
    cfg.eval_every = 10**12  # no periodic evaluation (only the initial one, in the warm-up)
    return cfg


@dataclass
class Settings:
    """Every number the reference loop uses, read from the composed marlshare config."""

    n_agents: int
    num_envs: int
    max_steps: int
    frames_per_batch: int
    epochs: int
    minibatch_size: int
    actor_hidden: list
    critic_hidden: list
    activation: str
    lr: float
    adam_eps: float
    max_grad_norm: float
    clip_epsilon: float
    entropy_coeff: float
    critic_coeff: float
    gamma: float
    lmbda: float
    normalize_advantage: bool
    reset_each_iteration: bool
    clip_grad_per_network: bool
    clamp_actions: bool
    loss_critic_type: str = "l2"  # components.algorithms.PPOSettings' default, not a config field

    @classmethod
    def from_config(cls, cfg) -> "Settings":
        a, net = cfg.algorithm, cfg.algorithm.network
        return cls(n_agents=int(cfg.env.options["n_agents"]), num_envs=cfg.env.num_envs, max_steps=cfg.env.max_steps,
                   frames_per_batch=a.frames_per_batch, epochs=a.epochs, minibatch_size=a.minibatch_size,
                   actor_hidden=list(net.actor_hidden), critic_hidden=list(net.critic_hidden), activation=net.activation,
                   lr=a.lr, adam_eps=a.adam_eps, max_grad_norm=a.max_grad_norm, clip_epsilon=a.clip_epsilon,
                   entropy_coeff=a.entropy_coeff, critic_coeff=a.critic_coeff, gamma=a.gamma, lmbda=a.lmbda,
                   normalize_advantage=a.normalize_advantage, reset_each_iteration=a.reset_each_iteration,
                   clip_grad_per_network=a.clip_grad_per_network,
                   clamp_actions=bool(cfg.env.options.get("clamp_actions", False)))

    def check_benchmarl(self) -> None:
        got = {k: getattr(self, k) for k in BENCHMARL}
        wrong = {k: (v, BENCHMARL[k]) for k, v in got.items() if v != BENCHMARL[k]}
        if wrong:
            raise SystemExit(f"recipes/conf/algorithm/benchmarl.yaml no longer matches BenchMARL's setting: "
                             f"{ {k: f'{v} (expected {e})' for k, (v, e) in wrong.items()} }")


class MarlshareRun:
    """A two-phase marlshare Trainer driven one iteration at a time."""

    def __init__(self, cfg):
        from marlshare.components.trainer import Trainer

        self.trainer = Trainer(cfg)
        self.metrics = Path(self.trainer.run_dir) / "metrics.csv"

    def iteration(self) -> dict:
        start, cpu = time.perf_counter(), time.process_time()
        self.trainer.run(max_iterations=1)
        call_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
        with open(self.metrics, newline="") as f:
            row = list(csv.DictReader(f))[-1]  # the logger rewrites metrics.csv at every run() call
        frames = self.trainer.cfg.algorithm.frames_per_batch
        return {"time_s": frames / float(row["fps"]), "call_s": call_s, "cpu_s": cpu_s, "phase": row["phase"],
                "strategy": row["strategy"], "iteration": int(row["iteration"])}


# --- the reference: a TorchRL-only MAPPO loop (TorchRL multi-agent PPO tutorial style) ----------------

class ReferenceMAPPO:
    """MAPPO with TorchRL's own multi-agent building blocks, nothing from marlshare."""

    def __init__(self, s: Settings, seed: int):
        self.s = s
        torch.manual_seed(seed)
        base = VmasEnv(scenario=ENV.split("/", 1)[1], num_envs=s.num_envs, continuous_actions=True,
                       max_steps=s.max_steps, device="cpu", seed=seed, n_agents=s.n_agents,
                       clamp_actions=s.clamp_actions)
        self.env = TransformedEnv(base, RewardSum(in_keys=[base.reward_key], out_keys=[("agents", "episode_reward")]))
        torch.manual_seed(seed)  # VMAS reseeds torch's global RNG when built
        obs_dim = self.env.observation_spec["agents", "observation"].shape[-1]
        action_spec = self.env.full_action_spec_unbatched[self.env.action_key]
        act_dim = action_spec.shape[-1]
        activation = ACTIVATIONS[s.activation]

        policy_net = nn.Sequential(
            MultiAgentMLP(n_agent_inputs=obs_dim, n_agent_outputs=2 * act_dim, n_agents=s.n_agents,
                          centralized=False, share_params=True, depth=len(s.actor_hidden),
                          num_cells=s.actor_hidden, activation_class=activation),
            NormalParamExtractor(),  # [..., 2 * act] -> loc, positive scale
        )
        policy_module = TensorDictModule(policy_net, in_keys=[("agents", "observation")],
                                         out_keys=[("agents", "loc"), ("agents", "scale")])
        self.policy = ProbabilisticActor(
            module=policy_module, spec=action_spec, in_keys=[("agents", "loc"), ("agents", "scale")],
            out_keys=[self.env.action_key], distribution_class=TanhNormal,
            distribution_kwargs={"low": action_spec.space.low, "high": action_spec.space.high},
            return_log_prob=True, log_prob_key=("agents", "action_log_prob"))
        critic_net = MultiAgentMLP(n_agent_inputs=obs_dim, n_agent_outputs=1, n_agents=s.n_agents,
                                   centralized=True, share_params=True, depth=len(s.critic_hidden),
                                   num_cells=s.critic_hidden, activation_class=activation)
        self.critic = TensorDictModule(critic_net, in_keys=[("agents", "observation")],
                                       out_keys=[("agents", "state_value")])

        self.collector = Collector(self.env, self.policy, frames_per_batch=s.frames_per_batch, total_frames=-1,
                                   reset_at_each_iter=s.reset_each_iteration, device="cpu")
        self.batches = iter(self.collector)
        self.buffer = ReplayBuffer(storage=LazyTensorStorage(s.frames_per_batch, device="cpu"),
                                   sampler=SamplerWithoutReplacement(), batch_size=s.minibatch_size)
        self.loss = ClipPPOLoss(actor_network=self.policy, critic_network=self.critic, clip_epsilon=s.clip_epsilon,
                                entropy_coeff=s.entropy_coeff, critic_coeff=s.critic_coeff,
                                loss_critic_type=s.loss_critic_type, normalize_advantage=s.normalize_advantage)
        self.loss.set_keys(reward=self.env.reward_key, action=self.env.action_key,
                           sample_log_prob=("agents", "action_log_prob"), value=("agents", "state_value"),
                           done=("agents", "done"), terminated=("agents", "terminated"))
        self.loss.make_value_estimator(ValueEstimators.GAE, gamma=s.gamma, lmbda=s.lmbda)
        self.optimiser = torch.optim.Adam(self.loss.parameters(), lr=s.lr, eps=s.adam_eps)
        nets = (self.loss.actor_network_params, self.loss.critic_network_params)  # clipped apart, as BenchMARL
        self.clip_groups = ([list(p.values(True, True)) for p in nets] if s.clip_grad_per_network
                            else [list(self.loss.parameters())])

    def update(self, batch) -> float:
        s = self.s
        # VMAS reports done/terminated at the root [B, T, 1]; GAE wants them per agent [B, T, N, 1].
        agent_shape = batch.get_item_shape(("next", self.env.reward_key))
        for key in ("done", "terminated"):
            batch.set(("next", "agents", key), batch.get(("next", key)).unsqueeze(-1).expand(agent_shape))
        with torch.no_grad():
            self.loss.value_estimator(batch, params=self.loss.critic_network_params,
                                      target_params=self.loss.target_critic_network_params)
        self.buffer.empty()
        self.buffer.extend(batch.reshape(-1))
        for _ in range(s.epochs):
            for _ in range(s.frames_per_batch // s.minibatch_size):
                minibatch = self.buffer.sample()
                out = self.loss(minibatch)
                total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
                total.backward()
                for group in self.clip_groups:
                    torch.nn.utils.clip_grad_norm_(group, s.max_grad_norm)
                self.optimiser.step()
                self.optimiser.zero_grad()
        done = batch.get(("next", "agents", "done"))
        return batch.get(("next", "agents", "episode_reward"))[done].mean().item() if done.any() else float("nan")

    def iteration(self) -> dict:
        start, cpu = time.perf_counter(), time.process_time()
        batch = next(self.batches)
        self.update(batch)
        return {"time_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu}

    def close(self):
        self.collector.shutdown()


# --- the protocol --------------------------------------------------------------------------------------

def _round(m: dict, r: dict) -> dict:
    return {"marlshare_s": m["time_s"], "marlshare_call_s": m["call_s"], "marlshare_cpu_s": m["cpu_s"],
            "reference_s": r["time_s"], "reference_cpu_s": r["cpu_s"]}


def run_repeat(repeat: int, args, log) -> dict:
    """One interleaved repeat; returns the measured rounds."""
    seed = args.seed + repeat
    with tempfile.TemporaryDirectory(prefix="bench_training_") as run_dir:
        cfg = compose_config(seed, args.iterations, args.threads, run_dir, args.quick)
        settings = Settings.from_config(cfg)
        if not args.quick:
            settings.check_benchmarl()
        fpb = settings.frames_per_batch
        ours = MarlshareRun(cfg)
        ref = ReferenceMAPPO(settings, seed)
        rounds = {"ps": [], "lora": []}

        def step(label, phase=None, with_ref=True, measured=True):
            m = ours.iteration()
            if phase is not None and m["phase"] != phase:
                raise RuntimeError(f"expected a {phase} iteration, metrics.csv says {m['phase']} "
                                   f"(iteration {m['iteration']})")
            r = ref.iteration() if with_ref else None
            line = (f"  [{repeat}] {label:<12} marlshare {m['time_s']:6.2f} s (cpu {m['cpu_s']:6.2f} s, call "
                    f"{m['call_s']:6.2f} s, {m['strategy']})")
            if r is not None:
                line += f" | reference {r['time_s']:6.2f} s (cpu {r['cpu_s']:6.2f} s)"
            log(line + ("" if measured else "  (excluded)"))
            return m, r

        step("warm-up", "pretrain", measured=False)
        for i in range(args.iterations):
            m, r = step(f"ps {i + 1}", "pretrain")
            rounds["ps"].append(_round(m, r))
        step("switch", "pretrain", with_ref=False, measured=False)  # evaluation + to_lora at its end
        step("lora warm-up", "finetune", with_ref=False, measured=False)
        for i in range(args.iterations):
            m, r = step(f"lora {i + 1}", "finetune")
            rounds["lora"].append(_round(m, r))
        ref.close()
        count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
        return {"seed": seed, "settings": asdict(settings), "frames_per_batch": fpb,
                "marlshare_parameters": ours.trainer.state.param_counts,
                "marlshare_critic_parameters": count(ours.trainer.critic),
                "reference_parameters": {"actor": count(ref.policy), "critic": count(ref.critic)},
                "rounds": rounds}


def summarise(repeats: list[dict], quick: bool) -> dict:
    fpb = repeats[0]["frames_per_batch"]
    ps = [r for rep in repeats for r in rep["rounds"]["ps"]]
    lora = [r for rep in repeats for r in rep["rounds"]["lora"]]
    med = statistics.median
    ours_s, ref_s = med([r["marlshare_s"] for r in ps]), med([r["reference_s"] for r in ps])
    lora_s = med([r["marlshare_s"] for r in lora])
    fps_ratio = med([r["reference_s"] / r["marlshare_s"] for r in ps])  # marlshare fps / reference fps, paired
    lora_ratio = lora_s / ours_s
    lora_ratio_norm = (med([r["marlshare_s"] / r["reference_s"] for r in lora])
                       / med([r["marlshare_s"] / r["reference_s"] for r in ps]))
    return {
        "frames_per_iteration": fpb,
        "marlshare_ps_fps": fpb / ours_s, "reference_fps": fpb / ref_s,
        "marlshare_ps_s_per_iteration": ours_s, "reference_s_per_iteration": ref_s,
        "marlshare_ps_call_s_per_iteration": med([r["marlshare_call_s"] for r in ps]),
        "fps_ratio_paired": fps_ratio, "fps_ratio_of_medians": ref_s / ours_s,
        "reference_fps_during_lora": fpb / med([r["reference_s"] for r in lora]),
        "lora_s_per_iteration": lora_s, "lora_call_s_per_iteration": med([r["marlshare_call_s"] for r in lora]),
        "lora_over_ps": lora_ratio, "lora_over_ps_reference_normalised": lora_ratio_norm,
        # process CPU time (one thread): insensitive to time spent descheduled on a loaded machine
        "marlshare_ps_cpu_s_per_iteration": med([r["marlshare_cpu_s"] for r in ps]),
        "reference_cpu_s_per_iteration": med([r["reference_cpu_s"] for r in ps]),
        "lora_cpu_s_per_iteration": med([r["marlshare_cpu_s"] for r in lora]),
        "fps_ratio_cpu_paired": med([r["reference_cpu_s"] / r["marlshare_cpu_s"] for r in ps]),
        "lora_over_ps_cpu": med([r["marlshare_cpu_s"] for r in lora]) / med([r["marlshare_cpu_s"] for r in ps]),
        "targets": {
            "fps_ratio": {"target": f">= {TARGET_FPS_RATIO}", "value": fps_ratio,
                          "pass": fps_ratio >= TARGET_FPS_RATIO},
            "lora_over_ps": {"target": f"<= {TARGET_LORA_RATIO}", "value": lora_ratio,
                             "pass": lora_ratio <= TARGET_LORA_RATIO},
        },
        "quick": quick,
    }


def print_table(summary: dict, log) -> None:
    s = summary
    fpb = s["frames_per_iteration"]
    rows = [
        ("marlshare MAPPO-PS", s["marlshare_ps_s_per_iteration"], s["marlshare_ps_cpu_s_per_iteration"]),
        ("TorchRL reference MAPPO", s["reference_s_per_iteration"], s["reference_cpu_s_per_iteration"]),
        (f"marlshare PS+LoRA (rank {LORA_RANK})", s["lora_s_per_iteration"], s["lora_cpu_s_per_iteration"]),
    ]
    log("")
    log(f"{'loop (medians)':<28} {'frames/s':>9} {'s/iter':>8} {'CPU s/iter':>11} {'frames/CPU s':>13}")
    for name, sec, cpu in rows:
        log(f"{name:<28} {fpb / sec:>9.1f} {sec:>8.2f} {cpu:>11.2f} {fpb / cpu:>13.1f}")
    log("")
    log(f"frames/s marlshare / reference: {s['fps_ratio_paired']:.3f} (median of paired rounds; ratio of "
        f"medians {s['fps_ratio_of_medians']:.3f}; CPU time, paired {s['fps_ratio_cpu_paired']:.3f})")
    log(f"s/iteration LoRA / PS:          {s['lora_over_ps']:.3f} (reference-normalised "
        f"{s['lora_over_ps_reference_normalised']:.3f}; CPU time {s['lora_over_ps_cpu']:.3f})")
    t = s["targets"]
    smoke = " (--quick: smoke settings, not the benchmark)" if s["quick"] else ""
    log(f"{'PASS' if t['fps_ratio']['pass'] else 'MISS'}: marlshare frames/s {s['fps_ratio_paired']:.3f}x the "
        f"reference (target >= {TARGET_FPS_RATIO}x){smoke}")
    log(f"{'PASS' if t['lora_over_ps']['pass'] else 'MISS'}: LoRA phase {s['lora_over_ps']:.3f}x the PS phase's "
        f"time per iteration (target <= {TARGET_LORA_RATIO}x){smoke}")


def machine() -> dict:
    import tensordict
    import torchrl
    import vmas

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "torchrl": torchrl.__version__,
            "tensordict": tensordict.__version__, "vmas": vmas.__version__,
            "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None}


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--peer" or a.startswith("--peer=") for a in argv):  # the side by side with BenchMARL
        from tools.bench_peer import main as peer_main

        return peer_main(argv)
    parser = argparse.ArgumentParser(prog="python -m tools.bench_training", description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", metavar="PYTHON", help="run tools.bench_peer instead (BenchMARL's python; its options)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="measured iterations per phase (after one warm-up), default 3 (1 with --quick)")
    parser.add_argument("--repeats", type=int, default=1, help="independent repeats (fresh runs, seed+r), default 1")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads for both loops (default 1: a thread count both sides share)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs/bench_training.json", help="JSON report path")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny settings, 1 iteration")
    args = parser.parse_args(argv)
    if args.iterations is None:
        args.iterations = 1 if args.quick else 3
    if args.iterations < 1 or args.repeats < 1 or args.threads < 0:
        parser.error("--iterations and --repeats must be >= 1, --threads >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    # neither policy is recurrent (no InitTracker needed); TorchRL 0.14 warns about v0.15 at every Collector
    warnings.filterwarnings("ignore", message="The env passed to Collector is missing transforms")

    def log(line=""):
        print(line, flush=True)

    info = machine()
    code = code_version()
    log(f"bench_training: MAPPO-PS on {ENV} ({N_AGENTS} agents), marlshare vs TorchRL reference, "
        f"{args.iterations} measured iterations per phase x {args.repeats} repeat(s), {args.threads} thread(s)"
        + (" [--quick]" if args.quick else ""))
    log(f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, torchrl {info['torchrl']}, "
        f"tensordict {info['tensordict']}, vmas {info['vmas']}, load average {info['loadavg_start']}")
    log(f"code: {code['root']} at {code['commit']}" + (f", modified: {code['modified']}" if code["modified"] else ""))
    start = time.perf_counter()
    repeats = [run_repeat(r, args, log) for r in range(args.repeats)]
    summary = summarise(repeats, args.quick)
    print_table(summary, log)
    info["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    report = {"command": "python -m tools.bench_training " + " ".join(argv),
              "env": ENV, "n_agents": N_AGENTS, "lora_rank": LORA_RANK, "iterations": args.iterations,
              "repeats_requested": args.repeats, "threads": args.threads, "machine": info, "code": code,
              "total_wall_s": time.perf_counter() - start, "summary": summary, "repeats": repeats}
    out = write_json(args.out, report)
    log(f"wrote {out} (total {report['total_wall_s']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
