"""tools.bps_roles: within-group and across-group action distances from eval's [N, N] matrix, with the
groups read from the run's BPS options."""

from types import SimpleNamespace

import numpy as np

from tools import bps_roles


def test_pairs_are_split_by_the_runs_groups(monkeypatch):
    # groups [2, 3]: agents 0-1 and 2-4; distance 1 within a group, 4 across, 0 on the diagonal
    group_of = np.array([0, 0, 1, 1, 1])
    d = np.where(group_of[:, None] == group_of[None, :], 1.0, 4.0)
    d[0, 1] = d[1, 0] = 3.0  # one within pair differs: within = (2 * 3 + 6 * 1) / 8 = 1.5
    np.fill_diagonal(d, 0.0)
    run = SimpleNamespace(cfg=SimpleNamespace(env=SimpleNamespace(options={"groups": [2, 3]})))
    monkeypatch.setattr("marlshare.components.policy_io.load_run", lambda run_dir: run)
    seen = {}

    def fake_eval(run_dir, **kwargs):
        seen.update(kwargs)
        return {"action_distance": d.tolist()}

    monkeypatch.setattr("marlshare.components.policy_eval.evaluate_run", fake_eval)
    within, across = bps_roles.role_distances("RUN", checkpoint="best", episodes=3)
    assert (within, across) == (1.5, 4.0)
    assert seen["per_agent"] and seen["checkpoint"] == "best" and seen["episodes"] == 3 and seen["out"] is False
