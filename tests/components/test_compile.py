"""The update step's speed paths: compiled and eager agree, one compile per phase, the ``auto`` rule,
minibatch draws identical to TorchRL's sampler, per-network gradient clipping."""

import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement

from marlshare.components import phases
from marlshare.components.algorithms import actor_net, update as update_module
from marlshare.components.algorithms.update import AUTO_COMPILE_MIN_STEPS, Minibatches, PPOUpdate, compile_mode
from marlshare.components.config import PhaseConfig, ScheduleConfig
from marlshare.components.trainer import ConfigError, Trainer

from tests.components.test_trainer import ITER, rows, tiny


def test_minibatches_draw_exactly_what_torchrl_sampler_draws():
    """Same permutations at the same moments (also the one drawn when an epoch ends, and short
    minibatches when the size does not divide the rows), so switching changed no trajectory."""
    n, size, draws = 50, 15, 8  # two whole epochs: the sampler has drawn the third permutation already
    buffer = ReplayBuffer(storage=LazyTensorStorage(n), sampler=SamplerWithoutReplacement(), batch_size=size)
    buffer.extend(TensorDict({"i": torch.arange(n)}, batch_size=[n]))
    torch.manual_seed(3)
    expected = [buffer.sample()["i"] for _ in range(draws)]
    after_expected = torch.rand(3)
    minibatches = Minibatches(size)
    minibatches.reset(n)
    torch.manual_seed(3)
    got = [minibatches.next() for _ in range(draws)]
    assert [len(x) for x in got] == [len(x) for x in expected] and len(got[3]) == 5  # 50 = 3 x 15 + 5
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert torch.equal(torch.rand(3), after_expected)  # the global generator is where the sampler left it


def test_auto_compiles_long_phases_feed_forward_only_on_a_cpu_and_reduce_overhead_on_cuda():
    gpu, cpu = AUTO_COMPILE_MIN_STEPS["cuda"], AUTO_COMPILE_MIN_STEPS["cpu"]
    assert compile_mode("auto", "cuda", gpu - 1) is None
    assert compile_mode("AUTO", "cuda", gpu) == "reduce-overhead"
    assert compile_mode("auto", "cuda", gpu, recurrent=True) == "reduce-overhead"
    assert compile_mode("auto", "cpu", gpu) is None and compile_mode("auto", "cpu", cpu - 1) is None
    assert compile_mode("auto", "cpu", cpu) == "default"
    assert compile_mode("auto", "cpu", 10**9, recurrent=True) is None  # a GRU's compiled step was slower
    assert compile_mode("true", "cpu", 1, recurrent=True) == "default"  # asked for: compiled
    assert compile_mode(True, "cpu", 1) == "default" and compile_mode("false", "cuda", 10**9) is None
    with pytest.raises(ValueError, match=r"algorithm.compile='sometimes'; valid: \['auto', 'true', 'false'\]"):
        compile_mode("sometimes", "cpu", 1)
    with pytest.raises(ConfigError, match="algorithm.compile"):
        Trainer(tiny(**{"algorithm.compile": "yes"}))


def test_the_trainer_sets_the_mode_from_the_phase_length(tmp_path, monkeypatch):
    steps_per_iteration = 2 * (ITER // 80)  # epochs x minibatches
    iterations = -(-AUTO_COMPILE_MIN_STEPS["cpu"] // steps_per_iteration)
    seen = []
    monkeypatch.setattr("marlshare.components.phases.compile_mode",
                        lambda s, d, steps, recurrent: seen.append(steps) or f"{s}:{steps}:{recurrent}")
    long = Trainer(tiny(total_frames=iterations * ITER), run_dir=tmp_path / "long")
    assert long.update.compile == f"auto:{iterations * steps_per_iteration}:False"  # the phase's gradient steps
    sequential = Trainer(tiny(total_frames=iterations * ITER, **{"algorithm.name": "happo"}), run_dir=tmp_path / "h")
    assert sequential.update.compile is None  # the sequential updates stay eager


def test_compile_once_per_phase_and_the_time_is_reported(tmp_path, monkeypatch):
    compiled = []

    def fake_compile(fn, dynamic=None, **how):  # records the compile; runs eagerly
        compiled.append(how)
        return fn

    monkeypatch.setattr(update_module.torch, "compile", fake_compile)
    schedule = ScheduleConfig(name="two_phase", phases=[PhaseConfig(until=2 * ITER), PhaseConfig(strategy={"name": "ps_lora"})])
    trainer = Trainer(tiny(schedule=schedule, **{"algorithm.compile": "true"}), run_dir=tmp_path)
    summary = trainer.run()
    cpu = {"options": {"cpp.use_decompose_tanh": True}}  # inductor's C++ kernels, tanh through exp
    assert compiled == [cpu, cpu]  # 4 iterations, 2 phases: one compile each
    assert set(summary["compile_s"]) == {"pretrain", "finetune"}


def test_every_call_of_a_compiled_objective_runs_with_views_recomputed():
    """The partitioner setting that keeps ReLU's boolean masks out of the saved tensors (their
    store is the slow path of inductor's CPU kernels) must hold whenever a compile can happen: at
    the first call and at any later one (a guard failure recompiles)."""
    import torch._functorch.config as functorch_config

    seen = []
    update = PPOUpdate(10, 10, 1, 1.0, 1, on_nonfinite=None, on_finite=lambda: None, compile="default")
    objective = lambda items, index: seen.append(functorch_config.recompute_views) or items[index]  # noqa: E731
    for _ in range(3):
        update.evaluate(objective, torch.arange(5), torch.tensor([1, 3]))
    assert seen == [True, True, True] and functorch_config.recompute_views is False  # restored after
    assert update.compile_s is not None  # the first call is timed (it compiles)
    eager = PPOUpdate(10, 10, 1, 1.0, 1, on_nonfinite=None, on_finite=lambda: None)
    eager.evaluate(objective, torch.arange(5), torch.tensor([1, 3]))
    assert seen[-1] is False and eager.compile_s is None


def test_compiled_and_eager_updates_agree(tmp_path):
    """Two iterations of the same seed, eager and through torch.compile (inductor): the logged losses
    and the parameters after agree to float tolerance (the compiled kernels sum in another order)."""
    runs = {}
    for mode in ("false", "true"):
        trainer = Trainer(tiny(total_frames=2 * ITER, eval_every=10 * ITER, **{"algorithm.compile": mode,
                                                                              "logger.csv": True}),
                          run_dir=tmp_path / mode)
        summary = trainer.run()
        runs[mode] = (rows(tmp_path / mode), [p.detach().clone() for p in actor_net(trainer.actor).net.parameters()],
                      summary)
    assert list(runs["true"][2]["compile_s"].values())[0] > 0 and not runs["false"][2]["compile_s"]
    for eager, compiled in zip(runs["false"][0][1:], runs["true"][0][1:]):  # row 0: the frame-0 evaluation
        for key in ("loss_objective", "loss_critic", "grad_norm"):
            assert float(compiled[key]) == pytest.approx(float(eager[key]), rel=1e-4, abs=1e-6), key
    moved = max((a - b).abs().max().item() for a, b in zip(runs["false"][1], runs["true"][1]))
    assert moved < 1e-5


def test_clip_grad_per_network_clips_actor_and_critic_each_on_its_own():
    actor, critic = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    grads = torch.tensor([0.1, 0.0, 0.0]), torch.tensor([100.0, 0.0, 0.0])
    seen = {}
    for name, trainable in (("joint", [actor, critic]), ("separate", ([actor], [critic]))):
        update = PPOUpdate(10, 10, 1, 1.0, 1, on_nonfinite=None, on_finite=lambda: None)
        optimiser = torch.optim.SGD([actor, critic], lr=1.0)
        total = (actor * grads[0]).sum() + (critic * grads[1]).sum()
        norm = update.apply(total, optimiser, trainable, step=lambda: None)
        seen[name] = (actor.grad.clone(), critic.grad.clone(), float(norm))
    joint, separate = seen["joint"], seen["separate"]
    assert joint[0][0] == pytest.approx(0.1 / 100.00005, rel=1e-4)  # the critic's norm shrinks the actor's step
    assert separate[0][0] == pytest.approx(0.1) and separate[1][0] == pytest.approx(1.0)
    assert separate[2] == pytest.approx((0.1 ** 2 + 100.0 ** 2) ** 0.5)  # reported: the norm over both


def test_a_step_in_flight_skips_non_finite_steps_exactly_inside_fused_adam():
    """No synchronisation: the fused Adam skips the step itself (found_inf) where the loss or the
    gradient norm is not finite: parameters, moments and step count stay; the flags come back as
    tensors and are reported in order afterwards."""
    reports = []
    update = PPOUpdate(10, 10, 1, 10.0, 1, on_nonfinite=reports.append, on_finite=lambda: reports.append("ok"))
    p = torch.nn.Parameter(torch.tensor([2.0, 3.0]))
    optimiser = torch.optim.Adam([p], lr=0.1, fused=True)
    flags = [update.step_in_flight((p * p).sum(), optimiser, [p])[1:]]  # a good step
    after_good = (p.detach().clone(), optimiser.state[p]["exp_avg"].clone(), float(optimiser.state[p]["step"]))
    flags.append(update.step_in_flight((p * math.nan).sum(), optimiser, [p])[1:])  # non-finite loss
    flags.append(update.step_in_flight(torch.sqrt(p - p.detach()).sum(), optimiser, [p])[1:])  # loss 0, inf gradient
    assert torch.equal(p.detach(), after_good[0]) and torch.equal(optimiser.state[p]["exp_avg"], after_good[1])
    assert float(optimiser.state[p]["step"]) == after_good[2] == 1.0 and optimiser.found_inf is None
    assert update._report(flags) == [True, False, False]
    assert reports == ["ok", "loss", "gradient"]
    flags.append(update.step_in_flight((p * p).sum(), optimiser, [p])[1:])  # training goes on
    assert float(optimiser.state[p]["step"]) == 2.0 and not torch.equal(p.detach(), after_good[0])


def test_the_minibatch_loop_reports_its_steps_only_after_the_last_one(tmp_path, monkeypatch):
    """Every optimiser step of an update runs before any step's outcome is looked at (one
    synchronisation per update), and a poisoned step is still counted as skipped."""
    import marlshare.components.trainer as trainer_module

    events, calls = [], {"n": 0}
    trainer = Trainer(tiny(max_nonfinite=100), run_dir=tmp_path)

    def poisoned_every_third(net):
        calls["n"] += 1
        return torch.tensor(math.nan) if calls["n"] % 3 == 0 else torch.zeros(())

    monkeypatch.setattr(trainer.strategy, "aux_loss", poisoned_every_third)
    phases.build_optimiser(trainer)  # the aux callable is bound per phase
    step = trainer.optimiser.step
    monkeypatch.setattr(trainer.optimiser, "step", lambda *a, **k: events.append("step") or step(*a, **k))
    for name in ("_finite", "_nonfinite"):
        original = getattr(trainer, name)
        monkeypatch.setattr(trainer, name, lambda *a, _o=original: events.append("report") or _o(*a))
    trainer.update.on_finite, trainer.update.on_nonfinite = trainer._finite, trainer._nonfinite
    trainer.run(max_iterations=1)
    steps = events.count("step")
    assert steps == 4 and events == ["step"] * steps + ["report"] * steps
    assert rows(tmp_path)[1]["skipped_updates"] == "1"  # the third of 4 steps (row 0: the frame-0 evaluation)
