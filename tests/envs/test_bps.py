"""Blind-Particle Spread (``vmas/bps``): registered, its observation hides the group, its reward is
minus the scaled distance to the agent's own group's landmark, and the scripted references order as
the task says (oracle far above the best blind policy, which is above standing still)."""

from __future__ import annotations

import pytest
import torch

from marlshare.envs import GROUP, make_env, tasks


def _bps(**options):
    options.setdefault("max_steps", 50)
    env = make_env("vmas/bps", num_envs=2, seed=0, **options)
    env.reset()
    return env, env._env.scenario


def _place(scenario, agent: int, pos, vel=(0.0, 0.0)):
    world = scenario.world
    world.agents[agent].set_pos(torch.tensor([pos] * world.batch_dim), batch_index=None)
    world.agents[agent].set_vel(torch.tensor([vel] * world.batch_dim), batch_index=None)


def test_registered_with_sepss_layout():
    assert "bps" in tasks("vmas")
    env, scenario = _bps(groups=[3, 3, 3, 12, 9])
    assert scenario.group_of == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 12 + [4] * 9
    assert env.full_observation_spec_unbatched[GROUP, "observation"].shape == (30, 4 + 2 * 5)


def test_group_is_not_in_the_observation():
    env, scenario = _bps(groups=[2, 2])
    for agent in (0, 2):  # agent 0 is in group 0, agent 2 in group 1
        _place(scenario, agent, (0.3, -0.2), (0.1, 0.05))
    obs0, obs2 = scenario.observation(scenario.world.agents[0]), scenario.observation(scenario.world.agents[2])
    assert torch.equal(obs0, obs2)
    landmarks = scenario.landmark_positions()
    expected = torch.cat([torch.tensor([[0.1, 0.05, 0.3, -0.2]] * 2), (landmarks - torch.tensor([0.3, -0.2])).flatten(1)], 1)
    torch.testing.assert_close(obs0, expected)


def test_shuffled_observation_permutes_by_group():
    env, scenario = _bps(groups=[2, 2], shuffle_obs=True)
    for agent in (0, 1, 2):
        _place(scenario, agent, (0.3, -0.2), (0.1, 0.05))
    obs = [scenario.observation(scenario.world.agents[i]) for i in range(3)]
    assert torch.equal(obs[0], obs[1])  # same group, same layout
    assert not torch.equal(obs[0], obs[2])  # another group sees the same state in another layout
    assert torch.equal(obs[0].sort(-1).values, obs[2].sort(-1).values)  # same values, permuted


def test_reward_is_minus_half_the_distance_to_the_own_landmark():
    env, scenario = _bps(groups=[1, 1])
    world = scenario.world
    world.landmarks[0].set_pos(torch.tensor([[3.0, 4.0]] * 2), batch_index=None)
    world.landmarks[1].set_pos(torch.tensor([[0.0, 1.0]] * 2), batch_index=None)
    _place(scenario, 0, (0.0, 0.0))
    _place(scenario, 1, (0.0, 0.0))
    td = env.step(env.reset().set((GROUP, "action"), torch.zeros(2, 2, 2)))  # reset, then re-place below
    for agent in (0, 1):
        _place(scenario, agent, (0.0, 0.0))
    world.landmarks[0].set_pos(torch.tensor([[3.0, 4.0]] * 2), batch_index=None)
    world.landmarks[1].set_pos(torch.tensor([[0.0, 1.0]] * 2), batch_index=None)
    td = env.step(td["next"].set((GROUP, "action"), torch.zeros(2, 2, 2)))
    reward = td["next", GROUP, "reward"][..., 0]
    torch.testing.assert_close(reward, torch.tensor([[-2.5, -0.5]] * 2))  # 0.5 x distance 5 and 1
    env2, scenario2 = _bps(groups=[1, 1], reward_scale=1.0)
    scenario2.world.landmarks[0].set_pos(torch.tensor([[3.0, 4.0]] * 2), batch_index=None)
    _place(scenario2, 0, (0.0, 0.0))
    torch.testing.assert_close(scenario2.reward(scenario2.world.agents[0]), torch.tensor([-5.0, -5.0]))


def test_oracle_beats_blind_beats_standing_still():
    from tools.bps_reference import episode_returns

    still, blind, oracle = (float(episode_returns(p, [3, 3, 3], seed=0, episodes=40).mean())
                            for p in ("still", "blind", "oracle"))
    # measured (tools.bps_reference, 5 seeds x 20 episodes): still -58.3, blind -43.4, oracle -9.0
    assert -68 < still < -48 and -52 < blind < -34 and -12 < oracle < -6
    assert oracle - blind > 25 and blind - still > 8


@pytest.mark.parametrize("groups, match", [([3, 0, 3], "positive integers"), ([], "non-empty"),
                                           ("333", "list of group sizes"), ([2.5, 3], "positive integers")])
def test_groups_are_validated(groups, match):
    with pytest.raises(ValueError, match="groups"):
        make_env("vmas/bps", groups=groups)
    from marlshare.envs.bps import check_groups

    with pytest.raises(ValueError, match=match):
        check_groups(groups)


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="n_agents"):
        make_env("vmas/bps", n_agents=9)
