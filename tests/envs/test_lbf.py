"""LBF adapter: specs, rollouts, masks, fast observations equal LBF's own, batching, seeds."""

from functools import partial

import numpy as np
import pytest
import torch

from marlshare.envs import GROUP, make_env

TASK = "lbf/8x8-2p-2f-coop"


def make(seed=0, num_envs=3, **kw):
    return make_env(TASK, num_envs=num_envs, seed=seed, **kw)


def test_standard_checks(envcheck):
    env, td = envcheck.standard(partial(make, max_episode_steps=15), steps=40)
    assert td.get("state").shape[-1] == 2 * td.get((GROUP, "observation")).shape[-1]  # concat of obs


def test_seed_reproduces_first_observations(envcheck):
    envcheck.same_seed_same_start(lambda seed: make(seed=seed))


def test_partial_reset_and_collector(envcheck):
    envcheck.partial_reset(make)
    envcheck.collector(partial(make, max_episode_steps=10), frames=60)


def test_time_limit_is_truncation_not_termination():
    env = make(num_envs=2, max_episode_steps=5)
    env.reset()
    td = env.rollout(5, break_when_any_done=False, auto_reset=False, tensordict=env.reset())
    last = td[:, -1]
    assert last.get(("next", "done")).all()
    # with random moves the food is (almost surely) still there after 5 steps: a time limit
    assert last.get(("next", "truncated")).any()
    assert not (last.get(("next", "terminated")) & last.get(("next", "truncated"))).any()


@pytest.mark.parametrize("env_id", ["Foraging-8x8-2p-2f-coop-v3", "Foraging-2s-10x10-4p-3f-v3", "Foraging-5x5-3p-1f-v3"])
def test_fast_observations_equal_lbf(env_id):
    import gymnasium as gym

    from marlshare.envs.lbf import write_observations

    env = gym.make(env_id).unwrapped
    nobs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    out = np.zeros((env.n_agents, env.observation_space[0].shape[0]), np.float32)
    for _ in range(150):
        write_observations(env, out)
        np.testing.assert_array_equal(out, np.stack(nobs))
        nobs, _, done, _, _ = env.step(rng.integers(0, 6, env.n_agents).tolist())
        if done:
            nobs, _ = env.reset()


def test_fast_and_slow_adapter_agree():
    fast, slow = make(seed=5, num_envs=2), make(seed=5, num_envs=2, fast_obs=False)
    a, b = fast.reset(), slow.reset()
    torch.manual_seed(0)
    for _ in range(30):
        assert torch.equal(a.get((GROUP, "observation")), b.get((GROUP, "observation")))
        assert torch.equal(a.get((GROUP, "action_mask")), b.get((GROUP, "action_mask")))
        action = torch.randint(0, 6, (2, 2))
        a.set((GROUP, "action"), action)
        b.set((GROUP, "action"), action.clone())
        _, a = fast.step_and_maybe_reset(a)
        _, b = slow.step_and_maybe_reset(b)


def test_action_mask_matches_lbf_valid_actions():
    env = make(num_envs=1)
    td = env.reset()
    sim = env._sims[0]
    valid = sim.env._valid_actions
    expected = torch.zeros(2, 6, dtype=torch.bool)
    for i, p in enumerate(sim.env.players):
        for a in valid[p]:
            expected[i, a.value] = True
    assert torch.equal(td.get((GROUP, "action_mask"))[0], expected)


def test_worker_processes_match_in_process():
    """num_workers=2 steps the same copies in 2 processes: identical data for identical actions."""
    local, pooled = make(seed=11, num_envs=4), make(seed=11, num_envs=4, num_workers=2)
    try:
        a, b = local.reset(), pooled.reset()
        gen = torch.Generator().manual_seed(0)
        for _ in range(60):
            for key in ("observation", "action_mask"):
                assert torch.equal(a.get((GROUP, key)), b.get((GROUP, key)))
            action = torch.randint(0, 6, (4, 2), generator=gen)
            a.set((GROUP, "action"), action)
            b.set((GROUP, "action"), action.clone())
            out_a, a = local.step_and_maybe_reset(a)
            out_b, b = pooled.step_and_maybe_reset(b)
            assert torch.equal(out_a.get(("next", GROUP, "reward")), out_b.get(("next", GROUP, "reward")))
            assert torch.equal(out_a.get(("next", "done")), out_b.get(("next", "done")))
    finally:
        local.close()
        pooled.close()


def test_unknown_task_lists_valid_ones():
    with pytest.raises(ValueError, match="8x8-2p-2f-coop"):
        make_env("lbf/nope")
    assert make_env("lbf/Foraging-8x8-2p-2f-coop-v3").batch_size == (1,)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_partial_step_leaves_other_copies_alone(num_workers):
    """A '_step' mask steps only the flagged copies; the others neither move nor finish."""
    env, twin = make(seed=4, num_envs=3, num_workers=num_workers), make(seed=4, num_envs=3)
    try:
        td, ref = env.reset(), twin.reset()
        gen = torch.Generator().manual_seed(1)
        for _ in range(4):
            action = torch.randint(0, 6, (3, 2), generator=gen)
            td.set((GROUP, "action"), action)
            td.set("_step", torch.tensor([[True], [False], [True]]))
            out = env.step(td)
            nxt = out.get("next")
            assert torch.equal(nxt.get((GROUP, "observation"))[1], td.get((GROUP, "observation"))[1])
            assert not nxt.get("done")[1].any() and (nxt.get((GROUP, "reward"))[1] == 0).all()
            td = out.get("next").clone()
        # copy 1 never moved: a fresh twin's first observation is still copy 1's
        assert torch.equal(td.get((GROUP, "observation"))[1], ref.get((GROUP, "observation"))[1])
    finally:
        env.close()
        twin.close()
