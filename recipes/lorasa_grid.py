"""The LoRASA paper's grid as one command per cell: ``experiment=lorasa/<algorithm>/<task>/<strategy>``.

The paper's per-scenario numbers live in ``recipes/lorasa_grid.yaml`` (each once, with its source);
this module turns each cell into a Hydra config of the ``experiment`` group (package ``_global_``,
stored by :func:`use` when a run names it) that picks the env, algorithm, schedule and strategy presets and sets the cell's values. Because it
is an ordinary config group, the same name works from the command line, from
``recipes.train.compose([...])``, in sweep specs and in ``-m`` sweeps, and every ``key=value`` the
user gives wins over the cell's (Hydra applies command-line values after the defaults list)::

    marlshare train experiment=lorasa/mappo/ant-4x2/ps_lora                  # the paper's full budget
    marlshare train experiment=lorasa/a2po/3s5z/seps total_frames=200000     # a short run
    marlshare train -m experiment=lorasa/mappo/3s5z/ps,lorasa/mappo/3s5z/ps_lora seed=0,1

``python -m recipes.lorasa_grid`` prints the grid's tables (docs/lorasa_grid.md).
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from marlshare.components.strategies import STRATEGIES

DATA = Path(__file__).with_name("lorasa_grid.yaml")
PREFIX = "lorasa"
GROUP = "experiment"
#: the LoRA phase's settings other than rank and alpha: the code's defaults (all layers, B = 0 at the
#: switch, frozen biases), which are the ps_lora / seps_lora dataclass defaults too
LORA_FIXED = {"init": "b_zero", "layers": "all", "train_bias": False}


@lru_cache(maxsize=1)
def grid() -> dict:
    """The parsed ``lorasa_grid.yaml``."""
    import yaml

    return yaml.safe_load(DATA.read_text())


def names() -> list[str]:
    """Every cell, ``lorasa/<algorithm>/<task>/<strategy>``."""
    g = grid()
    return [f"{PREFIX}/{a}/{t}/{s}" for a in g["algorithms"] for t in g["tasks"] for s in g["strategies"]]


def use(value: str) -> None:
    """Register the cells that ``value`` names (comma-separated in a sweep) in Hydra's ConfigStore, or
    raise ConfigError listing the valid choices. Only the cells of this call are kept in the store:
    Hydra copies the whole store on every compose, and 96 cells would slow every compose by a third."""
    from hydra.core.config_store import ConfigStore

    from marlshare.components.config import ConfigError

    g = grid()
    valid = set(names())
    store = ConfigStore.instance()
    store.repo.pop(GROUP, None)  # the cells an earlier compose in this process asked for
    for name in str(value).split(","):
        if name in valid:
            _, algorithm, task, strategy = name.split("/")
            store.store(group=f"{GROUP}/{PREFIX}/{algorithm}/{task}", name=strategy, package="_global_",
                        node=cell(algorithm, task, strategy))
        else:
            raise ConfigError(
                f"experiment={name!r} is not a cell of the LoRASA grid; use {PREFIX}/<algorithm>/<task>/<strategy> "
                f"with algorithm one of {g['algorithms']}, task one of {list(g['tasks'])}, strategy one of "
                f"{list(g['strategies'])} (docs/lorasa_grid.md)")


def cell(algorithm: str, task: str, strategy: str) -> dict:
    """The experiment config of one cell: a defaults list choosing presets, then the cell's values."""
    g = grid()
    t = g["tasks"][task]
    family = g["families"][t["family"]]
    chain = g["strategies"][strategy]
    batch = family["rollout_frames"]
    threads = t["rollout_threads"]
    algo = {"epochs": t["epochs"], "lmbda": t["lmbda"], "frames_per_batch": batch,
            "minibatch_size": batch,  # one minibatch ([code] num_mini_batch: 1)
            # the code's rollouts run on across iterations (episode_length is the rollout, not the episode)
            "reset_each_iteration": False}
    if strategy in g["critic_per_agent"]:
        algo["network"] = {"critic_sharing": "nps"}
    env = {"num_envs": threads, "eval_num_envs": family["eval_episodes"],
           "max_steps": t.get("max_steps", family.get("max_steps"))}
    if t.get("env_options"):
        env["options"] = dict(t["env_options"])
    node = {
        "defaults": [{"override /env": t["env"]}, {"override /algorithm": family["algorithm"][algorithm]},
                     {"override /strategy": chain[0]},
                     {"override /schedule": "single" if len(chain) == 1 else "two_phase"}],
        "total_frames": g["total_frames"],
        "eval_every": g["eval_interval"] * batch,
        "env": env,
        "algorithm": algo,
    }
    if STRATEGIES[chain[0]].needs_clusters:  # SePS: the paper's K for the task
        node["strategy"] = {"n_clusters": t["n_clusters"]}
    if len(chain) == 2:
        lora = {"name": chain[1], "rank": t["rank"], "alpha": float(t["rank"]), **LORA_FIXED}
        if STRATEGIES[chain[1]].needs_clusters:  # SePS+LoRA keeps the SePS phase's clusters; K is checked against them
            lora["n_clusters"] = t["n_clusters"]
        finetune = {"strategy": lora, **(t.get("finetune") or {})}
        node["schedule"] = {"phases": [{"until": t["switch_at"][algorithm]}, finetune]}
    return node


def table() -> str:
    """The grid as a markdown table: one row per scenario with the values every cell uses."""
    g = grid()
    rows = ["| paper scenario | marlshare env | agents | threads x steps | epochs | lambda | rank | "
            "switch MAPPO / A2PO | SePS K | fine-tuning lr / clip / entropy | episode limit |",
            "|---|---|---:|---|---:|---:|---:|---|---|---|---:|"]
    for name, t in g["tasks"].items():
        family = g["families"][t["family"]]
        env = f"`{t['env']}`" + (" (substitute)" if t.get("substitute_for") else "")
        ft = t.get("finetune")
        rows.append("| " + " | ".join([
            name, env, str(t["agents"]), f"{t['rollout_threads']} x {family['rollout_frames'] // t['rollout_threads']}",
            str(t["epochs"]), str(t["lmbda"]), str(t["rank"]),
            f"{t['switch_at']['mappo']:.0e} / {t['switch_at']['a2po']:.0e}".replace("e+0", "e"),
            str(t["n_clusters"]) if t["n_clusters"] else "Davies-Bouldin fit",
            f"{ft['lr']} / {ft['clip_epsilon']} / {ft['entropy_coeff']}" if ft else "as pretraining",
            str(t.get("max_steps", family.get("max_steps")))]) + " |")
    return "\n".join(rows)


def command_table() -> str:
    """Every cell's command as a markdown table: a row per scenario and algorithm, a column per strategy."""
    g = grid()
    rows = ["| paper scenario | algorithm | " + " | ".join(g["strategies"]) + " |",
            "|---|---|" + "---|" * len(g["strategies"])]
    for task in g["tasks"]:
        for algorithm in g["algorithms"]:
            rows.append(f"| {task} | {algorithm} | " + " | ".join(
                f"`experiment={PREFIX}/{algorithm}/{task}/{s}`" for s in g["strategies"]) + " |")
    return "\n".join(rows)


if __name__ == "__main__":  # `python -m recipes.lorasa_grid [names]`: the docs' tables, or every cell's name
    print("\n".join(names()) if sys.argv[1:] == ["names"] else table() + "\n\n" + command_table())
