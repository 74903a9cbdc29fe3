"""The built wheel: one top-level package, ``marlshare``, that installs and trains outside the repository.

The wheel is built from this checkout, installed into a fresh virtual environment (its dependencies
are taken from the test's own environment through a ``.pth`` line, so nothing is downloaded), and run
from a directory that holds its own ``tools/`` and ``envs/`` folders: neither may shadow the library.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["env.num_envs=4", "env.eval_num_envs=2", "env.max_steps=10", "algorithm.frames_per_batch=80",
        "algorithm.minibatch_size=40", "algorithm.epochs=1", "total_frames=160", "schedule=single",
        "logger.wandb=false"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the checkout: setuptools keeps a build/ folder in the source tree, and files
    left there by an earlier build (a module since moved) would end up in the wheel."""
    src, out = tmp_path_factory.mktemp("src") / "marlshare", tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv*", "build", "*.egg-info", "outputs",
                                                              "multirun", "docs", "__pycache__", "wandb"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(src)], check=True, capture_output=True, cwd=out)
    (path,) = out.glob("marlshare-*.whl")
    return path


def test_the_wheel_has_one_top_level_package_and_ships_no_tools_or_tests(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"marlshare", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    assert "marlshare/components/strategies/ps_lora.py" in names
    assert "marlshare/recipes/conf/train.yaml" in names and "marlshare/recipes/lorasa_grid.yaml" in names
    assert not [n for n in names if "/tools/" in n or "/tests/" in n or n.startswith(("tools/", "tests/"))]


def test_the_installed_wheel_trains_from_a_folder_with_its_own_tools_and_envs(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # the dependencies (torch, torchrl, ...) from this environment; the editable install of marlshare
    # there is a .pth of its own, which a path added this way does not run
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)
    work = tmp_path / "user"
    for name in ("tools", "envs", "components", "recipes"):  # a user's own folders, importable from here
        (work / name).mkdir(parents=True)
        (work / name / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name}/ was imported')\n")
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": ""}
    where = subprocess.run([str(python), "-c", "import marlshare.envs, marlshare.components.trainer as t; "
                            "print(marlshare.envs.__file__); print(t.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(site) for line in where.stdout.split()), where.stdout
    marlshare = env_dir / "bin" / "marlshare"
    help_ = subprocess.run([str(marlshare), "--help"], cwd=work, env=env, capture_output=True, text=True)
    assert help_.returncode == 0 and "train" in help_.stdout and "compare" in help_.stdout
    run = subprocess.run([str(marlshare), "train", *TINY, f"run_dir={work / 'run'}"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((work / "run" / "summary.json").read_text())
    assert summary["frames"] == 160 and summary["strategy"] == "ps"
