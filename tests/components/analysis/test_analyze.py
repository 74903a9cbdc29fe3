"""The analyses of ``marlshare analyze`` against hand computations on constructed networks, and once
end to end on a tiny two-phase run whose adapters are set to known values."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from marlshare.components.layers import LowRankLinear
from marlshare.components.strategies import make_strategy
from marlshare.components.analysis import measures
from marlshare.components.analysis.run_analysis import analyse_masks, same_inputs


# --- sparsity -------------------------------------------------------------------------------------------
def test_sparsity_curve_of_a_known_array():
    thresholds, percent = measures.sparsity_curve([-4.0, -1.0, 0.0, 2.0, 3.0])  # |w| = 4, 1, 0, 2, 3
    assert len(thresholds) == 100 and thresholds[0] == 0.0 and thresholds[-1] == 4.0
    np.testing.assert_allclose(np.diff(thresholds), 4.0 / 99)  # evenly spaced between min and max
    assert percent[0] == 100.0  # every |w| >= min
    assert percent[-1] == 20.0  # only the 4 reaches the max
    # threshold 4 k / 99: k = 24 -> 0.97 (4 of 5 >= it), k = 25 -> 1.01 (3 of 5), k = 74 -> 2.99 (2), k = 75 -> 3.03 (1)
    assert [percent[k] for k in (1, 24, 25, 49, 50, 74, 75)] == [80.0, 80.0, 60.0, 60.0, 40.0, 40.0, 20.0]


# --- Frobenius norms --------------------------------------------------------------------------------------
def constructed_lora():
    """PS+LoRA, 2 agents, 2 inputs (+2 id columns), one hidden layer of 2, rank 1, alpha 1.
    Hidden layer: shared weight all ones [2, 4]; A_i = [1, 0, 0, 0]; B_0 = [3, 0]^T, B_1 = [0, 4]^T, so
    delta_0 has a single 3 at (0, 0) and delta_1 a single 4 at (1, 0)."""
    net = make_strategy("ps_lora", rank=1, alpha=1.0).make_network(n_agents=2, in_features=2, out_features=2,
                                                                   hidden=(2,))
    layer = net.trunk[0]
    assert isinstance(layer, LowRankLinear) and layer.base.weight.shape == (2, 4)
    with torch.no_grad():
        layer.base.weight.fill_(1.0)
        layer.lora_A.zero_()
        layer.lora_A[:, 0, 0] = 1.0
        layer.lora_B.zero_()
        layer.lora_B[0, 0, 0], layer.lora_B[1, 1, 0] = 3.0, 4.0
    return net


def test_frobenius_norms_of_a_known_delta():
    net = constructed_lora()
    rows = {r["layer"]: r for r in measures.frobenius_norms(net)}
    assert set(rows) == {"trunk.0", "head.layer"}
    hidden = rows["trunk.0"]
    assert hidden["shared"] == pytest.approx(math.sqrt(8))  # eight ones
    assert hidden["delta"] == pytest.approx((3 + 4) / 2)  # mean of ||delta_0|| = 3 and ||delta_1|| = 4
    assert hidden["delta_max"] == pytest.approx(4)
    # merged_0: one 4 and seven 1 -> sqrt(23); merged_1: one 5 and seven 1 -> sqrt(32)
    assert hidden["merged"] == pytest.approx((math.sqrt(23) + math.sqrt(32)) / 2)
    assert rows["head.layer"]["delta"] == 0.0  # B zero-initialised, untouched


def test_shared_and_delta_collect_each_shared_weight_once():
    shared, delta = measures.shared_and_delta(constructed_lora())
    assert shared.size == 2 * 4 + 2 * 2  # hidden [2, 4] and head [2, 2], not once per agent
    assert delta.size == 2 * (2 * 4 + 2 * 2)  # per agent
    assert sorted(np.abs(delta[delta != 0]).tolist()) == [3.0, 4.0]


# --- Wasserstein ------------------------------------------------------------------------------------------
def test_gaussian_w2_closed_form():
    # 1-D: N(0, 1) vs N(3, 2): sqrt(3^2 + (2 - 1)^2)
    assert gaussian_w2(0.0, 1.0, 3.0, 2.0) == pytest.approx(math.sqrt(10))
    # 2-D diagonal, equal scales: the distance of the means
    assert gaussian_w2([0.0, 0.0], [1.0, 1.0], [3.0, 4.0], [1.0, 1.0]) == pytest.approx(5.0)
    # a point mass is the zero-scale limit: W2 of N(0, s) to delta_0 is s
    assert gaussian_w2([0.0], [0.5], [0.0], [0.0]) == pytest.approx(0.5)


def gaussian_w2(mu_p, s_p, mu_q, s_q):
    t = lambda v: torch.as_tensor(v, dtype=torch.float64).reshape(-1)  # noqa: E731
    return measures.gaussian_w2(t(mu_p), t(s_p), t(mu_q), t(s_q)).item()


def test_categorical_w1_discrete_and_ordered():
    p, q = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    assert measures.categorical_w1(p, q, "discrete").item() == pytest.approx(1.0)  # all mass moves, cost 1
    assert float(measures.categorical_w1(p, q, "ordered")) == pytest.approx(2.0)  # moved two positions
    p, q = torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.0, 0.5, 0.5])
    assert measures.categorical_w1(p, q, "discrete").item() == pytest.approx(0.5)
    assert float(measures.categorical_w1(p, q, "ordered")) == pytest.approx(1.0)  # |CDF diff| = 0.5 + 0.5
    assert float(measures.categorical_w1(p, q, "ordered")) == pytest.approx(
        wasserstein_distance([0, 1, 2], [0, 1, 2], p.numpy(), q.numpy()))


def test_pairwise_wasserstein_uses_the_action_mask():
    logits = torch.zeros(1, 2, 2)  # both agents uniform over two actions
    mask = torch.tensor([[[True, False], [True, True]]])  # agent 0 may only take action 0
    w = measures.pairwise_wasserstein(logits, "discrete", mask)
    np.testing.assert_allclose(w, [[0.0, 0.5], [0.5, 0.0]])  # [1, 0] vs [0.5, 0.5]: TV 0.5
    loc = torch.tensor([[[0.0], [3.0]]])
    scale = torch.tensor([[[1.0], [2.0]]])
    np.testing.assert_allclose(measures.pairwise_wasserstein((loc, scale)), [[0, math.sqrt(10)], [math.sqrt(10), 0]],
                               rtol=1e-6)


def test_same_inputs_feeds_every_observation_to_every_agent():
    obs = torch.arange(2 * 3 * 1, dtype=torch.float32).reshape(2, 3, 1)  # 2 states, 3 agents
    x, _, _ = same_inputs(obs)
    assert x.shape == (6, 3, 1)
    assert x[:, :, 0].tolist() == [[v] * 3 for v in range(6)]  # row (s, k): agent k's observation everywhere


# --- activations and masks -------------------------------------------------------------------------------
def test_layer_activations_of_a_constructed_network():
    net = make_strategy("nps").make_network(n_agents=2, in_features=2, out_features=1, hidden=(2,))
    with torch.no_grad():
        net.trunk[0].weight.copy_(torch.stack([torch.eye(2), -torch.eye(2)]))  # agent 0: I, agent 1: -I
        net.trunk[0].bias.zero_()
    acts = measures.layer_activations(net, torch.tensor([[[1.0, -2.0], [1.0, -2.0]]]))
    assert list(acts) == ["trunk.1"]
    assert acts["trunk.1"].tolist() == [[[1.0, 0.0], [0.0, 2.0]]]  # relu(x), relu(-x)


def fake_run(net, name):
    return SimpleNamespace(net=net, strategy=SimpleNamespace(name=name), state={"frames": 0},
                           cfg=SimpleNamespace(env=SimpleNamespace(name="constructed")))


def test_prism_masks_and_kept_fractions(tmp_path):
    net = make_strategy("prism").make_network(n_agents=2, in_features=3, out_features=1, hidden=(4,))
    with torch.no_grad():
        # k = min(3 inputs + 2 id columns, 4 units) = 4 directions
        net.trunk[0].mask_logits.copy_(torch.tensor([[5.0, 5.0, 5.0, -5.0], [-5.0, -5.0, -5.0, -5.0]]))
    result = analyse_masks(fake_run(net, "prism"), tmp_path)
    assert result["trunk.0"]["kind"] == "prism"
    assert result["trunk.0"]["kept_fraction"] == [0.75, 0.0]  # masks above 0.5
    assert result["trunk.0"]["mean_mask"][1] == pytest.approx(float(torch.sigmoid(torch.tensor(-5.0))))
    assert result["head.layer"]["kept_fraction"] == [1.0, 1.0]  # initial logits 3: sigmoid 0.95
    assert (tmp_path / "masks.png").stat().st_size > 0


def test_adaps_unit_masks_and_kept_fractions(tmp_path):
    net = make_strategy("adaps", clusters=[0, 0, 1]).make_network(n_agents=3, in_features=3, out_features=1,
                                                                  hidden=(4,))
    layer = net.trunk[0]
    with torch.no_grad():
        layer.masks.copy_(torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]]))
    result = analyse_masks(fake_run(net, "adaps"), tmp_path)
    assert result["trunk.0"] == dict(kind="adaps", clusters=[0, 0, 1], kept_fraction=[0.75, 0.25])
    assert "skipped" in analyse_masks(fake_run(constructed_lora(), "ps_lora"), tmp_path)


# --- end to end ---------------------------------------------------------------------------------------------
def tiny_two_phase():
    """The trainer tests' tiny VMAS run, PS then PS+LoRA (rank 2) after one iteration."""
    from tests.components.test_trainer import ITER, tiny, two_phase

    return tiny(**{"algorithm.epochs": 1, "algorithm.network.actor_hidden": [8, 8], "algorithm.network.critic_hidden": [8, 8],
                   "total_frames": 3 * ITER, "eval_every": 3 * ITER, "schedule": two_phase(until=ITER)})


def test_analyze_a_tiny_run_matches_hand_computations(tmp_path):
    from marlshare.components import checkpoint as ckpt
    from marlshare.components.trainer import Trainer
    from marlshare.components.analysis.run_analysis import analyze

    trainer = Trainer(tiny_two_phase(), run_dir=tmp_path)
    trainer.run()
    obs_dim, act_dim = trainer.info.obs_dim, trainer.info.action_dim
    # Known adapters in the last checkpoint: hidden layer trunk.0 (8 x (obs + 2)), agent 0 only,
    # B_0 = [1, 0, ..]^T (column 0 of rank 2), A_0 row 0 = 0.5 everywhere: delta_0 = (alpha/r) 0.5 e_0 1^T.
    path = tmp_path / "checkpoints" / "last.pt"
    state = ckpt.load(path)
    actor = state["actor"]
    for key in actor:
        if key.endswith("lora_B"):
            actor[key] = torch.zeros_like(actor[key])
    actor["trunk.0.lora_B"][0, 0, 0] = 1.0
    actor["trunk.0.lora_A"][0, 0, :] = 0.5
    ckpt.save_atomic(state, path)

    report = analyze(tmp_path, n_states=16, agents=(2, 4), timing=False)
    out = tmp_path / "analysis"
    for name in ("scaling", "sparsity", "norms", "norms_checkpoints", "wasserstein", "activations"):
        assert (out / f"{name}.png").stat().st_size > 0 and (out / f"{name}.csv").exists(), name
    assert json.loads((out / "analysis.json").read_text())["strategy"] == "ps_lora"

    d_in = obs_dim + 2  # agent id appended
    norms = {r["layer"]: r for r in report["weights"]["norms"]}
    expected = (8.0 / 2) * 0.5 * math.sqrt(d_in)  # alpha = 8 (default), r = 2
    assert norms["trunk.0"]["delta_max"] == pytest.approx(expected, rel=1e-5)
    assert norms["trunk.0"]["delta"] == pytest.approx(expected / 2, rel=1e-5)  # agent 1's delta is zero
    assert norms["trunk.2"]["delta"] == 0.0 and norms["head.layer"]["delta"] == 0.0
    base = torch.as_tensor(state["actor"]["trunk.0.base.weight"])
    assert norms["trunk.0"]["shared"] == pytest.approx(torch.linalg.matrix_norm(base).item(), rel=1e-6)
    # the checkpoints of the run: the switch (zero adapters) and the later ones
    history = report["weights"]["norms_checkpoints"]
    assert {r["checkpoint"] for r in history} >= {"phase_switch", "last"}
    assert all(r["delta"] == 0.0 for r in history if r["checkpoint"] == "phase_switch")

    # sparsity of |delta|: entries are 0 (all but d_in) and (8/2) * 0.5 = 2 -> 100% at min, d_in / total at max
    sp = report["weights"]["sparsity"]
    total_delta = 2 * (8 * d_in + 8 * 8 + act_dim * 8)
    assert sp["delta_threshold"][0] == 0.0 and sp["delta_threshold"][-1] == pytest.approx(2.0)
    assert sp["delta_percent"][0] == 100.0 and sp["delta_percent"][-1] == pytest.approx(100 * d_in / total_delta)

    w = np.array(report["behaviour"]["wasserstein"])
    assert w.shape == (2, 2) and np.isfinite(w).all() and np.all(np.diag(w) == 0) and w[0, 1] == w[1, 0] > 0
    assert report["behaviour"]["n_inputs"] == 2 * 16

    # parameters vs N: PS and NPS against their closed forms (hidden 8, 8; Gaussian head, log-std)
    rows = {(r["strategy"], r["n_agents"]): r for r in report["scaling"]["rows"]}
    for n in (2, 4):
        mlp = lambda d: d * 8 + 8 + 8 * 8 + 8 + 8 * act_dim + act_dim  # noqa: E731
        assert rows["ps", n]["total"] == mlp(obs_dim + n) + act_dim  # id appended, shared log-std
        assert rows["nps", n]["total"] == n * (mlp(obs_dim) + act_dim)
        # default rank 8: r (d_in + d_out) per adapted layer, plus the log-std delta, per agent
        assert rows["ps_lora", n]["trainable"] == n * (8 * (obs_dim + n + 8) + 8 * (8 + 8) + 8 * (8 + act_dim) + act_dim)
