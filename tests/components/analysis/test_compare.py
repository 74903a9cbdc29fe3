"""marlshare compare: the table's statistics are rliable's, figures and marl-eval export are written."""

import json

import numpy as np
import pytest

from marlshare.components.analysis.compare import compare, main, score_matrices, load_runs

FINALS = {"ps": [1.0, 2.0, 3.0, 4.0, 100.0], "nps": [0.5, -1.0, 2.5, 0.0, 1.5]}


def _write_run(run_dir, env, strategy, seed, final, evals=((0, 0.0), (100, 0.5))):
    run_dir.mkdir(parents=True)
    summary = {"env": env, "strategy": strategy, "final_strategy": strategy, "algorithm": "mappo", "seed": seed,
               "frames": evals[-1][0], "initial_eval_return": evals[0][1], "final_eval_return": final,
               "best_eval_return": max(final, 0.5), "wall_time_s": 1.0,
               "parameters": {"train": {"total": 700, "shared": 100, "clustered": 0, "per_agent": 200,
                                        "trainable": 700}},
               "phases": [{"name": "train", "strategy": strategy, "start_frame": 0, "end_frame": evals[-1][0]}]}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    lines = ["iteration,frames,phase,strategy,train_return,eval_return"]
    lines += [f"{i},{f},train,{strategy},0.1,{r}" for i, (f, r) in enumerate(evals[1:], 1)]
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def runs_dir(tmp_path):
    for strategy, finals in FINALS.items():
        for seed, final in enumerate(finals):
            _write_run(tmp_path / f"{strategy}_{seed}", "vmas/navigation", strategy, seed, final,
                       evals=((0, 0.0), (100, final / 2), (200, final)))
    return tmp_path


def test_table_iqm_mean_and_cis_equal_rliables_on_the_same_scores(runs_dir):
    from rliable import library as rly, metrics

    rows = {r["method"]: r for r in compare([runs_dir], reps=300, seed=7)}
    for method, finals in FINALS.items():
        np.random.seed(7)
        points, intervals = rly.get_interval_estimates(
            {method: np.array(finals)[:, None]},
            lambda x: np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)]), reps=300)
        row = rows[method]
        assert [row["iqm"], row["mean"]] == pytest.approx(points[method], abs=1e-12)
        assert [row["iqm_low"], row["mean_low"]] == pytest.approx(intervals[method][0], abs=1e-12)
        assert [row["iqm_high"], row["mean_high"]] == pytest.approx(intervals[method][1], abs=1e-12)
        assert row["seeds"] == 5 and row["per_agent"] == 200
    # IQM drops the outer quarters: ps's outlier 100 moves the mean, not the IQM
    assert (rows["ps"]["iqm"], rows["ps"]["mean"]) == pytest.approx((3.0, 22.0))
    assert rows["ps"]["iqm_low"] < 3.0 < rows["ps"]["iqm_high"]


def test_several_tasks_are_min_max_normalised_per_task(runs_dir):
    for strategy, finals in (("ps", [10.0, 30.0]), ("nps", [20.0, 50.0])):
        for seed, final in enumerate(finals):
            _write_run(runs_dir / "balance" / f"{strategy}_{seed}", "vmas/balance", strategy, seed, final)
    matrices, tasks, notes = score_matrices(load_runs([runs_dir]))
    assert tasks == ["vmas/balance", "vmas/navigation"]
    assert notes == [f"{m}: unequal seeds across tasks, aggregates use the first 2 of each" for m in ("nps", "ps")]
    assert matrices["ps"][:, 0].tolist() == pytest.approx([0.0, 0.5])  # (x - 10) / (50 - 10)
    assert matrices["nps"][:, 0].tolist() == pytest.approx([0.25, 1.0])
    assert matrices["ps"][:, 1].tolist() == pytest.approx([2 / 101, 3 / 101])  # (x + 1) / (100 + 1)


def test_compare_writes_the_table_figures_and_marl_eval_json(runs_dir, tmp_path, capsys):
    out, export = tmp_path / "figures", tmp_path / "marl_eval.json"
    main([str(runs_dir), "--out", str(out), "--reps", "50", "--marl-eval", str(export)])
    assert "3 [" in capsys.readouterr().out  # ps's IQM in the printed table
    for name in ("table.csv", "learning_curves.png", "aggregates.png", "performance_profile.png",
                 "probability_of_improvement.png"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads(export.read_text())
    run = data["vmas"]["navigation"]["ps"]["seed_4"]
    assert run["step_0"] == {"step_count": 0, "return": [0.0]}
    assert run["step_2"] == {"step_count": 200, "return": [100.0]}
    assert run["absolute_metrics"] == {"return": [100.0]}
    assert sorted(data["vmas"]["navigation"]["nps"]) == [f"seed_{s}" for s in range(5)]
