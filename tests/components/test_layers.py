"""Per-agent layers: shapes, equivalences between parametrisations, no cross-agent leakage."""

import pytest
import torch
import torch.nn.functional as F

from marlshare.components.kernels import agent_matmul
from marlshare.components.layers import (
    IndexedLinear, LowRankLinear, MaskedLinear, SharedLinear, SpectralLinear, StackedLinear,
)

BATCHES = [(), (5,), (2, 3)]


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("n", [1, 3, 8])
def test_agent_matmul_matches_per_agent_linear(batch, n):
    x = torch.randn(*batch, n, 7)
    w, b = torch.randn(n, 5, 7), torch.randn(n, 5)
    y = agent_matmul(x, w, b)
    assert y.shape == (*batch, n, 5)
    for i in range(n):
        torch.testing.assert_close(y[..., i, :], F.linear(x[..., i, :], w[i], b[i]))


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("make", [
    lambda n: SharedLinear(n, 6, 4),
    lambda n: StackedLinear(n, 6, 4),
    lambda n: IndexedLinear([i % 2 for i in range(n)], 6, 4),
    lambda n: LowRankLinear(StackedLinear(n, 6, 4), rank=2),
    lambda n: MaskedLinear(SharedLinear(n, 6, 4), torch.tensor([[1, 0, 1, 1], [0, 1, 1, 0.]]), [i % 2 for i in range(n)]),
    lambda n: SpectralLinear(n, 6, 4),
], ids=["shared", "stacked", "indexed", "lowrank", "masked", "spectral"])
def test_forward_equals_effective_agent_weight(make, batch):
    """Every layer computes ``F.linear(x_i, W_i, b_i)`` with the weights ``agent_weight`` reports."""
    layer = make(4)
    if isinstance(layer, LowRankLinear):
        torch.nn.init.normal_(layer.lora_B, std=0.1)  # make the adapter non-zero
    x = torch.randn(*batch, 4, 6)
    y = layer(x)
    weight, bias = layer.agent_weight()
    assert weight.shape == (4, 4, 6) and y.shape == (*batch, 4, 4)
    for i in range(4):
        torch.testing.assert_close(y[..., i, :], F.linear(x[..., i, :], weight[i], bias[i]), atol=1e-5, rtol=1e-5)


def test_lowrank_is_zero_at_creation_for_both_inits():
    base = SharedLinear(3, 6, 4)
    x = torch.randn(5, 3, 6)  # below the dense-path threshold (1.25 x 6 rows): exact
    for init in ("a_zero", "b_zero"):
        layer = LowRankLinear(base, rank=2, init=init)
        assert torch.equal(layer(x), base(x))
        assert not any(p.requires_grad for p in layer.base.parameters())


def test_lowrank_rank_above_min_dim_is_a_full_rank_delta():
    layer = LowRankLinear(SharedLinear(2, 3, 4), rank=6)
    torch.nn.init.normal_(layer.lora_B)
    assert torch.linalg.matrix_rank(layer.delta_weight()[0]) == 3


def test_indexed_gathers_cluster_weights():
    layer = IndexedLinear([1, 0, 1], 4, 2)
    weight, _ = layer.agent_weight()
    assert torch.equal(weight[0], layer.weight[1]) and torch.equal(weight[1], layer.weight[0])


def test_spectral_with_unit_masks_is_the_shared_dense_layer():
    layer = SpectralLinear(5, 8, 6)
    with torch.no_grad():
        layer.mask_logits.fill_(float("inf"))  # sigmoid(inf) == 1 exactly
    dense = layer.U @ torch.diag(layer.s) @ layer.V.T
    x = torch.randn(3, 5, 8)
    torch.testing.assert_close(layer(x), F.linear(x, dense, layer.bias))


def test_spectral_initial_weight_is_the_standard_init_scale():
    """s is rescaled so that each agent's initial weight is the SVD'd nn.Linear init (norm preserved)."""
    layer = SpectralLinear(2, 16, 16)
    weight, _ = layer.agent_weight()
    bound = 1 / 16 ** 0.5
    assert weight.abs().max() <= bound + 1e-5
    torch.testing.assert_close(weight[0], weight[1])


def test_masked_has_no_trainable_parameters_beyond_base():
    base = SharedLinear(2, 3, 4)
    layer = MaskedLinear(base, torch.ones(1, 4), [0, 0])
    assert sum(p.numel() for p in layer.parameters()) == sum(p.numel() for p in base.parameters())


@pytest.mark.parametrize("bad", [[], [0, 2], [-1, 0], [1, 1]])
def test_bad_cluster_lists_are_rejected(bad):
    with pytest.raises(ValueError, match="cluster"):
        IndexedLinear(bad, 3, 3)


@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
def test_agent_id_as_a_bias_is_the_appended_id(recurrent):
    """PS computes its input layer on [x, one-hot id] as W_x x + W_id[:, i]: same outputs and gradients
    as appending the id, same parameters (state dict unchanged)."""
    from marlshare.components.strategies import make_strategy

    n, d = 6, 10
    net = make_strategy("ps").make_network(n, d, 4, hidden=(16, 16), head="normal", recurrent=recurrent)
    x = torch.randn(5, n, d)
    h0 = torch.randn(5, n, net.hidden_size) if recurrent else None
    out = net(x, h0) if recurrent else net(x)
    loss = sum(o.square().sum() for o in out)
    grads = torch.autograd.grad(loss, list(net.parameters()))
    # the same network computed by appending the id to the input of an equal layer
    first = (net.encoder if recurrent else net.trunk)[0]
    wide = torch.cat([x, torch.eye(n).expand(5, n, n)], dim=-1)
    reference = torch.nn.functional.linear(wide, first.weight, first.bias)
    torch.testing.assert_close(first.forward_with_id(x), reference, rtol=1e-6, atol=1e-6)
    assert first.weight.shape == (16, d + n)  # the id columns are still parameters of the layer
    from marlshare.components.layers import AgentLinear

    generic = AgentLinear.forward_with_id(first, x)  # the base class's append-then-forward path
    torch.testing.assert_close(generic, reference, rtol=1e-6, atol=1e-6)
    ref_grads = torch.autograd.grad(reference.square().sum(), [first.weight, first.bias])
    new_grads = torch.autograd.grad(first.forward_with_id(x).square().sum(), [first.weight, first.bias])
    for a, b in zip(ref_grads, new_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert all(torch.isfinite(g).all() for g in grads)


ID_LAYERS = {
    "shared": lambda n, d, o: SharedLinear(n, d, o),
    "stacked": lambda n, d, o: StackedLinear(n, d, o),
    "indexed_k1": lambda n, d, o: IndexedLinear([0] * n, d, o),
    "indexed": lambda n, d, o: IndexedLinear([i % 2 for i in range(n)], d, o),
    "lowrank_shared": lambda n, d, o: LowRankLinear(SharedLinear(n, d, o), rank=2),
    "lowrank_indexed": lambda n, d, o: LowRankLinear(IndexedLinear([i % 2 for i in range(n)], d, o), rank=2),
    "masked": lambda n, d, o: MaskedLinear(SharedLinear(n, d, o), torch.tensor([[1, 0, 1, 1, 0], [0, 1, 1, 0, 1.]]),
                                           [i % 2 for i in range(n)]),
    "spectral": lambda n, d, o: SpectralLinear(n, d, o),
}


def _randomise(layer):
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.5)
    return layer


@pytest.mark.parametrize("batch", [(), (7,), (2, 3)])
@pytest.mark.parametrize("kind", list(ID_LAYERS))
def test_forward_with_id_is_forward_on_the_appended_id(kind, batch):
    """Every layer's id-as-a-bias input path computes ``forward([x, one-hot id])``: the same outputs and
    the same gradients for every parameter and for x (a broken bias form fails here)."""
    n, d, o = 4, 6, 5
    layer = _randomise(ID_LAYERS[kind](n, d + n, o).double())
    if isinstance(layer, LowRankLinear):  # the adapters train, the base is frozen
        layer.base.requires_grad_(False)
    x = torch.randn(*batch, n, d, dtype=torch.double, requires_grad=True)
    eye = torch.eye(n, dtype=torch.double)
    params = [p for p in layer.parameters() if p.requires_grad]
    y_ref = layer(torch.cat([x, eye.expand(*x.shape[:-1], -1)], dim=-1))
    y = layer.forward_with_id(x)
    torch.testing.assert_close(y, y_ref)
    grad = torch.randn_like(y)
    for a, b in zip(torch.autograd.grad(y, [x, *params], grad), torch.autograd.grad(y_ref, [x, *params], grad)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("with_id", [False, True], ids=["plain", "id"])
@pytest.mark.parametrize("kind", ["lowrank_shared", "lowrank_indexed"])
@pytest.mark.parametrize("base_trains", [False, True], ids=["frozen", "unfrozen"])
def test_lowrank_factored_path_matches_its_dense_weights(kind, with_id, base_trains):
    """LoRA's hand-written backward (frozen base run inside it, or a base that trains on its own graph):
    outputs and gradients of x, the adapters and the base equal those of ``F.linear`` with the
    effective per-agent weights."""
    n, d, o = 3, 5, 4
    layer = _randomise(ID_LAYERS[kind](n, d + (n if with_id else 0), o).double())
    layer.base.requires_grad_(base_trains)
    x = torch.randn(2, 3, n, d, dtype=torch.double, requires_grad=True)
    params = [p for p in layer.parameters() if p.requires_grad]
    y = layer.forward_with_id(x) if with_id else layer(x)
    wide = torch.cat([x, torch.eye(n, dtype=torch.double).expand(2, 3, n, n)], -1) if with_id else x
    weight, bias = layer.agent_weight()
    y_ref = torch.einsum("...nd,nod->...no", wide, weight) + bias
    torch.testing.assert_close(y, y_ref)
    grad = torch.randn_like(y)
    for a, b in zip(torch.autograd.grad(y, [x, *params], grad), torch.autograd.grad(y_ref, [x, *params], grad)):
        torch.testing.assert_close(a, b)


def test_lowrank_gradients_with_an_expanded_output_gradient():
    """``y.sum().backward()`` hands the layer a stride-0 gradient; the hand-written backward copes."""
    layer = _randomise(LowRankLinear(SharedLinear(3, 4, 5), rank=2))
    layer.base.requires_grad_(False)
    x = torch.randn(6, 3, 4)
    layer(x).sum().backward()
    weight, bias = layer.agent_weight()
    ref = torch.autograd.grad((torch.einsum("bnd,nod->bno", x, weight) + bias).sum(), [layer.lora_A, layer.lora_B])
    torch.testing.assert_close(layer.lora_A.grad, ref[0])
    torch.testing.assert_close(layer.lora_B.grad, ref[1])


def test_frozen_indexed_base_follows_changes_to_its_weights():
    """A LoRA base over cluster weights keeps its gathered weights between calls; an in-place change of
    the frozen weights (a load_state_dict) must still reach the output."""
    layer = LowRankLinear(IndexedLinear([0, 1, 0], 4, 3), rank=2)
    x = torch.randn(5, 3, 4)
    before = layer(x)
    with torch.no_grad():
        layer.base.weight.add_(1.0)
    after = layer(x)
    weight, bias = layer.agent_weight()
    torch.testing.assert_close(after, torch.einsum("bnd,nod->bno", x, weight) + bias)
    assert not torch.allclose(before, after)
