"""Real StarCraft II SMAC: a clear error without StarCraft II; the full checks only where it exists."""

from functools import partial

import pytest

from marlshare.envs import make_env
from marlshare.envs import smac


def test_clear_error_without_starcraft():
    if smac.available():
        pytest.skip("StarCraft II is installed here")
    with pytest.raises(RuntimeError, match="StarCraft II") as err:
        make_env("smac/3m")
    assert "smax/" in str(err.value) and "SMAC3" in str(err.value)


def test_unknown_map_lists_valid_ones():
    with pytest.raises(ValueError, match="3s5z"):
        make_env("smac/4m_vs_1z")


def test_pypi_smac3_is_not_mistaken_for_the_driver(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec

    def fake(name, *args):
        if name == "smac":
            return real("json")  # some module that is not oxwhirl's smac
        if name in ("smac.env", "smacv2"):
            return None
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    assert smac._driver(None) is None


@pytest.mark.slow
def test_real_smac(envcheck):
    pytest.importorskip("smacv2")
    if not smac.available():
        pytest.skip("StarCraft II not installed (set SC2PATH)")
    envcheck.standard(partial(make_env, "smac/3m", num_envs=2, seed=0), steps=80)
    envcheck.same_seed_same_start(lambda seed: make_env("smac/3m", num_envs=2, seed=seed))
