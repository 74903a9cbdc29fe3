"""Actor and critic modules: padded action entries, centralised critic input."""

import pytest
import torch
from tensordict import TensorDict

from marlshare.components.algorithms import make_actor, make_critic
from marlshare.components.strategies import make_strategy
from marlshare.envs import EnvInfo


def test_padded_action_entries_do_not_reach_the_policy_gradient():
    info = EnvInfo(n_agents=2, obs_dim=5, discrete=False, action_dim=3, state_dim=None, has_action_mask=False,
                   action_low=-torch.ones(2, 3), action_high=torch.ones(2, 3), has_action_dim_mask=True)
    net = make_strategy("nps").make_network(2, 5, 3, head="normal")
    actor = make_actor(net, info)
    mask = torch.tensor([[True, True, True], [True, True, False]]).expand(4, 2, 3)
    td = TensorDict({("agents", "observation"): torch.randn(4, 2, 5), ("agents", "action_dim_mask"): mask}, [4])
    out = actor(td)
    assert (out["agents", "loc"][:, 1, 2] == 0).all() and (out["agents", "scale"][:, 1, 2] == 1).all()
    # the log-probability of agent 1's padded entry is the same under any parameters
    dist = actor.get_dist(td)
    dist.log_prob(out["agents", "action"]).sum().backward()
    head = net.head.layer.weight.grad  # [N, out, in]
    assert head[1, 2].abs().sum() == 0 and head[1, :2].abs().sum() > 0


def test_mappo_critic_sees_all_observations_ippo_only_its_own():
    info = EnvInfo(n_agents=3, obs_dim=4, discrete=True, action_dim=5, state_dim=None, has_action_mask=False)
    td = TensorDict({("agents", "observation"): torch.randn(6, 3, 4)}, [6])
    for algorithm, depends_on_others in (("mappo", True), ("ippo", False)):
        critic = make_critic(info, algorithm)
        v = critic(td.clone())["agents", "state_value"]
        other = td.clone()
        other["agents", "observation"][:, 0] += 1.0
        v2 = critic(other)["agents", "state_value"]
        assert v.shape == (6, 3, 1)
        assert bool((v2[:, 1] != v[:, 1]).any()) == depends_on_others


def test_team_critic_gives_every_agent_the_same_centralised_value():
    info = EnvInfo(n_agents=3, obs_dim=4, discrete=True, action_dim=5, state_dim=None, has_action_mask=False)
    critic = make_critic(info, "mappo", agent_id=False)
    td = TensorDict({("agents", "observation"): torch.randn(6, 3, 4)}, [6])
    v = critic(td)["agents", "state_value"]
    assert v.shape == (6, 3, 1) and torch.equal(v[:, 0], v[:, 2])


# --- the reference MAPPO value-loss details (settings; off by default) ---------------------------------

def _critic_batch(**changes):
    import tempfile

    from torchrl.envs.utils import ExplorationType, set_exploration_type

    from marlshare.components.algorithms import expand_done
    from marlshare.components.trainer import Trainer
    from tests.components.test_trainer import tiny

    trainer = Trainer(tiny(**{"env.options": {"n_agents": 2}, **changes}), run_dir=tempfile.mkdtemp())
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        batch = trainer.env.rollout(20, trainer.actor, break_when_any_done=False)
        expand_done(batch)
        trainer.loss.value_estimator(batch, params=trainer.loss.critic_network_params,
                                     target_params=trainer.loss.target_critic_network_params)
    return trainer, batch.reshape(-1)


def _value(trainer, td):
    with torch.no_grad():
        return trainer.critic(td.clone())["agents", "state_value"]


def test_default_value_loss_is_torchrls_squared_error():
    trainer, td = _critic_batch()
    v, target = _value(trainer, td), td["value_target"]
    loss = trainer.loss.loss_critic(td)[0].mean()
    torch.testing.assert_close(loss, (target - v).pow(2).mean())


def test_huber_value_loss_has_the_given_delta():
    trainer, td = _critic_batch(**{"algorithm.huber_delta": 0.05})
    v, target = _value(trainer, td), td["value_target"]
    assert (target - v).abs().max() > 0.05  # both branches of the Huber loss are used
    loss = trainer.loss.loss_critic(td)[0].mean()
    expected = torch.nn.functional.huber_loss(v, target, delta=0.05)
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(loss, (target - v).pow(2).mean())


def test_clipped_value_loss_takes_the_worse_of_plain_and_clipped():
    trainer, td = _critic_batch(**{"algorithm.clip_value_loss": True})
    eps = trainer.cfg.algorithm.clip_epsilon
    td["agents", "state_value"] = td["agents", "state_value"] + torch.randn_like(td["agents", "state_value"])
    old, v, target = td["agents", "state_value"], _value(trainer, td), td["value_target"]
    clipped = old + (v - old).clamp(-eps, eps)
    expected = torch.maximum((target - v).pow(2), (target - clipped).pow(2)).mean()
    torch.testing.assert_close(trainer.loss.loss_critic(td)[0].mean(), expected)
    assert expected > (target - v).pow(2).mean() * 1.01


def test_value_norm_denormalises_the_critic_and_normalises_the_loss():
    from marlshare.components.algorithms.ppo import ValueNorm, value_norm_of

    trainer, td = _critic_batch(**{"algorithm.value_norm": True})
    norm = value_norm_of(trainer.critic)
    assert isinstance(norm, ValueNorm) and any(k.endswith("_extra_state") for k in trainer.critic.state_dict())
    target = td["value_target"]
    norm.update(target * 0 + 3.0)  # statistics away from the start: mean 3, std floored at 0.1
    mean, std = norm.stats()
    torch.testing.assert_close(mean, torch.tensor(3.0))
    raw = _value(trainer, td)
    norm.running_mean.zero_(), norm.running_mean_sq.zero_(), norm.debiasing_term.zero_()
    norm.update(target)  # now the loss uses stats of the targets
    v = _value(trainer, td)
    mean, std = norm.stats()
    assert not torch.allclose(raw, v)  # the critic's output is denormalised with the current statistics
    trainer.loss.update_value_norm = False
    loss = trainer.loss.loss_critic(td)[0].mean()
    expected = ((target - mean) / std - (v - mean) / std).pow(2).mean()
    torch.testing.assert_close(loss, expected)
    trainer.loss.update_value_norm = True
    before = norm.running_mean.clone()
    trainer.loss.loss_critic(td)
    assert not torch.equal(norm.running_mean, before)  # each minibatch's targets update the statistics


# --- network options of the reference code (components/networks.py) ----------------------------------

def _net(name, n=3, recurrent=False, **options):
    from marlshare.components.networks import AgentGRUActor, AgentMLP
    from tests.components.helpers import strategy_for

    strategy = strategy_for(name, n)
    cls = AgentGRUActor if recurrent else AgentMLP
    return cls(n, 5, 2, (8, 8), layer=strategy.layer_factory(n), vector=strategy.vector_factory(n), head="normal",
               **options)


def test_sigmoid_std_mapping_is_half_the_sigmoid_of_the_parameter():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5)
    for recurrent in (False, True):
        net = _net("ps", recurrent=recurrent, std_mapping="sigmoid", log_std_init=1.0)
        out = net(x) if not recurrent else net(x, None)
        torch.testing.assert_close(out[1], torch.full_like(out[1], float(torch.sigmoid(torch.tensor(1.0)) * 0.5)))
        default = _net("ps", recurrent=recurrent, log_std_init=1.0)
        out = default(x) if not recurrent else default(x, None)
        torch.testing.assert_close(out[1], torch.full_like(out[1], float(torch.tensor(1.0).exp())))


@pytest.mark.parametrize("name", ["ps", "nps", "mtl", "seps", "prism"])
def test_orthogonal_head_init_with_gain(name):
    torch.manual_seed(0)
    net = _net(name, head_gain=0.01)
    weight, bias = net.head.layer.agent_weight()  # [N, out, in], effective per agent
    for i in range(3):
        torch.testing.assert_close(weight[i] @ weight[i].T, 1e-4 * torch.eye(2), atol=1e-7, rtol=1e-4)
        assert bias is None or bias[i].abs().max() < 1e-7
    plain = _net(name).head.layer.agent_weight()[0]
    assert (plain[0] @ plain[0].T - 1e-4 * torch.eye(2)).abs().max() > 1e-3  # the default init is not that


@pytest.mark.parametrize("recurrent", [False, True])
def test_layer_norm_normalises_the_input_and_every_hidden_layer(recurrent):
    torch.manual_seed(0)
    net = _net("nps", recurrent=recurrent, layer_norm=True)
    seen = []
    for module in net.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    x = 5.0 + 3.0 * torch.randn(4, 3, 5)
    (net(x) if not recurrent else net(x, None))
    assert len(seen) == 1 + 2 + (1 if recurrent else 0)  # input, two hidden layers (, the GRU output)
    for out in seen:
        torch.testing.assert_close(out.mean(-1), torch.zeros(out.shape[:-1]), atol=1e-5, rtol=0)
    first = net.trunk[0] if not recurrent else net.encoder[0]
    inputs = []
    first.register_forward_pre_hook(lambda m, i: inputs.append(i[0]))
    (net(x) if not recurrent else net(x, None))
    assert inputs[0][..., :5].mean().abs() < 1e-5  # the layer sees the normalised observation
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in _net("nps", recurrent=recurrent).modules())


def test_biased_softplus_std_mapping_is_benchmarls_scale():
    """softplus(p + b) + 0.01 with scale 1 at p = 0; with a state-dependent scale and log_std_init=None
    the head keeps its drawn bias (BenchMARL), otherwise the bias starts at log_std_init."""
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5)
    net = _net("ps", std_mapping="biased_softplus", log_std_init=0.0)
    torch.testing.assert_close(net(x)[1], torch.ones(4, 3, 2))
    p = torch.tensor([-3.0, 2.0])
    net = _net("ps", std_mapping="biased_softplus", log_std_init=float(p[1]))
    expected = torch.nn.functional.softplus(p[1] + torch.log(torch.expm1(torch.tensor(0.99)))) + 0.01
    torch.testing.assert_close(net(x)[1], torch.full((4, 3, 2), float(expected)))
    drawn = _net("ps", log_std="state", std_mapping="biased_softplus", log_std_init=None)
    set_to = _net("ps", log_std="state", std_mapping="biased_softplus", log_std_init=0.0)
    assert drawn.head.layer.bias[..., 2:].abs().sum() > 0 and set_to.head.layer.bias[..., 2:].abs().sum() == 0
