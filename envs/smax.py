"""SMAC maps on JaxMARL's SMAX (JAX on CPU): ``smax/<map>``.

SMAX re-implements the SMAC unit micromanagement maps in JAX, so it runs anywhere without the
StarCraft II binary. All ``num_envs`` battles are stepped by ONE jitted, ``vmap``-ed call per
step; JAX arrays reach torch through DLPack without a copy.

* Allies are the learning agents; the enemy team is JaxMARL's heuristic AI
  (``HeuristicEnemySMAX``, as in JaxMARL's SMAX baselines). Options: ``enemy_shoots=True``,
  ``attack_mode="closest"``, and any ``SMAX`` argument (``max_steps``, ``won_battle_bonus``,
  ``walls_cause_death``, ``see_enemy_actions``, ``observation_type``, ...).
* Actions are discrete: 5 movement actions (the 5th, index 4, is *stop*, always available, and the
  only one left to dead units) then one *attack enemy j* per enemy; ``("agents",
  "action_mask")`` is SMAX's availability mask.
* ``"state"`` is SMAX's world state (every unit's features, the centralised critic's input).
* Rewards are the SMAX team reward (damage dealt, normalised, plus ``won_battle_bonus`` on a
  win), the same for every ally. ``"win"`` is True on the step that ends the battle with every
  enemy dead and an ally alive. Reaching ``max_steps`` is ``truncated``; a decided battle is
  ``terminated``.
* Seeds: ``seed`` fixes the JAX PRNG keys of all envs; each env has its own key stream.

SMAX's six unit types (marine, marauder, stalker, zealot, zergling, hydralisk) have no colossus and
no medivac, so SMAC's ``1c3s5z`` and ``MMM2`` cannot be built. :data:`SUBSTITUTES` holds stand-ins,
named by what they contain (never by the map they replace): ``smax/1h3s5z`` (a hydralisk in the
colossus's place: 9 vs 9, three unit types) and ``smax/2M7m_vs_3M8m`` (MMM2 without its medivacs:
9 vs 11). docs/lorasa_grid.md says what that changes.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from marlshare.envs import GROUP

MAPS = [
    "3m", "8m", "25m", "2s3z", "3s5z", "3s5z_vs_3s6z", "5m_vs_6m", "10m_vs_11m", "27m_vs_30m",
    "3s_vs_5z", "6h_vs_8z", "smacv2_5_units", "smacv2_10_units", "smacv2_20_units",
]


# name -> (ally unit types, enemy unit types), SMAX type ids: 0 marine, 1 marauder, 2 stalker,
# 3 zealot, 4 zergling, 5 hydralisk
SUBSTITUTES: dict[str, tuple[list[int], list[int]]] = {
    # for SMAC 1c3s5z (1 colossus, 3 stalkers, 5 zealots a side): the hydralisk is SMAX's other
    # ranged unit that is neither a stalker nor a marine, so the team keeps 9 agents of 3 types
    "1h3s5z": ([5] + [2] * 3 + [3] * 5, [5] + [2] * 3 + [3] * 5),
    # for SMAC MMM2 (1 medivac, 2 marauders, 7 marines vs 1 medivac, 3 marauders, 8 marines): no
    # healer exists in SMAX, so both medivacs are dropped
    "2M7m_vs_3M8m": ([1] * 2 + [0] * 7, [1] * 3 + [0] * 8),
}


def tasks() -> list[str]:
    try:
        from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

        return sorted(set(MAPS) | set(MAP_NAME_TO_SCENARIO) | set(SUBSTITUTES))
    except ImportError:
        return sorted(set(MAPS) | set(SUBSTITUTES))


def scenario(map_name: str):
    """The SMAX scenario of a map: JaxMARL's own, or one of :data:`SUBSTITUTES` (built here, so
    JaxMARL's map registry is left untouched)."""
    import jax.numpy as jnp
    from jaxmarl.environments.smax.smax_env import Scenario, map_name_to_scenario

    if map_name in SUBSTITUTES:
        allies, enemies = SUBSTITUTES[map_name]
        return Scenario(jnp.array(allies + enemies, dtype=jnp.uint8), len(allies), len(enemies), False, False)
    return map_name_to_scenario(map_name)


def _enable_compilation_cache(jax) -> None:
    """Keep compiled SMAX programs on disk (``$MARLSHARE_JAX_CACHE``, default
    ``~/.cache/marlshare/jax``): compiling one map's step takes seconds to tens of seconds on CPU,
    loading it back well under one. Set ``MARLSHARE_JAX_CACHE=off`` to disable, or configure
    ``jax_compilation_cache_dir`` yourself (it is then left alone)."""
    path = os.environ.get("MARLSHARE_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "marlshare", "jax"))
    if path.lower() in ("", "0", "off", "none") or jax.config.jax_compilation_cache_dir:
        return
    try:
        os.makedirs(path, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except Exception:  # a read-only home: run without the cache
        pass


def _to_torch(x) -> torch.Tensor:
    try:
        return torch.from_dlpack(x)
    except Exception:  # e.g. a dtype DLPack cannot carry
        return torch.from_numpy(np.asarray(x))


class SmaxEnv(EnvBase):
    """``num_envs`` SMAX battles of one map, batch ``[num_envs]``, keys as in :mod:`envs`."""

    def __init__(self, map_name: str, num_envs: int = 1, seed: int | None = None, enemy_shoots: bool = True,
                 attack_mode: str = "closest", **smax_options):
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        import jax
        import jax.numpy as jnp

        _enable_compilation_cache(jax)
        from jaxmarl.environments.smax import HeuristicEnemySMAX

        super().__init__(batch_size=torch.Size([num_envs]), device="cpu")
        self.name = f"smax/{map_name}"
        self.num_envs = num_envs
        self._jax, self._jnp = jax, jnp
        try:
            env = HeuristicEnemySMAX(scenario=scenario(map_name), enemy_shoots=enemy_shoots,
                                     attack_mode=attack_mode, **smax_options)
        except TypeError as err:  # an option SMAX does not take: a configuration error
            raise ValueError(f"smax/{map_name}: invalid option ({err})") from err
        self._smax = env
        agents = list(env.agents)
        self.agent_names = tuple(agents)
        n, n_allies = len(agents), env.num_allies
        obs_dim = int(env.observation_space(agents[0]).shape[0])
        n_actions = int(env.action_space(agents[0]).n)
        state_dim = int(env.state_size)
        self.n_agents, self.obs_dim, self.n_actions, self.state_dim = n, obs_dim, n_actions, state_dim
        max_steps = env.max_steps

        def observe(obs, state):
            o = jnp.stack([obs[a] for a in agents]).astype(jnp.float32)
            avail = env.get_avail_actions(state)
            m = jnp.stack([avail[a] for a in agents]).astype(jnp.bool_)
            return o, obs["world_state"].astype(jnp.float32), m

        def reset_one(key):
            obs, state = env.reset(key)
            # drop weak types, so step() sees the avals it returns and jit compiles it only once
            state = jax.tree.map(lambda x: jax.lax.convert_element_type(x, x.dtype), state)
            o, ws, m = observe(obs, state)
            return state, o, ws, m

        def step_one(key, state, action):
            # One fused program per step: the transition AND a fresh battle for this env (as
            # JaxMARL's own auto-resetting step does). A later partial reset only selects the
            # fresh battles of the flagged envs, so it costs no simulation at all.
            key, step_key, reset_key = jax.random.split(key, 3)
            obs, state, rewards, dones, _ = env.step_env(step_key, state, {a: action[i] for i, a in enumerate(agents)})
            o, ws, m = observe(obs, state)
            r = jnp.stack([rewards[a] for a in agents]).astype(jnp.float32)
            alive = state.state.unit_alive
            allies_dead = jnp.all(~alive[:n_allies])
            enemies_dead = jnp.all(~alive[n_allies:])
            done = dones["__all__"]
            decided = allies_dead | enemies_dead
            terminated = done & decided
            truncated = done & ~decided & (state.state.step >= max_steps)
            win = done & enemies_dead & ~allies_dead
            flags = jnp.stack([terminated, truncated, win])
            return key, (state, o, ws, m), r, flags, reset_one(reset_key)

        def select(mask, fresh, current):
            pick = lambda new, old: jnp.where(mask.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)  # noqa: E731
            return jax.tree.map(pick, fresh, current)

        # Two compiled programs: the fused step and the (trivial) select. The first reset runs the
        # step on zeros shaped by eval_shape (which only traces) to obtain fresh battles.
        self._reset_fn = reset_one
        self._step_all = jax.jit(jax.vmap(step_one))
        self._select = jax.jit(select)
        # JAX state lives in a plain dict: EnvBase is an nn.Module, whose __setattr__ is slow
        self._j: dict = {"keys": None, "current": None, "fresh": None}
        self._seed = int(np.random.SeedSequence().entropy % (2**31)) if seed is None else int(seed)
        self._make_specs()

    def _make_specs(self) -> None:
        B, N = self.num_envs, self.n_agents
        bool_spec = lambda *shape: Categorical(2, shape=torch.Size(shape), dtype=torch.bool)  # noqa: E731
        self.observation_spec = Composite(
            {
                GROUP: Composite(
                    {"observation": Unbounded((B, N, self.obs_dim), dtype=torch.float32),
                     "action_mask": bool_spec(B, N, self.n_actions)},
                    shape=(B, N),
                ),
                "state": Unbounded((B, self.state_dim), dtype=torch.float32),
                "win": bool_spec(B, 1),
            },
            shape=(B,),
        )
        self.action_spec = Composite(
            {GROUP: Composite({"action": Categorical(self.n_actions, shape=(B, N), dtype=torch.int64)}, shape=(B, N))},
            shape=(B,),
        )
        self.reward_spec = Composite(
            {GROUP: Composite({"reward": Unbounded((B, N, 1), dtype=torch.float32)}, shape=(B, N))}, shape=(B,)
        )
        self.done_spec = Composite(
            {"done": bool_spec(B, 1), "terminated": bool_spec(B, 1), "truncated": bool_spec(B, 1)}, shape=(B,)
        )

    def _pack(self, o, ws, m, reward=None, flags=None) -> TensorDictBase:
        B, N = self.num_envs, self.n_agents
        agents = {"observation": _to_torch(o), "action_mask": _to_torch(m)}
        if reward is not None:
            agents["reward"] = _to_torch(reward).unsqueeze(-1)
        out = {GROUP: TensorDict._new_unsafe(agents, batch_size=torch.Size([B, N]), device=self.device),
               "state": _to_torch(ws)}
        if flags is None:
            z = torch.zeros(B, 1, dtype=torch.bool)
            out.update(done=z, terminated=z.clone(), truncated=z.clone(), win=z.clone())
        else:
            f = _to_torch(flags)
            out["terminated"], out["truncated"], out["win"] = f[:, 0:1], f[:, 1:2], f[:, 2:3]
            out["done"] = f[:, 0:1] | f[:, 1:2]
        return TensorDict._new_unsafe(out, batch_size=self.batch_size, device=self.device)

    def _advance(self, actions) -> tuple:
        """One fused step of every env: returns (step outputs, reward, flags) and stores fresh battles."""
        j = self._j
        j["keys"], current, reward, flags, j["fresh"] = self._step_all(j["keys"], j["current"][0], actions)
        return current, reward, flags

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        jax, jnp, j = self._jax, self._jnp, self._j
        reset = None if tensordict is None else tensordict.get("_reset", None)
        if j["keys"] is None:
            j["keys"] = jax.random.split(jax.random.PRNGKey(self._seed), self.num_envs)
            j["current"] = None
        if j["current"] is None:
            # zeros with the shapes of a state and its observations (eval_shape only traces)
            shapes = jax.eval_shape(self._step_all, j["keys"], self._state_shapes(),
                                    jax.ShapeDtypeStruct((self.num_envs, self.n_agents), jnp.int32))
            j["current"] = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes[1])
            j["fresh"] = None
        if j["fresh"] is None:  # no fresh battles banked since the last reset: simulate some
            self._advance(jnp.zeros((self.num_envs, self.n_agents), jnp.int32))
        if reset is None:
            mask = jnp.ones(self.num_envs, jnp.bool_)
        else:
            mask = jnp.asarray(reset.reshape(self.num_envs, -1).any(-1).numpy())
        j["current"] = self._select(mask, j["fresh"], j["current"])
        j["fresh"] = None
        _, o, ws, m = j["current"]
        return self._pack(o, ws, m)

    def _state_shapes(self):
        """A zero SMAX state batch, shaped by tracing a reset (no compile)."""
        jax, jnp = self._jax, self._jnp
        if "state_zeros" not in self._j:
            reset_shapes = jax.eval_shape(jax.vmap(self._reset_fn), self._j["keys"])
            self._j["state_zeros"] = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), reset_shapes[0])
        return self._j["state_zeros"]

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get((GROUP, "action")).detach().cpu().numpy().astype(np.int32)
        current, reward, flags = self._advance(self._jnp.asarray(action))
        self._j["current"] = current
        _, o, ws, m = current
        return self._pack(o, ws, m, reward, flags)

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self._seed = int(seed)
            self._j["keys"] = None


def make(task: str, num_envs: int = 1, seed: int | None = None, **options) -> EnvBase:
    valid = tasks()
    if task not in valid:
        raise ValueError(f"unknown SMAX map {task!r}; valid maps: {valid}")
    return SmaxEnv(task, num_envs=num_envs, seed=seed, **options)
