"""Actor and critic modules: padded action entries, centralised critic input."""

import torch
from tensordict import TensorDict

from components.algorithms import make_actor, make_critic
from components.strategies import make_strategy
from envs import EnvInfo


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
