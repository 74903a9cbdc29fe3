"""The phase-switch and merge transforms."""

import pytest
import torch

from marlshare.components.layers import LowRankLinear
from marlshare.components.strategies import make_strategy
from marlshare.components.networks import count_parameters
from marlshare.components.transforms import merge_adapters, to_lora


def _perturb_adapters(net, std=0.05):
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.normal_(0, std)


@pytest.mark.parametrize("base", ["ps", "seps"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
@pytest.mark.parametrize("n", [2, 5])
@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
def test_to_lora_outputs_identical_and_only_adapters_train(base, recurrent, n, batch):
    hp = {"clusters": [i % 2 for i in range(n)]} if base == "seps" else {}
    net = make_strategy(base, **hp).make_network(n, 10, 6, hidden=(16, 16), recurrent=recurrent, head="normal")
    lora = to_lora(net, rank=4, alpha=8.0)
    x = torch.randn(*batch, n, 10)
    for a, b in zip(net(x), lora(x)):
        assert torch.equal(a, b)
    for name, p in lora.named_parameters():
        assert p.requires_grad == ("lora_" in name or name.endswith("delta")), name
    assert all(p.requires_grad for p in net.parameters())  # the input network is untouched


@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
@pytest.mark.parametrize("n", [2, 6])
def test_merged_adapters_compute_what_unmerged_do(recurrent, n):
    net = to_lora(make_strategy("ps").make_network(n, 10, 6, hidden=(16, 16), recurrent=recurrent, head="normal"))
    _perturb_adapters(net)
    merged = merge_adapters(net)
    assert not any(isinstance(m, LowRankLinear) for m in merged.modules())
    x = torch.randn(7, n, 10)
    for a, b in zip(net(x), merged(x)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["ps_lora", "seps_lora"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
def test_merged_adapters_keep_trained_bias_deltas(name, recurrent):
    """``train_bias=True``: each adapted layer also learns a per-agent bias delta; merging folds it into
    the merged per-agent bias (the id-appending input layer's included), so outputs stay equal."""
    hp = {"clusters": [0, 1, 0]} if name == "seps_lora" else {}
    strategy = make_strategy(name, rank=2, train_bias=True, append_id=True, **hp)
    net = strategy.make_network(3, 10, 6, hidden=(16, 16), recurrent=recurrent, head="normal")
    _perturb_adapters(net)  # A, B, the log-std delta and the bias deltas: all away from zero
    deltas = [m.bias_delta for m in net.modules() if isinstance(m, LowRankLinear)]
    assert len(deltas) == (6 if recurrent else 3) and all(d.requires_grad and d.abs().min() > 0 for d in deltas)
    merged = merge_adapters(net)
    x = torch.randn(7, 3, 10)
    for a, b in zip(net(x), merged(x)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_to_lora_selected_layers_only():
    net = make_strategy("ps").make_network(3, 10, 6, hidden=(16, 16), head="normal")
    lora = to_lora(net, rank=2, layers=["head"])
    adapted = [m.role for m in lora.modules() if isinstance(m, LowRankLinear)]
    assert adapted == ["head"]
    assert count_parameters(lora)["per_agent"] == 2 * (16 + 6)


def test_frozen_parameters_bit_identical_after_an_update():
    net = to_lora(make_strategy("ps").make_network(4, 10, 6, hidden=(16, 16), head="normal"))
    frozen = {n: p.detach().clone() for n, p in net.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}
    # weight decay would move frozen weights if they were (wrongly) handed to the optimiser
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        loc, scale = net(torch.randn(32, 4, 10))
        (loc.pow(2).sum() + scale.sum()).backward()
        opt.step()
    for n, p in net.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    assert any(not torch.equal(p, trainable[n]) for n, p in net.named_parameters() if n in trainable)


def test_to_lora_rejects_bad_values_and_double_adaptation():
    net = make_strategy("ps").make_network(3, 10, 6)
    with pytest.raises(ValueError, match="rank"):
        to_lora(net, rank=0)
    with pytest.raises(ValueError, match="layers"):
        to_lora(net, layers=["attention"])
    with pytest.raises(ValueError, match="already has LoRA"):
        to_lora(to_lora(net))


def test_merge_folds_the_agent_id_into_a_bias():
    net = to_lora(make_strategy("ps").make_network(5, 10, 6, hidden=(16,), head="normal"))
    _perturb_adapters(net)
    merged = merge_adapters(net)
    assert merged.append_id is False and merged.trunk[0].in_features == 10
    x = torch.randn(3, 5, 10)
    for a, b in zip(net(x), merged(x)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["ps_lora", "prism"])
def test_dense_path_for_large_batches_matches_the_factored_path(name):
    """LoRA and Prism build per-agent dense weights for large batches; same function and gradients."""
    from marlshare.components.kernels import DENSE_ROWS_FACTOR

    net = make_strategy(name).make_network(3, 10, 6, hidden=(16, 16))
    if name == "ps_lora":
        _perturb_adapters(net, std=0.1)
    x = torch.randn(40 * DENSE_ROWS_FACTOR.__ceil__() * 16, 3, 10)
    dense = net(x)
    dense.pow(2).mean().backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.requires_grad}
    for m in net.modules():
        m.dense_rows_factor = float("inf")
    net.zero_grad()
    factored = net(x)
    factored.pow(2).mean().backward()
    torch.testing.assert_close(dense, factored, atol=1e-5, rtol=1e-4)
    for n, p in net.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.grad, grads[n], atol=1e-5, rtol=1e-3)
