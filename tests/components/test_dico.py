"""DiCo (components/strategies/dico.py): the target's meaning (0 = the shared policy exactly, < 0 = no
scaling), the scaling that makes the team's measured SND equal the target, the soft-updated estimate
kept in the network's buffers, the exact ``ps -> dico`` switch, and training with every algorithm."""

import math
import tempfile

import pytest
import torch
from tensordict import TensorDict

from marlshare.components.algorithms import actor_net
from marlshare.components.analysis.measures import pairwise_wasserstein
from marlshare.components.dico_network import DiCoNetwork
from marlshare.components.runs import load_network
from marlshare.components.strategies import make_strategy
from marlshare.components.trainer import Trainer
from tests.components.test_trainer import ITER, tiny

N, D, A = 4, 6, 3


def dico_net(recurrent=False, head="normal", **hp):
    strategy = make_strategy("dico", **hp)
    return strategy, strategy.make_network(N, D, A, hidden=(16, 16), recurrent=recurrent, head=head)


def batch_of(net, s=12):
    """An iteration's batch ``[s, N, ...]`` (with the GRU's stored hidden states and episode starts)."""
    td = TensorDict({("agents", "observation"): torch.randn(s, N, D)}, batch_size=[s])
    if net.recurrent:
        td.set("rnn_hidden", torch.randn(s, N, net.hidden_size))
        td.set("is_init", torch.zeros(s, 1, dtype=torch.bool))
    return td


def team_snd(net, obs, hidden=None):
    """The measured SND of the whole policy: every agent's action distribution on the same observations
    (each observation row fed to every agent), mean over agent pairs of the analysis code's Wasserstein
    distance (Gaussian heads) or of the L2 distance of the centred logits (discrete heads)."""
    rows = obs.reshape(-1, D)
    x = rows[:, None].expand(-1, N, D)
    h = None if hidden is None else hidden.reshape(-1, hidden.shape[-1])[:, None].expand(-1, N, -1)
    out = net(x, h) if net.recurrent else net(x)
    if net.recurrent:
        out = out[:-1] if len(out) > 2 else out[0]
    off = ~torch.eye(N, dtype=torch.bool)
    if isinstance(out, tuple):
        return float(torch.as_tensor(pairwise_wasserstein(out))[off].mean())
    centred = out - out.mean(-1, keepdim=True)
    return float(torch.cdist(centred, centred).mean(0)[off].mean())


@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
@pytest.mark.parametrize("head", ["normal", "linear"])
def test_a_zero_target_is_exactly_the_shared_policy(recurrent, head):
    strategy, net = dico_net(recurrent, head, snd_des=0.0)
    x = torch.randn(5, N, D)
    h = torch.randn(5, N, net.hidden_size) if recurrent else None
    for _ in range(2):  # at the start and after an estimate
        out = net(x, h) if recurrent else net(x)
        shared = net.shared(x, h) if recurrent else net.shared(x)
        for a, b in zip(out if isinstance(out, tuple) else (out,), shared if isinstance(shared, tuple) else (shared,)):
            assert torch.equal(a, b)
        strategy.after_update(net, batch_of(net), 0)
        assert float(net.ratio) == 0.0 and float(net.snd_est) > 0  # measured, and still scaled by 0
    assert team_snd(net, x, h) == 0.0


@pytest.mark.parametrize("head", ["normal", "linear"])
@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
def test_the_scaling_makes_the_measured_snd_equal_the_target(head, recurrent):
    """With the estimate measured on the observations the team is then measured on (tau = 1), the
    measured SND of the scaled policy is SND_des (the paper's theorem)."""
    strategy, net = dico_net(recurrent, head, snd_des=0.5, tau=1.0)
    with torch.no_grad():
        for p in net.deviation.parameters():
            p.normal_(0, 0.3)  # deviations far from 0.5 apart unscaled
    batch = batch_of(net)
    row = strategy.after_update(net, batch, 0)
    assert abs(row["dico_snd_deviations"] - 0.5) > 0.1 and row["dico_ratio"] == pytest.approx(0.5 / row["dico_snd_est"])
    obs = batch.get(("agents", "observation"))
    hidden = None
    if recurrent:  # the deviations read [o, h'], h' the shared cell's new state from the stored hidden
        hidden = batch.get("rnn_hidden")
    with torch.no_grad():
        assert team_snd(net, obs, hidden) == pytest.approx(0.5, rel=1e-4)
        net.ratio.fill_(1.0)  # unscaled: the deviations' own SND
        assert team_snd(net, obs, hidden) == pytest.approx(row["dico_snd_deviations"], rel=1e-4)


def test_a_negative_target_leaves_the_deviations_unscaled():
    strategy, net = dico_net(snd_des=-1.0)
    x = torch.randn(5, N, D)
    strategy.after_update(net, batch_of(net), 0)
    assert float(net.ratio) == 1.0 and float(net.snd_est) > 0
    loc, scale = net(x)
    shared_loc, shared_scale = net.shared(x)
    assert torch.equal(loc, shared_loc + net.deviation(x)) and torch.equal(scale, shared_scale)


def test_the_estimate_is_soft_updated_and_kept_in_the_checkpointed_buffers():
    strategy, net = dico_net(snd_des=0.5, tau=0.25)
    batch = batch_of(net)
    first = strategy.after_update(net, batch, 0)
    assert first["dico_snd_est"] == first["dico_snd_deviations"]  # bootstrapped from the first measurement
    net.snd_est.fill_(2.0)
    second = strategy.after_update(net, batch, 0)
    assert second["dico_snd_est"] == pytest.approx(0.75 * 2.0 + 0.25 * second["dico_snd_deviations"])
    assert float(net.ratio) == pytest.approx(0.5 / second["dico_snd_est"])
    state = net.state_dict()
    assert {"ratio", "snd_est"} <= set(state)
    fresh = strategy.make_network(N, D, A, hidden=(16, 16), head="normal")
    assert math.isnan(float(fresh.snd_est)) and float(fresh.ratio) == 1.0
    fresh.load_state_dict(state)
    assert float(fresh.ratio) == float(net.ratio)


@pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
@pytest.mark.parametrize("head", ["normal", "linear"])
def test_ps_to_dico_keeps_the_ps_outputs_exactly(recurrent, head):
    ps = make_strategy("ps")
    net = ps.make_network(N, D, A, hidden=(16, 16), recurrent=recurrent, head=head, log_std="shared")
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.5)
    x = torch.randn(5, N, D)
    h = torch.randn(5, N, net.hidden_size) if recurrent else None
    before = net(x, h) if recurrent else net(x)
    dico = make_strategy("dico", snd_des=0.5)
    new = dico.adopt(ps, net)
    assert isinstance(new, DiCoNetwork) and new.append_id  # the PS network as trained, its id included
    after = new(x, h) if recurrent else new(x)
    for a, b in zip(before if isinstance(before, tuple) else (before,), after if isinstance(after, tuple) else (after,)):
        assert torch.equal(a, b)
    # zero deviations measure SND 0: no estimate yet, no scaling, no division by zero
    row = dico.after_update(new, batch_of(new), 0)
    assert row["dico_snd_deviations"] == 0.0 and math.isnan(row["dico_snd_est"]) and float(new.ratio) == 1.0
    assert all(p.requires_grad for p in new.parameters())


def test_bad_settings_are_refused_clearly():
    with pytest.raises(ValueError, match=r"tau must be in \(0, 1\], got tau=0"):
        make_strategy("dico", tau=0)
    with pytest.raises(ValueError, match="snd_des must be a finite number"):
        make_strategy("dico", snd_des="high")
    with pytest.raises(ValueError, match="log_std='agent'"):
        make_strategy("dico").make_network(N, D, A, head="normal", log_std="agent")


def test_a_short_training_run_reaches_the_target_snd():
    """MAPPO on vmas/navigation (3 agents) for 4 iterations with snd_des = 0.3: the team's SND measured on
    observations of a fresh rollout (not those of the estimate) equals the target within 2% (measured:
    0.2987 against 0.3)."""
    target = 0.3
    cfg = tiny(**{"strategy": {"name": "dico", "snd_des": target}, "env.options": {"n_agents": 3}})
    trainer = Trainer(cfg, run_dir=tempfile.mkdtemp())
    trainer.run()
    net = actor_net(trainer.actor).net
    assert not math.isnan(float(net.snd_est)) and float(net.ratio) != 1.0
    with torch.no_grad():
        rollout = trainer.eval_env.rollout(20, trainer.actor, break_when_any_done=False)
        obs = rollout.get(("agents", "observation")).reshape(-1, 3, net.in_features)
        rows = obs.reshape(-1, net.in_features)
        loc, scale = net(rows[:, None].expand(-1, 3, -1))
    off = ~torch.eye(3, dtype=torch.bool)
    measured = float(torch.as_tensor(pairwise_wasserstein((loc, scale)))[off].mean())
    assert measured == pytest.approx(target, rel=0.02)
    # the checkpoint keeps the estimate: the network rebuilt from it scales the same way
    rebuilt, _ = load_network(trainer.state_dict(), trainer.net_kwargs)
    assert float(rebuilt.ratio) == float(net.ratio) and float(rebuilt.snd_est) == float(net.snd_est)


CASES = [(alg, rec) for alg in ("mappo", "ippo", "happo", "a2po") for rec in (False, True)]


@pytest.mark.parametrize("alg,recurrent", [pytest.param(*c, marks=() if c == ("mappo", False) else pytest.mark.slow)
                                           for c in CASES], ids=[f"{a}-{'gru' if r else 'mlp'}" for a, r in CASES])
def test_dico_trains_with_every_algorithm(alg, recurrent):
    changes = {"strategy": {"name": "dico", "snd_des": 0.5}, "algorithm.name": alg, "env.options": {"n_agents": 3},
               "total_frames": 2 * ITER}
    if recurrent:
        changes.update({"algorithm.network.recurrent": True, "algorithm.chunk_length": 5})
    trainer = Trainer(tiny(**changes), run_dir=tempfile.mkdtemp())
    net = actor_net(trainer.actor).net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    summary = trainer.run()
    assert summary["iterations"] == 2 and summary["final_strategy"] == "dico"
    after = net.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("shared.") for k in moved) and any(k.startswith("deviation.") for k in moved)
    assert float(net.ratio) == pytest.approx(0.5 / float(net.snd_est))  # scaled to the target
