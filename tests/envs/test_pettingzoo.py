"""PettingZoo adapter (MPE2 and SISL): specs, rollouts, padding and masks, seeds."""

from functools import partial

import pytest
import torch

from marlshare.envs import GROUP, env_info, make_env


def make(task, seed=0, num_envs=2, **kw):
    return make_env(f"pettingzoo/{task}", num_envs=num_envs, seed=seed, **kw)


@pytest.mark.parametrize("task,options", [
    ("simple_spread", {"max_cycles": 12}),
    ("simple_spread", {"max_cycles": 12, "continuous_actions": True}),
    ("simple_reference", {"max_cycles": 12}),
    ("simple_speaker_listener", {"max_cycles": 12}),
    ("simple_speaker_listener", {"max_cycles": 12, "continuous_actions": True}),
    ("multiwalker", {"max_cycles": 12}),
    ("pursuit", {"max_cycles": 12}),
])
def test_standard_checks(envcheck, task, options):
    envcheck.standard(partial(make, task, **options), steps=25)


def test_spread_shapes_and_state():
    info = env_info(make("simple_spread"))
    assert (info.n_agents, info.obs_dim, info.action_dim, info.discrete, info.state_dim) == (3, 18, 5, True, 54)
    info = env_info(make("multiwalker"))
    assert (info.n_agents, info.obs_dim, info.action_dim, info.discrete, info.state_dim) == (3, 31, 4, False, 75)


def test_speaker_listener_padding_and_masks():
    env = make("simple_speaker_listener", max_cycles=10)
    info = env_info(env)
    assert (info.n_agents, info.obs_dim, info.action_dim) == (2, 11, 5)
    td = env.reset()
    obs_mask = td.get((GROUP, "observation_mask"))
    assert obs_mask.sum(-1).tolist() == [[3, 11], [3, 11]]  # speaker 3, listener 11
    assert (td.get((GROUP, "observation"))[~obs_mask] == 0).all()
    action_mask = td.get((GROUP, "action_mask"))
    assert action_mask.sum(-1).tolist() == [[3, 5], [3, 5]]  # speaker has 3 actions, listener 5
    # a padded (unavailable) action index must not crash the simulator
    td.set((GROUP, "action"), torch.tensor([[4, 0], [4, 0]]))
    env.step(td)


def test_continuous_padding_never_reaches_the_simulator():
    """Padded action entries of the speaker (3 real of 5) do not change anything."""
    a = make("simple_speaker_listener", seed=3, continuous_actions=True)
    b = make("simple_speaker_listener", seed=3, continuous_actions=True)
    ta, tb = a.reset(), b.reset()
    dim_mask = ta.get((GROUP, "action_dim_mask"))
    assert dim_mask.sum(-1).tolist() == [[3, 5], [3, 5]]
    for _ in range(5):
        action = torch.rand(2, 2, 5)
        noisy = action.clone()
        noisy[~dim_mask] = torch.rand(int((~dim_mask).sum()))
        ta.set((GROUP, "action"), action)
        tb.set((GROUP, "action"), noisy)
        _, ta = a.step_and_maybe_reset(ta)
        _, tb = b.step_and_maybe_reset(tb)
        assert torch.equal(ta.get((GROUP, "observation")), tb.get((GROUP, "observation")))


def test_seed_reproduces_first_observations(envcheck):
    envcheck.same_seed_same_start(lambda seed: make("simple_spread", seed=seed))
    envcheck.same_seed_same_start(lambda seed: make("multiwalker", seed=seed))


def test_partial_reset_and_collector(envcheck):
    envcheck.partial_reset(partial(make, "simple_spread"))
    envcheck.collector(partial(make, "simple_spread", max_cycles=10), frames=40)


def test_unknown_task_lists_valid_ones():
    with pytest.raises(ValueError, match="simple_spread"):
        make_env("pettingzoo/waterworld")


def test_multiwalker_falls_end_episodes_without_breaking_the_state():
    env = make("multiwalker", num_envs=2)
    td = env.rollout(150, break_when_any_done=False)
    assert td.get(("next", "terminated")).any(), "random walkers fall within 150 steps"
    assert torch.isfinite(td.get(("next", "state"))).all()


@pytest.mark.parametrize("task", ["simple_spread", "simple_speaker_listener", "multiwalker"])
def test_state_built_from_observations_equals_env_state(task):
    """The adapter builds MPE2's and multiwalker's state from the observations; it must be state()."""
    import numpy as np

    from marlshare.envs.pettingzoo import TASKS, PettingZooSim

    sim = PettingZooSim(TASKS[task])
    s = sim.spec
    obs, state = np.zeros((s.n_agents, s.obs_dim), np.float32), np.zeros(s.state_dim, np.float32)
    reward = np.zeros(s.n_agents, np.float32)
    sim.reset(0, obs, state, None)
    assert sim.fast_state_ok
    rng = np.random.default_rng(0)
    for _ in range(150):
        action = rng.integers(0, s.action_dim, s.n_agents) if s.discrete else \
            rng.uniform(s.action_low, s.action_high).astype(np.float32)
        terminated, truncated, _ = sim.step(action, obs, state, None, reward)
        if terminated or truncated:
            sim.reset(None, obs, state, None)
        else:
            np.testing.assert_array_equal(state, sim.env.state().reshape(-1))
