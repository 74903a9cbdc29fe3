"""Atomic checkpoints and RNG state capture.

A checkpoint is written to a temporary file in the same directory, flushed to disk and then renamed
over the old one (``os.replace`` is atomic on POSIX), so an interrupted write leaves the previous
checkpoint intact and loadable.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def save_atomic(obj, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load(path: str | os.PathLike) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _vmas_state():
    """VMAS keeps its own random state (torch, numpy, python), shared by every VMAS env of the
    process and swapped in around each reset and step; it is part of the run's random state."""
    module = sys.modules.get("vmas.simulator.environment.environment")
    return None if module is None else module.Environment.vmas_random_state


def rng_state() -> dict:
    """Every random stream a run draws from: torch, numpy, Python, and simulators' own streams."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "random": random.getstate()}
    vmas_state = _vmas_state()
    if vmas_state is not None:
        state["vmas"] = copy.deepcopy(list(vmas_state))
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    vmas_state = _vmas_state()
    if vmas_state is not None and "vmas" in state:
        vmas_state[:] = copy.deepcopy(state["vmas"])  # in place: VMAS holds this very list


@contextlib.contextmanager
def forked_rng():
    """Run a block (e.g. an evaluation) without changing any of the run's random streams."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
