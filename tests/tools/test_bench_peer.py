"""tools.bench_peer without the peer venv: the benchmarl preset against BenchMARL's declared values,
the alternating runs and their medians on fake runners, the clock, the docs writer, and the BenchMARL
runner's isolation from marlshare."""

import ast
import math
import sys
from pathlib import Path

import pytest

import tools.bench_peer as bp
from tools.peer import _measure
from tools.peer.settings import BENCHMARL, PEER_KEYS, RECIPE, ROWS

ROOT = Path(__file__).resolve().parents[2]


def test_preset_and_overrides_equal_every_declared_benchmarl_value():
    configs = bp.plain_configs()
    assert bp.preset_mismatches(configs["preset"]) == {}
    # the marlshare defaults differ on the settings: the check is not vacuous
    wrong = bp.preset_mismatches(configs["default"])
    for key in ("env.num_envs", "algorithm.adam_eps", "algorithm.max_grad_norm", "algorithm.clip_grad_per_network",
                "algorithm.network.log_std", "strategy.append_id", "algorithm.network.critic_agent_id",
                "algorithm.reset_each_iteration"):
        assert key in wrong, key
    configs["preset"]["algorithm"]["adam_eps"] = 1e-5
    assert bp.preset_mismatches(configs["preset"]) == {"algorithm.adam_eps": (1e-5, 1e-6)}


def test_the_documented_recipe_command_composes_to_benchmarl_setting():
    from marlshare.components.config import as_train_config, config_to_dict
    from marlshare.recipes.train import compose

    overrides = RECIPE.split()[2:]  # after "marlshare train"
    cfg = config_to_dict(as_train_config(compose(overrides)))
    assert bp.preset_mismatches(cfg) == {}
    assert cfg["schedule"]["name"] == "single"


def test_the_preset_file_states_the_recipe_command():
    comment = " ".join(line.lstrip("#").strip().rstrip("\\").strip()
                       for line in bp.PRESET.read_text().splitlines() if line.startswith("#   "))
    assert " ".join(comment.split()) == RECIPE


def test_marlshare_side_config(tmp_path):
    from marlshare.components.config import TrainConfig, as_train_config, config_to_dict

    cfg = as_train_config(bp.marlshare_config(seed=3, threads=2, frames=12000, run_dir=str(tmp_path)))
    plain = config_to_dict(cfg)
    # evaluation off inside the timing, the run as long as asked, nothing else changed
    assert bp.preset_mismatches(plain) == {"eval_every": (10**12, 120_000), "total_frames": (12000, 3_000_000)}
    assert (cfg.seed, cfg.threads, cfg.total_frames, cfg.checkpoint_every) == (3, 2, 12000, 0)
    assert not (cfg.logger.csv or cfg.logger.wandb or cfg.logger.tensorboard or cfg.logger.progress)
    default = as_train_config(bp.marlshare_config(seed=0, threads=0, frames=6000, run_dir=str(tmp_path)))
    assert default.threads == TrainConfig().threads  # threads=0: marlshare's own default
    quick = as_train_config(bp.marlshare_config(seed=0, threads=1, frames=2400, run_dir=str(tmp_path), quick=True))
    assert quick.algorithm.frames_per_batch == _measure.QUICK["frames_per_batch"]


def test_peer_settings_check():
    sections: dict = {}
    for key, (section, name) in PEER_KEYS.items():
        sections.setdefault(section, {})[name] = BENCHMARL[key]
    assert bp.peer_mismatches(sections) == {}
    sections["experiment"]["adam_eps"] = 1e-8
    sections["actor_model"]["num_cells"] = (64, 64)
    assert bp.peer_mismatches(sections) == {"algorithm.adam_eps": (1e-6, 1e-8),
                                            "algorithm.network.actor_hidden": ([256, 256], [64, 64])}


def _fake(library, threads, seed, fps):
    return {"library": library, "fps": fps, "cpu_s_per_iteration": 6000 / fps, "process_cpu_s": 100.0 + seed,
            "peak_rss_mb": 500.0 if library == "marlshare" else 700.0, "final_return": float(seed),
            "first_iteration_s": 1.0, "startup_s": 2.0, "torch_threads": threads or 2, "frames": 60000,
            "parameters": {"actor": 10, "critic": 20}}


def test_runs_alternate_and_medians_are_paired():
    calls = []
    fps = {("marlshare", 0): 300.0, ("benchmarl", 0): 100.0,  # ratio 3.0
           ("marlshare", 1): 200.0, ("benchmarl", 1): 200.0,  # ratio 1.0
           ("marlshare", 2): 500.0, ("benchmarl", 2): 250.0}  # ratio 2.0

    def run_one(library, threads, seed):
        calls.append((library, threads, seed))
        return _fake(library, threads, seed, fps[library, seed])

    modes = bp.thread_modes([1, 2], defaults=True)
    results = bp.compare(run_one, modes, repeats=3, seed=0, log=lambda *_: None)
    expected = [(lib, t, s) for t in (1, 2, 0) for s in range(3) for lib in ("marlshare", "benchmarl")]
    assert calls == expected  # marlshare, BenchMARL, marlshare, ...; defaults mode: threads 0 for both
    s = results[0]["summary"]
    assert s["fps_ratio"] == 2.0  # median of the paired ratios 3, 1, 2
    assert s["fps_ratio_of_medians"] == pytest.approx(300.0 / 200.0)
    assert s["marlshare"]["fps"] == 300.0 and s["benchmarl"]["fps"] == 200.0
    assert s["cpu_ratio"] == pytest.approx(2.0)
    assert s["marlshare"]["final_return"] == 1.0 and s["benchmarl"]["peak_rss_mb"] == 700.0
    assert s["target"]["pass"]  # equal threads: >= 2x
    assert results[2]["mode"]["kind"] == "defaults" and results[2]["summary"]["target"]["target"] == ">= 1.5"
    table = bp.results_markdown({"results": results})
    assert "**2.00x**" in table and "each library's defaults" in table


def test_iteration_clock_excludes_the_first_iteration(monkeypatch):
    ticks = iter([0.0, 10.0, 12.0, 15.0])  # start, then three iteration ends
    cpu = iter([0.0, 5.0, 7.0, 9.0])
    monkeypatch.setattr(_measure.time, "perf_counter", lambda: next(ticks))
    monkeypatch.setattr(_measure.time, "process_time", lambda: next(cpu))
    clock = _measure.IterationClock()
    clock.start()
    for ret in (-3.0, -2.0, -1.0):
        clock.mark(ret)
    r = clock.result(6000)
    assert r["iteration_s"] == [10.0, 2.0, 3.0] and r["first_iteration_s"] == 10.0
    assert r["fps"] == pytest.approx(2 * 6000 / 5.0)  # iterations 2..3
    assert r["fps_loop"] == pytest.approx(3 * 6000 / 15.0)
    assert r["cpu_s_per_iteration"] == pytest.approx(2.0)
    assert r["final_return"] == -1.0 and r["frames"] == 18000
    with pytest.raises(RuntimeError):
        _measure.IterationClock().result(6000)


def test_result_line_is_found_among_other_output():
    line = _measure.RESULT_PREFIX + '{"fps": 1.5}'
    assert bp.parse_result(f"noise\n{line}\nmore noise\n") == {"fps": 1.5}
    with pytest.raises(RuntimeError):
        bp.parse_result("no result here\n")


def test_docs_writer_replaces_only_its_section(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nintro\n")
    bp.write_docs("first", doc)
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n") and "## 5. Side by side with BenchMARL" in text
    assert f"{bp.BEGIN}\nfirst\n{bp.END}" in text
    doc.write_text(text + "\n## 6. After\n\nkept\n")
    bp.write_docs("second", doc)
    text = doc.read_text()
    assert "first" not in text and f"{bp.BEGIN}\nsecond\n{bp.END}" in text and text.endswith("## 6. After\n\nkept\n")
    assert text.count("## 5. Side by side with BenchMARL") == 1


def test_docs_section_has_every_setting_and_the_missing_pieces():
    section = bp.docs_section(None)
    for name, *_ in ROWS:
        assert f"| {name} |" in section
    assert "| agent id appended to the actor input | true | no | false |" in section
    assert "| Adam eps | 1e-05 | 1e-06 | 1e-06 |" in section
    assert "| env copies x steps per iteration | 60 x 100 | 10 x 600" in section
    assert "biased_softplus_1.0" in section and RECIPE in section


def test_runner_commands(monkeypatch):
    seen = []
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setattr(bp, "run_command", lambda cmd, timeout, env=None: seen.append((cmd, env)) or {})
    run_one = bp.subprocess_runner("/peer/bin/python", frames=12000, quick=True, timeout=5)
    run_one("marlshare", 2, 7)
    run_one("benchmarl", 0, 7)
    (ours, ours_env), (peer, peer_env) = seen
    tail = ["--frames", "12000", "--seed", "7"]
    assert ours[:3] == [sys.executable, "-m", "tools.peer.marlshare_run"] and ours[3:7] == tail
    assert ours[7:] == ["--threads", "2", "--quick"] and ours_env is None
    assert peer[:2] == ["/peer/bin/python", str(ROOT / "tools" / "peer" / "benchmarl_run.py")]
    assert peer[2:] == tail + ["--threads", "0", "--quick"]
    assert "PYTHONPATH" not in peer_env  # the peer never sees marlshare


@pytest.mark.parametrize("name", ["benchmarl_run.py", "_measure.py"])
def test_benchmarl_side_never_imports_marlshare(name):
    tree = ast.parse((ROOT / "tools" / "peer" / name).read_text())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    assert not modules & {"components", "envs", "recipes", "tools", "marlshare"}


def test_bench_training_hands_peer_runs_to_bench_peer(monkeypatch):
    import tools.bench_training as bt

    got = []
    monkeypatch.setattr(bp, "main", lambda argv: got.append(argv) or {"ok": True})
    assert bt.main(["--peer", "/peer/bin/python", "--quick"]) == {"ok": True}
    assert got == [["--peer", "/peer/bin/python", "--quick"]]


def test_bench_training_reference_reads_the_benchmarl_setting(tmp_path):
    import tools.bench_training as bt

    settings = bt.Settings.from_config(bt.compose_config(0, 1, 1, str(tmp_path), quick=False))
    settings.check_benchmarl()
    assert settings.clip_grad_per_network and settings.clamp_actions and settings.num_envs == 10


def test_make_test_does_not_build_the_peer():
    makefile = (ROOT / "Makefile").read_text()
    test_line = next(line for line in makefile.splitlines() if line.startswith("test:"))
    assert "peer" not in test_line and "bench-peer:" in makefile and ".venv-peer/" in (ROOT / ".gitignore").read_text()


def test_a_single_iteration_has_no_steady_frames_per_second():
    clock = _measure.IterationClock()
    clock.start()
    clock.mark(0.0)
    assert math.isnan(clock.result(6000)["fps"])
