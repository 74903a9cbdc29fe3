"""SMAX adapter (JaxMARL on JAX CPU): specs, rollouts, masks, win, state, seeds, batched calls.

Compiling one SMAX map takes tens of seconds on a cold CPU, so the default tests use one map and
one batch size (``3m``, 4 envs: every test reuses the two compiled programs, which also land in the
on-disk compilation cache); the other maps are built (no compile) and the slow test steps them.
"""

from functools import partial

import pytest
import torch

from marlshare.envs import GROUP, env_info, make_env

B = 4


def make(seed=0, map_name="3m", num_envs=B, **kw):
    return make_env(f"smax/{map_name}", num_envs=num_envs, seed=seed, **kw)


def attack_policy(td):
    """Attack the first enemy in range, else walk east (towards the enemy)."""
    mask = td.get((GROUP, "action_mask"))
    attack = mask[..., 5:]
    action = torch.where(attack.any(-1), 5 + attack.float().argmax(-1), torch.ones_like(mask[..., 0], dtype=torch.long))
    td.set((GROUP, "action"), action)
    return td


def test_standard_checks(envcheck):
    env, td = envcheck.standard(make, steps=60)
    info = env_info(env)
    assert (info.n_agents, info.obs_dim, info.action_dim, info.state_dim, info.discrete) == (3, 75, 8, 72, True)
    # SMAX rewards are the team reward: every ally gets the same
    reward = td.get(("next", GROUP, "reward"))
    assert torch.equal(reward, reward[..., :1, :].expand_as(reward))


def test_win_is_reported_and_ends_the_battle():
    env = make(enemy_shoots=False)  # a harmless enemy: walking up and shooting wins
    td = env.rollout(120, attack_policy, break_when_any_done=False)
    win, done = td.get(("next", "win")), td.get(("next", "done"))
    assert win.any()
    assert not (win & ~done).any(), "win only on the last step of a battle"
    assert not (win & td.get(("next", "truncated"))).any()
    assert (td.get(("next", GROUP, "reward"))[win.squeeze(-1)] >= 1.0).all()  # won_battle_bonus


def test_stop_is_always_available_and_dead_units_can_only_stop():
    env = make(enemy_shoots=True)
    td = env.rollout(60, attack_policy, break_when_any_done=False)
    mask = td.get((GROUP, "action_mask"))
    assert mask[..., 4].all(), "stop (index 4) is always available"
    only_stop = mask.sum(-1) == 1
    assert only_stop.any(), "some allies die in 60 steps against a shooting enemy"
    assert mask[only_stop][:, 4].all()


def test_seed_reproduces_first_observations(envcheck):
    envcheck.same_seed_same_start(lambda seed: make(seed=seed))


def test_partial_reset_and_collector(envcheck):
    envcheck.partial_reset(make)
    envcheck.collector(make, frames=8 * B)


@pytest.mark.parametrize("map_name", ["3m", "8m", "25m", "2s3z", "3s5z", "3s5z_vs_3s6z", "5m_vs_6m", "10m_vs_11m",
                                      "27m_vs_30m", "3s_vs_5z", "6h_vs_8z", "smacv2_5_units", "smacv2_10_units",
                                      "smacv2_20_units"])
def test_every_required_map_builds(map_name):
    from marlshare.envs.smax import SmaxEnv

    env = SmaxEnv(map_name, num_envs=2, seed=0)  # builds specs; compiles nothing until reset
    expected_allies = {"3m": 3, "8m": 8, "25m": 25, "2s3z": 5, "3s5z": 8, "3s5z_vs_3s6z": 8, "5m_vs_6m": 5,
                       "10m_vs_11m": 10, "27m_vs_30m": 27, "3s_vs_5z": 3, "6h_vs_8z": 6, "smacv2_5_units": 5,
                       "smacv2_10_units": 10, "smacv2_20_units": 20}[map_name]
    assert env.n_agents == expected_allies
    assert env.action_spec[GROUP, "action"].space.n == env._smax.num_enemies + 5


@pytest.mark.slow
@pytest.mark.parametrize("map_name", ["3s5z", "smacv2_5_units"])
def test_other_maps_step(envcheck, map_name):
    envcheck.standard(partial(make, map_name=map_name, num_envs=2), steps=110)


def test_unknown_map_lists_valid_ones():
    with pytest.raises(ValueError, match="3s5z"):
        make_env("smax/4m_vs_1z")


def test_smax_lacks_1c3s5z_and_mmm2_and_their_substitutes_say_what_they_hold():
    from marlshare.envs.smax import SUBSTITUTES, SmaxEnv, tasks

    assert "1c3s5z" not in tasks() and "MMM2" not in tasks()
    names = [n.lower() for n in SmaxEnv("1h3s5z", num_envs=1)._smax.unit_type_names]
    assert "colossus" not in names and "medivac" not in names  # why SMAX cannot build the two maps
    for map_name, (allies, enemies, counts) in {"1h3s5z": (9, 9, {"hydralisk": 1, "stalker": 3, "zealot": 5}),
                                                "2M7m_vs_3M8m": (9, 11, {"marauder": 2, "marine": 7})}.items():
        env = SmaxEnv(map_name, num_envs=2, seed=0)  # builds specs; compiles nothing until reset
        assert (env.n_agents, env._smax.num_enemies) == (allies, enemies)
        ally_types = [names[u] for u in SUBSTITUTES[map_name][0]]
        assert {name: ally_types.count(name) for name in set(ally_types)} == counts
        assert env.action_spec[GROUP, "action"].space.n == enemies + 5
