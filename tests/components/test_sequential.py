"""Sequential agent-by-agent updates (HAPPO, A2PO): equal to MAPPO with one agent, HAPPO's correction
factor, only the agent in its turn moves its parameters and Adam state, every strategy trains."""

import tempfile

import pytest
import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type

from marlshare.components.algorithms import actor_net
from marlshare.components.algorithms.a2po import A2POUpdate
from marlshare.components.algorithms.happo import HAPPOUpdate
from marlshare.components.algorithms.sequential import SliceGuard, SequentialUpdate, agent_rows
from marlshare.components.layers import IndexedLinear, StackedLinear
from marlshare.components.strategies import STRATEGIES as STRATEGIES_REGISTRY
from marlshare.components.trainer import Trainer
from tests.components.helpers import strategy_for
from tests.components.test_trainer import ITER, params, tiny, two_phase


def rollout(trainer):
    """A batch as the collector gives it (stochastic actions), ``[envs, 20]``."""
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        return trainer.env.rollout(20, trainer.actor, break_when_any_done=False)


def trained(alg, strategy="ps", iterations=2, **changes):
    cfg = tiny(**{"algorithm.name": alg, "strategy": {"name": strategy} if isinstance(strategy, str) else strategy,
                  "total_frames": iterations * ITER, **changes})
    trainer = Trainer(cfg, run_dir=tempfile.mkdtemp())
    trainer.run()
    return trainer


@pytest.mark.parametrize("alg", ["happo", "a2po"])
@pytest.mark.parametrize("strategy,recurrent", [("ps", False), ("nps", True)], ids=["ps-mlp", "nps-gru"])
def test_with_one_agent_the_sequential_update_is_mappo_bit_for_bit(alg, strategy, recurrent):
    one = {"env.options": {"n_agents": 1}, "algorithm.network.recurrent": recurrent, "algorithm.chunk_length": 5}
    mappo, seq = trained("mappo", strategy, **one), trained(alg, strategy, **one)
    assert isinstance(seq.update, SequentialUpdate)
    a, b = params(mappo), params(seq)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_happo_factor_is_the_product_of_the_preceding_agents_ratios():
    torch.manual_seed(0)
    trainer = Trainer(tiny(**{"algorithm.name": "happo", "strategy": {"name": "nps"}, "env.options": {"n_agents": 3}}),
                      run_dir=tempfile.mkdtemp())
    batch = rollout(trainer)
    holder = actor_net(trainer.actor)
    seen, draw = [], trainer.update.minibatches.next
    forward = trainer.loss.forward

    def recording_draw():
        index = draw()
        seen.append(index)
        return index

    def recording_forward(td):
        seen.append(td["advantage"].clone())
        return forward(td)

    trainer.update.minibatches.next = recording_draw
    trainer.loss.forward = recording_forward
    trainer.update(batch, trainer.loss, trainer.optimiser, trainer.trainable, lambda: 0.0, holder)
    order, factor = trainer.update.last_order, trainer.update.last_factor
    items = batch.reshape(-1)
    # the last agent's turn learns from the advantage times the factor
    index, advantage = seen[-2], seen[-1]
    assert torch.equal(advantage, items["advantage"][index] * factor[index])
    with torch.no_grad():  # NPS: an agent's policy does not change after its turn, so its final ratio is its ratio then
        new = trainer.loss._get_cur_log_prob(items.copy())[0]
    old = items["agents", "action_log_prob"]
    expected = torch.ones(new.shape[:-1])
    for k in order[:-1]:
        expected = expected * (new[..., k] - old[..., k]).exp()
    assert factor.shape == (items.shape[0], 1, 1)
    assert (expected - 1).abs().max() > 1e-3  # the agents did move
    torch.testing.assert_close(factor[:, 0, 0], expected, rtol=1e-5, atol=1e-6)


def test_a2po_multiplies_the_ratio_by_the_clipped_joint_ratio_of_the_preceding_agents():
    trainer = Trainer(tiny(**{"algorithm.name": "a2po", "strategy": {"name": "nps"}, "env.options": {"n_agents": 3}}),
                      run_dir=tempfile.mkdtemp())
    batch = rollout(trainer)
    trainer.update(batch, trainer.loss, trainer.optimiser, trainer.trainable, lambda: 0.0,
                   actor_net(trainer.actor))  # the policy moves away from the one that collected
    loss, td = trainer.loss, batch.reshape(-1)[:40]  # GAE wrote the advantage into the batch
    shape = td["advantage"].shape[:-1]
    with torch.no_grad():
        plain = loss._log_weight(td, shape)[0]  # [B, 3, 1]
        joint = (plain[:, 0] + plain[:, 2]).exp()
        assert (joint - 1).abs().max() > 1e-3
        for clip in (0.5, 1e-4):
            loss.correction = (torch.tensor([0, 2]), clip)
            corrected = loss._log_weight(td, shape)[0]
            loss.correction = None
            expected = plain + joint.clamp(1 - clip, 1 + clip).log().unsqueeze(1)
            torch.testing.assert_close(corrected, expected)


def test_a2po_corrects_each_turn_with_exactly_the_agents_before_it(monkeypatch):
    """Through the update: every loss evaluation of the k-th turn carries the k agents before it in the
    order, and the log-ratio it returns is the plain one plus the log of their clipped joint ratio."""
    trainer = Trainer(tiny(**{"algorithm.name": "a2po", "strategy": {"name": "nps"}, "env.options": {"n_agents": 3},
                              "algorithm.epochs": 3}), run_dir=tempfile.mkdtemp())
    loss, update, turns, seen = trainer.loss, trainer.update, [], []
    log_weight, turn = loss._log_weight, update._turn
    clip = trainer.cfg.algorithm.a2po.others_clip

    def spy(td, adv_shape):
        out = log_weight(td, adv_shape)
        correction, loss.correction = loss.correction, None
        with torch.no_grad():
            plain = log_weight(td, adv_shape)[0]
        loss.correction = correction
        preceding = [] if correction is None else correction[0].tolist()
        joint = plain[:, preceding].sum(1).exp() if preceding else torch.ones_like(plain[:, 0])
        torch.testing.assert_close(out[0].detach(), plain + joint.clamp(1 - clip, 1 + clip).log().unsqueeze(1))
        seen.append((len(turns) - 1, preceding, float((joint - 1).abs().max())))
        return out

    monkeypatch.setattr(loss, "_log_weight", spy)
    monkeypatch.setattr(update, "_turn", lambda *args: turns.append(args[7]) or turn(*args))
    update(rollout(trainer), loss, trainer.optimiser, trainer.trainable, lambda: 0.0, actor_net(trainer.actor))
    order = update.last_order
    assert turns == order and len(order) == 3
    assert {k for k, _, _ in seen} == {0, 1, 2}
    for k, preceding, _ in seen:
        assert preceding == order[:k], (k, preceding, order)
    assert max(moved for k, _, moved in seen if k == 2) > 1e-3  # the preceding agents' policies did move
    assert loss.correction is None  # reset after the update


@pytest.mark.parametrize("name", list(STRATEGIES_REGISTRY))
def test_a2po_divides_a_turns_epochs_only_where_cluster_shared_weights_train(name):
    """The strategies' own declaration decides (``param_sharing`` tag "cluster" on trainable weights):
    SePS divides, SePS+LoRA (frozen cluster backbones, per-agent adapters) and every other strategy not."""
    net = strategy_for(name, 3, **({"clusters": [0, 1, 0]} if STRATEGIES_REGISTRY[name].needs_clusters else {})
                       ).make_network(3, 4, 2, head="normal")
    update = A2POUpdate(ITER, 80, 5, 1.0, 1, on_nonfinite=None, on_finite=None)
    assert [update.turn_epochs(net, j) for j in range(3)] == ([3, 5, 3] if name == "seps" else [5, 5, 5])


def test_slice_guard_steps_each_row_as_its_own_adam():
    """Turns 0, 0, 2, 1, 0 on a stacked [3, 4, 5] weight equal three independent Adams, one per agent,
    each stepping only in its own turns (bit for bit); the other rows and their moments stay untouched,
    whatever gradient the other rows had."""
    torch.manual_seed(0)
    layer = StackedLinear(3, 5, 4)
    copies = [torch.nn.Parameter(layer.weight[i].detach().clone()) for i in range(3)]
    adam = torch.optim.Adam([layer.weight], lr=0.1)
    own = [torch.optim.Adam([c], lr=0.1) for c in copies]
    for turn in (0, 0, 2, 1, 0):
        grad = torch.randn(3, 4, 5)
        before = {k: v.clone() for k, v in adam.state[layer.weight].items()} if adam.state else None
        layer.weight.grad = grad.clone()
        guard = SliceGuard(adam, agent_rows([layer], turn))
        guard.mask_gradients()
        assert layer.weight.grad[[i for i in range(3) if i != turn]].abs().sum() == 0
        guard.step()
        copies[turn].grad = grad[turn].clone()
        own[turn].step()
        for i in range(3):
            assert torch.equal(layer.weight[i], copies[i]), (turn, i)
        state = adam.state[layer.weight]
        for k in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(state[k][turn], own[turn].state[copies[turn]][k])
            for i in set(range(3)) - {turn}:
                assert torch.equal(state[k][i], torch.zeros_like(state[k][i]) if before is None else before[k][i])
    assert adam.state[layer.weight]["slice_step"].tolist() == [3.0, 1.0, 1.0]


def test_slice_guard_moves_only_the_agents_cluster():
    layer = IndexedLinear([0, 1, 0], 3, 2)
    adam = torch.optim.Adam(layer.parameters(), lr=0.1)
    before = layer.weight.detach().clone()
    layer(torch.randn(4, 3, 3)).sum().backward()
    guard = SliceGuard(adam, agent_rows([layer], 1))
    guard.mask_gradients()
    guard.step()
    assert torch.equal(layer.weight[0], before[0]) and not torch.equal(layer.weight[1], before[1])


@pytest.mark.parametrize("alg", ["happo", "a2po"])
def test_in_agent_js_turn_only_agent_js_parameters_and_adam_state_move(alg, monkeypatch):
    """One turn, agent 1's, through the trainer: NPS actor rows 0 and 2 and their Adam moments stay."""
    trainer = Trainer(tiny(**{"algorithm.name": alg, "strategy": {"name": "nps"}, "env.options": {"n_agents": 3},
                              "algorithm.network.critic_sharing": "nps"}), run_dir=tempfile.mkdtemp())
    monkeypatch.setattr(trainer.update, "order", lambda *args: [1])
    net = actor_net(trainer.actor).net
    rows = agent_rows(net.modules(), 1)
    assert rows
    before = [p.detach().clone() for p, _ in rows]
    critic_rows = agent_rows(trainer.critic.modules(), 1)
    critic_before = [p.detach().clone() for p, _ in critic_rows]
    batch = rollout(trainer)
    trainer.update(batch, trainer.loss, trainer.optimiser, trainer.trainable, lambda: 0.0, actor_net(trainer.actor))
    for (p, row), old in zip(rows, before):
        assert row == 1 and not torch.equal(p[1], old[1])
        assert torch.equal(p[0], old[0]) and torch.equal(p[2], old[2])
        state = trainer.optimiser.state[p]
        for k in ("exp_avg", "exp_avg_sq"):
            assert state[k][[0, 2]].abs().sum() == 0 and state[k][1].abs().sum() > 0
        assert state["slice_step"].tolist() == [0.0, float(state["step"]), 0.0]
    # the critic: HAPPO updates all of it once (its last turn), A2PO only agent 1's on agent 1's samples
    for (p, _), old in zip(critic_rows, critic_before):
        assert not torch.equal(p[1], old[1])
        assert torch.equal(p[0], old[0]) == (alg == "a2po")


@pytest.mark.parametrize("alg", ["happo", "a2po"])
def test_agent_js_turn_does_not_depend_on_the_other_agents_policy_data(alg, monkeypatch):
    """Shared parameters: agent 1's turn moves them from agent 1's samples only, so changing the other
    agents' stored log-probabilities (their ratios) changes nothing."""
    out = []
    for shift in (0.0, 0.5):
        trainer = Trainer(tiny(**{"algorithm.name": alg, "env.options": {"n_agents": 3}}), run_dir=tempfile.mkdtemp())
        monkeypatch.setattr(trainer.update, "order", lambda *args: [1])
        batch = rollout(trainer)
        batch["agents", "action_log_prob"][..., [0, 2]] += shift
        trainer.update(batch, trainer.loss, trainer.optimiser, trainer.trainable, lambda: 0.0, actor_net(trainer.actor))
        out.append(params(trainer))
    assert out[0].keys() == out[1].keys()
    for k in out[0]:
        assert torch.equal(out[0][k], out[1][k]), k


def test_a2po_with_seps_gives_a_turn_epochs_over_the_cluster_size():
    trainer = Trainer(tiny(**{"algorithm.name": "a2po", "algorithm.epochs": 5, "env.options": {"n_agents": 3},
                              "strategy": {"name": "seps", "clusters": [0, 1, 0]}}), run_dir=tempfile.mkdtemp())
    holder = actor_net(trainer.actor)
    assert [trainer.update.turn_epochs(holder, j) for j in range(3)] == [3, 5, 3]
    happo = HAPPOUpdate(ITER, 80, 5, 1.0, 1, on_nonfinite=None, on_finite=None)
    assert happo.turn_epochs(holder, 0) == 5


def test_a2po_semi_greedy_order_alternates_best_and_random():
    update = A2POUpdate(100, 100, 1, 1.0, 1, on_nonfinite=None, on_finite=None)
    score = torch.tensor([0.1, 5.0, 0.3, 2.0, 1.0])  # by score: 1, 3, 4, 2, 0
    adv, value = score.expand(10, 5).unsqueeze(-1), torch.ones(10, 5, 1)
    second = set()
    for seed in range(8):
        torch.manual_seed(seed)
        order = update.order(adv, value)
        assert sorted(order) == list(range(5)) and order[0] == 1
        second.add(order[1])
        best_left = [i for i in (1, 3, 4, 2, 0) if i not in order[:2]][0]
        assert order[2] == best_left  # the third pick is again the best remaining
    assert len(second) > 1  # the second pick is random
    update = HAPPOUpdate(100, 100, 1, 1.0, 1, on_nonfinite=None, on_finite=None)
    assert sorted(update.order(adv, value)) == list(range(5))



def _turns(loop, tuner, monkeypatch, epochs=3):
    """(agent, clip epsilon, epochs) of every turn of one A2PO update with 4 agents, and the orders drawn."""
    trainer = Trainer(tiny(**{"algorithm.name": "a2po", "algorithm.epochs": epochs, "algorithm.a2po.loop": loop,
                              "algorithm.a2po.clip_tuner": tuner, "strategy": {"name": "nps"},
                              "env.options": {"n_agents": 4}}), run_dir=tempfile.mkdtemp())
    update, turns, orders = trainer.update, [], []
    order = update.order
    monkeypatch.setattr(update, "order", lambda *a: orders.append(order(*a)) or orders[-1])
    monkeypatch.setattr(update, "_turn", lambda items, loss, *rest: turns.append(
        (rest[5], round(float(loss.clip_epsilon), 6), rest[-1])) or 0)
    update(rollout(trainer), trainer.loss, trainer.optimiser, trainer.trainable, lambda: 0.0, actor_net(trainer.actor))
    assert float(trainer.loss.clip_epsilon) == pytest.approx(0.2)  # restored after the update
    return turns, orders


def test_a2po_clip_tuner_widens_the_clip_along_the_order(monkeypatch):
    """The LoRASA code's near_linear: the k-th of N agents clips at eps * (k / N * w + 1 - w)."""
    turns, orders = _turns("agent", 0.5, monkeypatch)
    assert [t[0] for t in turns] == orders[0]
    assert [t[1] for t in turns] == [round(0.2 * (k / 4 * 0.5 + 0.5), 6) for k in (1, 2, 3, 4)]
    assert [t[1] for t in _turns("agent", None, monkeypatch)[0]] == [0.2] * 4


def test_a2po_epoch_loop_runs_every_agent_once_per_epoch_in_a_fresh_order(monkeypatch):
    turns, orders = _turns("ppo", 0.5, monkeypatch, epochs=3)
    assert len(orders) == 3 and [t[0] for t in turns] == [a for order in orders for a in order]
    assert all(t[2] == 1 for t in turns)  # one epoch per turn
    assert {t[1] for t in turns} == {round(0.2 * (1 / 4 * 0.5 + 0.5), 6)}  # the code passes place 1 here
    turns, orders = _turns("agent", None, monkeypatch, epochs=3)
    assert len(orders) == 1 and all(t[2] == 3 for t in turns)


def test_gae_trace_is_gae_with_unit_ratios_and_caps_the_trace_at_one():
    from marlshare.components.algorithms.a2po import gae_trace

    torch.manual_seed(0)
    delta, done = torch.randn(3, 7), torch.zeros(3, 7, dtype=torch.bool)
    done[0, 2] = done[2, 5] = True
    gae, running = torch.zeros(3, 7), torch.zeros(3)
    for t in reversed(range(7)):
        running = delta[:, t] + 0.9 * (~done[:, t]).float() * running
        gae[:, t] = running
    torch.testing.assert_close(gae_trace(delta, torch.ones(3, 7), done, 0.9), gae)
    ratio = torch.tensor([[1.0, 0.5, 2.0, 0.5, 3.0]])  # c from k = 0: 1, .5, min(1, 1) = 1, .5, min(1, 1.5) = 1
    got = gae_trace(torch.ones(1, 5), ratio, torch.zeros(1, 5, dtype=torch.bool), 0.9)
    assert got[0, 0].item() == pytest.approx(sum(0.9 ** l * c for l, c in enumerate([1, 0.5, 1, 0.5, 1])))
    assert got[0, 3].item() == pytest.approx(1 + 0.9 * 1.0)  # from k = 3: c = 1, min(1, 3) = 1


@pytest.mark.parametrize("recurrent", [False, True])
def test_a2po_gae_trace_recomputes_each_later_agents_advantage_and_target(monkeypatch, recurrent):
    """Turn 0 learns from GAE; every later turn from the trace of the agents before it. With the turns
    made no-ops the policy stays the behaviour policy (ratios 1): GAE comes back, column for column
    (also for a GRU actor, whose rows are chunks of the [envs, time] batch)."""
    extra = {"algorithm.network.recurrent": True, "algorithm.chunk_length": 5} if recurrent else {}
    trainer = Trainer(tiny(**{"algorithm.name": "a2po", "algorithm.a2po.advantage": "gae_trace",
                              "strategy": {"name": "nps"}, "env.options": {"n_agents": 3}, **extra}),
                      run_dir=tempfile.mkdtemp())
    update, seen = trainer.update, []
    monkeypatch.setattr(update, "_turn", lambda items, loss, *rest: seen.append(
        (rest[5], {k: v.clone() for k, v in rest[7]}, items.get("advantage").clone())) or 0)
    batch = rollout(trainer)
    update(batch, trainer.loss, trainer.optimiser, trainer.trainable, lambda: 0.0, actor_net(trainer.actor))
    assert seen[0][1] == {}  # the first agent: GAE as computed
    for agent, replaced, gae in seen[1:]:
        assert set(replaced) == {"advantage", "value_target"}
        torch.testing.assert_close(replaced["advantage"][..., agent, 0], gae[..., agent, 0], rtol=1e-4, atol=1e-4)
        others = [j for j in range(3) if j != agent]
        assert torch.equal(replaced["advantage"][..., others, :], gae[..., others, :])
    monkeypatch.setattr("marlshare.components.algorithms.a2po.gae_trace", lambda d, r, done, gl: d * 0 + 7.0)
    seen.clear()
    update(rollout(trainer), trainer.loss, trainer.optimiser, trainer.trainable, lambda: 0.0, actor_net(trainer.actor))
    assert all((replaced["advantage"][..., agent, 0] == 7.0).all() for agent, replaced, _ in seen[1:])


def test_a2po_two_stage_runs_a_critic_only_pass_before_each_epoch(monkeypatch):
    trainer = Trainer(tiny(**{"algorithm.name": "a2po", "algorithm.a2po.advantage": "gae_trace",
                              "algorithm.a2po.two_stage": True, "algorithm.epochs": 2, "strategy": {"name": "nps"},
                              "env.options": {"n_agents": 2}}), run_dir=tempfile.mkdtemp())
    update, calls, actor = trainer.update, [], actor_net(trainer.actor)
    critic_pass = update._critic_pass
    critic_params = list(trainer.critic.parameters())

    def spy(*args):  # the critic-only pass moves the critic and leaves the actor where it is
        actor_before = [p.detach().clone() for p in actor.parameters()]
        critic_before = [p.detach().clone() for p in critic_params]
        skipped = critic_pass(*args)
        assert all(torch.equal(a, b) for a, b in zip(actor_before, actor.parameters()))
        assert not all(torch.equal(a, b) for a, b in zip(critic_before, critic_params))
        calls.append("critic")
        return skipped

    monkeypatch.setattr(update, "_critic_pass", spy)
    update(rollout(trainer), trainer.loss, trainer.optimiser, trainer.trainable, lambda: 0.0, actor)
    assert calls == ["critic"] * 4  # 2 agents x 2 epochs
    trainer.update.two_stage = False
    calls.clear()
    update(rollout(trainer), trainer.loss, trainer.optimiser, trainer.trainable, lambda: 0.0, actor)
    assert calls == []

STRATEGIES = {
    "ps": {"strategy": {"name": "ps"}},
    "nps": {"strategy": {"name": "nps"}},
    "mtl": {"strategy": {"name": "mtl"}},
    "seps": {"strategy": {"name": "seps", "clusters": [0, 1, 0]}},
    "ps_lora": {"strategy": {"name": "ps"}, "schedule": two_phase(until=ITER)},
    "prism": {"strategy": {"name": "prism"}},
}


@pytest.mark.parametrize("alg", ["happo", "a2po"])
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_sequential_trains_with_every_strategy(alg, name):
    changes = {**STRATEGIES[name], "env.options": {"n_agents": 3}}
    if name in ("nps", "ps_lora"):  # and a GRU actor
        changes.update({"algorithm.network.recurrent": True, "algorithm.chunk_length": 5})
    strategy = changes.pop("strategy")
    trainer = trained(alg, strategy, **changes)
    summary = trainer.summary()
    assert summary["iterations"] == 2 and summary["algorithm"] == alg
    if name == "ps_lora":
        assert summary["final_strategy"] == "ps_lora"
    assert sorted(trainer.update.last_order) == [0, 1, 2]


def test_a2po_with_the_reference_value_loss_resumes_bit_identically(tmp_path):
    from tests.components.test_trainer import rows

    changes = {"algorithm.name": "a2po", "algorithm.value_norm": True, "algorithm.huber_delta": 10.0,
               "algorithm.clip_value_loss": True, "strategy": {"name": "nps"}, "total_frames": 3 * ITER}
    full = Trainer(tiny(**changes), run_dir=tmp_path / "full")
    full.run()
    cut = Trainer(tiny(**changes), run_dir=tmp_path / "resumed")
    cut.run(max_iterations=1)
    del cut
    resumed = Trainer(tiny(resume=str(tmp_path / "resumed")))
    resumed.run()
    assert rows(tmp_path / "resumed") == rows(tmp_path / "full")
    for x, y in ((actor_net(resumed.actor).net, actor_net(full.actor).net), (resumed.critic, full.critic)):
        for (k, a), (_, b) in zip(x.named_parameters(), y.named_parameters()):
            assert torch.equal(a, b), k
    from marlshare.components.algorithms.ppo import value_norm_of
    assert torch.equal(value_norm_of(resumed.critic).running_mean, value_norm_of(full.critic).running_mean)
