"""The lean VMAS step (envs/vmas.py: LeanVmasEnv) returns what TorchRL's own VmasEnv returns, bit for bit,
and reaches no attribute through the wrapper's ``__getattr__`` (two ``dir()`` calls each)."""

import pytest
import torch
from torchrl.envs.libs.vmas import VmasEnv
from torchrl.envs.utils import check_env_specs

from marlshare.envs import vmas


def _rollout(lean, task, steps=30, **options):
    env = vmas.make(task, num_envs=4, seed=3, max_steps=7, lean=lean, **options)
    torch.manual_seed(0)  # the same random actions on both sides
    return env, env.rollout(steps, break_when_any_done=False)


@pytest.mark.parametrize("task,options", [("navigation", {"n_agents": 3}), ("balance", {"n_agents": 2}),
                                          ("discovery", {})])
def test_the_lean_step_returns_torchrls_output_bit_for_bit(task, options):
    lean_env, lean = _rollout(True, task, **options)
    torchrl_env, reference = _rollout(False, task, **options)
    assert type(lean_env) is vmas.LeanVmasEnv and type(torchrl_env) is VmasEnv and lean_env.lean()
    assert set(lean.keys(True, True)) == set(reference.keys(True, True))
    for key in reference.keys(True, True):
        a, b = lean.get(key), reference.get(key)
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), key
    assert reference["next", "done"].any()  # resets happened within the rollout (max_steps=7)
    check_env_specs(lean_env)


def test_the_lean_step_reaches_nothing_through_getattr(monkeypatch):
    from torchrl.envs.common import _EnvWrapper

    reached = []
    original = _EnvWrapper.__getattr__
    monkeypatch.setattr(_EnvWrapper, "__getattr__", lambda self, attr: reached.append(attr) or original(self, attr))
    for lean in (True, False):
        env = vmas.make("navigation", num_envs=2, seed=0, n_agents=2, lean=lean)
        td = env.reset()
        reached.clear()
        for _ in range(3):
            td.update(env.full_action_spec.rand())
            _, td = env.step_and_maybe_reset(td)
        assert reached == ([] if lean else ["continuous_actions", "n_agents"] * 3)
