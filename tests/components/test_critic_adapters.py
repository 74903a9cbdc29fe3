"""The critic's strategy per phase (components/phases.py: ``critic_strategy`` / ``schedule.critic_chain``):
``ps -> ps_lora`` on the critic keeps its values exactly at the switch and then trains only the critic's
adapters, as the actor's switch does; settings that cannot work are refused before training."""

import tempfile

import pytest
import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type

from marlshare.components.algorithms.keys import VALUE
from marlshare.components.config import ConfigError, PhaseConfig, ScheduleConfig
from marlshare.components.layers import LowRankLinear
from marlshare.components.trainer import Trainer
from tests.components.test_trainer import ITER, tiny


def critic_lora(critic_strategy=None, critic_chain=None, until=2 * ITER):
    """PS then PS+LoRA (rank 2) for the actor, the critic switched as given."""
    return ScheduleConfig(name="two_phase", critic_chain=critic_chain,
                          phases=[PhaseConfig(until=until), PhaseConfig(strategy={"rank": 2},
                                                                        critic_strategy=critic_strategy)])


def values(trainer, td):
    with torch.no_grad():
        return trainer.critic(td.clone()).get(VALUE)


def rollout(trainer):
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        return trainer.env.rollout(10, trainer.actor, break_when_any_done=False)


def critic_lora_layers(trainer):
    return [m for m in trainer.critic.modules() if isinstance(m, LowRankLinear)]


@pytest.mark.parametrize("alg", ["mappo", "ippo"])  # a centralised critic with the agent id, a local one
def test_the_critic_switch_keeps_values_exactly_and_trains_only_the_adapters(alg, tmp_path):
    cfg = tiny(**{"algorithm.name": alg, "schedule": critic_lora({"name": "ps_lora", "rank": 2, "alpha": 4.0})})
    trainer = Trainer(cfg, run_dir=tmp_path)
    with torch.no_grad():  # a "trained" critic, far from its initialisation
        for p in trainer.critic.parameters():
            p.add_(0.3 * torch.randn_like(p))
    td = rollout(trainer)
    small = td[0, :5]  # as the actor's test: bit for bit on a few samples; on 80, GEMMs of other shapes
    before, before_all = values(trainer, small), values(trainer, td)  # round differently (1 ulp, actor too)
    assert not critic_lora_layers(trainer)
    trainer.enter_phase(1, "test")
    assert torch.equal(values(trainer, small), before)
    torch.testing.assert_close(values(trainer, td), before_all, rtol=1e-6, atol=1e-6)
    layers = critic_lora_layers(trainer)
    assert layers and all(m.rank == 2 and m.alpha == 4.0 for m in layers)
    trainable = {n for n, p in trainer.critic.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable), trainable
    optimised = {id(p) for group in trainer.optimiser.param_groups for p in group["params"]}
    assert all((id(p) in optimised) == p.requires_grad for p in trainer.critic.parameters())
    assert trainer.state.fits["finetune"]["critic_strategy"] == "ps_lora"


def test_fine_tuning_moves_the_critic_adapters_and_never_its_frozen_backbone(tmp_path):
    trainer = Trainer(tiny(schedule=critic_lora(critic_chain=["ps", "ps_lora"])), run_dir=tmp_path)
    trainer.run(max_iterations=2)  # the switch at the end of iteration 2
    assert trainer.state.phase_index == 1 and critic_lora_layers(trainer)
    frozen = {n: p.detach().clone() for n, p in trainer.critic.named_parameters() if not p.requires_grad}
    adapters = {n: p.detach().clone() for n, p in trainer.critic.named_parameters() if p.requires_grad}
    trainer.run()  # two fine-tuning iterations
    state = dict(trainer.critic.named_parameters())
    assert all(torch.equal(state[n], p) for n, p in frozen.items())
    assert any(not torch.equal(state[n], p) for n, p in adapters.items())


def test_a_resumed_run_rebuilds_the_adapted_critic_and_continues_bit_identically(tmp_path):
    from tests.components.test_trainer import assert_same_params, params, rows

    changes = {"schedule": critic_lora("ps_lora")}
    full = Trainer(tiny(**changes), run_dir=tmp_path / "full")
    full.run()
    interrupted = Trainer(tiny(**changes), run_dir=tmp_path / "resumed")
    interrupted.run(max_iterations=3)  # past the switch: the checkpoint holds the adapted critic
    del interrupted
    resumed = Trainer(tiny(resume=str(tmp_path / "resumed")))
    assert resumed.state.phase_index == 1 and critic_lora_layers(resumed)
    resumed.run()
    assert rows(tmp_path / "resumed") == rows(tmp_path / "full")
    assert_same_params(params(resumed), params(full))
    for (n, a), (_, b) in zip(resumed.critic.state_dict().items(), full.critic.state_dict().items()):
        assert torch.equal(a, b), n


@pytest.mark.parametrize("changes,match", [
    ({"algorithm.network.critic_agent_id": False}, r"one value for the team \(critic_agent_id=false\)"),
    ({"algorithm.network.critic_sharing": "nps"}, r"nps -> ps_lora is not a valid phase chain.*critic_sharing='nps'"),
], ids=["team-critic", "nps-critic"])
def test_critics_that_cannot_take_adapters_are_refused_before_training(changes, match):
    with pytest.raises(ConfigError, match=match):
        Trainer(tiny(schedule=critic_lora("ps_lora"), **changes), run_dir=tempfile.mkdtemp())


@pytest.mark.parametrize("schedule,match", [
    (critic_lora("seps_lora"), r"critic_strategy='seps_lora' is not valid; choose one of \['ps', 'nps', 'ps_lora'\]"),
    (critic_lora(critic_chain=["ps_lora", "ps_lora"]), "the first phase's critic is .*critic_sharing='shared'"),
    (critic_lora(critic_chain=["ps"]), r"critic_chain=\['ps'\] needs 2 entries"),
], ids=["not-a-critic-strategy", "first-phase", "chain-length"])
def test_bad_critic_settings_name_the_valid_choices(schedule, match):
    with pytest.raises(ConfigError, match=match):
        Trainer(tiny(schedule=schedule), run_dir=tempfile.mkdtemp())


def test_the_chain_shorthand_and_the_phase_setting_agree():
    a = Trainer(tiny(schedule=critic_lora("ps_lora")), run_dir=tempfile.mkdtemp())
    b = Trainer(tiny(schedule=critic_lora(critic_chain=["ps", "ps_lora"])), run_dir=tempfile.mkdtemp())
    c = Trainer(tiny(schedule=critic_lora()), run_dir=tempfile.mkdtemp())
    assert [s.name for s in a.critic_strategies] == [s.name for s in b.critic_strategies] == ["ps", "ps_lora"]
    assert [s.name for s in c.critic_strategies] == ["ps", "ps"]  # unset: the critic goes on as it is
    assert c.critic_strategies[0] is c.critic_strategies[1]


@pytest.mark.slow
@pytest.mark.parametrize("alg", ["happo", "a2po"])
def test_sequential_algorithms_fine_tune_critic_adapters(alg, tmp_path):
    trainer = Trainer(tiny(**{"algorithm.name": alg, "env.options": {"n_agents": 3},
                              "schedule": critic_lora("ps_lora", until=ITER), "total_frames": 3 * ITER}),
                      run_dir=tmp_path)
    trainer.run()
    assert trainer.state.phase_index == 1 and critic_lora_layers(trainer)
    assert any(m.lora_B.abs().sum() > 0 for m in critic_lora_layers(trainer))  # b_zero init: B moved
