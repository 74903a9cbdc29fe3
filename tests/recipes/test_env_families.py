"""Smoke training through the recipe for one env per family: a couple of iterations each."""

import math

import pytest

from marlshare.components.trainer import Trainer
from marlshare.recipes.train import compose

SMOKE = ["schedule=single", "logger=csv", "logger.progress=false", "algorithm.epochs=1",
         "algorithm.network.actor_hidden=[32,32]", "algorithm.network.critic_hidden=[32,32]", "env.eval_num_envs=2",
         "env.eval_max_steps=50"]

FAMILIES = [
    # env name, copies, steps per copy per iteration, extra overrides
    ("mamujoco/halfcheetah-2x3", 2, 50, ["env.max_steps=50"]),
    ("mamujoco/humanoid-9_8", 2, 20, ["env.max_steps=20"]),
    ("smax/3s5z", 8, 20, []),
    ("pettingzoo/simple_spread", 4, 25, ["env.max_steps=25"]),
    ("lbf/8x8-2p-2f-coop", 4, 25, ["env.max_steps=25"]),
    ("rware/tiny-2ag", 2, 25, ["env.max_steps=25"]),
]


@pytest.mark.parametrize("name,copies,steps,extra", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_family_trains_through_the_recipe(tmp_path, name, copies, steps, extra):
    frames = copies * steps
    cfg = compose([f"env={name}", f"env.num_envs={copies}", f"algorithm.frames_per_batch={frames}",
                   f"algorithm.minibatch_size={frames // 2}", f"total_frames={2 * frames}",
                   f"eval_every={2 * frames}", *SMOKE, *extra])
    summary = Trainer(cfg, run_dir=tmp_path).run()
    assert summary["frames"] == 2 * frames and summary["iterations"] == 2
    assert math.isfinite(summary["final_eval_return"])
    if name.startswith("smax/"):
        assert 0.0 <= summary["win_rate"] <= 1.0
