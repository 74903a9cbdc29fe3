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


def env_overrides(args: list[str]) -> list[str]:
    """``env=family/task`` without a preset file becomes ``env=default env.name=family/task`` so
    every registered env (e.g. any VMAS scenario) works from the command line, and
    ``env.options.KEY=VALUE`` sets an env option whether or not the preset has it (``++``).
    ``experiment=NAME`` must name a cell of the LoRASA grid (stored for Hydra here; else a ConfigError
    listing the choices), and a key that has moved (:data:`~components.config.MOVED`, e.g.
    ``algorithm.actor_hidden``) is a ConfigError naming its new place."""
    out = list(_single_when_no_successor(args))
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


def _single_when_no_successor(args: list[str]) -> list[str]:
    """The default recipe is LoRASA's two-phase schedule (pretrain, then the strategy's declared
    fine-tuning successor). ``strategy=X`` for a strategy that declares none (nps, mtl, prism, adaps,
    hypermarl, dico, kaleidoscope, ...) and no ``schedule`` setting on the command line runs X for
    the whole run (``schedule=single``) instead of stopping on "declares no default successor"."""
    from marlshare.components.strategies import STRATEGIES

    names = [arg.partition("=")[2] for arg in args if arg.lstrip("+").partition("=")[0] == "strategy"]
    if any(arg.lstrip("+~").startswith("schedule") or arg.startswith("experiment=") for arg in args):
        return []
    if names and names[-1] in STRATEGIES and STRATEGIES[names[-1]].successor is None:
        return ["schedule=single"]
    return []


def compose(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """The resolved config for ``overrides`` (command-line syntax), outside a Hydra run."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=env_overrides(list(overrides or [])))
    return cfg


def _expected(key: str) -> str | None:
    """What the schema expects at the dotted ``key`` (``algorithm.lr`` -> "a number"), or None."""
    import typing

    node, hint = TrainConfig, None
    for part in key.replace("[", ".").replace("]", "").split("."):
        if part.isdigit() and hint is not None:  # an item of a list: its element type
            args = typing.get_args(hint)
            hint = args[0] if args else None
        elif dataclasses.is_dataclass(node) and part in {f.name for f in dataclasses.fields(node)}:
            hint = typing.get_type_hints(node)[part]
        else:
            return None
        node = next((c for c in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(c)), None)
    return _describe_type(hint) if hint is not None else None


def _describe_type(hint) -> str:
    import typing

    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if type(None) in typing.get_args(hint):  # Optional[X]
        return f"{_describe_type(args[0])} (or null)"
    origin = typing.get_origin(hint)
    if origin in (list, typing.List):
        item = _describe_type(args[0]).removeprefix("a ").removeprefix("an ")
        return f"a list of {item}s" + (", e.g. [64,64]" if args[0] is int else "")
    if dataclasses.is_dataclass(hint):
        return f"a group of settings ({hint.__name__}); set its keys one by one"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def _override_value(overrides: list[str], key: str) -> str:
    for arg in reversed(overrides):
        k, _, v = arg.partition("=")
        if k.lstrip("+~") == key:
            return v
    return "?"


def explain(err: Exception, overrides: list[str]) -> str:
    """One line for a Hydra / OmegaConf composition error ``err`` of ``compose(overrides)``: the bad
    key with the type it expects, a strategy setting the chosen strategy does not take (with the ones
    it does), an unknown key with the closest valid one, a group choice with the valid choices (without
    the internal ``*_schema`` entries). Anything else: Hydra's own text, joined into one line."""
    import re

    from marlshare.components.config import check_keys
    from marlshare.components.strategies import STRATEGIES

    text = " ".join(line.strip() for line in str(err).strip().splitlines()) or type(err).__name__
    cause = err.__cause__ if err.__cause__ is not None else err
    key = re.sub(r"\[(\d+)\]", r".\1", getattr(cause, "full_key", None) or "")  # phases[1] -> phases.1
    missing = re.search(r"Could not find '([\w/]+?)/([^']+)'", text)
    if missing:  # a group choice that does not exist
        group, value = missing.groups()
        listed = text.split("Available options in", 1)[-1].split("Config search path")[0].split()[1:]
        choices = [c for c in listed if not c.endswith("_schema")]
        extra = " (or any registered env name: marlshare envs)" if group == "env" else ""
        return f"{group}={value!r} is not valid; choose one of {choices}{extra}"
    if "Could not override" in text and key:
        top, _, rest = key.partition(".")
        phase = re.fullmatch(r"schedule\.phases\.(\d+)\.strategy\.(\w+)", key)
        if top == "strategy" or phase:
            name = _strategy_name([o for o in overrides if o.partition("=")[0].lstrip("+~") != key], phase)
            if name in STRATEGIES:
                valid = [f.name for f in dataclasses.fields(STRATEGIES[name])]
                setting = phase.group(2) if phase else rest
                return (f"{key}: strategy {name} takes no {setting!r}; its hyperparameters are {valid} "
                        f"(docs/strategies.md)")
        nested: dict = {}
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = None
        try:
            check_keys(nested)
        except ConfigError as unknown:
            return str(unknown)
    reason = str(cause)
    if key and any(phrase in reason for phrase in ("could not be converted", "Invalid value assigned", "not a valid bool",
                                                   "Cannot convert", "Invalid type assigned")):
        expected = _expected(key)
        item = re.fullmatch(r"(schedule\.phases)\.(\d+)", key)
        if item:
            return (f"{item.group(1)}.{item.group(2)} does not exist: the schedule has fewer phases; add phases with "
                    f"schedule.chain=[...] or a schedule preset")
        key = re.sub(r"\.\d+$", "", key)  # an item of a list: name the list
        expected = _expected(key)
        if expected:
            return f"{key}={_override_value(overrides, key)} must be {expected}"
    return text


def _strategy_name(overrides: list[str], phase) -> str | None:
    """The strategy of the run (or of schedule phase ``phase.group(1)``) that ``overrides`` choose."""
    from marlshare.components.schedule import plan_phases
    from marlshare.components.config import as_train_config

    try:
        cfg = compose(overrides)
        if phase is None:
            return cfg.strategy.name
        return plan_phases(as_train_config(cfg))[int(phase.group(1))].strategy["name"]
    except Exception:  # the rest of the overrides is broken too: keep Hydra's message
        return None
