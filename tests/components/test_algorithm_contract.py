"""The algorithm registry's contract, for every registered algorithm and for one added through the
registry alone: its declarations are well formed, it builds its critic, loss and update for a tiny
env, one update moves the actor, and the trainer runs it for two iterations."""

import dataclasses
import inspect
import tempfile

import pytest
import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import ClipPPOLoss

from marlshare.components.algorithms import ALGORITHMS, actor_net, ppo_settings
from marlshare.components.algorithms.algorithm import Algorithm
from marlshare.components.algorithms.happo import HAPPO, HAPPOUpdate
from marlshare.components.algorithms.losses import ReferencePPOLoss
from marlshare.components.algorithms.ppo import CRITICS
from marlshare.components.algorithms.update import PPOUpdate
from marlshare.components.config import AlgorithmConfig
from marlshare.components.trainer import Trainer
from tests.components.test_trainer import ITER, tiny


class ReversedHAPPOUpdate(HAPPOUpdate):
    def draw_order(self, advantage, value):
        return list(reversed(range(advantage.shape[-2])))


class ReversedHAPPO(HAPPO):
    """A throwaway algorithm that exists only through the registry: HAPPO with its turns in reverse order."""

    name = "happo_reversed"
    update = ReversedHAPPOUpdate


NAMES = list(ALGORITHMS) + [ReversedHAPPO.name]


@pytest.fixture(params=NAMES)
def algorithm(request, monkeypatch) -> str:
    """A registered algorithm's name; the throwaway one is registered for the test only."""
    if request.param not in ALGORITHMS:
        monkeypatch.setitem(ALGORITHMS, ReversedHAPPO.name, ReversedHAPPO)
    return request.param


def _rollout(trainer):
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        return trainer.env.rollout(20, trainer.actor, break_when_any_done=False)


def test_the_declarations_are_well_formed(algorithm):
    cls = ALGORITHMS[algorithm]
    assert issubclass(cls, Algorithm) and cls.name == algorithm
    assert cls.critic in CRITICS
    assert issubclass(cls.update, PPOUpdate) and isinstance(cls.compiles, bool)
    assert issubclass(cls.loss, ClipPPOLoss)
    if cls.settings is not None:  # its own settings: a dataclass the update takes as keyword arguments
        assert dataclasses.is_dataclass(cls.settings)
        options = cls.update_options(AlgorithmConfig())
        assert options == dataclasses.asdict(cls.settings()) and options
        assert set(options) <= set(inspect.signature(cls.update.__init__).parameters)


def test_an_algorithm_builds_its_parts_and_one_update_moves_the_actor(algorithm):
    cls = ALGORITHMS[algorithm]
    trainer = Trainer(tiny(**{"algorithm.name": algorithm, "env.options": {"n_agents": 3}}), run_dir=tempfile.mkdtemp())
    a = trainer.cfg.algorithm
    critic = cls.make_critic(trainer.info, a.network.critic_sharing, tuple(a.network.critic_hidden),
                             a.network.activation)
    loss = cls.make_loss(trainer.actor, critic, ppo_settings(a, trainer.plan))
    assert type(loss) is cls.loss  # no reference value-loss detail on: the declared class itself
    events = []
    update = cls.make_update(a, 1, on_nonfinite=events.append, on_finite=lambda: events.append("ok"))
    assert type(update) is cls.update
    holder = actor_net(trainer.actor)
    actor_params = [p for p in holder.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam([*actor_params, *critic.parameters()], lr=1e-3)
    before = [p.detach().clone() for p in actor_params]
    row = update(_rollout(trainer), loss, optimiser, actor_params + list(critic.parameters()), lambda: 0.0, holder)
    assert row["skipped_updates"] == 0 and set(events) == {"ok"}
    assert all(torch.isfinite(torch.tensor(row[k])) for k in ("loss_objective", "loss_critic", "grad_norm"))
    assert any(not torch.equal(b, p) for b, p in zip(before, actor_params))


def test_a_reference_value_loss_detail_gives_a_reference_loss(algorithm):
    trainer = Trainer(tiny(**{"algorithm.name": algorithm, "algorithm.huber_delta": 10.0}), run_dir=tempfile.mkdtemp())
    assert isinstance(trainer.loss, ReferencePPOLoss) and isinstance(trainer.loss, ALGORITHMS[algorithm].loss)


def test_two_iterations_through_the_trainer(algorithm):
    cls = ALGORITHMS[algorithm]
    trainer = Trainer(tiny(**{"algorithm.name": algorithm, "env.options": {"n_agents": 3}, "total_frames": 2 * ITER}),
                      run_dir=tempfile.mkdtemp())
    assert type(trainer.update) is cls.update
    before = {k: v.clone() for k, v in actor_net(trainer.actor).net.state_dict().items()}
    trainer.run()
    summary = trainer.summary()
    assert summary["iterations"] == 2 and summary["algorithm"] == algorithm
    after = actor_net(trainer.actor).net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    if cls is ReversedHAPPO:  # the throwaway algorithm's own update ran
        assert trainer.update.last_order == [2, 1, 0]



@pytest.mark.parametrize("name", NAMES)
def test_every_registered_algorithm_is_a_command_line_choice(name, monkeypatch):
    """``algorithm=NAME`` composes for every registry entry, the throwaway one included, with no preset
    file: the presets are made from the registry (recipes/compose.py)."""
    from marlshare.recipes import cli, compose

    if name == ReversedHAPPO.name:
        from hydra.core.config_store import ConfigStore

        monkeypatch.setitem(ALGORITHMS, ReversedHAPPO.name, ReversedHAPPO)
        compose.register_configs()
        # re-set through monkeypatch so the throwaway's preset leaves the ConfigStore with the test
        # (other tests' choice lists stay those of the real registry)
        presets = ConfigStore.instance().repo["algorithm"]
        monkeypatch.setitem(presets, f"{name}.yaml", presets.pop(f"{name}.yaml"))
    assert not (compose.CONF_DIR / "algorithm" / f"{name}.yaml").exists()
    cfg = compose.compose([f"algorithm={name}"])
    assert cfg.algorithm.name == name and cfg.algorithm.epochs == AlgorithmConfig().epochs
    assert name in cli.presets("algorithm")
