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


#: Random streams that simulators keep for themselves, registered by their env adapters:
#: name -> (get() -> state or None, set(state)). They are part of a run's random state.
RNG_STREAMS: dict[str, tuple] = {}


def rng_state() -> dict:
    """Every random stream a run draws from: torch, numpy, Python, and simulators' own streams."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "random": random.getstate()}
    for name, (get, _) in RNG_STREAMS.items():
        value = get()
        if value is not None:
            state[name] = copy.deepcopy(value)
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    for name, (_, set_state) in RNG_STREAMS.items():
        if name in state:
            set_state(copy.deepcopy(state[name]))


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
