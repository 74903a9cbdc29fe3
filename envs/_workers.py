"""Worker processes for :class:`envs._batched.BatchedSimEnv`: copies ``[lo, hi)`` of the batch live in
each worker, actions and results pass through shared memory, and a worker dies with the training
process however that process ends (``kill -9`` included), releasing the shared memory."""

from __future__ import annotations

import multiprocessing as mp
import os
from multiprocessing import shared_memory
from typing import Callable

import numpy as np

from marlshare.envs._sim import Sim, SimSpec


# ----------------------------------------------------------------------------------------------
# worker processes


def _attach(specs: dict) -> tuple[dict, list]:
    arrays, handles = {}, []
    for key, (name, shape, dtype) in specs.items():
        shm = shared_memory.SharedMemory(name=name)
        handles.append(shm)
        arrays[key] = np.ndarray(shape, dtype=dtype, buffer=shm.buf)
    return arrays, handles


def _row(arrays: dict, key: str, i: int):
    a = arrays.get(key)
    return None if a is None else a[i]


def _die_with_parent(parent_pid: int, shm_names: list[str]) -> None:
    """End this worker when the training process dies, however it dies (``kill -9`` included), and
    release the shared memory that process can no longer release: the kernel sends SIGTERM when the
    parent exits (Linux ``PR_SET_PDEATHSIG``), and a watchdog thread catches the rest (other systems,
    or a parent that died before the request)."""
    import ctypes
    import os
    import signal
    import threading

    def orphaned(*_):
        for name in shm_names:
            try:
                shm = shared_memory.SharedMemory(name=name)
                shm.close()
                shm.unlink()
            except Exception:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, orphaned)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the trainer decides
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass

    def watch():
        while True:
            if os.getppid() != parent_pid:
                orphaned()
            threading.Event().wait(1.0)

    threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent_pid:
        orphaned()


def _worker(conn, make_sim: Callable[[], Sim], lo: int, hi: int, specs: dict, parent_pid: int = 0) -> None:
    if parent_pid:
        _die_with_parent(parent_pid, [name for name, _, _ in specs.values()])
    try:
        sims = [make_sim() for _ in range(hi - lo)]
        arrays, handles = _attach(specs)
        conn.send(("ready", None))
    except BaseException as err:  # report construction errors to the parent instead of hanging it
        conn.send(("error", repr(err)))
        return
    obs, state, mask, reward = arrays["obs"], arrays.get("state"), arrays.get("action_mask"), arrays["reward"]
    flags, action = arrays["flags"], arrays["action"]
    try:
        while True:
            cmd, arg = conn.recv()
            if cmd == "step":
                for j, sim in enumerate(sims):
                    i = lo + j
                    if arg is not None and i not in arg:
                        continue
                    flags[i] = sim.step(action[i], obs[i], None if state is None else state[i],
                                        None if mask is None else mask[i], reward[i])
                conn.send(("ok", None))
            elif cmd == "reset":
                for i, seed in arg:
                    sims[i - lo].reset(seed, obs[i], None if state is None else state[i],
                                       None if mask is None else mask[i])
                conn.send(("ok", None))
            elif cmd == "close":
                break
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        for sim in sims:
            try:
                sim.close()
            except Exception:
                pass
        del obs, state, mask, reward, flags, action, arrays
        for h in handles:
            h.close()


def default_start_method() -> str:
    """``fork`` on Linux (a worker starts in milliseconds; it runs only the simulator, never torch),
    unless JAX is loaded (JAX's threads do not survive a fork): then ``spawn``, which re-imports
    the simulator in each worker (seconds)."""
    import sys

    if sys.platform.startswith("linux") and "jax" not in sys.modules:
        return "fork"
    return "spawn"


class _WorkerPool:
    """Copies ``[lo, hi)`` of the batch live in each worker; results land in shared memory."""

    def __init__(self, make_sim, num_envs: int, num_workers: int, spec: SimSpec, start_method: str):
        ctx = mp.get_context(start_method)
        n, a = spec.n_agents, spec.action_dim
        layout = {
            "obs": ((num_envs, n, spec.obs_dim), np.float32),
            "reward": ((num_envs, n), np.float32),
            "flags": ((num_envs, 3), np.bool_),
            "action": ((num_envs, n) if spec.discrete else (num_envs, n, a), np.int64 if spec.discrete else np.float32),
        }
        if spec.state_dim is not None:
            layout["state"] = ((num_envs, spec.state_dim), np.float32)
        if spec.has_action_mask:
            layout["action_mask"] = ((num_envs, n, a), np.bool_)
        self._shm, specs, self.arrays = [], {}, {}
        for key, (shape, dtype) in layout.items():
            nbytes = max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize)
            shm = shared_memory.SharedMemory(create=True, size=nbytes)
            self._shm.append(shm)
            specs[key] = (shm.name, shape, dtype)
            self.arrays[key] = np.ndarray(shape, dtype=dtype, buffer=shm.buf)
        bounds = np.linspace(0, num_envs, num_workers + 1).astype(int)
        self.ranges = [(int(bounds[k]), int(bounds[k + 1])) for k in range(num_workers) if bounds[k + 1] > bounds[k]]
        self.conns, self.procs = [], []
        for lo, hi in self.ranges:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, make_sim, lo, hi, specs, os.getpid()), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        for conn in self.conns:
            try:
                status, msg = conn.recv()
            except EOFError:
                status, msg = "error", (
                    "the worker exited while starting; with the 'spawn' start method the calling script "
                    "needs an `if __name__ == '__main__':` guard"
                )
            if status != "ready":
                self.close()
                raise RuntimeError(f"an env worker process failed to build its simulators: {msg}")

    def step(self, action: np.ndarray, only: set[int] | None = None) -> None:
        self.arrays["action"][...] = action
        busy = []
        for conn, (lo, hi) in zip(self.conns, self.ranges):
            if only is None or any(lo <= i < hi for i in only):
                conn.send(("step", only))
                busy.append(conn)
        for conn in busy:
            conn.recv()

    def reset(self, seeds: dict[int, int | None]) -> None:
        busy = []
        for conn, (lo, hi) in zip(self.conns, self.ranges):
            todo = [(i, s) for i, s in seeds.items() if lo <= i < hi]
            if todo:
                conn.send(("reset", todo))
                busy.append(conn)
        for conn in busy:
            conn.recv()

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("close", None))
            except Exception:
                pass
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
        self.arrays = {}
        for shm in self._shm:
            try:
                shm.close()
                shm.unlink()
            except Exception:
                pass
        self._shm = []
