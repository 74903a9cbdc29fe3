"""One writer per run directory: an exclusive ``fcntl.flock`` on ``RUN_DIR/.lock``.

Train, resume and each sweep trial hold the lock of their run directory for as long as they write it
(a sweep also holds its sweep directory's, which guards ``manifest.json``). The operating system
releases a ``flock`` when its holder dies, so a ``kill -9`` never leaves a stale lock: the next run
simply takes it. The holder writes its pid (and host) into the file, so a second writer is told who
holds it::

    with hold(run_dir):          # RunDirBusy("... in use by pid 4242 ...") if another process holds it
        ...

Within one process the lock is re-entrant (counted): a sweep trial holds its directory and the trainer
it starts takes it again; and tests build several trainers on one directory in turn. ``flock`` locks
belong to an open file, so this count is what keeps a process from locking itself out.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

LOCK_NAME = ".lock"


class RunDirBusy(RuntimeError):
    """Another process writes this run directory (``pid``: its process id, or None if unknown)."""

    def __init__(self, message: str, pid: int | None):
        super().__init__(message)
        self.pid = pid


_held: dict[Path, list] = {}  # resolved lock path -> [file object, count]


def holder(run_dir) -> int | None:
    """The pid written in ``run_dir/.lock`` (the last process that held it), or None."""
    try:
        first = (Path(run_dir) / LOCK_NAME).read_text().split()
        return int(first[0]) if first else None
    except (OSError, ValueError):
        return None


def acquire(run_dir, what: str = "run directory") -> Path:
    """Take the lock of ``run_dir`` (which must exist) without waiting; raises :class:`RunDirBusy`
    naming the holder's pid when another process has it. Returns ``run_dir`` resolved (for release)."""
    path = (Path(run_dir) / LOCK_NAME).resolve()
    if path in _held:
        _held[path][1] += 1
        return path.parent
    f = open(path, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        pid = holder(run_dir)
        who = f"pid {pid}" if pid is not None else "another process"
        raise RunDirBusy(f"{what} {run_dir} is in use by {who} (lock {path}): one process writes a run at a time; "
                         f"wait for it to end or stop it" + (f" (kill {pid})" if pid is not None else ""), pid) from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()} {socket.gethostname()}\n")
    f.flush()
    _held[path] = [f, 1]
    return path.parent


def release(run_dir) -> None:
    """Give back one hold of ``run_dir``'s lock; the last one unlocks it. Releasing a lock this process
    does not hold does nothing."""
    path = (Path(run_dir) / LOCK_NAME).resolve()
    entry = _held.get(path)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del _held[path]
        fcntl.flock(entry[0].fileno(), fcntl.LOCK_UN)
        entry[0].close()


@contextlib.contextmanager
def hold(run_dir, what: str = "run directory"):
    """``acquire`` for the block, ``release`` after it."""
    acquire(run_dir, what)
    try:
        yield
    finally:
        release(run_dir)
