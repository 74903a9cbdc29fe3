"""TorchRL's own MAPPO example loop (``sota-implementations/multiagent/mappo_ippo.py`` with its
``mappo_ippo.yaml``) against marlshare at the same settings, frames/s on one device.

    python -m tools.torchrl_mappo_ref --device cuda                       # both, 4 iterations each
    python -m tools.torchrl_mappo_ref --device cpu --frames 6000 --envs 60 --minibatch 400 --epochs 2 --iters 2

The TorchRL side is the example's loop as it runs with logging and evaluation off: ``VmasEnv`` plus
``RewardSum``, a ``MultiAgentMLP`` actor (shared, 2 x 256 tanh, ``NormalParamExtractor``,
``TanhNormal``) and a centralised shared ``MultiAgentMLP`` critic, a ``Collector`` whose postproc
expands the done flags to the agents, a ``TensorDictReplayBuffer`` with ``SamplerWithoutReplacement``
over the batch, ``ClipPPOLoss`` with GAE, ``num_epochs x frames_per_batch // minibatch_size`` steps of
loss, backward, ``clip_grad_norm_`` over every loss parameter, ``Adam.step``. Its settings: balance
with 3 agents, 100 steps per episode, 60000 frames per batch (600 envs), 45 epochs, minibatches of 4096,
lr 5e-5, max_grad_norm 40, gamma 0.9, lmbda 0.9, no entropy term. The marlshare side trains
``--preset``'s settings translated to marlshare's keys (:func:`marlshare_overrides`) with the
``Trainer``; marlshare's own defaults (compile ``auto``, fused Adam, precision) stay as they are.

Both sides time the same thing: the wall time between the ends of consecutive PPO updates
(``tools/peer/_measure.py``), frames/s over iterations 2..K. Each prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from tools.peer import _measure


def _expand_done(td):
    """The example's done postproc: ``("next", "done")`` / ``terminated`` ``[*B, 1]`` copied to
    ``("next", "agents", ...)`` with the reward's shape ``[*B, N, 1]``, which GAE reads per agent."""
    reward = td.get(("next", "agents", "reward"))
    for key in ("done", "terminated"):
        flag = td.get(("next", key))
        td.set(("next", "agents", key), flag.unsqueeze(-1).expand(reward.shape))
    return td


def torchrl_loop(args) -> dict:
    from tensordict.nn import TensorDictModule
    from tensordict.nn.distributions import NormalParamExtractor
    from torch import nn
    from torchrl.collectors import Collector
    from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
    from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
    from torchrl.envs import RewardSum, TransformedEnv
    from torchrl.envs.libs.vmas import VmasEnv
    from torchrl.modules import ProbabilisticActor, TanhNormal, ValueOperator
    from torchrl.modules.models.multiagent import MultiAgentMLP
    from torchrl.objectives import ClipPPOLoss, ValueEstimators

    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    env = VmasEnv(scenario="balance", num_envs=args.envs, continuous_actions=True, max_steps=args.max_steps,
                  device=device, seed=args.seed, n_agents=args.n_agents)
    env = TransformedEnv(env, RewardSum(in_keys=[env.reward_key], out_keys=[("agents", "episode_reward")]))
    obs_dim = env.observation_spec["agents", "observation"].shape[-1]
    act_spec = env.full_action_spec_unbatched["agents", "action"]

    def mlp(outputs, centralised):
        return MultiAgentMLP(n_agent_inputs=obs_dim, n_agent_outputs=outputs, n_agents=args.n_agents,
                             centralised=centralised, share_params=True, device=device, depth=2,
                             num_cells=args.hidden, activation_class=nn.Tanh)

    actor = nn.Sequential(mlp(2 * act_spec.shape[-1], False), NormalParamExtractor())
    policy = ProbabilisticActor(
        TensorDictModule(actor, in_keys=[("agents", "observation")], out_keys=[("agents", "loc"), ("agents", "scale")]),
        spec=env.full_action_spec_unbatched, in_keys=[("agents", "loc"), ("agents", "scale")],
        out_keys=[env.action_key], distribution_class=TanhNormal,
        distribution_kwargs={"low": act_spec.space.low, "high": act_spec.space.high}, return_log_prob=True)
    critic = ValueOperator(module=mlp(1, True), in_keys=[("agents", "observation")])
    collector = Collector(env, policy, device=device, storing_device=device, frames_per_batch=args.frames,
                          total_frames=args.frames * args.iters, postproc=_expand_done)
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(args.frames, device=device),
                                    sampler=SamplerWithoutReplacement(), batch_size=args.minibatch)
    loss = ClipPPOLoss(actor_network=policy, critic_network=critic, clip_epsilon=0.2, entropy_coeff=0.0,
                       normalize_advantage=False)
    loss.set_keys(reward=env.reward_key, action=env.action_key, done=("agents", "done"),
                  terminated=("agents", "terminated"))
    loss.make_value_estimator(ValueEstimators.GAE, gamma=0.9, lmbda=0.9)
    optim = torch.optim.Adam(loss.parameters(), args.lr)
    clock = _measure.IterationClock()
    clock.start()
    for batch in collector:
        with torch.no_grad():
            loss.value_estimator(batch, params=loss.critic_network_params,
                                 target_params=loss.target_critic_network_params)
        buffer.extend(batch.reshape(-1))
        for _ in range(args.epochs):
            for _ in range(args.frames // args.minibatch):
                out = loss(buffer.sample())
                (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()
                torch.nn.utils.clip_grad_norm_(loss.parameters(), 40.0)
                optim.step()
                optim.zero_grad()
        collector.update_policy_weights_()
        if device.type == "cuda":
            torch.cuda.synchronize()
        done = batch.get(("next", "agents", "done"))
        ret = batch.get(("next", "agents", "episode_reward"))[done].mean().item() if done.any() else float("nan")
        clock.mark(ret)
    collector.shutdown()
    return clock.result(args.frames)


def marlshare_overrides(args) -> list[str]:
    """The example's settings in marlshare's keys (MAPPO-PS, one team value per sample, no agent id)."""
    hidden = f"[{args.hidden},{args.hidden}]"
    return ["env=vmas/balance", f"env.options.n_agents={args.n_agents}", f"env.num_envs={args.envs}",
            f"env.max_steps={args.max_steps}", "strategy=ps", "strategy.append_id=false", "schedule=single",
            f"algorithm.frames_per_batch={args.frames}", f"algorithm.epochs={args.epochs}",
            f"algorithm.minibatch_size={args.minibatch}", f"algorithm.lr={args.lr}", "algorithm.max_grad_norm=40",
            "algorithm.gamma=0.9", "algorithm.lmbda=0.9", "algorithm.entropy_coeff=0",
            "algorithm.reset_each_iteration=false", f"algorithm.network.actor_hidden={hidden}",
            f"algorithm.network.critic_hidden={hidden}", "algorithm.network.activation=tanh",
            "algorithm.network.critic_agent_id=false", f"algorithm.precision={args.precision}",
            f"device={args.device}", f"seed={args.seed}", f"total_frames={args.frames * args.iters}",
            f"eval_every={args.frames * args.iters * 10}", "logger=csv", "logger.progress=false",
            "checkpoint_every=0"] + list(args.override)


def marlshare_loop(args) -> dict:
    import tempfile

    from marlshare.components.trainer import Trainer
    from marlshare.recipes.train import compose
    from tools.peer.marlshare_run import Timed

    clock = _measure.IterationClock()
    trainer = Trainer(compose(marlshare_overrides(args)), run_dir=tempfile.mkdtemp(prefix="torchrl_ref_"))
    trainer.update = Timed(trainer.update, clock)
    clock.start()
    trainer.run()
    return clock.result(args.frames) | {"compile": trainer.update.compile, "precision": trainer.update.precision}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", choices=["both", "torchrl", "marlshare"], default="both")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=60_000, help="frames per batch (the example: 60000)")
    parser.add_argument("--envs", type=int, default=None, help="env copies (default frames / max_steps, as the example)")
    parser.add_argument("--max_steps", type=int, default=100)
    parser.add_argument("--n_agents", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=45)
    parser.add_argument("--minibatch", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--iters", type=int, default=4, help="iterations per side (frames/s over 2..K)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="fp32", help="marlshare's algorithm.precision")
    parser.add_argument("--override", nargs="*", default=[], help="more marlshare overrides (key=value)")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    args.envs = args.envs or args.frames // args.max_steps
    result = {"device": args.device, "settings": {k: v for k, v in vars(args).items() if k != "out"}}
    if torch.device(args.device).type == "cuda":
        result["card"] = torch.cuda.get_device_name()
    for side, loop in (("torchrl", torchrl_loop), ("marlshare", marlshare_loop)):
        if args.library in ("both", side):
            start = time.perf_counter()
            result[side] = loop(args)
            result[side]["wall_s"] = time.perf_counter() - start
            print(f"{side:9s} {result[side]['fps']:10.0f} frames/s (iterations 2..{result[side]['iterations']}; "
                  f"first {result[side]['first_iteration_s']:.1f} s)", flush=True)
    if "torchrl" in result and "marlshare" in result:
        result["ratio"] = result["marlshare"]["fps"] / result["torchrl"]["fps"]
        print(f"marlshare / TorchRL example: {result['ratio']:.2f}x frames/s", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, default=str)
    _measure.emit(result)
    return result


if __name__ == "__main__":
    main()
