"""RWARE adapter: specs, rollouts across the time limit, seeds, batching."""

from functools import partial

import pytest

from marlshare.envs import GROUP, env_info, make_env


def make(seed=0, num_envs=2, **kw):
    return make_env("rware/tiny-2ag", num_envs=num_envs, seed=seed, **kw)


def test_standard_checks(envcheck):
    env, td = envcheck.standard(partial(make, max_steps=15), steps=35)
    info = env_info(env)
    assert (info.n_agents, info.obs_dim, info.action_dim, info.discrete) == (2, 71, 5, True)
    # every RWARE episode ends on its step limit: truncated, never terminated
    assert not td.get(("next", "terminated")).any()
    assert td.get(("next", "truncated")).sum() == td.get(("next", "done")).sum() > 0


def test_seed_reproduces_first_observations(envcheck):
    envcheck.same_seed_same_start(lambda seed: make(seed=seed))


def test_partial_reset_and_collector(envcheck):
    envcheck.partial_reset(make)
    envcheck.collector(partial(make, max_steps=10), frames=40)


def test_unknown_task_lists_valid_ones():
    with pytest.raises(ValueError, match="tiny-2ag"):
        make_env("rware/huge-2ag")
    assert make_env("rware/rware-tiny-4ag-easy-v2", num_envs=1).reset().get((GROUP, "observation")).shape[1] == 4
