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


def test_the_table_orders_methods_by_how_well_they_tell_groups_apart(monkeypatch, capsys):
    runs = [SimpleNamespace(run_dir=m, task="vmas/bps", method=m) for m in ("ps", "nps", "seps", "blind")]
    distances = {"ps": (0.5, 0.75), "nps": (0.5, 1.5), "seps": (0.0, 2.0), "blind": (0.0, 0.0)}
    monkeypatch.setattr("marlshare.components.analysis.compare.load_runs", lambda paths: runs)
    monkeypatch.setattr(bps_roles, "role_distances", lambda run_dir, *a: distances[run_dir])
    bps_roles.main(["DIR"])
    rows = [line for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == ["| seps | 1 | 0.000 | 2.000 | groups act as one (within = 0) |",
                    "| nps | 1 | 0.500 | 1.500 | 3.00 [3.00, 3.00] |",
                    "| ps | 1 | 0.500 | 0.750 | 1.50 [1.50, 1.50] |",
                    "| blind | 1 | 0.000 | 0.000 | all agents act as one |"]
