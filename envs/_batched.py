"""``num_envs`` copies of a non-vectorised simulator behind one TorchRL env with batch ``[num_envs]``.

A family adapter (PettingZoo, MaMuJoCo, LBF, RWARE) writes a small :class:`~envs._sim.Sim` (the
contract is in :mod:`envs._sim`): one copy of its simulator, numpy in and numpy out, agents already
padded into one group. :class:`BatchedSimEnv` does the TorchRL side once for all of them:

* steps the copies in a plain loop in this process (``num_workers=0``, the default: on a 2-core
  machine this is the fastest for light simulators), or splits them over ``num_workers`` worker
  processes that read actions from and write results into shared memory (one tiny pipe message
  per worker and step, no pickled arrays; the workers live in :mod:`envs._workers`);
* allocates fresh numpy buffers every step and hands them to torch without a copy
  (``torch.from_numpy``): fresh because TorchRL keeps the tensors of earlier steps (rollouts,
  ``step_mdp``), so a reused buffer would rewrite history;
* builds the output tensordicts with ``TensorDict._new_unsafe`` (no per-key validation; the
  shapes are ours and fixed), which keeps the per-step overhead a small fraction of TorchRL's own;
* resets only the copies flagged by a partial ``"_reset"`` mask and steps only those flagged by
  a ``"_step"`` mask; seeds copy ``i`` with ``seed + i`` at its first reset after :meth:`set_seed`,
  so a seed reproduces first observations;
* passes its own outputs through unchanged (``_step_proc_data``) and skips TorchRL's done scan in
  :meth:`maybe_reset` when the last step finished no copy.
"""

from __future__ import annotations

import weakref
from typing import Callable

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from marlshare.envs import GROUP
from marlshare.envs._sim import Sim, SimSpec
from marlshare.envs._workers import _WorkerPool, default_start_method

# ----------------------------------------------------------------------------------------------
# the TorchRL env


class BatchedSimEnv(EnvBase):
    """``num_envs`` copies of a :class:`Sim`, batch size ``[num_envs]``, keys as in :mod:`envs`.

    Args:
        make_sim: builds one simulator copy (picklable when ``num_workers > 0``).
        num_envs: copies stepped together.
        seed: copy ``i`` is reset with ``seed + i`` the first time; ``None`` leaves them unseeded.
        num_workers: 0 steps the copies in this process; ``k > 0`` spreads them over ``k`` processes.
        start_method: multiprocessing start method of the workers; default :func:`default_start_method`.
    """

    def __init__(self, make_sim: Callable[[], Sim], num_envs: int = 1, seed: int | None = None,
                 num_workers: int = 0, start_method: str | None = None, name: str = ""):
        super().__init__(batch_size=torch.Size([num_envs]), device="cpu")
        self.name = name
        self.num_envs = num_envs
        try:
            first = make_sim()
        except TypeError as err:  # an option the simulator does not take: a configuration error
            raise ValueError(f"{name or 'env'}: invalid option ({err})") from err
        self.sim_spec = spec = first.spec
        self._pool = None
        if num_workers and num_workers > 0:
            first.close()
            self._sims = []
            self._pool = _WorkerPool(make_sim, num_envs, min(num_workers, num_envs), spec,
                                     start_method or default_start_method())
            weakref.finalize(self, self._pool.close)
        else:
            self._sims = [first] + [make_sim() for _ in range(num_envs - 1)]
        self._make_specs(spec)
        self._pending_seeds: list[int | None] = [None] * num_envs
        # mutable per-step state lives in a plain dict: EnvBase is an nn.Module, whose
        # __setattr__ costs tens of microseconds per call
        self._mut: dict = {"last": None}
        if seed is not None:
            self.set_seed(seed)

    # -- specs -----------------------------------------------------------------------------
    def _make_specs(self, spec: SimSpec) -> None:
        B, N = self.num_envs, spec.n_agents
        bool_spec = lambda *shape: Categorical(2, shape=torch.Size(shape), dtype=torch.bool)  # noqa: E731
        agents = {"observation": Unbounded((B, N, spec.obs_dim), dtype=torch.float32)}
        self._constants: dict[str, torch.Tensor] = {}
        if spec.has_action_mask:
            agents["action_mask"] = bool_spec(B, N, spec.action_dim)
        if spec.observation_mask is not None:
            agents["observation_mask"] = bool_spec(B, N, spec.obs_dim)
            self._constants["observation_mask"] = torch.as_tensor(spec.observation_mask, dtype=torch.bool).expand(B, N, spec.obs_dim).clone()
        if spec.action_dim_mask is not None:
            agents["action_dim_mask"] = bool_spec(B, N, spec.action_dim)
            self._constants["action_dim_mask"] = torch.as_tensor(spec.action_dim_mask, dtype=torch.bool).expand(B, N, spec.action_dim).clone()
        root = {GROUP: Composite(agents, shape=(B, N))}
        if spec.state_dim is not None:
            root["state"] = Unbounded((B, spec.state_dim), dtype=torch.float32)
        if spec.has_win:
            root["win"] = bool_spec(B, 1)
        self.observation_spec = Composite(root, shape=(B,))
        if spec.discrete:
            action = Categorical(spec.action_dim, shape=(B, N), dtype=torch.int64)
        else:
            low = torch.as_tensor(spec.action_low, dtype=torch.float32).expand(B, N, spec.action_dim).clone()
            high = torch.as_tensor(spec.action_high, dtype=torch.float32).expand(B, N, spec.action_dim).clone()
            action = Bounded(low, high, shape=(B, N, spec.action_dim), dtype=torch.float32)
        self.action_spec = Composite({GROUP: Composite({"action": action}, shape=(B, N))}, shape=(B,))
        self.reward_spec = Composite(
            {GROUP: Composite({"reward": Unbounded((B, N, 1), dtype=torch.float32)}, shape=(B, N))}, shape=(B,)
        )
        self.done_spec = Composite(
            {"done": bool_spec(B, 1), "terminated": bool_spec(B, 1), "truncated": bool_spec(B, 1)}, shape=(B,)
        )

    # -- buffers ---------------------------------------------------------------------------
    def _new_buffers(self) -> dict[str, np.ndarray | None]:
        s, B, N = self.sim_spec, self.num_envs, self.sim_spec.n_agents
        return {
            "obs": np.zeros((B, N, s.obs_dim), np.float32),
            "state": None if s.state_dim is None else np.zeros((B, s.state_dim), np.float32),
            "action_mask": np.ones((B, N, s.action_dim), np.bool_) if s.has_action_mask else None,
        }

    def _pack(self, buf: dict, reward=None, flags=None) -> TensorDictBase:
        B, N = self.num_envs, self.sim_spec.n_agents
        agents = {"observation": torch.from_numpy(buf["obs"])}
        if buf["action_mask"] is not None:
            agents["action_mask"] = torch.from_numpy(buf["action_mask"])
        agents.update(self._constants)
        if reward is not None:
            agents["reward"] = torch.from_numpy(reward[..., None])
        out = {GROUP: TensorDict._new_unsafe(agents, batch_size=torch.Size([B, N]), device=self.device)}
        if buf["state"] is not None:
            out["state"] = torch.from_numpy(buf["state"])
        # flags [B, 3] = (terminated, truncated, win) -> one [4, B, 1] bool array, done included
        done = np.zeros((4, B, 1), np.bool_)
        if flags is not None:
            done[0, :, 0] = flags[:, 0]
            done[1, :, 0] = flags[:, 1] & ~flags[:, 0]
            done[2, :, 0] = done[0, :, 0] | done[1, :, 0]
            done[3, :, 0] = flags[:, 2]
        d = torch.from_numpy(done)
        out["terminated"], out["truncated"], out["done"] = d[0], d[1], d[2]
        if self.sim_spec.has_win:
            out["win"] = d[3]
        return TensorDict._new_unsafe(out, batch_size=self.batch_size, device=self.device)

    def _step_proc_data(self, next_tensordict_out: TensorDictBase) -> TensorDictBase:
        # EnvBase's version reshapes rewards and fills in missing done keys; _pack already
        # returns every key in its spec's shape, so skip that per-step work
        return next_tensordict_out

    # -- EnvBase API -----------------------------------------------------------------------
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        reset = None if tensordict is None else tensordict.get("_reset", None)
        last = self._mut["last"]
        if reset is None or last is None:
            todo = range(self.num_envs)
        else:
            todo = reset.reshape(self.num_envs, -1).any(-1).nonzero().flatten().tolist()
        seeds = {i: self._pending_seeds[i] for i in todo}
        for i in todo:
            self._pending_seeds[i] = None
        if self._pool is not None:
            self._pool.reset(seeds)
            arrays = self._pool.arrays
            buf = {k: None if arrays.get(k) is None else arrays[k].copy() for k in ("obs", "state", "action_mask")}
        else:
            buf = self._new_buffers() if last is None else {k: None if v is None else v.copy() for k, v in last.items()}
            for i, seed in seeds.items():
                self._sims[i].reset(seed, buf["obs"][i], _at(buf["state"], i), _at(buf["action_mask"], i))
        self._mut["last"] = buf
        return self._pack(buf)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get((GROUP, "action")).detach().cpu().numpy()
        B, N = self.num_envs, self.sim_spec.n_agents
        # a partial step ("_step" mask, e.g. from a rollout that stops finished envs): the other
        # copies keep their observation, get zero reward and are not done
        partial = tensordict.get("_step", None)
        only = None
        if partial is not None and not bool(partial.all()):
            only = set(partial.reshape(B, -1).any(-1).nonzero().flatten().tolist())
        reward = np.zeros((B, N), np.float32)
        flags = np.zeros((B, 3), np.bool_)
        if self._pool is not None:
            self._pool.step(action, only)
            arrays = self._pool.arrays
            buf = {k: None if arrays.get(k) is None else arrays[k].copy() for k in ("obs", "state", "action_mask")}
            rows = slice(None) if only is None else sorted(only)
            reward[rows] = arrays["reward"][rows]
            flags[rows] = arrays["flags"][rows]
        else:
            s = self.sim_spec
            if only is None:
                buf = {
                    "obs": np.empty((B, N, s.obs_dim), np.float32),
                    "state": None if s.state_dim is None else np.empty((B, s.state_dim), np.float32),
                    "action_mask": np.empty((B, N, s.action_dim), np.bool_) if s.has_action_mask else None,
                }
            else:
                buf = {k: None if v is None else v.copy() for k, v in self._mut["last"].items()}
            obs, state, mask = buf["obs"], buf["state"], buf["action_mask"]
            for i, sim in enumerate(self._sims):
                if only is not None and i not in only:
                    continue
                flags[i] = sim.step(action[i], obs[i], None if state is None else state[i],
                                    None if mask is None else mask[i], reward[i])
        self._mut["last"] = buf
        self._mut["any_done"] = bool(flags[:, :2].any())
        return self._pack(buf, reward, flags)

    def maybe_reset(self, tensordict: TensorDictBase) -> TensorDictBase:
        # skip EnvBase's scan of the done keys when the last step finished no copy
        if not self._mut.get("any_done", True):
            return tensordict
        return super().maybe_reset(tensordict)

    def _set_seed(self, seed: int | None) -> None:
        self._pending_seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]

    def close(self, *, raise_if_closed: bool = True) -> None:
        if self._pool is not None:
            self._pool.close()
        for sim in self._sims:
            try:
                sim.close()
            except Exception:
                pass
        self._sims = []
        try:
            super().close(raise_if_closed=raise_if_closed)
        except TypeError:  # older EnvBase.close signature
            super().close()


def _at(a, i):
    return None if a is None else a[i]
