"""Checks shared by every env family's tests, handed to the tests as the ``envcheck`` fixture
(a fixture, not an import, so the tests work whether or not ``tests/envs`` is a package)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from tensordict import TensorDictBase
from torchrl.envs.utils import check_env_specs

from marlshare.envs import GROUP, env_info

warnings.filterwarnings("ignore", category=DeprecationWarning)


def random_policy(env):
    """Uniform over available actions (the spec's own sampler ignores masks)."""
    info = env_info(env)

    def policy(td: TensorDictBase) -> TensorDictBase:
        if info.discrete:
            shape = td.get((GROUP, "observation")).shape[:-1]
            mask = td.get((GROUP, "action_mask"), None)
            logits = torch.zeros(*shape, info.action_dim) if mask is None else torch.where(mask, 0.0, -1e9)
            td.set((GROUP, "action"), torch.distributions.Categorical(logits=logits).sample())
        else:
            low, high = info.action_low, info.action_high
            u = torch.rand(*td.get((GROUP, "observation")).shape[:-1], info.action_dim)
            td.set((GROUP, "action"), low + (high - low) * u)
        return td

    return policy


def ps_policy(env, strategy: str = "ps"):
    """A parameter-shared actor from the strategy registry, greedy, respecting masks and bounds."""
    from marlshare.components.strategies import make_strategy

    info = env_info(env)
    net = make_strategy(strategy).make_network(n_agents=info.n_agents, in_features=info.obs_dim,
                                               out_features=info.action_dim)

    @torch.no_grad()
    def policy(td: TensorDictBase) -> TensorDictBase:
        out = net(td.get((GROUP, "observation")))
        assert out.shape[-2:] == (info.n_agents, info.action_dim)
        if info.discrete:
            mask = td.get((GROUP, "action_mask"), None)
            if mask is not None:
                out = out.masked_fill(~mask, -torch.inf)
            td.set((GROUP, "action"), out.argmax(-1))
        else:
            low, high = info.action_low, info.action_high
            td.set((GROUP, "action"), low + (high - low) * (torch.tanh(out) + 1) / 2)
        return td

    return policy


def standard(make, steps: int = 40, min_dones: int = 1):
    """Specs check, random and PS rollouts across episode boundaries, key layout and shapes."""
    env = make()
    try:
        check_env_specs(env, seed=None)
        info = env_info(env)
        B = env.batch_size[0]
        for policy in (random_policy(env), ps_policy(env)):
            td = env.rollout(steps, policy, break_when_any_done=False)
            assert td.batch_size == (B, steps)
            obs = td.get((GROUP, "observation"))
            assert obs.shape == (B, steps, info.n_agents, info.obs_dim) and obs.dtype == torch.float32
            assert torch.isfinite(obs).all()
            assert td.get(("next", GROUP, "reward")).shape == (B, steps, info.n_agents, 1)
            for key in ("done", "terminated"):
                assert td.get(("next", key)).shape == (B, steps, 1)
            done = td.get(("next", "done"))
            assert int(done.sum()) >= min_dones, "the rollout should cross an episode boundary"
            # within an episode the next observation is the following step's observation; across a
            # reset the terminal observation survives (is not overwritten by the reset one)
            nxt, following = td.get(("next", GROUP, "observation"))[:, :-1], obs[:, 1:]
            ended = done[:, :-1, 0]
            assert torch.equal(nxt[~ended], following[~ended])
            if ended.any():
                assert not torch.equal(nxt[ended], following[ended])
            if info.state_dim is not None:
                assert td.get("state").shape == (B, steps, info.state_dim)
            if info.has_action_mask:
                mask = td.get((GROUP, "action_mask"))
                action = td.get((GROUP, "action"))
                assert mask.gather(-1, action.unsqueeze(-1)).all(), "policies took only available actions"
                assert mask.any(-1).all(), "every agent always has an available action"
        episode_returns(env, steps)
        return env, td
    finally:
        env.close()


def episode_returns(env, steps: int):
    """TorchRL's RewardSum (what the trainer uses for returns) accumulates per episode."""
    from torchrl.envs import RewardSum, TransformedEnv

    tenv = TransformedEnv(env, RewardSum(in_keys=[(GROUP, "reward")], out_keys=[(GROUP, "episode_reward")]))
    td = tenv.rollout(steps, random_policy(env), break_when_any_done=False)
    reward, total, done = (td.get(("next", GROUP, "reward")), td.get(("next", GROUP, "episode_reward")),
                           td.get(("next", "done")))
    running = torch.zeros_like(reward[:, 0])
    for t in range(reward.shape[1]):
        running = running + reward[:, t]
        torch.testing.assert_close(total[:, t], running, atol=1e-4, rtol=1e-5)
        running = torch.where(done[:, t, None, :].expand_as(running), torch.zeros_like(running), running)


def same_seed_same_start(make):
    """Two envs built with one seed start identically; another seed starts differently."""
    a, b, c = make(seed=7), make(seed=7), make(seed=8)
    try:
        ta, tb, tc = a.reset(), b.reset(), c.reset()
        assert torch.equal(ta.get((GROUP, "observation")), tb.get((GROUP, "observation")))
        if "state" in ta.keys():
            assert torch.equal(ta.get("state"), tb.get("state"))
        assert not torch.equal(ta.get((GROUP, "observation")), tc.get((GROUP, "observation")))
        # set_seed on an existing env replays the same start
        a.set_seed(7)
        assert torch.equal(a.reset().get((GROUP, "observation")), ta.get((GROUP, "observation")))
    finally:
        for env in (a, b, c):
            env.close()


def collector(make, frames: int = 64):
    """A TorchRL Collector runs the env (auto-reset inside) with a PS actor."""
    from torchrl.collectors import Collector

    env = make()
    B = env.batch_size[0]
    policy = ps_policy(env)
    from tensordict.nn import TensorDictModule

    module = TensorDictModule(lambda obs, *rest: policy_module_out(policy, env, obs, *rest),
                              in_keys=[(GROUP, "observation")] + ([(GROUP, "action_mask")] if env_info(env).has_action_mask else []),
                              out_keys=[(GROUP, "action")])
    coll = Collector(env, module, frames_per_batch=frames, total_frames=2 * frames,
                     auto_register_policy_transforms=False)
    n = 0
    try:
        for batch in coll:
            assert batch.get((GROUP, "observation")).shape[-2:] == (env_info(env).n_agents, env_info(env).obs_dim)
            n += batch.numel()
        assert n >= 2 * frames - B
    finally:
        coll.shutdown()
        env.close()


def policy_module_out(policy, env, obs, mask=None):
    from tensordict import TensorDict

    td = TensorDict({(GROUP, "observation"): obs}, batch_size=obs.shape[:-2])
    if mask is not None:
        td.set((GROUP, "action_mask"), mask)
    return policy(td).get((GROUP, "action"))


def partial_reset(make):
    """Only the sub-envs flagged in '_reset' restart; the others keep their observations."""
    env = make()
    try:
        B = env.batch_size[0]
        assert B >= 2
        td = env.reset()
        policy = random_policy(env)
        for _ in range(3):
            td = env.step(policy(td))
            from torchrl.envs.utils import step_mdp

            td = step_mdp(td)
        before = td.get((GROUP, "observation")).clone()
        flags = torch.zeros(B, 1, dtype=torch.bool)
        flags[0] = True
        td.set("_reset", flags)
        out = env.reset(td)
        after = out.get((GROUP, "observation"))
        assert torch.equal(after[1:], before[1:])
        assert not out.get("done").any()
    finally:
        env.close()


@pytest.fixture
def envcheck():
    return SimpleNamespace(standard=standard, same_seed_same_start=same_seed_same_start, collector=collector,
                           partial_reset=partial_reset, random_policy=random_policy, ps_policy=ps_policy)
