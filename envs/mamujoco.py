"""Multi-agent MuJoCo (Gymnasium-Robotics ``mamujoco_v1`` on ``mujoco``): ``mamujoco/<robot>-<partition>``.

Names are lowercase and shell-safe. ``<partition>`` is MaMuJoCo's ``agent_conf`` with ``|``
written as ``_`` (``|`` is a pipe on a command line; ``humanoid-9|8`` is accepted too):

====================================  ===============================================
name                                  agents (action sizes)
====================================  ===============================================
``mamujoco/ant-4x2``                  4 (2 each); also ``ant-2x4``, ``ant-2x4d``
``mamujoco/halfcheetah-2x3``          2 (3 each); also ``halfcheetah-6x1``
``mamujoco/walker2d-2x3``             2 (3 each)
``mamujoco/walker2d-3x2``             3 (2 each): the LoRASA authors' MaMuJoCo partition, built here
                                      with a custom factorisation (:data:`NAMED_PARTITIONS`)
``mamujoco/humanoid-9_8``             2 (9 upper body, 8 lower body), padded to 9
``mamujoco/hopper-3x1``               3 (1 each)
``mamujoco/swimmer-2x1``, ``reacher-2x1``, ``pusher-3p``, ``humanoidstandup-9_8``,
``manysegmentant-<n>x<k>``, ``manysegmentswimmer-<n>x<k>``
====================================  ===============================================

Options:

* ``agent_obsk=1``: observation depth, how many joints away an agent sees (0: only its own);
* ``full_observation=False``: every agent observes the whole single-agent observation (the global
  state) while still acting on its own joints: the LoRASA authors' ``agent_obsk=-1`` (their
  Humanoid 9|8). Gymnasium-Robotics' ``agent_obsk=None`` is not that: it makes one agent of all joints;
* ``partition``: a custom split of the robot's joints, a list of lists of joint labels
  (``[["bthigh", "bshin"], ["bfoot", "fthigh"], ["fshin", "ffoot"]]``) or the same as a string
  with agents separated by ``;`` and joints by ``,``; the name's ``<partition>`` part is then just a
  label (``mamujoco/halfcheetah-custom``). :func:`joints` lists the labels of a robot;
* ``max_steps=1000``: the time limit (reported as ``truncated``; counted by the adapter, which
  steps the unwrapped MuJoCo env);
* ``fast_obs=True``: build local observations as one gather over MuJoCo's data arrays, compiled
  once from MaMuJoCo's own observation graph and checked against MaMuJoCo's ``_get_obs`` at build
  time (falls back to MaMuJoCo's builder, with a warning, if they ever differ);
* ``num_workers=0``, and anything else goes to the Gymnasium MuJoCo env (e.g. ``ctrl_cost_weight``).

The global ``"state"`` is the single-agent Gymnasium observation (MaMuJoCo's ``env.state()``).
Agents whose sizes differ (Humanoid 9|8: 242 vs 170 observations, 9 vs 8 actions) are padded into
one group: observations with zeros plus ``("agents", "observation_mask")``, actions with entries
that never reach the simulator plus ``("agents", "action_dim_mask")``. Every agent gets the
shared team reward.
"""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
from torchrl.envs import EnvBase

from marlshare.envs._batched import BatchedSimEnv
from marlshare.envs._sim import SimSpec, pad_bounds

ROBOTS: dict[str, str] = {
    "ant": "Ant",
    "halfcheetah": "HalfCheetah",
    "hopper": "Hopper",
    "humanoid": "Humanoid",
    "humanoidstandup": "HumanoidStandup",
    "reacher": "Reacher",
    "swimmer": "Swimmer",
    "pusher": "Pusher",
    "walker2d": "Walker2d",
    "manysegmentant": "ManySegmentAnt",
    "manysegmentswimmer": "ManySegmentSwimmer",
}

# MaMuJoCo's named partitions per robot (``obsk.get_parts_and_edges``)
PARTITIONS: dict[str, list[str]] = {
    "ant": ["2x4", "2x4d", "4x2"],
    "halfcheetah": ["2x3", "6x1"],
    "hopper": ["3x1"],
    "humanoid": ["9_8"],
    "humanoidstandup": ["9_8"],
    "reacher": ["2x1"],
    "swimmer": ["2x1"],
    "pusher": ["3p"],
    "walker2d": ["2x3", "3x2"],
    "manysegmentant": ["<agents>x<segments>"],
    "manysegmentswimmer": ["<agents>x<segments>"],
}


# Partitions Gymnasium-Robotics does not name ("UNKNOWN partitioning config"), built as custom
# factorisations. Walker2d 3x2 is the grouping of the LoRASA authors' MaMuJoCo copy
# (ZBN111/ICML2025_LoRASA, obsk.py, Walker2d-v2 "3x2"), agent by agent in its joint order (the order
# sets each agent's action columns): right foot + leg; right thigh + left foot; left leg + thigh.
NAMED_PARTITIONS: dict[tuple[str, str], list[list[str]]] = {
    ("Walker2d", "3x2"): [["foot_joint", "leg_joint"], ["thigh_joint", "foot_left_joint"],
                          ["leg_left_joint", "thigh_left_joint"]],
}


def tasks() -> list[str]:
    return [f"{robot}-{p}" for robot, parts in PARTITIONS.items() for p in parts]


def parse(task: str) -> tuple[str, str]:
    robot, sep, conf = task.partition("-")
    if not sep or robot not in ROBOTS or not conf:
        raise ValueError(f"unknown MaMuJoCo task {task!r}: expected '<robot>-<partition>'; valid: {tasks()}")
    return ROBOTS[robot], conf.replace("_", "|")


def joints(robot: str) -> list[str]:
    """Joint labels of a robot, for the ``partition`` option."""
    from gymnasium_robotics.envs.multiagent_mujoco.obsk import get_parts_and_edges

    parts, _, _ = get_parts_and_edges(ROBOTS.get(robot, robot), None)
    return [node.label for part in parts for node in part]


def _custom_factorization(scenario: str, partition) -> dict:
    from gymnasium_robotics.envs.multiagent_mujoco.obsk import get_parts_and_edges

    if isinstance(partition, str):
        partition = [[j.strip() for j in agent.split(",") if j.strip()] for agent in partition.replace("|", ";").split(";")]
    parts, edges, global_nodes = get_parts_and_edges(scenario, None)
    nodes = {node.label: node for part in parts for node in part}
    wanted = [label for agent in partition for label in agent]
    unknown = sorted(set(wanted) - set(nodes))
    if unknown or sorted(wanted) != sorted(nodes):
        raise ValueError(
            f"partition {partition} must use every joint of {scenario} exactly once; unknown: {unknown}; "
            f"joints: {sorted(nodes)}"
        )
    return {"partition": [tuple(nodes[label] for label in agent) for agent in partition],
            "edges": edges, "globals": global_nodes}


# ----------------------------------------------------------------------------------------------
# compiled observations

_FIELDS = ("qpos", "qvel", "qfrc_actuator", "cinert", "cvel", "cfrc_ext")


class _Unsupported(Exception):
    pass


def _clip_bounds(fn, size: int):
    """If ``fn(body, items)`` is an element-wise clip, return its (low, high); else raise."""
    probes = [np.full(size, -1e6), np.full(size, 1e6), np.linspace(-1e-3, 1e-3, size), np.linspace(-1e3, 1e3, size)]
    try:
        outs = [np.asarray(fn(0, p.tolist()), dtype=np.float64) for p in probes]
    except Exception as err:
        raise _Unsupported(f"body_fn failed on a probe: {err}") from err
    lo, hi = float(outs[0].min()) if size else -np.inf, float(outs[1].max()) if size else np.inf
    for p, o in zip(probes, outs):
        if o.shape != p.shape or not np.allclose(o, np.clip(p, lo, hi)):
            raise _Unsupported("body_fn is not an element-wise clip")
    return lo, hi


class CompiledObservations:
    """Each agent's local observation as ``clip(flat[index], low, high)`` plus a few calls.

    ``flat`` concatenates MuJoCo's ``qpos, qvel, qfrc_actuator, cinert, cvel, cfrc_ext`` (raveled)
    and a trailing 0 that padded entries point to. This replays ``obsk.build_obs`` once with
    positions instead of values; items computed by ``extra_obs`` callables stay calls (a handful of
    global nodes, e.g. a root position that the single-agent env hides).
    """

    def __init__(self, menv, data, width: int):
        self.offsets, off = {}, 0
        for name in _FIELDS:
            self.offsets[name] = off
            off += getattr(data, name).size
        self.zero = off
        self.shapes = {name: getattr(data, name).shape for name in _FIELDS}
        n = len(menv.possible_agents)
        self.index = np.full((n, width), self.zero, np.int64)
        self.low = np.full((n, width), -np.inf)
        self.high = np.full((n, width), np.inf)
        self.calls: list[tuple[int, int, int, object]] = []  # (agent, start, stop, fn(data) -> array)
        self.sizes = []
        for i in range(n):
            self.sizes.append(self._agent(menv, i, data))
        self.any_clip = bool(np.isfinite(self.low).any() or np.isfinite(self.high).any())

    def _flat(self, name: str, idx) -> list[int]:
        shape = self.shapes[name]
        base = np.arange(int(np.prod(shape))).reshape(shape)
        return (self.offsets[name] + np.atleast_1d(base[idx]).reshape(-1)).tolist()

    def _agent(self, menv, i: int, data) -> int:
        # ("idx", [flat indices], low, high) | ("call", fn, size), in build_obs order
        items = self._local_items_shared(menv, i, data)
        body_seen = {}
        for category in menv.global_categories:  # category-major, as in build_obs
            for joint in menv.mujoco_globals:
                if category in joint.extra_obs:
                    fn = joint.extra_obs[category]
                    items.append(("call", fn, len(np.atleast_1d(fn(data)))))
                elif category in ("qvel", "qpos"):
                    items.append(("idx", self._flat(category, getattr(joint, f"{category}_ids")), -np.inf, np.inf))
                elif category == "qfrc_actuator":
                    items.append(("idx", self._flat("qfrc_actuator", joint.qvel_ids), -np.inf, np.inf))
                elif category in ("cvel", "cinert", "cfrc_ext") or not joint.bodies:
                    seen = body_seen.setdefault(category, set())
                    for body in joint.bodies:
                        if body not in seen:
                            idx = self._flat(category, body)
                            lo, hi = (-np.inf, np.inf) if joint.body_fn is None else _clip_bounds(joint.body_fn, len(idx))
                            items.append(("idx", idx, lo, hi))
                            seen.add(body)
                else:
                    raise _Unsupported(f"global observation category {category!r}")
        pos = 0
        for item in items:
            if item[0] == "idx":
                _, idx, lo, hi = item
                self.index[i, pos: pos + len(idx)] = idx
                self.low[i, pos: pos + len(idx)] = lo
                self.high[i, pos: pos + len(idx)] = hi
                pos += len(idx)
            else:
                _, fn, size = item
                if size:
                    self.calls.append((i, pos, pos + size, fn))
                pos += size
        return pos

    def _local_items_shared(self, menv, i: int, data) -> list[tuple]:
        items: list[tuple] = []
        body_seen: dict[str, set] = {}
        k_dict = menv.k_dicts[i]
        for k in sorted(k_dict):
            for node in k_dict[k]:
                for category in menv.local_categories[k]:
                    if category in node.extra_obs:
                        fn = node.extra_obs[category]
                        items.append(("call", fn, len(np.atleast_1d(fn(data)))))
                    elif category in ("qvel", "qpos"):
                        ids = node.qvel_ids if category == "qvel" else node.qpos_ids
                        items.append(("idx", self._flat(category, ids), -np.inf, np.inf))
                    elif category == "qfrc_actuator":
                        items.append(("idx", self._flat("qfrc_actuator", node.qvel_ids), -np.inf, np.inf))
                    elif category in ("cvel", "cinert", "cfrc_ext"):
                        seen = body_seen.setdefault(category, set())
                        for body in node.bodies:
                            if body not in seen:
                                idx = self._flat(category, body)
                                lo, hi = (-np.inf, np.inf) if node.body_fn is None else _clip_bounds(node.body_fn, len(idx))
                                items.append(("idx", idx, lo, hi))
                                seen.add(body)
                    # any other category without an extra_obs entry adds nothing (as in build_obs)
        return items

    def __call__(self, data, out: np.ndarray) -> None:
        flat = np.concatenate([data.qpos, data.qvel, data.qfrc_actuator, data.cinert.reshape(-1),
                               data.cvel.reshape(-1), data.cfrc_ext.reshape(-1), _ZERO])
        values = flat[self.index]
        if self.any_clip:
            np.clip(values, self.low, self.high, out=values)
        out[...] = values
        for i, start, stop, fn in self.calls:
            out[i, start:stop] = fn(data)


_ZERO = np.zeros(1)


class MaMuJoCoSim:
    """One MaMuJoCo copy; actions are scattered into the single-agent action with one index op."""

    def __init__(self, scenario: str, agent_conf: str, agent_obsk: int = 1, partition=None,
                 max_steps: int | None = None, fast_obs: bool = True, full_observation: bool = False, **kwargs):
        from gymnasium_robotics import mamujoco_v1

        factorization = _custom_factorization(scenario, partition) if partition is not None else None
        if max_steps is not None:
            kwargs["max_episode_steps"] = int(max_steps)
        self.env = mamujoco_v1.parallel_env(scenario, agent_conf, agent_obsk=agent_obsk,
                                            agent_factorization=factorization, **kwargs)
        env = self.env
        self.agents = list(env.possible_agents)
        self.single = env.single_agent_env
        self._unwrapped = self.single.unwrapped
        spec = getattr(self.single, "spec", None)
        self._limit = int(max_steps or (spec.max_episode_steps if spec is not None and spec.max_episode_steps else 1000))
        self._t = 0
        self.data = self.single.unwrapped.data
        n = len(self.agents)
        self.full_observation = bool(full_observation)
        state_dim = int(self.single.observation_space.shape[0])
        obs_sizes = [state_dim if full_observation else env.observation_space(a).shape[0] for a in self.agents]
        act_sizes = [env.action_space(a).shape[0] for a in self.agents]
        obs_dim, act_dim = max(obs_sizes), max(act_sizes)
        # action scatter: global[dst] = action[src_agent, src_col]
        src_agent, src_col, dst = [], [], []
        for i, part in enumerate(env.agent_action_partitions):
            for j, node in enumerate(part):
                src_agent.append(i)
                src_col.append(j)
                dst.append(node.act_ids)
        self._src = (np.array(src_agent), np.array(src_col))
        self._dst = np.array(dst)
        self._global_action = np.zeros(self.single.action_space.shape[0], np.float64)
        if sorted(self._dst.tolist()) != list(range(len(self._global_action))):
            raise ValueError(f"{scenario} partition does not cover each actuator exactly once")
        low, high = pad_bounds([env.action_space(a).low for a in self.agents],
                               [env.action_space(a).high for a in self.agents], act_dim)
        self.obs_sizes = obs_sizes
        self.compiled = None
        if fast_obs and not self.full_observation:
            try:
                self.compiled = CompiledObservations(env, self.data, obs_dim)
                if self.compiled.sizes != obs_sizes:
                    raise _Unsupported(f"compiled sizes {self.compiled.sizes} != {obs_sizes}")
                self._verify()
            except _Unsupported as err:
                warnings.warn(f"mamujoco {scenario}-{agent_conf}: fast observations unavailable ({err}); "
                              "using MaMuJoCo's observation builder")
                self.compiled = None
        self.spec = SimSpec(
            n_agents=n, obs_dim=obs_dim, discrete=False, action_dim=act_dim,
            state_dim=state_dim, action_low=low, action_high=high,
            observation_mask=None if len(set(obs_sizes)) == 1 else np.arange(obs_dim)[None] < np.array(obs_sizes)[:, None],
            action_dim_mask=None if len(set(act_sizes)) == 1 else np.arange(act_dim)[None] < np.array(act_sizes)[:, None],
            agent_names=tuple(self.agents),
        )

    def _verify(self) -> None:
        """Compiled observations must equal MaMuJoCo's, after a reset and a few random steps."""
        rng = np.random.default_rng(0)
        self.single.reset(seed=12345)
        width = self.compiled.index.shape[1]
        for t in range(4):
            out = np.zeros((len(self.agents), width), np.float32)
            self.compiled(self.data, out)
            ref = self.env._get_obs()
            for i, a in enumerate(self.agents):
                if not np.allclose(out[i, : self.obs_sizes[i]], ref[a].astype(np.float32), rtol=1e-6, atol=1e-6):
                    raise _Unsupported(f"compiled observation of {a} differs from MaMuJoCo's at step {t}")
            self.single.step(rng.uniform(self.single.action_space.low, self.single.action_space.high))

    def _write(self, state_vec, obs, state) -> None:
        if self.full_observation:
            obs[...] = state_vec  # every agent sees the single-agent observation
        elif self.compiled is not None:
            self.compiled(self.data, obs)
        else:
            observations = self.env._get_obs()
            obs[...] = 0.0
            for i, a in enumerate(self.agents):
                obs[i, : self.obs_sizes[i]] = observations[a]
        if state is not None:
            state[:] = state_vec

    # The unwrapped MuJoCo env is stepped directly and the time limit counted here: gym.make's
    # TimeLimit / OrderEnforcing / PassiveEnvChecker wrappers only cost time on every step.
    def reset(self, seed, obs, state, action_mask) -> None:
        state_vec, _ = self._unwrapped.reset(seed=seed)
        self._t = 0
        self._write(state_vec, obs, state)

    def step(self, action, obs, state, action_mask, reward):
        self._global_action[self._dst] = action[self._src]  # padded entries are never read
        state_vec, r, terminated, truncated, _ = self._unwrapped.step(self._global_action)
        self._t += 1
        reward[:] = r
        self._write(state_vec, obs, state)
        return bool(terminated), bool(truncated) or self._t >= self._limit, False

    def close(self) -> None:
        self.env.close()


def make(task: str, num_envs: int = 1, seed: int | None = None, num_workers: int = 0, **options) -> EnvBase:
    scenario, conf = parse(task)
    if options.get("partition") is None and (scenario, conf) in NAMED_PARTITIONS:
        options["partition"] = NAMED_PARTITIONS[scenario, conf]
    if options.get("partition") is not None:
        conf = "custom"
    return BatchedSimEnv(partial(MaMuJoCoSim, scenario, conf, **options), num_envs=num_envs, seed=seed,
                         num_workers=num_workers, name=f"mamujoco/{task}")
