"""The team policy outside the trainer, on constructed networks (no training): merged = unmerged actions
for every strategy, the deterministic rule, and exported files = library actions (components/export.py)."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from marlshare.components.algorithms.keys import HIDDEN, MASK, OBS
from marlshare.components.export import deterministic_module, export_policy, load_exported
from marlshare.components.policy_io import team_policy
from marlshare.components.strategies import STRATEGIES
from marlshare.components.transforms import to_lora
from marlshare.envs import EnvInfo
from tests.components.helpers import strategy_for

N, D, A, H = 3, 5, 2, 8


def info(discrete=False, mask=False) -> EnvInfo:
    low, high = torch.tensor([[-1.0, -2.0]] * N), torch.tensor([[1.0, 0.5]] * N)
    return EnvInfo(N, D, discrete, 4 if discrete else A, None, mask, None if discrete else low,
                   None if discrete else high)


def network(name="ps", recurrent=False, discrete=False, lora=False, seed=0):
    """A strategy network with every parameter drawn at random (LoRA's B included, which starts at zero)."""
    torch.manual_seed(seed)
    extra = dict(recurrent=True, gru_hidden=H) if recurrent else {}
    net = strategy_for(name, N).make_network(N, D, 4 if discrete else A, hidden=(8, 8),
                                             head="linear" if discrete else "normal", **extra)
    if lora:
        net = to_lora(net, rank=2)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


def act(policy, obs, hidden=None, mask=None):
    """The library's action: the TeamPolicy module on a TensorDict, as in a rollout."""
    td = TensorDict({OBS: obs}, obs.shape[:1])
    if hidden is not None:
        td.set(HIDDEN, hidden)
        td.set("is_init", torch.zeros(obs.shape[0], 1, dtype=torch.bool))
    if mask is not None:
        td.set(MASK, mask)
    out = policy(td)
    return out.get(("agents", "action")), (out.get(("next", HIDDEN)) if hidden is not None else None)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_merged_policy_acts_as_the_unmerged_one_for_every_strategy(name):
    obs = torch.randn(64, N, D)
    for recurrent in (False, True):
        net = network(name, recurrent)
        hidden = torch.randn(64, N, H) if recurrent else None
        plain, merged = team_policy(net, info()), team_policy(net, info(), merged=True)
        a, h = act(plain, obs, hidden)
        b, g = act(merged, obs, hidden)
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
        if recurrent:
            torch.testing.assert_close(g, h, atol=1e-5, rtol=1e-5)


def test_merging_folds_lora_adapters_and_keeps_the_actions():
    net = network("ps", lora=True)
    plain, merged = team_policy(net, info()), team_policy(net, info(), merged=True)
    assert any("lora" in n for n, _ in plain.net.named_parameters())
    assert not any("lora" in n for n, _ in merged.net.named_parameters())  # adapters folded into W_i
    obs = torch.randn(32, N, D)
    torch.testing.assert_close(act(merged, obs)[0], act(plain, obs)[0], atol=1e-5, rtol=1e-5)


def test_deterministic_action_is_the_squashed_mean_and_sampling_differs():
    net = network("nps")
    obs = torch.randn(16, N, D)
    loc, _ = net(obs)
    low, high = info().action_low, info().action_high
    expected = (high + low) / 2 + (high - low) / 2 * loc.tanh()
    torch.testing.assert_close(act(team_policy(net, info()), obs)[0], expected, atol=1e-6, rtol=1e-6)
    torch.manual_seed(1)
    sampled = act(team_policy(net, info(), sample=True), obs)[0]
    assert (sampled - expected).abs().max() > 1e-2  # sample=True draws from the distribution
    logits = network("ps", discrete=True)(obs)
    assert torch.equal(act(team_policy(network("ps", discrete=True), info(True)), obs)[0], logits.argmax(-1))


CASES = {  # id -> (network kwargs, merged, discrete with mask)
    "mlp": (dict(name="ps"), False, False),
    "gru": (dict(name="nps", recurrent=True), False, False),
    "lora": (dict(name="ps", lora=True), False, False),
    "lora_merged": (dict(name="ps", lora=True), True, False),
    "gru_lora_masked": (dict(name="ps", recurrent=True, lora=True, discrete=True), False, True),
}


def _check_export(tmp_path, case, fmt):
    kwargs, merged, masked = CASES[case]
    env_info = info(discrete=kwargs.get("discrete", False), mask=masked)
    policy = team_policy(network(**kwargs), env_info, merged=merged)
    f = load_exported(export_policy(policy, tmp_path / f"{case}.{fmt}", fmt), fmt)
    for batch in (1, 7, 300):  # 300 rows: the library takes LoRA's dense path, the file one path for all
        obs = torch.randn(batch, N, D)
        hidden = torch.randn(batch, N, H) if policy.recurrent else None
        mask = None
        if masked:
            mask = torch.rand(batch, N, 4) < 0.5
            mask[..., 2] = True
        expected, next_hidden = act(policy, obs, hidden, mask)
        out = f(*[x for x in (obs, hidden, mask) if x is not None])
        out = [torch.as_tensor(o) for o in (out if isinstance(out, (tuple, list)) else [out])]
        if env_info.discrete:
            assert torch.equal(out[0], expected)
        else:
            torch.testing.assert_close(out[0], expected, atol=2e-5, rtol=1e-5)
        if policy.recurrent:
            torch.testing.assert_close(out[1], next_hidden, atol=2e-5, rtol=1e-5)


FAST = [("torchscript", case) for case in CASES] + [("exported-program", "mlp"), ("exported-program", "gru_lora_masked")]
SLOW = [("exported-program", case) for case in ("gru", "lora", "lora_merged")]


@pytest.mark.parametrize("fmt,case", FAST + [pytest.param(*c, marks=pytest.mark.slow) for c in SLOW])
def test_exported_file_acts_as_the_library(tmp_path, case, fmt):
    _check_export(tmp_path, case, fmt)


@pytest.mark.parametrize("case", ["lora"])
def test_onnx_file_acts_as_the_library(tmp_path, case):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    _check_export(tmp_path, case, "onnx")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["mlp", "gru", "lora_merged", "gru_lora_masked"])
def test_onnx_file_acts_as_the_library_slow_cases(tmp_path, case):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    _check_export(tmp_path, case, "onnx")


def test_exported_module_is_plain_torch():
    module = deterministic_module(team_policy(network("ps", lora=True), info()))
    assert not any(isinstance(m, TensorDict) for m in module.modules())
    assert type(module).__module__ == "marlshare.components.export"
    with pytest.raises(ValueError, match="format must be one of"):
        export_policy(team_policy(network("ps"), info()), "/tmp/x.bin", "pickle")


def test_families_that_cannot_render_say_why_and_what_to_use():
    from marlshare.components.video import check_renderable, render_options

    assert render_options("pettingzoo/simple_spread") == {"render_mode": "rgb_array", "num_workers": 0}
    with pytest.raises(ValueError, match="SMAXVisualizer"):
        check_renderable("smax/3m")
    with pytest.raises(ValueError, match="xvfb-run"):
        check_renderable("lbf/Foraging-8x8-2p-2f-v3")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_exports_to_every_format(tmp_path, name):
    """The README's claim: every strategy, MLP and GRU, merged or not, in all three formats."""
    pytest.importorskip("onnxruntime")
    for recurrent in (False, True):
        for merged in (False, True):
            policy = team_policy(network(name, recurrent), info(), merged=merged)
            for fmt in ("exported-program", "torchscript", "onnx"):
                f = load_exported(export_policy(policy, tmp_path / f"{recurrent}{merged}.{fmt}", fmt), fmt)
                for batch in (1, 300):
                    obs, hidden = torch.randn(batch, N, D), torch.randn(batch, N, H) if recurrent else None
                    out = f(*[x for x in (obs, hidden) if x is not None])
                    out = torch.as_tensor(out[0] if isinstance(out, (tuple, list)) else out)
                    torch.testing.assert_close(out, act(policy, obs, hidden)[0], atol=2e-5, rtol=0)
