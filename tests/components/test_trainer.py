"""The trainer: determinism, bit-identical resume, the phase switch, fault handling, config errors."""

import copy
import csv
import math

import pytest
import torch

from marlshare.components.algorithms import actor_net
from marlshare.components.checkpoint import load, save_atomic
from marlshare.components.config import PhaseConfig, ScheduleConfig, TrainConfig
from marlshare.components.layers import LowRankLinear
from marlshare.components.trainer import ConfigError, Trainer, TrainingDiverged
from marlshare.components.networks import count_parameters

ITER = 160  # frames per iteration: 8 copies x 20 steps


def tiny(**changes) -> TrainConfig:
    cfg = TrainConfig()
    cfg.env.name, cfg.env.num_envs, cfg.env.eval_num_envs, cfg.env.max_steps = "vmas/navigation", 8, 2, 20
    cfg.env.options = {"n_agents": 2}
    a = cfg.algorithm
    a.frames_per_batch, a.minibatch_size, a.epochs = ITER, 80, 2
    a.network.actor_hidden, a.network.critic_hidden = [16, 16], [16, 16]
    cfg.total_frames, cfg.eval_every, cfg.checkpoint_every = 4 * ITER, 2 * ITER, ITER
    cfg.logger.wandb, cfg.logger.csv, cfg.logger.progress = False, False, False
    # one thread: the bit-for-bit comparisons (resume, the switch) hold at any thread count for the same
    # shapes, but PS and LoRA run GEMMs of different shapes, whose sums split differently over threads
    cfg.threads = 1
    for key, value in changes.items():
        target = cfg
        *path, last = key.split(".")
        for part in path:
            target = getattr(target, part)
        assert hasattr(target, last), f"tiny({key}=...): no such setting"  # a stale key would be ignored
        setattr(target, last, copy.deepcopy(value))
    return cfg


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in ("fps", "wall_time_s")} for r in csv.DictReader(f)]


def params(trainer):
    return {**{f"actor.{k}": v.clone() for k, v in actor_net(trainer.actor).net.state_dict().items()},
            **{f"critic.{k}": v.clone() for k, v in trainer.critic.state_dict().items()}}


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def two_phase(until=2 * ITER, **lora) -> ScheduleConfig:
    """PS (the run's strategy) until ``until``, then its successor with rank-2 adapters."""
    return ScheduleConfig(name="two_phase", phases=[PhaseConfig(until=until), PhaseConfig(strategy={"rank": 2, **lora})])


TWO_PHASE = {"schedule": two_phase()}


@pytest.mark.parametrize("changes", [{}, TWO_PHASE], ids=["single", "two_phase"])
def test_resumed_run_continues_bit_identically(tmp_path, changes):
    full = Trainer(tiny(**changes), run_dir=tmp_path / "full")
    full.run()
    interrupted = Trainer(tiny(**changes), run_dir=tmp_path / "resumed")
    interrupted.run(max_iterations=2)  # stops as a crash would, after the checkpoint of iteration 2
    del interrupted
    resumed = Trainer(tiny(resume=str(tmp_path / "resumed")))
    assert resumed.state.frames == 2 * ITER and resumed.state.phase_index == (1 if changes else 0)
    resumed.run()
    assert rows(tmp_path / "resumed") == rows(tmp_path / "full")  # same losses, returns, for iterations 3-4
    assert_same_params(params(resumed), params(full))


def test_same_seed_same_run_different_seed_different_run(tmp_path):
    a = Trainer(tiny(), run_dir=tmp_path / "a")
    a.run(max_iterations=2)
    b = Trainer(tiny(), run_dir=tmp_path / "b")
    b.run(max_iterations=2)
    assert rows(tmp_path / "a") == rows(tmp_path / "b")
    assert_same_params(params(a), params(b))
    c = Trainer(tiny(seed=1), run_dir=tmp_path / "c")
    c.run(max_iterations=2)
    assert rows(tmp_path / "c") != rows(tmp_path / "a")


def test_phase_switch_keeps_outputs_and_trains_only_adapters(tmp_path):
    trainer = Trainer(tiny(**TWO_PHASE), run_dir=tmp_path)
    trainer.run(max_iterations=2)  # switch happens at the end of iteration 2
    assert trainer.state.phase_index == 1
    net = actor_net(trainer.actor).net
    assert any(isinstance(m, LowRankLinear) for m in net.modules())
    switch = load(tmp_path / "checkpoints" / "phase_switch.pt")
    assert switch["frames"] == 2 * ITER and switch["phase_index"] == 1
    frozen = {k: p.detach().clone() for k, p in net.named_parameters() if not p.requires_grad}
    optimised = {id(p) for group in trainer.optimiser.param_groups for p in group["params"]}
    assert all(id(p) not in optimised for p in net.parameters() if not p.requires_grad)
    assert {id(p) for p in net.parameters() if p.requires_grad} <= optimised
    trainer.run()  # two fine-tuning iterations
    for k, p in net.named_parameters():
        if k in frozen:
            assert torch.equal(p, frozen[k]), f"frozen parameter {k} changed during fine-tuning"
    summary = (tmp_path / "summary.json").read_text()
    assert '"finetune"' in summary and '"ps_lora"' in summary
    counts = count_parameters(net)
    assert counts["trainable"] == 2 * counts["per_agent"]


def test_with_two_threads_the_switch_keeps_outputs_to_float_precision(tmp_path):
    trainer = Trainer(tiny(threads=2, **TWO_PHASE), run_dir=tmp_path)
    obs = torch.randn(64, 2, trainer.info.obs_dim)
    before = actor_net(trainer.actor)(obs)
    trainer.enter_phase(1, "test")
    after = actor_net(trainer.actor)(obs)
    for x, y in zip(before, after):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)


def test_outputs_identical_across_the_switch_and_collector_uses_the_new_network(tmp_path):
    trainer = Trainer(tiny(**TWO_PHASE), run_dir=tmp_path)
    obs = torch.randn(5, 2, trainer.info.obs_dim)
    before = actor_net(trainer.actor)(obs)
    trainer.enter_phase(1, "test")
    after = actor_net(trainer.actor)(obs)
    assert all(torch.equal(x, y) for x, y in zip(before, after))
    with torch.no_grad():  # move the adapters: the collector must act with the new network
        for p in actor_net(trainer.actor).parameters():
            if p.requires_grad:
                p.normal_(0, 0.5)
    from torchrl.collectors import Collector

    collector = Collector(trainer.env, trainer.actor, frames_per_batch=ITER, total_frames=ITER)
    batch = next(iter(collector))
    collector.shutdown()
    loc, _ = actor_net(trainer.actor)(batch["agents", "observation"])
    torch.testing.assert_close(batch["agents", "loc"], loc, rtol=1e-4, atol=1e-4)  # batch shapes differ: rounding only


def test_nonfinite_updates_are_skipped_then_the_run_stops_keeping_the_last_checkpoint(tmp_path, monkeypatch):
    trainer = Trainer(tiny(max_nonfinite=3), run_dir=tmp_path)
    original = trainer.strategy.aux_loss

    def poison(net):
        return torch.tensor(math.nan) if trainer.state.iteration >= 2 else original(net)

    monkeypatch.setattr(trainer.strategy, "aux_loss", poison)
    with pytest.raises(TrainingDiverged, match=r"3 consecutive updates had a non-finite loss.*last\.pt"):
        trainer.run()
    state = load(tmp_path / "checkpoints" / "last.pt")
    assert state["iteration"] == 1  # the last good checkpoint survives


def test_nonfinite_updates_are_logged(tmp_path, monkeypatch):
    trainer = Trainer(tiny(max_nonfinite=100), run_dir=tmp_path)
    calls = {"n": 0}

    def sometimes(net):
        calls["n"] += 1
        return torch.tensor(math.inf) if calls["n"] % 2 else torch.zeros(())

    monkeypatch.setattr(trainer.strategy, "aux_loss", sometimes)
    trainer.run(max_iterations=1)
    assert rows(tmp_path)[1]["skipped_updates"] == "2"  # 4 minibatch steps, every other one poisoned (row 0: frame 0)


def test_atomic_checkpoint_survives_an_interrupted_write(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"iteration": 1}, path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"iteration": 2}, path)
    monkeypatch.undo()
    assert load(path) == {"iteration": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


@pytest.mark.parametrize("changes,match", [
    ({"strategy": {"name": "bogus"}}, r"strategy='bogus'.*'ps', 'nps'"),
    ({"strategy": {"name": "ps_lora", "rank": 0}}, "rank"),
    ({"algorithm.name": "ddpg"}, r"algorithm='ddpg'.*'mappo', 'ippo'"),
    ({"schedule.chain": ["ps", "bogus"]}, r"schedule.chain: strategy 'bogus' is not valid; choose from \['ps'"),
    ({"schedule.chain": ["nps", "ps_lora"], "schedule.switch_at": ITER},
     r"nps -> ps_lora is not a valid phase chain; after nps choose one of \['nps'\]"),
    ({"schedule": two_phase(until=10 * ITER)}, r"until=1600 must be a frame count in \(0, total_frames=640\)"),
    ({"schedule": two_phase(rank=0)}, r"schedule phase 1 \(ps_lora\): ps_lora: rank must be a positive integer"),
    ({**TWO_PHASE, "strategy": {"name": "nps"}}, r"'nps' declares no default successor.*one of \['nps'\]"),
    ({"schedule": two_phase(layers=["conv"])}, "LoRA layers must be 'all' or a non-empty list"),
    ({"schedule": two_phase(until=None)}, r"schedule phase 0 \(ps\) needs an end: until=<frames>"),
    ({"schedule.switch_at": [ITER, 2 * ITER]}, r"needs 0 frame count\(s\).*1-phase schedule"),
    ({"schedule": two_phase(), "schedule.phases": [PhaseConfig(until=ITER), PhaseConfig(lr=-1.0)]},
     r"schedule phase 1: lr=-1.0 must be a positive number"),
    ({"algorithm.frames_per_batch": 100}, "multiple of env.num_envs=8"),
    ({"algorithm.lr": -1.0}, r"algorithm.lr=-1.0 must be > 0"),
])
def test_invalid_configs_fail_at_start_with_one_clear_message(tmp_path, changes, match):
    with pytest.raises(ConfigError, match=match):
        Trainer(tiny(**changes), run_dir=tmp_path)


def test_unknown_env_fails_listing_valid_names(tmp_path):
    with pytest.raises(ConfigError, match="valid scenarios"):
        Trainer(tiny(**{"env.name": "vmas/nowhere"}), run_dir=tmp_path)
    with pytest.raises(ConfigError, match="valid families"):
        Trainer(tiny(**{"env.name": "atari/pong"}), run_dir=tmp_path)


@pytest.mark.parametrize("name,hp", [("ippo", {}), ("mappo", {"algorithm.network.critic_sharing": "nps"})])
def test_ippo_and_nps_critic_train(tmp_path, name, hp):
    trainer = Trainer(tiny(**{"algorithm.name": name, **hp}), run_dir=tmp_path)
    trainer.run(max_iterations=1)
    assert math.isfinite(float(rows(tmp_path)[1]["loss_critic"]))  # row 0: the frame-0 evaluation


@pytest.mark.parametrize("strategy", [{"name": "prism"}, {"name": "seps", "clusters": [0, 1]}, {"name": "mtl"}])
def test_other_strategies_train(tmp_path, strategy):
    trainer = Trainer(tiny(strategy=strategy), run_dir=tmp_path)
    trainer.run(max_iterations=1)
    row = rows(tmp_path)[1]  # row 0: the frame-0 evaluation
    assert math.isfinite(float(row["loss_objective"]))
    if strategy["name"] == "prism":
        assert float(row["loss_aux"]) != 0.0


def test_discrete_actions_train(tmp_path):
    trainer = Trainer(tiny(**{"env.options": {"n_agents": 2, "continuous_actions": False}}), run_dir=tmp_path)
    assert trainer.info.discrete
    trainer.run(max_iterations=1)
    assert math.isfinite(float(rows(tmp_path)[1]["loss_objective"]))  # row 0: the frame-0 evaluation


def test_recurrent_actor_trains_on_chunks_and_resumes_bit_identically(tmp_path):
    changes = {"algorithm.network.recurrent": True, "algorithm.chunk_length": 10, **TWO_PHASE}
    full = Trainer(tiny(**changes), run_dir=tmp_path / "full")
    assert full.update.minibatches.size == 8  # 80 frames per minibatch = 8 chunks of 10 steps
    full.run()
    net = actor_net(full.actor).net
    assert net.recurrent and any(isinstance(m, LowRankLinear) and m.role == "gru_hh" for m in net.modules())
    interrupted = Trainer(tiny(**changes), run_dir=tmp_path / "resumed")
    interrupted.run(max_iterations=3)
    resumed = Trainer(tiny(resume=str(tmp_path / "resumed")))
    resumed.run()
    assert rows(tmp_path / "resumed") == rows(tmp_path / "full")
    assert_same_params(params(resumed), params(full))


def test_recurrent_chunks_must_divide_the_rollout(tmp_path):
    with pytest.raises(ConfigError, match="chunk_length=7 must divide"):
        Trainer(tiny(**{"algorithm.network.recurrent": True, "algorithm.chunk_length": 7}), run_dir=tmp_path)


def test_evaluation_does_not_disturb_training(tmp_path):
    """Evaluating every iteration or only at the end gives the same training run."""
    often = Trainer(tiny(eval_every=ITER), run_dir=tmp_path / "often")
    often.run()
    rarely = Trainer(tiny(eval_every=10 * ITER), run_dir=tmp_path / "rarely")
    rarely.run()
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("eval_return", "win_rate")} for r in rs]
    assert strip(rows(tmp_path / "often")) == strip(rows(tmp_path / "rarely"))
    assert_same_params(params(often), params(rarely))
    assert sum(r["eval_return"] != "" for r in rows(tmp_path / "often")) == 5  # frame 0, then every iteration


def test_each_phase_trains_with_its_own_learning_rates_clip_and_entropy(tmp_path):
    schedule = ScheduleConfig(phases=[PhaseConfig(until=2 * ITER),
                                      PhaseConfig(strategy={"rank": 2}, lr=1e-3, critic_lr=5e-5, clip_epsilon=0.05,
                                                  entropy_coeff=0.01)])
    trainer = Trainer(tiny(schedule=schedule, **{"algorithm.lr": 3e-4}), run_dir=tmp_path)
    assert [g["lr"] for g in trainer.optimiser.param_groups] == [3e-4, 3e-4]
    assert trainer.loss.clip_epsilon.item() == pytest.approx(0.2)
    trainer.run(max_iterations=2)  # the switch to the fine-tuning phase happens here
    assert trainer.state.phase_index == 1
    assert [g["lr"] for g in trainer.optimiser.param_groups] == [1e-3, 5e-5]
    assert trainer.loss.clip_epsilon.item() == pytest.approx(0.05)
    assert trainer.loss.entropy_coeff.item() == pytest.approx(0.01)
    actor = {id(p) for p in actor_net(trainer.actor).net.parameters() if p.requires_grad}
    assert {id(p) for p in trainer.optimiser.param_groups[0]["params"]} == actor  # the adapters, at lr 1e-3
    before = {k: v.clone() for k, v in params(trainer).items() if k.startswith("actor.") and "lora_A" in k}
    trainer.run(max_iterations=1)
    moved = max((params(trainer)[k] - v).abs().max().item() for k, v in before.items())
    assert 0 < moved <= 1e-3 * 2 * 1.01  # Adam moves each weight by at most ~lr per step (2 steps)


@pytest.mark.parametrize("sharing,stacked", [("shared", False), ("nps", True)])
def test_critic_sharing_gives_a_shared_or_per_agent_critic(tmp_path, sharing, stacked):
    from marlshare.components.layers import StackedLinear

    trainer = Trainer(tiny(**{"algorithm.network.critic_sharing": sharing}), run_dir=tmp_path)
    layers = [m for m in trainer.critic.modules() if hasattr(m, "param_sharing") and hasattr(m, "weight")]
    assert layers and all(isinstance(m, StackedLinear) == stacked for m in layers)
    if stacked:  # each agent's value head is its own: changing agent 0's weights moves only agent 0's value
        td = trainer.env.reset()
        with torch.no_grad():
            v0 = trainer.critic(td.clone())["agents", "state_value"]
            layers[-1].bias[0] += 1.0
            v1 = trainer.critic(td.clone())["agents", "state_value"]
        assert torch.allclose(v1[..., 0, :] - v0[..., 0, :], torch.ones(1)) and torch.equal(v1[..., 1, :], v0[..., 1, :])


def test_resume_restores_the_automatic_rule_with_its_streak(tmp_path):
    schedule = ScheduleConfig(name="two_phase_auto", phases=[PhaseConfig(until=3 * ITER, auto=True),
                                                             PhaseConfig(strategy={"rank": 2})])
    trainer = Trainer(tiny(schedule=schedule), run_dir=tmp_path)
    trainer.run(max_iterations=1)
    trainer.state.auto_switch._streak = 1  # one evaluation into the rule's patience
    trainer.state.auto_switch.history.append((12345, 0.5))
    trainer.save_checkpoint("last")
    resumed = Trainer(tiny(resume=str(tmp_path)))
    assert resumed.state.auto_switch is not None and resumed.state.auto_switch._streak == 1
    assert resumed.state.auto_switch.history == trainer.state.auto_switch.history and resumed.state.auto_switch.max_frames == 3 * ITER


def test_load_run_rebuilds_any_checkpoints_actor(tmp_path):
    from marlshare.components.runs import load_run

    trainer = Trainer(tiny(**TWO_PHASE), run_dir=tmp_path)
    trainer.run()
    obs = torch.randn(3, 2, trainer.info.obs_dim)
    final = load_run(tmp_path)
    assert final.strategy.name == "ps_lora" and [s.name for s in final.strategies] == ["ps", "ps_lora"]
    for a, b in zip(final.net(obs), actor_net(trainer.actor).net(obs)):
        assert torch.equal(a, b)
    switch = load_run(tmp_path, "phase_switch")
    assert switch.state["frames"] == 2 * ITER and switch.strategy.name == "ps_lora"
    with pytest.raises(FileNotFoundError, match=r"this run has \['best', 'last', 'last.1', 'phase_switch'\]"):
        load_run(tmp_path, "nope")


def test_reference_network_settings_reach_the_actor(tmp_path):
    plain = Trainer(tiny(), run_dir=tmp_path / "plain")
    ref = Trainer(tiny(**{"algorithm.network.layer_norm": True, "algorithm.network.std_mapping": "sigmoid", "algorithm.network.head_gain": 0.01}),
                  run_dir=tmp_path / "ref")
    norms = lambda t: [m for m in actor_net(t.actor).net.modules() if isinstance(m, torch.nn.LayerNorm)]  # noqa: E731
    assert not norms(plain) and len(norms(ref)) == 3  # the input and both hidden layers
    obs = torch.randn(64, 2, ref.info.obs_dim)
    _, scale = actor_net(ref.actor).net(obs)
    assert (scale <= 0.5).all()  # sigmoid(p) * 0.5
    head = actor_net(ref.actor).net.head.layer.weight
    assert head.abs().max() < 0.05 < actor_net(plain.actor).net.head.layer.weight.abs().max()
