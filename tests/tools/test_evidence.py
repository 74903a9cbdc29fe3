"""tools.evidence: each group's section of docs/evidence.md holds compare's numbers, the wall time per
run and the scripted references, replaces only its own markers, and is the same text on a rerun."""

import json

import pytest

from marlshare.components.analysis.compare import main as compare_main
from tests.components.analysis.test_compare import _write_run
from tools import evidence

FINALS = {"ps": [-50.0, -52.0, -51.0, -49.0, -53.0], "seps": [-30.0, -28.0, -31.0, -29.0, -20.0]}
REFERENCES = {"still": {"mean": -58.3, "low": -60.8, "high": -55.8, "n": 100},
              "oracle": {"mean": -9.0, "low": -9.6, "high": -8.4, "n": 100}}


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """sweeps/evidence/g/<spec>/<trial> as ``make evidence`` lays them out, compare run on the group."""
    group = tmp_path / "sweeps" / "g"
    for strategy, finals in FINALS.items():
        for seed, final in enumerate(finals):
            run = group / f"spec_{strategy}" / f"{strategy}_{seed}"
            _write_run(run, "vmas/bps", strategy, seed, final, evals=((0, -58.0), (100, final / 2), (200, final)))
            summary = json.loads((run / "summary.json").read_text())
            summary["wall_time_s"] = 40.0 + seed if strategy == "ps" else 60.0  # ps: mean 42
            if strategy == "seps":  # seed 4's fit merged two groups: ARI 0.5
                clusters = [0, 0, 0, 1, 1, 1, 1, 1, 1] if seed == 4 else [2, 2, 2, 0, 0, 0, 1, 1, 1]
                summary["fits"] = {"train": {"k": 2 if seed == 4 else 3, "clusters": clusters}}
            (run / "summary.json").write_text(json.dumps(summary))
            (run / "config.yaml").write_text("env:\n  name: vmas/bps\n  max_steps: 50\n  options:\n    groups: [3, 3, 3]\n")
    # tools.bps_roles evaluates each run's checkpoint; these runs have none: their distances, by method
    distances = {"ps": (0.5, 0.75), "seps": (0.0, 2.0)}
    monkeypatch.setattr("tools.bps_roles.role_distances", lambda run_dir: distances[run_dir.name.split("_")[0]])
    figures = tmp_path / "figures"
    compare_main([str(p) for p in sorted(group.iterdir())] + ["--out", str(figures / "g"), "--reps", "50", "--quiet"])
    cache = tmp_path / "data"
    cache.mkdir()
    (cache / "bps_reference_3-3-3.json").write_text(json.dumps({"groups": [3, 3, 3], "rows": REFERENCES}))
    docs = tmp_path / "docs" / "evidence.md"
    docs.parent.mkdir()
    docs.write_text("# Evidence\n\nText a person wrote.\n\n<!-- evidence:g -->\nstale\n<!-- /evidence:g -->\n\nAfter.\n")
    argv = ["g", "--sweeps", str(tmp_path / "sweeps"), "--figures", str(figures), "--docs", str(docs),
            "--references", str(cache)]
    return argv, docs, figures


def _rows(text):
    return {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}


def test_the_section_holds_compares_numbers_wall_times_and_references(tree):
    argv, docs, figures = tree
    evidence.main(argv)
    text = docs.read_text()
    assert text.startswith("# Evidence\n\nText a person wrote.\n\n<!-- evidence:g -->") and text.endswith("\n\nAfter.\n")
    assert "stale" not in text and text.count("<!-- evidence:g -->") == 1
    table = {r["method"]: r for r in __import__("csv").DictReader(open(figures / "g" / "table.csv"))}
    rows = _rows(text)
    for method in FINALS:
        iqm = f"{float(table[method]['iqm']):.1f} [{float(table[method]['iqm_low']):.1f}, {float(table[method]['iqm_high']):.1f}]"
        assert iqm in rows[evidence.LABELS.get(method, method)], (method, rows)
    # seeds; mean wall time (40..44); across / within-group action distance
    ps = rows["ps (with id)"]  # compare's "ps", in words
    assert ps.split(" | ")[1] == "5" and ps.endswith("| 42 | 1.50 [1.50, 1.50] |")
    assert rows["seps"].endswith("| 60 | groups act as one (within = 0) |")
    # seed-paired against ps (with id): seps - ps per seed = 20, 24, 20, 20, 33
    assert rows["seps"].split(" | ")[4] == "5/5, +20.0" and ps.split(" | ")[4] == "-"
    assert "-51.0 [" in ps  # IQM of ps's five finals (-52, -51, -50 in the middle)
    assert rows["*scripted: still*"] == "| *scripted: still* | 100 episodes | | -58.3 [-60.8, -55.8] | | | | |"
    assert "*scripted: oracle*" in rows and "*scripted: blind*" not in rows
    assert "- seps: K = 3, 3, 3, 3, 2; ARI mean 0.90 (min 0.50)" in text  # (4 * 1 + 0.5) / 5
    assert "- ps:" not in text
    assert "(figures/evidence/g/learning_curves_refs.png)" in text
    assert (figures / "g" / "learning_curves_refs.png").stat().st_size > 0


def test_a_rerun_writes_the_same_text_and_a_new_group_is_appended(tree, tmp_path):
    argv, docs, _ = tree
    evidence.main(argv)
    first = docs.read_text()
    evidence.main(argv)
    assert docs.read_text() == first
    docs.write_text(first.replace("<!-- evidence:g -->", "<!-- evidence:other -->\nkept\n<!-- /evidence:other -->\n\n<!-- evidence:g -->"))
    evidence.main(argv)
    assert "<!-- evidence:other -->\nkept\n<!-- /evidence:other -->" in docs.read_text()


def test_a_group_without_sweeps_says_what_to_run(tmp_path, capsys):
    docs = tmp_path / "evidence.md"
    evidence.main(["missing", "--sweeps", str(tmp_path), "--figures", str(tmp_path), "--docs", str(docs)])
    assert "run `make evidence` first" in capsys.readouterr().out and not docs.exists()
