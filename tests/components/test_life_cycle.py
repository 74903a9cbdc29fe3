"""Strategies own their life cycle: ``adopt`` starts from a trained shared network with its outputs
kept, chains are checked against declared predecessors, and a new strategy is one class plus one
registry line (the contract tests, the schedule and the trainer then take it as it is)."""

import re
from dataclasses import dataclass

import pytest
import torch

from marlshare import envs
from marlshare.components.config import PhaseConfig, ScheduleConfig
from marlshare.components.layers import IndexedLinear, SharedLinear, SpectralLinear, StackedLinear, init_linear_
from marlshare.components.vectors import StackedVector
from marlshare.components.schedule import plan_phases
from marlshare.components.strategies import STRATEGIES, Strategy, make_strategy, successors
from marlshare.components.strategies.clustered import Clustered
from marlshare.components.trainer import Trainer
from tests.components import test_strategies as contract
from tests.components.helpers import agent_layers, is_adapter, strategy_for


def trained_ps(n=4, recurrent=False):
    ps = make_strategy("ps")
    net = ps.make_network(n, 10, 6, hidden=(16, 16), recurrent=recurrent, head="normal", log_std="shared")
    with torch.no_grad():  # "trained": far from the initialisation, log-std included
        for p in net.parameters():
            p.normal_(0, 0.5)
    return ps, net


def run(net, x, h):
    out = net(x, h) if net.recurrent else net(x)
    return out[:2]


def adopters():
    return [name for name, cls in STRATEGIES.items() if "ps" in cls.predecessors]


@pytest.mark.parametrize("name", adopters())
@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
def test_adopting_a_trained_ps_network_keeps_its_outputs(name, recurrent):
    ps, net = trained_ps(recurrent=recurrent)
    x = torch.randn(5, 4, 10)
    h = torch.randn(5, 4, net.hidden_size) if recurrent else None
    before = run(net, x, h)
    strategy = strategy_for(name, 4)
    new = strategy.adopt(ps, net)
    assert new.strategy_name == name and new is not net
    after = run(new, x, h)
    if STRATEGIES[name].exact_adopt:
        for a, b in zip(before, after):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    else:  # AdaPS: the shared weights are kept, the fixed unit masks change the outputs
        assert not torch.allclose(before[0], after[0])
        for src, dst in zip(agent_layers(net), agent_layers(new)):
            if isinstance(src, SharedLinear):
                assert torch.equal(src.weight, getattr(dst, "base", dst).weight)
    assert all(p.requires_grad for p in net.parameters())  # the previous network is untouched
    if is_adapter(name):
        assert all(("lora_" in n or "delta" in n) for n, p in new.named_parameters() if p.requires_grad)


def test_ps_to_ps_lora_is_bit_identical():
    ps, net = trained_ps()
    x = torch.randn(7, 4, 10)
    for a, b in zip(net(x), make_strategy("ps_lora").adopt(ps, net)(x)):
        assert torch.equal(a, b)


def test_ps_to_seps_starts_every_cluster_from_the_shared_weights_or_as_configured():
    ps, net = trained_ps()
    shared = agent_layers(net)[0].weight
    for init, expected in [("pretrained", [True, True]), ("first", [True, False]), ("fresh", [False, False])]:
        new = make_strategy("seps", clusters=[0, 0, 1, 1], cluster_init=init).adopt(ps, net)
        layer = agent_layers(new)[0]
        assert isinstance(layer, IndexedLinear)
        if init == "fresh":  # the official SePS default: no id input, so the layer is narrower
            assert layer.weight.shape[-1] == 10
        else:
            assert [torch.equal(layer.weight[c], shared) for c in range(2)] == expected


def test_invalid_predecessor_is_refused_naming_the_valid_ones():
    nps = make_strategy("nps")
    net = nps.make_network(4, 10, 6, hidden=(16,))
    assert "nps" not in STRATEGIES["ps_lora"].predecessors  # LoRA adapts a shared (or clustered) backbone
    valid = re.escape(str(["ps_lora", *STRATEGIES["ps_lora"].predecessors]))
    with pytest.raises(ValueError, match=rf"nps -> ps_lora is not a valid phase chain: ps_lora can follow {valid}"):
        make_strategy("ps_lora").adopt(nps, net)


def test_successors_are_read_from_declared_predecessors():
    """``successors(a)``: ``a`` itself first, then, in registry order, every strategy whose class
    declares ``a`` among its ``predecessors``; a declared default ``successor`` is one of them."""
    declared = [(a, b) for a in STRATEGIES for b, cls in STRATEGIES.items() if a in cls.predecessors and a != b]
    undeclared = [(a, b) for a in STRATEGIES for b, cls in STRATEGIES.items() if a not in cls.predecessors and a != b]
    assert declared and undeclared  # the registry exercises both sides of the rule
    for name in STRATEGIES:
        following = successors(name)
        assert following[0] == name and len(set(following)) == len(following)
        assert following[1:] == [b for a, b in declared if a == name]  # in registry order, nothing undeclared
        default = STRATEGIES[name].successor
        if default is not None:
            assert default in STRATEGIES and default in following[1:], (name, default)


def test_prism_starts_from_the_standard_initialisation():
    """``s`` is divided by the initial mask, so every agent's weight is nn.Linear's initialisation."""
    torch.manual_seed(3)
    layer = SpectralLinear(3, 12, 8, mask_init=3.0)
    torch.manual_seed(3)
    w0, b0 = torch.empty(8, 12), torch.empty(8)
    init_linear_(w0, b0, 12)
    weight, bias = layer.agent_weight()
    torch.testing.assert_close(weight, w0.expand(3, -1, -1), rtol=1e-5, atol=1e-6)
    assert torch.equal(bias[0], b0)


# --- a ninth and tenth strategy, through the registry alone --------------------------------------
@dataclass
class HeadPerAgent(Strategy):
    """Shared trunk, one head per agent: like MTL without the gradient scaling."""

    name = "head_per_agent"
    shared = "the trunk"
    agent_specific = "the head"
    predecessors = ("ps",)

    append_id: bool = True

    def layer(self, role, n_agents, d_in, d_out):
        return (StackedLinear if role == "head" else SharedLinear)(n_agents, d_in, d_out, role=role)

    def vector(self, role, n_agents, features):
        return StackedVector(n_agents, features, role=role)


@dataclass
class ClusteredTrunk(Clustered, Strategy):
    """One trunk per cluster, a shared head: needs clusters, so it fits them when none are given."""

    name = "clustered_trunk"
    shared = "the head"
    agent_specific = "nothing beyond the cluster's trunk"
    predecessors = ("ps",)

    append_id: bool = True

    def layer(self, role, n_agents, d_in, d_out):
        if role == "head":
            return SharedLinear(n_agents, d_in, d_out, role=role)
        return IndexedLinear(self.clusters, d_in, d_out, role=role)


def test_a_new_strategy_is_one_class_and_one_registry_line(monkeypatch, tmp_path):
    for cls in (HeadPerAgent, ClusteredTrunk):
        monkeypatch.setitem(STRATEGIES, cls.name, cls)
    for name in ("head_per_agent", "clustered_trunk"):
        for recurrent in (False, True):
            contract.test_output_shapes_finite_values(name, recurrent, "normal", (6,))
            contract.test_backward_reaches_exactly_the_trainable_parameters(name, recurrent)
            contract.test_agent_isolation(name, recurrent, 3)
            test_adopting_a_trained_ps_network_keeps_its_outputs(name, recurrent)
    contract.test_every_strategy_says_what_is_shared()
    assert successors("ps")[-2:] == ["head_per_agent", "clustered_trunk"]
    # the schedule and the trainer need nothing else: ps -> clustered_trunk fits its clusters
    monkeypatch.setitem(envs.FAMILIES, "hidden", "tests.components.hidden_types_env")
    from tests.components.test_clustering import TYPES, hidden_config

    cfg = hidden_config({"name": "ps"})
    cfg.schedule = ScheduleConfig(phases=[PhaseConfig(until=200), PhaseConfig(
        strategy={"name": "clustered_trunk", "fit_frames": 2000, "n_clusters": 3})])
    assert [p.strategy["name"] for p in plan_phases(cfg)] == ["ps", "clustered_trunk"]
    summary = Trainer(cfg, run_dir=tmp_path).run()
    assert summary["final_strategy"] == "clustered_trunk" and summary["fits"]["finetune"]["clusters"] == TYPES
    assert summary["parameters"]["finetune"]["clustered"] > 0
