"""``algorithm.precision``: bf16 autocast in the update's network forwards only (parameters, gradients,
optimiser state, GAE, outputs and losses float32), ``auto`` resolved from the hardware, fp32 unchanged.

Speed is not tested here (tools/bench_update.py --precision); on a CPU without AMX-BF16 / AVX512-BF16
bfloat16 matmuls are emulated and slower than float32, so no test relies on bf16 being fast."""

import warnings

import pytest
import torch
from torch import nn

from marlshare.components.algorithms import actor_net, precision
from marlshare.components.algorithms.ppo import PolicyNet
from marlshare.components.trainer import ConfigError, Trainer

from tests.components.test_trainer import ITER, params, tiny


def test_auto_is_bf16_only_where_bfloat16_matmuls_are_native(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16", "amx_tile"}))
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert precision.resolve_precision("AUTO", "cpu") == "bf16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    monkeypatch.setattr(precision, "_SAID", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert precision.resolve_precision("auto", "cpu") == "fp32"
        assert precision.resolve_precision("auto", "cpu") == "fp32"
    said = [str(w.message) for w in caught if "precision" in str(w.message)]
    assert len(said) == 1 and "training in fp32 because the CPU has none of ['amx_bf16', 'avx512_bf16']" in said[0]
    assert precision.resolve_precision("bf16", "cpu") == "bf16"  # asked for: emulated where not native
    assert precision.resolve_precision("fp32", "cuda") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.resolve_precision("auto", "cuda:0") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision.resolve_precision("auto", "cuda") == "fp32"
    with pytest.raises(ValueError, match=r"algorithm.precision='half'; valid: \['fp32', 'bf16', 'auto'\]"):
        precision.resolve_precision("half", "cpu")
    with pytest.raises(ConfigError, match=r"algorithm.precision='half' is not valid; choose one of \['fp32', 'bf16'"):
        Trainer(tiny(**{"algorithm.precision": "half"}))


def test_this_machines_flags_decide_auto():
    native = any(flag in precision.cpu_flags() for flag in ("amx_bf16", "avx512_bf16"))
    assert precision.native_bf16("cpu")[0] == native
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert precision.resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")


def _record(trainer):
    """Hooks recording (in the update's gradient steps?, dtype) of every linear layer's output and of
    the actor's and critic's outputs as they reach the loss; wraps ``update._train`` to mark its steps."""
    seen = {"linear": [], "network_out": []}
    state = {"in_steps": False}
    train = trainer.update._train

    def marked(*args):
        state["in_steps"] = True
        try:
            return train(*args)
        finally:
            state["in_steps"] = False

    trainer.update._train = marked
    linear = lambda m, a, out: seen["linear"].append((state["in_steps"], out.dtype))  # noqa: E731
    for module in list(trainer.actor.modules()) + list(trainer.critic.modules()):
        if type(module).__name__ in ("AgentLinear", "SharedLinear", "Linear") or isinstance(module, nn.Linear):
            module.register_forward_hook(linear)
    for module in list(trainer.actor.modules()) + list(trainer.critic.modules()):
        if type(module).__name__ == "TensorDictModule":  # the wrapper: what the loss reads
            module.register_forward_hook(lambda m, a, out: seen["network_out"].append(
                (state["in_steps"], {out.get(k).dtype for k in m.out_keys if out.get(k).is_floating_point()})))
    return seen


def test_bf16_runs_the_update_forwards_in_bfloat16_and_keeps_everything_else_float32(tmp_path):
    trainer = Trainer(tiny(total_frames=ITER, **{"algorithm.precision": "bf16"}), run_dir=tmp_path)
    assert trainer.update.precision == "bf16"
    seen = _record(trainer)
    trainer.run()
    in_steps = {dtype for inside, dtype in seen["linear"] if inside}
    outside = {dtype for inside, dtype in seen["linear"] if not inside}
    assert in_steps == {torch.bfloat16}  # every matmul of the gradient steps ran in bfloat16
    assert outside == {torch.float32}  # collection, GAE's critic forward and evaluation did not
    assert {d for inside, dtypes in seen["network_out"] if inside for d in dtypes} == {torch.float32}
    assert {p.dtype for p in trainer.optimiser.param_groups[0]["params"] + trainer.optimiser.param_groups[1]["params"]} \
        == {torch.float32}
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in trainer.critic.parameters())
    states = [v for s in trainer.optimiser.state.values() for v in s.values() if torch.is_tensor(v)]
    assert states and {v.dtype for v in states} == {torch.float32}


def test_fp32_and_auto_here_are_bit_identical_to_the_default_and_bf16_is_not(tmp_path):
    def trained(name, **changes):
        trainer = Trainer(tiny(total_frames=2 * ITER, **changes), run_dir=tmp_path / name)
        trainer.run()
        return params(trainer)

    default = trained("default")
    fp32 = trained("fp32", **{"algorithm.precision": "fp32"})
    assert all(torch.equal(default[k], fp32[k]) for k in default)
    if not precision.native_bf16("cpu")[0]:  # auto falls back to fp32 here: the same run
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            auto = trained("auto", **{"algorithm.precision": "auto"})
        assert all(torch.equal(default[k], auto[k]) for k in default)
    bf16 = trained("bf16", **{"algorithm.precision": "bf16"})
    gap = max((default[k] - bf16[k]).abs().max().item() for k in default)
    assert 0 < gap < 0.05  # the same learning, up to bfloat16's rounding


def test_float32_outputs_is_a_no_op_in_float32_and_casts_under_autocast():
    net = PolicyNet(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)))
    from tensordict import TensorDict
    from tensordict.nn import TensorDictModule

    module = TensorDictModule(net, in_keys=["x"], out_keys=["y"])
    td = TensorDict({"x": torch.randn(5, 3)}, batch_size=[5])
    before = module(td.clone())["y"]
    precision.float32_outputs(module)
    precision.float32_outputs(module)  # idempotent: one hook
    assert len(net._forward_hooks) == 1
    assert torch.equal(module(td.clone())["y"], before)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = module(td.clone())["y"]
        assert net.net(td["x"]).dtype == torch.bfloat16  # inside: bfloat16 matmuls
    assert y.dtype == torch.float32 and 0 < (y - before).abs().max() < 0.05


@pytest.mark.slow
def test_bf16_compiled_matches_bf16_eager_and_differs_from_fp32(tmp_path):
    """The compiled objective traces the autocast region: its loss is the eager bf16 loss (up to
    inductor's fusions), not the fp32 one. About 40 s on 2 cores (three compiles)."""
    from marlshare.components.algorithms.update import PPOUpdate

    trainer = Trainer(tiny(total_frames=ITER, **{"algorithm.precision": "bf16"}), run_dir=tmp_path)
    trainer.run()
    from tools.bench_update import copies

    batch = trainer.env.rollout(20, trainer.actor, break_when_any_done=False)
    from marlshare.components.algorithms import expand_done

    expand_done(batch)
    with torch.no_grad():
        trainer.loss.value_estimator(batch, params=trainer.loss.critic_network_params,
                                     target_params=trainer.loss.target_critic_network_params)
    items, index = batch.reshape(-1), torch.arange(80)
    totals = {}
    for name, mode, prec in (("fp32", None, "fp32"), ("bf16", None, "bf16"), ("bf16_compiled", "default", "bf16")):
        update = PPOUpdate(ITER, 80, 1, 1.0, 1, print, lambda: None, compile=mode, precision=prec)
        loss, _, _, aux = copies(trainer)
        with torch.no_grad():
            totals[name] = update.evaluate(update.objective(loss, aux), items, index)[0].item()
    assert abs(totals["bf16_compiled"] - totals["bf16"]) < 1e-3 * max(1.0, abs(totals["bf16"]))
    assert abs(totals["bf16"] - totals["fp32"]) > 1e-6
    assert actor_net(trainer.actor).net is not None


@pytest.mark.parametrize("algorithm", ["happo", "a2po"])
def test_sequential_updates_also_take_their_turns_in_bf16(tmp_path, algorithm):
    """HAPPO's and A2PO's agent-by-agent turns call the loss themselves: under bf16 those forwards run
    in bfloat16 too (their between-turn ratio corrections may stay float32), parameters stay float32."""
    trainer = Trainer(tiny(total_frames=ITER, **{"algorithm.precision": "bf16", "algorithm.name": algorithm}),
                      run_dir=tmp_path)
    seen = _record(trainer)
    trainer.run()
    assert torch.bfloat16 in {dtype for inside, dtype in seen["linear"] if inside}
    assert {dtype for inside, dtype in seen["linear"] if not inside} == {torch.float32}
    assert {p.dtype for p in trainer.actor.parameters()} == {torch.float32}
