"""The run configuration, composed by Hydra: the typed dataclasses of ``components/config.py`` as the
schema, the presets of ``recipes/conf`` (config groups ``env``, ``strategy``, ``algorithm``,
``schedule``, ``logger``) and command-line overrides. Strategy presets are generated from the
strategy dataclasses and ``algorithm=NAME`` from the algorithm registry, so their defaults have one
home (``recipes/conf/algorithm/`` holds the presets with other settings: lorasa_*, benchmarl).

    cfg = compose(["env=vmas/balance", "schedule=single", "total_frames=60000"])
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from marlshare.components.config import (MOVED, AlgorithmConfig, ConfigError, EnvConfig, LoggerConfig, ScheduleConfig,
                                         TrainConfig)
from marlshare.components.algorithms import ALGORITHMS
from marlshare.components.strategies import STRATEGIES
from marlshare.recipes import lorasa_grid

CONF_DIR = Path(__file__).parent / "conf"


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(group="env", name="env_schema", node=EnvConfig)
    cs.store(group="algorithm", name="algorithm_schema", node=AlgorithmConfig)
    cs.store(group="schedule", name="schedule_schema", node=ScheduleConfig)
    cs.store(group="logger", name="logger_schema", node=LoggerConfig)
    for name, cls in STRATEGIES.items():  # one preset per strategy, from its dataclass defaults
        defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
        cs.store(group="strategy", name=name, node={"name": name, **defaults})
    for name in ALGORITHMS:  # algorithm=NAME for every registered algorithm, with the default settings
        cs.store(group="algorithm", name=name, node=AlgorithmConfig(name=name))


register_configs()


register_configs()


def env_overrides(args: list[str]) -> list[str]:
    """``env=family/task`` without a preset file becomes ``env=default env.name=family/task`` so
    every registered env (e.g. any VMAS scenario) works from the command line, and
    ``env.options.KEY=VALUE`` sets an env option whether or not the preset has it (``++``).
    ``experiment=NAME`` must name a cell of the LoRASA grid (stored for Hydra here; else a ConfigError
    listing the choices), and a key that has moved (:data:`~components.config.MOVED`, e.g.
    ``algorithm.actor_hidden``) is a ConfigError naming its new place."""
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        bare = key.lstrip("+~")
        if bare in MOVED:
            raise ConfigError(f"{bare} moved to {MOVED[bare]}" + (f" (write {MOVED[bare]}={value})" if sep else ""))
        if key.lstrip("+") == "experiment" and sep and value != "null":
            lorasa_grid.use(value)
        if key == "env" and sep and "," not in value and not (CONF_DIR / "env" / f"{value}.yaml").exists():
            out += ["env=default", f"env.name={value}"]
        elif key.startswith("env.options.") and sep:
            out.append(f"++{arg}")
        else:
            out.append(arg)
    return out


def compose(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """The resolved config for ``overrides`` (command-line syntax), outside a Hydra run."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=env_overrides(list(overrides or [])))
    return cfg
