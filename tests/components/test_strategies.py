"""Contract tests over the registry, and the equivalences DESIGN.md lists."""

import pytest
import torch

from marlshare.components.layers import SpectralLinear
from marlshare.components.strategies import STRATEGIES, make_strategy
from marlshare.components.networks import count_parameters
from marlshare.components.transforms import to_lora
from tests.components.helpers import agent_layers, first, is_adapter, strategy_for

ALL = list(STRATEGIES)
SHAPES = [(), (6,), (2, 3)]


def build(name, n=4, recurrent=False, head="linear", **kw):
    return strategy_for(name, n).make_network(n_agents=n, in_features=10, out_features=6, hidden=(32, 32),
                                              recurrent=recurrent, head=head, **kw)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
@pytest.mark.parametrize("head", ["linear", "normal"])
@pytest.mark.parametrize("batch", SHAPES)
def test_output_shapes_finite_values(name, recurrent, head, batch):
    net = build(name, recurrent=recurrent, head=head)
    out = net(torch.randn(*batch, 4, 10))
    outs = out if isinstance(out, tuple) else (out,)
    assert outs[0].shape == (*batch, 4, 6)
    if head == "normal":
        assert outs[1].shape == (*batch, 4, 6) and (outs[1] > 0).all()
    if recurrent:
        assert outs[-1].shape == (*batch, 4, net.hidden_size)
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
def test_backward_reaches_exactly_the_trainable_parameters(name, recurrent):
    net = build(name, recurrent=recurrent, head="normal")
    x = torch.randn(8, 4, 10)
    out = net(x, torch.randn(8, 4, net.hidden_size)) if recurrent else net(x)  # h != 0 reaches gru_hh
    loss = sum(o.sum() for o in out) + strategy_for(name, 4).aux_loss(net)
    loss.backward()
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    reached = {n for n, p in net.named_parameters() if p.grad is not None}
    assert trainable and reached == trainable
    if is_adapter(name):
        assert all("lora_" in n or "delta" in n for n in trainable), trainable
    else:  # adapters with B = 0 legitimately give A a zero gradient
        assert all(p.grad.abs().sum() > 0 for n, p in net.named_parameters() if p.requires_grad and "mask" not in n)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
@pytest.mark.parametrize("n", [2, 5])
def test_agent_isolation(name, recurrent, n):
    """Changing agent i's observation changes only agent i's output (decentralised actors)."""
    net = build(name, n=n, recurrent=recurrent)
    if is_adapter(name):  # make the adapters non-zero so they are exercised
        for p in net.parameters():
            if p.requires_grad:
                torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(3, n, 10)
    y = first(net(x))
    for i in range(n):
        x2 = x.clone()
        x2[:, i] += torch.randn(3, 10)
        y2 = first(net(x2))
        changed = (y2 - y).abs().amax(dim=(0, 2)) > 0
        assert changed[i] and changed.sum() == 1, (i, changed)


@pytest.mark.parametrize("n", [2, 3, 7])
@pytest.mark.parametrize("batch", SHAPES)
def test_nps_with_copied_ps_weights_equals_ps(n, batch):
    ps = make_strategy("ps").make_network(n, 10, 6, hidden=(32, 32), head="normal", log_std="shared")
    nps = make_strategy("nps").make_network(n, 10, 6, hidden=(32, 32), head="normal", append_id=True)
    with torch.no_grad():
        for src, dst in zip(agent_layers(ps), agent_layers(nps)):
            if hasattr(src, "agent_weight"):
                w, b = src.agent_weight()
                dst.weight.copy_(w)
                dst.bias.copy_(b)
            else:
                dst.value.copy_(src())
    x = torch.randn(*batch, n, 10)
    for a, b in zip(ps(x), nps(x)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("n", [2, 4, 9])
@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
def test_seps_one_cluster_is_ps_and_one_cluster_per_agent_is_nps(n, recurrent):
    kw = dict(hidden=(16, 16), recurrent=recurrent, head="normal", append_id=True)
    ps = make_strategy("ps").make_network(n, 10, 6, log_std="shared", **kw)
    seps1 = make_strategy("seps", clusters=[0] * n).make_network(n, 10, 6, **kw)
    nps = make_strategy("nps").make_network(n, 10, 6, **kw)
    sepsn = make_strategy("seps", clusters=list(range(n))).make_network(n, 10, 6, **kw)
    with torch.no_grad():
        for src, dst in zip(agent_layers(ps), agent_layers(seps1)):
            for name, p in dst.named_parameters():
                p.copy_(getattr(src, name).reshape(p.shape))
        for src, dst in zip(agent_layers(nps), agent_layers(sepsn)):
            for name, p in dst.named_parameters():
                p.copy_(getattr(src, name))
    x = torch.randn(5, n, 10)
    for a, b in zip(ps(x), seps1(x)):
        torch.testing.assert_close(a, b)
    for a, b in zip(nps(x), sepsn(x)):
        torch.testing.assert_close(a, b)


def test_prism_with_unit_masks_is_a_shared_dense_network():
    prism = make_strategy("prism").make_network(3, 10, 6, hidden=(16, 16))
    ps = make_strategy("ps").make_network(3, 10, 6, hidden=(16, 16))
    with torch.no_grad():
        for src, dst in zip(agent_layers(prism), agent_layers(ps)):
            src.mask_logits.fill_(float("inf"))
            dst.weight.copy_(src.U @ torch.diag(src.s) @ src.V.T)
            dst.bias.copy_(src.bias)
    x = torch.randn(4, 3, 10)
    torch.testing.assert_close(prism(x), ps(x))


def test_prism_regulariser_terms():
    strategy = make_strategy("prism", diversity_coef=1.0, orthogonality_coef=1.0)
    net = strategy.make_network(4, 10, 6, hidden=(16, 16))
    terms = strategy.aux_terms(net)
    assert terms["prism_orthogonality"] < 1e-8  # U, V start orthonormal (from an SVD)
    assert terms["prism_diversity"] == 0  # identical masks at initialisation
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, SpectralLinear):
                m.mask_logits.normal_()
                m.U.add_(0.1)
    terms = strategy.aux_terms(net)
    assert terms["prism_diversity"] < 0 and terms["prism_orthogonality"] > 0
    strategy.aux_loss(net).backward()
    assert all(m.mask_logits.grad.abs().sum() > 0 for m in net.modules() if isinstance(m, SpectralLinear))


def test_mtl_scales_head_gradients_by_n_agents():
    nets = {}
    for scale in (True, False):
        torch.manual_seed(1)
        nets[scale] = make_strategy("mtl", scale_head_grad=scale).make_network(4, 10, 6, hidden=(8,))
        nets[scale](torch.randn(3, 4, 10)).pow(2).sum().backward()
    on, off = (dict(nets[s].named_parameters()) for s in (True, False))
    torch.testing.assert_close(on["head.layer.weight"].grad, 4 * off["head.layer.weight"].grad)
    torch.testing.assert_close(on["trunk.0.weight"].grad, off["trunk.0.weight"].grad)


def test_adaps_masks_are_fixed_and_agents_of_a_cluster_act_alike():
    from marlshare.components.strategies.adaps import keep_fractions

    strategy = make_strategy("adaps", clusters=[0, 0, 1, 1], append_id=False)
    net = strategy.make_network(4, 10, 6, hidden=(64, 64))
    fractions = keep_fractions(net)
    assert len(fractions) == 2 and all(0 < f <= 1 for fs in fractions.values() for f in fs)
    masks = [m for n, m in net.named_buffers() if n.endswith("masks")]
    assert masks and not any(m.requires_grad for m in masks)
    assert any(not torch.equal(m[0], m[1]) for m in masks)  # clusters get different masks
    x = torch.randn(5, 10).unsqueeze(1).expand(5, 4, 10)  # same observation for every agent
    y = net(x)
    torch.testing.assert_close(y[:, 0], y[:, 1])
    assert not torch.allclose(y[:, 0], y[:, 2])
    again = make_strategy("adaps", clusters=[0, 0, 1, 1], append_id=False).make_network(4, 10, 6, hidden=(64, 64))
    assert all(torch.equal(a, b) for a, b in zip(masks, [m for n, m in again.named_buffers() if n.endswith("masks")]))


def test_gru_matches_torch_gru_cell_for_shared_weights():
    net = make_strategy("ps", append_id=False).make_network(3, 10, 6, hidden=(16,), recurrent=True, gru_hidden=12)
    cell = torch.nn.GRUCell(16, 12)
    with torch.no_grad():
        cell.weight_ih.copy_(net.gru.ih.weight)
        cell.bias_ih.copy_(net.gru.ih.bias)
        cell.weight_hh.copy_(net.gru.hh.weight)
        cell.bias_hh.copy_(net.gru.hh.bias)
    x, h = torch.randn(5, 3, 16), torch.randn(5, 3, 12)
    torch.testing.assert_close(net.gru(x, h), cell(x.reshape(15, 16), h.reshape(15, 12)).reshape(5, 3, 12))


def test_gru_sequence_resets_hidden_state():
    net = make_strategy("nps").make_network(2, 4, 3, hidden=(8,), recurrent=True)
    x = torch.randn(5, 7, 2, 4)
    reset = torch.zeros(5, 7, dtype=torch.bool)
    reset[3] = True
    y, h = net.forward_sequence(x, net.initial_hidden(7), reset)
    y_fresh, _ = net.forward_sequence(x[3:], None)
    torch.testing.assert_close(y[3:], y_fresh)
    assert y.shape == (5, 7, 2, 3)


# --- parameter counts against closed forms --------------------------------------------------------

def _mlp_count(sizes, copies=1):
    return copies * sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))


@pytest.mark.parametrize("n", [2, 4, 16])
def test_parameter_counts_closed_forms(n):
    d, a, h = 10, 6, (32, 32)
    sizes_id, sizes = [d + n, *h, a], [d, *h, a]
    dense_id = _mlp_count(sizes_id)
    make = lambda name, **hp: make_strategy(name, **hp).make_network(n, d, a, hidden=h)
    assert count_parameters(make("ps")) == dict(total=dense_id, shared=dense_id, clustered=0, per_agent=0, trainable=dense_id)
    nps = count_parameters(make("nps"))
    assert nps["total"] == n * _mlp_count(sizes) and nps["per_agent"] == _mlp_count(sizes) and nps["shared"] == 0
    k = 2
    seps = count_parameters(make("seps", clusters=[i % k for i in range(n)]))
    assert seps["clustered"] == k * _mlp_count(sizes) and seps["per_agent"] == 0
    mtl = count_parameters(make("mtl"))
    assert mtl["per_agent"] == h[-1] * a + a and mtl["shared"] == _mlp_count(sizes_id[:-1])
    for r in (1, 4, 8):
        lora = count_parameters(make("ps_lora", rank=r))
        adapters = sum(r * (i + o) for i, o in zip(sizes_id[:-1], sizes_id[1:]))
        assert lora["per_agent"] == adapters and lora["trainable"] == n * adapters
        assert lora["total"] == dense_id + n * adapters
    # AdaPS: no trainable parameter beyond the shared network
    assert count_parameters(make("adaps", clusters=[i % 2 for i in range(n)])) == count_parameters(make("ps"))
    prism = count_parameters(make("prism"))
    ks = [min(i, o) for i, o in zip(sizes_id[:-1], sizes_id[1:])]
    assert prism["per_agent"] == sum(ks)
    assert prism["shared"] == sum(i * kk + kk + o * kk + o for i, o, kk in zip(sizes_id[:-1], sizes_id[1:], ks))


def test_lora_counts_include_gru_and_log_std():
    n, d, a, r = 3, 10, 4, 8
    net = make_strategy("ps_lora", rank=r).make_network(n, d, a, hidden=(16,), recurrent=True, head="normal", gru_hidden=12)
    dims = [(d + n, 16), (16, 36), (12, 36), (12, 12), (12, a)]  # encoder, gru_ih, gru_hh, post, head
    assert count_parameters(net)["per_agent"] == sum(r * (i + o) for i, o in dims) + a  # + log-std delta


# --- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,hp,match", [
    ("nope", {}, "valid strategies"),
    ("ps", {"rank": 8}, "valid"),
    ("ps_lora", {"rank": 0}, "rank"),
    ("ps_lora", {"rank": 2.5}, "rank"),
    ("ps_lora", {"alpha": -1.0}, "alpha"),
    ("ps_lora", {"layers": ["mlp"]}, "hidden"),
    ("seps", {"clusters": [0, 2]}, "0..K-1"),
    ("adaps", {"clusters": [0, 1], "threshold": 1.5}, "threshold"),
    ("prism", {"diversity_coef": -1.0}, ">= 0"),
    ("mtl", {"scale_head_grad": "yes"}, "scale_head_grad"),
])
def test_bad_hyperparameters_raise_clear_errors(name, hp, match):
    with pytest.raises(ValueError, match=match):
        make_strategy(name, **hp)


def test_bad_network_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="seps has no clusters yet: give clusters"):
        make_strategy("seps").make_network(4, 10, 6)
    with pytest.raises(ValueError, match="n_agents=3"):
        make_strategy("seps", clusters=[0, 1]).make_network(3, 10, 6)
    with pytest.raises(ValueError, match="head must be one of"):
        make_strategy("ps").make_network(3, 10, 6, head="beta")
    with pytest.raises(ValueError, match="activation must be one of"):
        make_strategy("ps").make_network(3, 10, 6, activation="swish")
    with pytest.raises(ValueError, match=r"expected input \[\*batch, 3, 10\]"):
        make_strategy("ps").make_network(3, 10, 6)(torch.randn(2, 4, 10))


def test_every_strategy_says_what_is_shared():
    for name, cls in STRATEGIES.items():
        assert cls.name == name and cls.shared and cls.agent_specific
