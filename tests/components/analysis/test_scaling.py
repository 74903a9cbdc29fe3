"""Parameters vs N (``marlshare analyze``'s scaling rows) cover the whole registry, read the strategies'
declarations instead of lists of names, and share the benchmarks' cluster rule."""

from __future__ import annotations

import pytest

from marlshare.components.analysis import scaling
from marlshare.components.layers import LowRankLinear
from marlshare.components.strategies import STRATEGIES

SHAPE = dict(in_features=5, out_features=3, hidden=(8,), head="normal")


def test_clusters_for_uses_every_label_round_robin():
    assert scaling.clusters_for(2) == [0, 0]  # K = max(1, N // 4)
    assert scaling.clusters_for(8) == [0, 1, 0, 1, 0, 1, 0, 1]
    assert sorted(set(scaling.clusters_for(128))) == list(range(32))


def test_bench_strategies_uses_the_same_cluster_rule():
    from tools import bench_strategies

    assert bench_strategies.clusters_for is scaling.clusters_for


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_merged_for_inference_exactly_when_the_network_has_adapters(name):
    _, net = scaling.build(name, 4, SHAPE)
    has_adapters = any(isinstance(m, LowRankLinear) for m in net.modules())
    assert scaling.merges_adapters(name) == has_adapters
    assert (name in scaling.adapter_strategies()) == has_adapters


def test_every_registered_strategy_gets_a_row_per_agent_count():
    rows = scaling.measure(SHAPE, agents=(2, 4), timing=False)
    assert [(r["strategy"], r["n_agents"]) for r in rows] == [(s, n) for s in STRATEGIES for n in (2, 4)]
    nps = {r["n_agents"]: r for r in rows if r["strategy"] == "nps"}
    assert nps[4]["total"] == 2 * nps[2]["total"]  # one full network per agent
