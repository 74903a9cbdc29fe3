"""The registry across families: names, the common max_steps option, bad options, key layout."""

import pytest
import torch

from marlshare.envs import FAMILIES, GROUP, env_info, make_env, simulates_on_device

CHEAP = ["pettingzoo/simple_spread", "mamujoco/halfcheetah-2x3", "lbf/8x8-2p-2f-coop", "rware/tiny-2ag"]


def test_every_family_is_registered():
    assert {"vmas", "pettingzoo", "mamujoco", "smax", "smac", "lbf", "rware"} <= set(FAMILIES)
    with pytest.raises(ValueError, match="valid families"):
        make_env("starcraft/3m")


def test_a_family_declares_whether_it_simulates_on_a_device(monkeypatch):
    """Read from the family's module (``SIMULATES_ON_DEVICE``), never from a list of family names."""
    import sys
    import types

    assert simulates_on_device("vmas/balance") and simulates_on_device("vmas")
    assert not simulates_on_device("mamujoco/halfcheetah-2x3") and not simulates_on_device("starcraft/3m")
    module = types.ModuleType("fake_torch_family")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(FAMILIES, "fake", module.__name__)
    assert not simulates_on_device("fake/task")  # no declaration: the CPU
    module.SIMULATES_ON_DEVICE = True
    assert simulates_on_device("fake/task")


@pytest.mark.parametrize("name", CHEAP)
def test_max_steps_caps_episodes_as_truncation(name):
    env = make_env(name, num_envs=2, seed=0, max_steps=6)
    td = env.rollout(6, break_when_any_done=False, auto_reset=False, tensordict=env.reset())
    done, terminated = td.get(("next", "done")), td.get(("next", "terminated"))
    truncated = td.get(("next", "truncated"))
    assert done.any(1).all(), "every copy ends within max_steps"
    never_terminated = ~terminated.any(1).squeeze(-1)
    assert truncated[never_terminated, -1].all(), "the cap is a truncation, on step max_steps"
    assert not (terminated & truncated).any()


def test_smax_takes_max_steps():
    from marlshare.envs.smax import SmaxEnv

    assert SmaxEnv("3m", num_envs=2, max_steps=7)._smax.max_steps == 7


@pytest.mark.parametrize("name", CHEAP + ["smax/3m"])
def test_unknown_option_is_a_value_error(name):
    with pytest.raises(ValueError, match="option"):
        make_env(name, num_envs=1, definitely_not_an_option=3)


@pytest.mark.parametrize("name", CHEAP)
def test_key_layout(name):
    env = make_env(name, num_envs=3, seed=0)
    info = env_info(env)
    td = env.reset()
    assert td.get((GROUP, "observation")).shape == (3, info.n_agents, info.obs_dim)
    for key in ("done", "terminated", "truncated"):
        assert td.get(key).shape == (3, 1) and td.get(key).dtype == torch.bool
    assert td.get("state").shape == (3, info.state_dim)
    action = env.full_action_spec[GROUP, "action"]
    assert action.shape == ((3, info.n_agents) if info.discrete else (3, info.n_agents, info.action_dim))


def test_a_vmas_scenario_whose_one_group_has_another_name_builds_as_one_team():
    """vmas/drone's agents are named drone_i (one VMAS group "drone"): they are alike agents, so the
    adapter groups them under marlshare's group instead of calling the scenario heterogeneous."""
    from marlshare.envs import make_env

    env = make_env("vmas/drone", num_envs=2, seed=0)
    rollout = env.rollout(3)
    assert list(env.group_map) == ["agents"] and rollout["agents", "observation"].shape[:2] == (2, 3)
