"""HyperMARL: a linear hypernetwork on one-hot ids is NPS, agents stay isolated, parameter counts
match their closed forms, the paper's initialisation, and tiny training runs with every algorithm."""

import math

import pytest
import torch

from marlshare.components.algorithms import actor_net
from marlshare.components.generated import GeneratedLinear
from marlshare.components.networks import count_parameters
from marlshare.components.strategies import make_strategy
from marlshare.components.trainer import Trainer
from tests.components.helpers import agent_layers, first
from tests.components.test_trainer import rows, tiny

LINEAR = dict(hypernet="linear", embedding="one_hot")


def generated_layers(net):
    return [m for m in agent_layers(net) if isinstance(m, GeneratedLinear)]


@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
@pytest.mark.parametrize("hyper_bias", [False, True])
def test_linear_hypernetwork_on_one_hot_ids_set_to_nps_weights_computes_nps(recurrent, hyper_bias):
    n = 3
    nps = make_strategy("nps").make_network(n, 10, 6, hidden=(16, 16), recurrent=recurrent, head="normal",
                                            log_std="shared")
    hyper = make_strategy("hypermarl", hyper_bias=hyper_bias, **LINEAR).make_network(
        n, 10, 6, hidden=(16, 16), recurrent=recurrent, head="normal", log_std="shared")
    with torch.no_grad():
        for p in nps.parameters():  # far from any initialisation
            p.normal_(0, 0.5)
        for src, dst in zip(agent_layers(nps), agent_layers(hyper), strict=True):
            if isinstance(dst, GeneratedLinear):
                dst.set_agent_weights(src.weight, src.bias)
            else:
                dst.value.copy_(src.value)
    x = torch.randn(7, n, 10)
    h = torch.randn(7, n, nps.hidden_size) if recurrent else None
    expected = nps(x, h) if recurrent else nps(x)
    got = hyper(x, h) if recurrent else hyper(x)
    for a, b in zip(expected, got, strict=True):
        assert torch.equal(a, b)  # the same weights through the same bmm: bit-identical


def test_linear_one_hot_gradients_stay_with_their_agent_and_the_mlp_hypernetwork_shares_them():
    """Agent isolation of the generated weights: with a linear hypernetwork on one-hot ids, agent 0's
    output sends gradient only into agent 0's column of every head (as NPS); the MLP hypernetwork's
    hidden layer is shared, so every agent's generated weights feel agent 0's gradient."""
    x = torch.randn(5, 3, 10)
    linear = make_strategy("hypermarl", **LINEAR).make_network(3, 10, 4, hidden=(8,))
    linear(x)[..., 0, :].sum().backward()
    for m in generated_layers(linear):
        grad = m.weight_head.weight.grad  # [out * in, N]: column i is agent i's weight
        assert grad[:, 0].abs().sum() > 0 and torch.count_nonzero(grad[:, 1:]) == 0
    mlp = make_strategy("hypermarl", hypernet="mlp").make_network(3, 10, 4, hidden=(8,))
    weights_before = [m.agent_weight()[0].detach().clone() for m in generated_layers(mlp)]
    mlp(x)[..., 0, :].sum().backward()
    with torch.no_grad():
        for p in mlp.parameters():
            p -= 0.1 * p.grad
    for m, before in zip(generated_layers(mlp), weights_before):
        moved = (m.agent_weight()[0] - before).flatten(1).abs().amax(dim=1)  # per agent
        assert (moved > 0).all()


@pytest.mark.parametrize("n", [2, 4, 9])
def test_parameter_counts_closed_forms(n):
    d_in, hidden, out = 10, (16, 16), 6
    shapes = list(zip((d_in, *hidden), (*hidden, out)))  # (in, out) of every layer

    def build(**hp):
        net = make_strategy("hypermarl", **hp).make_network(n, d_in, out, hidden=hidden, head="normal")
        return count_parameters(net)

    nps = count_parameters(make_strategy("nps").make_network(n, d_in, out, hidden=hidden, head="normal",
                                                             log_std="shared"))
    no_bias = build(hyper_bias=False, **LINEAR)
    assert no_bias["total"] == nps["total"] == sum((i * o + o) * n for i, o in shapes) + out
    assert build(**LINEAR)["total"] == sum((i * o + o) * (n + 1) for i, o in shapes) + out
    k = 12
    mlp = build(hypernet="mlp", hypernet_hidden=k)
    assert mlp["total"] == mlp["shared"] == sum(n * k + k + (i * o + o) * (k + 1) for i, o in shapes) + out
    learnt = build(hypernet="mlp", hypernet_hidden=k, embedding="learnt", embedding_dim=5)
    assert learnt["per_agent"] == 5  # the embedding table is counted once, not once per layer
    assert learnt["total"] == sum(5 * k + k + (i * o + o) * (k + 1) for i, o in shapes) + out + n * 5


def test_initialisation_orthogonal_per_agent_with_the_head_gain_and_zero_biases():
    net = make_strategy("hypermarl", **LINEAR).make_network(4, 10, 6, hidden=(16,), head="normal")
    (hidden_layer, head) = generated_layers(net)
    for layer, gain in ((hidden_layer, math.sqrt(2)), (head, 0.01)):
        weight, bias = layer.agent_weight()
        gram = weight @ weight.transpose(1, 2) if weight.shape[1] <= weight.shape[2] else weight.transpose(1, 2) @ weight
        eye = torch.eye(gram.shape[-1]).expand_as(gram)
        torch.testing.assert_close(gram, gain**2 * eye, atol=1e-5, rtol=1e-5)
        assert torch.count_nonzero(bias) == 0
        assert not torch.allclose(weight[0], weight[1])  # each agent its own orthogonal matrix
    regained = make_strategy("hypermarl", **LINEAR).make_network(4, 10, 6, hidden=(16,), head_gain=0.5)
    weight = generated_layers(regained)[-1].agent_weight()[0]  # the network's head_gain reaches the hook
    torch.testing.assert_close(weight @ weight.transpose(1, 2), 0.25 * torch.eye(6).expand(4, 6, 6), atol=1e-5, rtol=1e-5)


def test_a_network_has_one_embedding_table_and_learnt_embeddings_train():
    net = make_strategy("hypermarl", embedding="learnt", embedding_dim=3).make_network(2, 5, 2, hidden=(4, 4))
    tables = {id(m.embedding) for m in generated_layers(net)}
    assert len(tables) == 1
    x = torch.randn(3, 2, 5)
    first(net(x)).sum().backward()
    assert generated_layers(net)[0].embedding.table.grad.abs().sum() > 0
    twin = make_strategy("hypermarl", embedding="learnt", embedding_dim=3).make_network(2, 5, 2, hidden=(4, 4))
    twin.load_state_dict(net.state_dict())  # a checkpoint round trip keeps the shared table shared
    assert len({id(m.embedding) for m in generated_layers(twin)}) == 1 and torch.equal(first(twin(x)), first(net(x)))


@pytest.mark.parametrize("hp,match", [
    ({"hypernet": "transformer"}, r"hypernet must be one of \['mlp', 'linear'\]"),
    ({"embedding": "random"}, r"embedding must be one of \['one_hot', 'learnt'\]"),
    ({"hypernet_hidden": 0}, "hypernet_hidden must be a positive integer"),
    ({"head_init_gain": 0.0}, "head_init_gain must be a number > 0"),
    ({"hyper_bias": "yes"}, "hyper_bias must be True or False"),
])
def test_bad_hyperparameters_name_the_value_and_the_choices(hp, match):
    with pytest.raises(ValueError, match=match):
        make_strategy("hypermarl", **hp)


ALGORITHMS = ["mappo", "ippo", "happo", "a2po"]
CASES = [pytest.param(a, r, marks=() if (a, r) == ("mappo", False) else pytest.mark.slow, id=f"{a}-{'gru' if r else 'mlp'}")
         for a in ALGORITHMS for r in (False, True)]


@pytest.mark.parametrize("algorithm,recurrent", CASES)
def test_trains_with_every_algorithm_on_mlp_and_gru_actors(tmp_path, algorithm, recurrent):
    trainer = Trainer(tiny(**{"strategy": {"name": "hypermarl", "hypernet_hidden": 8}, "algorithm.name": algorithm,
                              "algorithm.network.recurrent": recurrent}), run_dir=tmp_path)
    net = actor_net(trainer.actor).net
    before = [m.agent_weight()[0].detach().clone() for m in generated_layers(net)]
    trainer.run(max_iterations=1)
    assert math.isfinite(float(rows(tmp_path)[-1]["loss_objective"]))
    assert len(before) == (6 if recurrent else 3)  # every layer generated, the GRU's projections included
    assert all(not torch.equal(b, m.agent_weight()[0]) for b, m in zip(before, generated_layers(net)))
