"""Sweep definitions: a YAML spec in ``recipes/sweeps/`` plus command-line axes, expanded into trials
whose configs are composed and checked before anything runs (used by :mod:`recipes.sweep`)."""


from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

SWEEPS_DIR = Path(__file__).resolve().parent / "sweeps"
STATES = ("pending", "running", "finished", "failed", "interrupted")
SPEC_KEYS = ("name", "overrides", "axes", "cpus_per_trial", "gpus_per_trial", "wandb_group")


class SweepError(ValueError):
    """A sweep that cannot start: a bad spec, argument or trial configuration."""


@dataclass
class Trial:
    name: str  # the trial's directory name, made from its axis values
    axes: dict[str, str]  # axis key -> value (Hydra override syntax)
    overrides: list[str]  # everything passed to recipes.train.compose


@dataclass
class Sweep:
    name: str
    overrides: list[str]
    axes: dict[str, list[str]]
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    wandb_group: str | None = None
    trials: list[Trial] = field(default_factory=list)


# --- the definition -----------------------------------------------------------------------------

def load_spec(spec: str | None) -> dict:
    """A spec file's contents; ``spec`` is a path or a name in ``recipes/sweeps/``."""
    if spec is None:
        return {}
    path = Path(spec)
    if not path.exists():
        path = SWEEPS_DIR / (spec if spec.endswith((".yaml", ".yml")) else f"{spec}.yaml")
    if not path.exists():
        known = sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml"))
        raise SweepError(f"sweep spec {spec!r} is neither a file nor a name in {SWEEPS_DIR}; known specs: {known}")
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {}
    except Exception as err:  # YAML's parser error, several lines: the first says what
        raise SweepError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise SweepError(f"{path}: a sweep spec is a mapping with the keys {list(SPEC_KEYS)}, got a {type(data).__name__}")
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise SweepError(f"{path}: unknown keys {unknown}; valid keys: {list(SPEC_KEYS)}")
    data.setdefault("name", path.stem)
    return data


def _format_value(value) -> str:
    """A YAML value as Hydra override syntax (strings with grammar characters are quoted)."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_format_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if isinstance(value, str) and not re.fullmatch(r"[\w./:\-+]+", text):
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return text


def _parse(args: list[str], where: str):
    """Hydra's own override parser: sweeps (``a,b``, ``range()``, ``choice()``) become axes."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(args))
    except Exception as err:  # Hydra's OverrideParseException names the bad override
        raise SweepError(f"{where}: {' '.join(str(err).split())}") from None
    axes, fixed = {}, {}
    for override in parsed:
        key = override.get_key_element()
        if override.is_sweep_override():
            axes[key] = list(override.sweep_string_iterator())
        else:
            fixed[key] = override.input_line
    return axes, fixed


def _bare(key: str) -> str:
    return key.lstrip("+~").split("@")[0]


def build_sweep(spec: dict, cli: list[str]) -> Sweep:
    """Merge the spec and the command line (the command line wins per key) and expand the grid."""
    spec_axes = {}
    for key, values in (spec.get("axes") or {}).items():
        if not isinstance(values, (list, tuple)) or not values:
            raise SweepError(f"axes.{key}: expected a non-empty list of values, got {values!r}")
        spec_axes[key] = [_format_value(v) for v in values]
    overrides = spec.get("overrides") or []
    if not isinstance(overrides, list):
        raise SweepError(f"overrides: expected a list of key=value strings, got {overrides!r}")
    spec_sweeps, fixed = _parse([str(o) for o in overrides], "spec overrides")
    spec_axes.update(spec_sweeps)
    cli_axes, cli_fixed = _parse(cli, "command line")
    for key in list(cli_axes) + list(cli_fixed):  # a command-line key replaces the spec's
        for table in (spec_axes, fixed):
            for old in [k for k in table if _bare(k) == _bare(key)]:
                del table[old]
    axes = {**spec_axes, **cli_axes}
    fixed.update(cli_fixed)
    for key, values in axes.items():
        if len(set(values)) != len(values):
            raise SweepError(f"axis {key} repeats a value: {values}")
    for key, default, zero_ok in (("cpus_per_trial", 1, False), ("gpus_per_trial", 0, True)):
        value = spec.get(key, default)  # Ray's resource requests: a negative or infinite one fails at launch
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number or value < 0 or (value == 0 and not zero_ok):
            raise SweepError(f"{key}={value!r} must be a finite number {'>= 0' if zero_ok else '> 0'}")
    sweep = Sweep(name=str(spec.get("name") or "sweep"), overrides=list(fixed.values()), axes=axes,
                  cpus_per_trial=spec.get("cpus_per_trial", 1), gpus_per_trial=spec.get("gpus_per_trial", 0),
                  wandb_group=spec.get("wandb_group"))
    names = {}
    for combo in itertools.product(*axes.values()) if axes else [()]:
        trial_axes = dict(zip(axes, combo))
        name = _trial_name(trial_axes)
        if name in names:
            raise SweepError(f"trials {names[name]} and {trial_axes} map to the same directory name {name!r}")
        names[name] = trial_axes
        trial_overrides = sweep.overrides + [f"{k}={v}" for k, v in trial_axes.items()]
        sweep.trials.append(Trial(name, trial_axes, trial_overrides))
    return sweep


def _trial_name(axes: dict[str, str]) -> str:
    if not axes:
        return "trial"
    parts = [f"{_bare(k).split('.')[-1]}-{v.strip(chr(39))}" for k, v in axes.items()]
    return re.sub(r"[^\w.=+-]", "-", "_".join(parts))


def wandb_tags(sweep_name: str, axes: dict[str, str]) -> list[str]:
    """W&B tags for a trial: the sweep's name and ``key:value`` per axis (W&B caps tags at 64)."""
    return [f"sweep:{sweep_name}"[:64]] + [f"{_bare(k)}:{v.strip(chr(39))}"[:64] for k, v in axes.items()]


def compose_trials(sweep: Sweep) -> dict[str, dict]:
    """Compose and validate every trial's config; raise one SweepError listing every bad trial."""
    from marlshare.components.trainer import ConfigError, as_train_config, validate_config
    from marlshare.envs import FAMILIES
    from marlshare.recipes.compose import explain
    from marlshare.recipes.train import compose

    configs, errors = {}, {}  # message -> trial names
    for trial in sweep.trials:
        try:
            cfg = compose(trial.overrides)
            train_cfg = as_train_config(cfg)
            validate_config(train_cfg)
            family = train_cfg.env.name.partition("/")[0]
            if family not in FAMILIES:
                raise ConfigError(f"env.name={train_cfg.env.name!r}: unknown family {family!r}; "
                                  f"valid families: {sorted(FAMILIES)}")
        except Exception as err:  # ConfigError, or Hydra / OmegaConf rejecting a key or a value
            message = str(err) if isinstance(err, ConfigError) else explain(err, trial.overrides)  # the expected type
            errors.setdefault(f"{type(err).__name__}: {message}", []).append(trial.name)
            continue
        configs[trial.name] = OmegaConf.to_container(cfg, resolve=True)
    if errors:
        bad = sum(map(len, errors.values()))
        lines = [f"  {', '.join(names[:3])}{f' and {len(names) - 3} more' if len(names) > 3 else ''}: {message}"
                 for message, names in errors.items()]
        raise SweepError(f"{bad} of {len(sweep.trials)} trials have an invalid configuration "
                         f"(nothing was started):" + (lines[0][1:] if len(lines) == 1 else "\n" + "\n".join(lines)))
    return configs
