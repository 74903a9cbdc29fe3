"""Atomic, rotating, verified checkpoints and RNG state capture.

A checkpoint is written to a temporary file in the same directory, flushed to disk and then renamed
over the old one (``os.replace`` is atomic on POSIX), so an interrupted write leaves the previous
checkpoint intact and loadable. :func:`save_rotating` keeps the last ``keep`` checkpoints
(``last.pt``, ``last.1.pt``, ...); :func:`load_latest` loads the newest one that verifies and says
which damaged files it skipped (and, given ``check``, which ones belong to another run);
:func:`remove_stale_temporaries` clears what interrupted writes left.

A write that fails (a full disk, a quota, a read-only or vanished directory) removes its temporary
file and raises :class:`RunDirWriteError`, an ``OSError`` with the errno and the file: torch.save
reports a full disk as a RuntimeError ("inline_container.cc ... unexpected pos") chained to the
OSError, which :func:`write_error` digs out.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from marlshare.envs import RNG_STREAMS


class RunDirWriteError(OSError):
    """A run directory's file could not be written: ``errno``, ``strerror`` and ``filename`` as in OSError."""

    @property
    def disk_full(self) -> bool:
        return self.errno in (errno.ENOSPC, errno.EDQUOT)


def write_error(err: BaseException) -> OSError | None:
    """The OSError behind ``err`` (itself, or one it was raised from or while handling), else None."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno is not None:
            return err
        err = err.__cause__ or err.__context__
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write(path: Path, write) -> Path:
    """``write(file)`` into a temporary file next to ``path``, flushed to disk, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make the run unreadable to the user's group
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        cause = write_error(err) if isinstance(err, Exception) else None
        if cause is not None and not isinstance(err, RunDirWriteError):
            raise RunDirWriteError(cause.errno, os.strerror(cause.errno), str(path)) from err
        raise
    return path


def save_atomic(obj, path: str | os.PathLike) -> Path:
    return _write(Path(path), lambda f: torch.save(obj, f))


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """A small text file (``summary.json``) written whole or not at all."""
    return _write(Path(path), lambda f: f.write(text.encode()))


def load(path: str | os.PathLike) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


class CheckpointError(RuntimeError):
    """No checkpoint of a run could be loaded."""


REQUIRED = ("version", "frames", "actor", "critic", "optimiser", "rng")


def verified(path: Path) -> dict:
    """Load ``path`` and check it is a complete trainer checkpoint; raises ValueError naming the file."""
    try:
        state = load(path)
    except Exception as err:  # truncated, empty, garbage: torch/pickle/zip errors of many kinds
        raise ValueError(f"{path} is damaged ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})")
    missing = [k for k in REQUIRED if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"{path} is not a complete checkpoint (missing {missing})")
    return state


def rotation(directory: Path, keep: int) -> list[Path]:
    """``last.pt`` then ``last.1.pt`` .. ``last.{keep-1}.pt``: newest first."""
    return [directory / "last.pt"] + [directory / f"last.{i}.pt" for i in range(1, max(1, keep))]


def save_rotating(obj, directory: str | os.PathLike, keep: int = 2) -> Path:
    """Write ``directory/last.pt`` atomically, keeping the previous ``keep - 1`` as ``last.1.pt`` ..."""
    directory = Path(directory)
    slots = rotation(directory, keep)
    tmp = save_atomic(obj, directory / ".last.pt.new.tmp")  # complete on disk before anything moves
    for newer, older in zip(reversed(slots[:-1]), reversed(slots[1:])):
        if newer.exists():
            os.replace(newer, older)
    os.replace(tmp, slots[0])
    for extra in directory.glob("last.*.pt"):
        if extra not in slots:
            extra.unlink()
    return slots[0]


def load_latest(directory: str | os.PathLike, check=None) -> tuple[dict, Path, list[str]]:
    """The newest checkpoint in ``directory`` that verifies: ``(state, path, problems)`` where
    ``problems`` names each newer file that was damaged and skipped. ``check(state, path)``, if given,
    returns why a verified checkpoint does not belong here (it is then skipped too), or None."""
    directory = Path(directory)
    rotated = sorted(directory.glob("last.*.pt"), key=lambda p: int(p.stem.split(".")[1]) if p.stem.split(".")[1].isdigit() else 10**9)
    problems = []
    for path in [directory / "last.pt", *rotated]:
        if not path.exists():
            continue
        try:
            state = verified(path)
        except ValueError as err:
            problems.append(str(err))
            continue
        problem = check(state, path) if check is not None else None
        if problem is None:
            return state, path, problems
        problems.append(problem)
    raise CheckpointError(f"no usable checkpoint in {directory}" + (f": {'; '.join(problems)}" if problems else ""))


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files interrupted saves left behind (``.<name>.pt.*.tmp``)."""
    removed = []
    for path in Path(directory).glob(".*.tmp"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def rng_state() -> dict:
    """Every random stream a run draws from: torch, numpy, Python, and simulators' own streams."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "random": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # a GPU run samples actions there
        state["cuda"] = torch.cuda.get_rng_state_all()
    for name, (get, _) in RNG_STREAMS.items():
        value = get()
        if value is not None:
            state[name] = copy.deepcopy(value)
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
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
