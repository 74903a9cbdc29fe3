"""MaMuJoCo adapter: specs, rollouts, Humanoid 9|8 padding, compiled observations, partitions, seeds."""

from functools import partial

import numpy as np
import pytest
import torch

from marlshare.envs import GROUP, env_info, make_env


def make(task, seed=0, num_envs=2, **kw):
    return make_env(f"mamujoco/{task}", num_envs=num_envs, seed=seed, **kw)


@pytest.mark.parametrize("task,n_agents,obs_dim,act_dim,state_dim", [
    ("ant-4x2", 4, 42, 2, 105),
    ("halfcheetah-2x3", 2, 12, 3, 17),
    ("walker2d-2x3", 2, 12, 3, 17),
    ("humanoid-9_8", 2, 242, 9, 348),
])
def test_standard_checks(envcheck, task, n_agents, obs_dim, act_dim, state_dim):
    env, _ = envcheck.standard(partial(make, task, max_steps=15), steps=35)
    info = env_info(env)
    assert (info.n_agents, info.obs_dim, info.action_dim, info.state_dim, info.discrete) == (
        n_agents, obs_dim, act_dim, state_dim, False)


def test_humanoid_pipe_name_is_an_alias():
    assert env_info(make("humanoid-9|8", num_envs=1)).obs_dim == 242


def test_humanoid_padding_masks_and_padded_actions():
    a, b = make("humanoid-9_8", seed=1), make("humanoid-9_8", seed=1)
    ta, tb = a.reset(), b.reset()
    obs_mask, dim_mask = ta.get((GROUP, "observation_mask")), ta.get((GROUP, "action_dim_mask"))
    assert obs_mask.sum(-1).tolist() == [[242, 170]] * 2
    assert dim_mask.sum(-1).tolist() == [[9, 8]] * 2
    assert (ta.get((GROUP, "observation"))[~obs_mask] == 0).all()
    for _ in range(5):
        action = (torch.rand(2, 2, 9) - 0.5) * 0.8
        noisy = action.clone()
        noisy[~dim_mask] = 100.0  # would blow up the humanoid if it reached MuJoCo
        ta.set((GROUP, "action"), action)
        tb.set((GROUP, "action"), noisy)
        _, ta = a.step_and_maybe_reset(ta)
        _, tb = b.step_and_maybe_reset(tb)
        assert torch.equal(ta.get((GROUP, "observation")), tb.get((GROUP, "observation")))
        assert (ta.get((GROUP, "observation"))[~obs_mask] == 0).all()


@pytest.mark.parametrize("scenario,conf,k", [("Ant", "4x2", 1), ("HalfCheetah", "2x3", 1), ("Walker2d", "2x3", 2),
                                             ("Humanoid", "9|8", 1), ("Hopper", "3x1", 0)])
def test_compiled_observations_equal_mamujoco(scenario, conf, k):
    from marlshare.envs.mamujoco import MaMuJoCoSim

    sim = MaMuJoCoSim(scenario, conf, agent_obsk=k)
    assert sim.compiled is not None
    rng = np.random.default_rng(0)
    out = np.zeros((len(sim.agents), sim.spec.obs_dim), np.float32)
    state = np.zeros(sim.spec.state_dim, np.float32)
    sim.reset(0, out, state, None)
    low, high = sim.spec.action_low, sim.spec.action_high
    for t in range(100):
        ref = sim.env._get_obs()
        for i, agent in enumerate(sim.agents):
            np.testing.assert_allclose(out[i, : sim.obs_sizes[i]], ref[agent].astype(np.float32), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(state, sim.env.state().astype(np.float32), rtol=1e-6, atol=1e-6)
        terminated, truncated, _ = sim.step(rng.uniform(low, high).astype(np.float32), out, state, None, np.zeros(len(sim.agents)))
        if terminated or truncated:
            sim.reset(None, out, state, None)


def test_actions_map_to_mamujoco_global_action():
    from marlshare.envs.mamujoco import MaMuJoCoSim

    sim = MaMuJoCoSim("HalfCheetah", "2x3")
    action = np.arange(6, dtype=np.float32).reshape(2, 3) / 10
    sim._global_action[sim._dst] = action[sim._src]
    expected = sim.env.map_local_actions_to_global_action({"agent_0": action[0], "agent_1": action[1]})
    np.testing.assert_allclose(sim._global_action, expected)


def test_custom_partition_and_observation_depth():
    env = make("halfcheetah-custom", num_envs=1, partition=[["bthigh", "bshin"], ["bfoot", "fthigh"], ["fshin", "ffoot"]])
    assert env_info(env).n_agents == 3 and env_info(env).action_dim == 2
    env.rollout(3)
    same = make("halfcheetah-custom", num_envs=1, partition="bthigh,bshin;bfoot,fthigh;fshin,ffoot")
    assert env_info(same).n_agents == 3
    deep, shallow = make("ant-4x2", agent_obsk=2), make("ant-4x2", agent_obsk=0)
    assert env_info(deep).obs_dim > 42 > env_info(shallow).obs_dim
    with pytest.raises(ValueError, match="every joint"):
        make("halfcheetah-custom", partition=[["bthigh"], ["nose"]])


def test_seed_reproduces_first_observations(envcheck):
    envcheck.same_seed_same_start(lambda seed: make("halfcheetah-2x3", seed=seed))


def test_partial_reset_and_collector(envcheck):
    envcheck.partial_reset(partial(make, "halfcheetah-2x3"))
    envcheck.collector(partial(make, "ant-4x2", max_steps=10), frames=40)


def test_unknown_task_lists_valid_ones():
    with pytest.raises(ValueError, match="humanoid-9_8"):
        make_env("mamujoco/spider-8x1")


def test_walker2d_3x2_is_the_lorasa_authors_partition():
    """3 agents of 2 joints each, grouped and ordered as in the authors' MaMuJoCo copy (obsk.py)."""
    from marlshare.envs.mamujoco import MaMuJoCoSim, NAMED_PARTITIONS

    env = make("walker2d-3x2", num_envs=1)
    info = env_info(env)
    assert (info.n_agents, info.action_dim, info.state_dim) == (3, 2, 17)
    env.rollout(3)
    sim = MaMuJoCoSim("Walker2d", "custom", partition=NAMED_PARTITIONS["Walker2d", "3x2"])
    assert [[node.label for node in part] for part in sim.env.agent_action_partitions] == [
        ["foot_joint", "leg_joint"], ["thigh_joint", "foot_left_joint"], ["leg_left_joint", "thigh_left_joint"]]
    # agent i's action column j drives that joint's actuator (Walker2d: thigh, leg, foot; then the left ones)
    action = np.arange(6, dtype=np.float32).reshape(3, 2)
    sim._global_action[sim._dst] = action[sim._src]
    np.testing.assert_array_equal(sim._global_action, [2, 1, 0, 5, 4, 3])
    assert sim.compiled is not None  # agent_obsk=1 observations through the fast path, checked at build


def test_full_observation_gives_every_agent_the_single_agent_observation():
    env = make("humanoid-9_8", num_envs=1, full_observation=True)
    info = env_info(env)
    assert (info.n_agents, info.obs_dim, info.action_dim) == (2, 348, 9)
    td = env.rollout(3)
    obs = td.get(("next", GROUP, "observation"))
    torch.testing.assert_close(obs[..., 0, :], td.get(("next", "state")))
    torch.testing.assert_close(obs[..., 1, :], td.get(("next", "state")))
