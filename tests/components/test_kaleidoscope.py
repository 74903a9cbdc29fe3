"""Kaleidoscope: zero thresholds are PS, what the diversity loss moves, the reset rule and its
schedule, the kept fractions, and tiny training runs with every algorithm."""

import math

import pytest
import torch
from tensordict import TensorDict

from marlshare.components.algorithms import actor_net
from marlshare.components.strategies import make_strategy
from marlshare.components.strategies.base import load_shared_network
from marlshare.components.strategies.kaleidoscope import Kaleidoscope, kept_fractions, thresholded_layers
from marlshare.components.thresholded import ThresholdedLinear
from marlshare.components.trainer import Trainer
from tests.components.test_trainer import rows, tiny


@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
def test_thresholds_at_zero_give_the_shared_network_exactly(recurrent):
    ps = make_strategy("ps").make_network(4, 10, 6, hidden=(16, 16), recurrent=recurrent, head="normal")
    kal = make_strategy("kaleidoscope").make_network(4, 10, 6, hidden=(16, 16), recurrent=recurrent, head="normal")
    with torch.no_grad():
        for p in ps.parameters():
            p.normal_(0, 0.5)
    load_shared_network(ps, kal)
    x = torch.randn(5, 4, 10)
    h = torch.randn(5, 4, ps.hidden_size) if recurrent else None
    drawn = kal(x, h) if recurrent else kal(x)  # the paper's thresholds: close to PS, not equal
    for _, m in thresholded_layers(kal):
        with torch.no_grad():
            m.threshold_logits.fill_(-math.inf)  # sigmoid(-inf) = 0: nothing pruned, nothing shrunk
        weight, _ = m.agent_weight()
        assert torch.equal(weight, m.weight.expand_as(weight))  # every agent's weight is W, bit for bit
    expected = ps(x, h) if recurrent else ps(x)
    got = kal(x, h) if recurrent else kal(x)
    for a, b in zip(expected, got):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)  # the same weights through bmm vs linear
    assert not torch.allclose(expected[0], drawn[0], rtol=1e-6, atol=1e-6)


def two_agent_layer():
    """One 2-agent layer of 16 weights, all of magnitude 0.5 (signs mixed); agent 0 keeps every entry,
    agent 1 prunes the first 8 (threshold 0.6) and keeps the rest (threshold 0.4)."""
    layer = ThresholdedLinear(2, 4, 4)
    with torch.no_grad():
        layer.weight.copy_(0.5 * torch.tensor([1.0, -1.0]).repeat(8).reshape(4, 4))
        t = torch.full((2, 4, 4), 0.4)
        t[1].view(-1)[:8] = 0.6
        layer.threshold_logits.copy_(torch.logit(t))
    return layer


def test_diversity_loss_drives_apart_the_agents_that_differ_and_leaves_agreeing_entries_alone():
    layer = two_agent_layer()
    net = torch.nn.Sequential(layer)
    strategy = make_strategy("kaleidoscope", div_coef=1.0)
    masks = layer.masks().clone()
    assert masks[0].sum() == 16 and masks[1].sum() == 8
    # ordered pairs (0, 1) and (1, 0) differ on 8 entries of magnitude 0.5: -(2 * 8 * 0.5) / (2 * 1 * 16)
    torch.testing.assert_close(strategy.aux_terms(net)["kaleidoscope_diversity"], torch.tensor(-0.25))

    def spread():  # distance between the agents' effective weights
        w, _ = layer.agent_weight()
        return float((w[0] - w[1]).abs().sum())

    before, thresholds = spread(), layer.thresholds().detach().clone()
    optimiser = torch.optim.Adam([layer.threshold_logits], lr=0.05)
    for _ in range(5):
        optimiser.zero_grad()
        strategy.aux_loss(net).backward()
        optimiser.step()
    after = layer.thresholds().detach()
    differ = (masks[0] != masks[1])
    assert spread() > before + 0.05  # the agents' weights moved apart
    assert (after[0][differ] < thresholds[0][differ]).all()  # the keeper keeps more firmly
    assert (after[1][differ] > thresholds[1][differ]).all()  # the pruner prunes more firmly
    assert torch.equal(after[:, ~differ], thresholds[:, ~differ])  # |0| has no gradient: agreement stays
    assert torch.equal(layer.masks(), masks)  # the binary masks themselves do not flip from this loss alone


def test_reset_redraws_exactly_the_entries_every_agent_pruned_that_were_chosen():
    layer = ThresholdedLinear(3, 8, 8)
    with torch.no_grad():
        layer.threshold_logits.fill_(-8.0)
        layer.threshold_logits[:, :4] = 8.0  # rows 0-3: pruned by every agent (threshold ~1 > |W|)
        layer.threshold_logits[0, 4:6] = 8.0  # rows 4-5: pruned by agent 0 only
    weight, logits = layer.weight.detach().clone(), layer.threshold_logits.detach().clone()
    chosen = layer.reset_(1.0, 5.0, 5.0, torch.Generator().manual_seed(0))
    assert chosen[:4].all() and not chosen[4:].any()
    assert torch.equal(layer.weight[4:], weight[4:]) and torch.equal(layer.threshold_logits[:, 4:], logits[:, 4:])
    fresh = layer.threshold_logits[:, :4]
    assert ((fresh >= -10.0) & (fresh <= -5.0)).all()  # -(5 U(0, 1) + 5), for every agent
    assert not torch.equal(layer.weight[:4], weight[:4]) and (layer.weight[:4].abs() <= 1 / math.sqrt(8)).all()
    assert layer.masks()[:, :4].mean() > 0.9  # the reset weights are back in use
    again = ThresholdedLinear(3, 8, 8)
    with torch.no_grad():
        again.threshold_logits.fill_(8.0)
    assert not again.reset_(0.0, 5.0, 5.0).any()  # ratio 0: nothing is chosen


def test_resets_run_when_the_frame_count_crosses_the_interval_and_repeat_alike():
    strategy = make_strategy("kaleidoscope", reset_interval=1000, reset_ratio=1.0)
    batch = TensorDict({}, batch_size=[200])

    def pruned_net():
        torch.manual_seed(1)
        net = strategy.make_network(2, 4, 3, hidden=(8,))
        for _, m in thresholded_layers(net):
            with torch.no_grad():
                m.threshold_logits.fill_(8.0)  # everything pruned by everyone
        return net

    net = pruned_net()
    assert strategy.after_update(net, batch, 800) == {"kaleidoscope_kept": 0.0}  # frames 600..800: no crossing
    row = strategy.after_update(net, batch, 1000)  # 800..1000 crosses 1000
    total = sum(m.weight.numel() for _, m in thresholded_layers(net))
    assert row["kaleidoscope_reset_entries"] == total and row["kaleidoscope_kept"] > 0.9
    twin = pruned_net()
    strategy.after_update(twin, batch, 1000)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), twin.state_dict().values()))
    assert "kaleidoscope_reset_entries" not in make_strategy("kaleidoscope", reset_interval=0).after_update(net, batch, 1000)


def test_report_gives_each_agents_kept_fraction_per_layer():
    net = make_strategy("kaleidoscope").make_network(2, 4, 3, hidden=(8,))
    (name, first), _ = thresholded_layers(net)
    with torch.no_grad():
        first.threshold_logits[1, :2] = 8.0  # agent 1 prunes 2 of the first layer's 8 rows
    assert kept_fractions(net)[name][1] == pytest.approx(0.75 * float(first.masks()[1, 2:].mean()))
    report = make_strategy("kaleidoscope").report(net)["kept_fractions"]
    assert set(report) == {"trunk.0", "head.layer"} and report[name][0] > 0.9


@pytest.mark.parametrize("hp,match", [
    ({"div_coef": -1.0}, "div_coef >= 0"),
    ({"reset_ratio": 1.5}, r"reset_ratio must be in \[0, 1\]"),
    ({"reset_interval": -5}, "reset_interval must be an integer >= 0"),
    ({"threshold_init_scale": "big"}, "threshold_init_scale must be a number"),
    ({"threshold_eps": 0.0}, "threshold_eps must be a number > 0"),
])
def test_bad_hyperparameters_name_the_value_and_the_range(hp, match):
    with pytest.raises(ValueError, match=match):
        make_strategy("kaleidoscope", **hp)


ALGORITHMS = ["mappo", "ippo", "happo", "a2po"]
CASES = [pytest.param(a, r, marks=() if (a, r) == ("ippo", True) else pytest.mark.slow, id=f"{a}-{'gru' if r else 'mlp'}")
         for a in ALGORITHMS for r in (False, True)]


@pytest.mark.parametrize("algorithm,recurrent", CASES)
def test_trains_with_every_algorithm_on_mlp_and_gru_actors(tmp_path, monkeypatch, algorithm, recurrent):
    reported, after_update = [], Kaleidoscope.after_update  # the metrics CSV keeps its fixed columns
    monkeypatch.setattr(Kaleidoscope, "after_update", lambda *a: reported.append(after_update(*a)) or reported[-1])
    trainer = Trainer(tiny(**{"strategy": {"name": "kaleidoscope", "reset_interval": 100},
                              "algorithm.name": algorithm, "algorithm.network.recurrent": recurrent}), run_dir=tmp_path)
    net = actor_net(trainer.actor).net
    before = [m.threshold_logits.detach().clone() for _, m in thresholded_layers(net)]
    trainer.run(max_iterations=1)
    row = rows(tmp_path)[-1]
    assert math.isfinite(float(row["loss_objective"])) and float(row["loss_aux"]) < 0  # the diversity term
    assert len(reported) == 1 and set(reported[0]) == {"kaleidoscope_kept", "kaleidoscope_reset_entries"}
    assert 0.9 < reported[0]["kaleidoscope_kept"] <= 1  # frames 0..160 crossed the interval: one reset
    assert len(before) == (6 if recurrent else 3)  # every layer thresholded, the GRU's projections included
    assert all(not torch.equal(b, m.threshold_logits) for b, (_, m) in zip(before, thresholded_layers(net)))


def _threshold_step(tmp_path, **strategy):
    """(trainer, the largest move of a threshold logit over one tiny iteration)."""
    trainer = Trainer(tiny(strategy={"name": "kaleidoscope", "reset_interval": 0, **strategy}), run_dir=tmp_path)
    layers = thresholded_layers(actor_net(trainer.actor).net)
    before = [m.threshold_logits.detach().clone() for _, m in layers]
    trainer.run(max_iterations=1)
    return trainer, max(float((m.threshold_logits - b).abs().max()) for b, (_, m) in zip(before, layers))


def test_the_thresholds_train_with_their_own_adam_eps(tmp_path):
    """Their gradients arrive at ~1e-9..1e-7 (through sigmoid(s) ~ 1e-3 and the global clip): under the
    algorithm's eps of 1e-5 Adam barely moves them; under threshold_eps = 1e-8 it takes full steps."""
    trainer, moved = _threshold_step(tmp_path / "a")
    net = actor_net(trainer.actor).net
    thresholds = {id(m.threshold_logits) for _, m in thresholded_layers(net)}
    eps = {id(p): group["eps"] for group in trainer.optimiser.param_groups for p in group["params"]}
    assert thresholds and all(eps[t] == 1e-8 for t in thresholds)
    others = [p for p in net.parameters() if id(p) not in thresholds]
    assert others and all(eps[id(p)] == trainer.cfg.algorithm.adam_eps == 1e-5 for p in others)
    _, damped = _threshold_step(tmp_path / "b", threshold_eps=1e-5)
    assert moved > 3 * damped, (moved, damped)  # measured: 1.2e-3 against 2.1e-4 over this iteration's steps
