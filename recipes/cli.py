"""The ``marlshare`` command: one subcommand per task; ``marlshare COMMAND --help`` for each one's options."""

from __future__ import annotations

import dataclasses
import sys

#: command -> (module, function, one-line description)
COMMANDS = {
    "train": ("marlshare.recipes.train", "main", "train one run (Hydra overrides: key=value ...)"),
    "sweep": ("marlshare.recipes.sweep", "main", "a grid of trials on Ray (docs/sweeps.md)"),
    "compare": ("marlshare.components.analysis.compare", "main",
                "IQM / mean with bootstrap CIs and rliable figures of runs or sweeps"),
    "analyze": ("marlshare.components.analysis.run_analysis", "main",
                "figures and numbers inside a trained team (docs/analysis.md)"),
    "envs": ("marlshare.components.analysis.env_table", "main",
             "the registered environments; `envs FAMILY` shows agents and sizes"),
    "strategies": ("marlshare.components.analysis.strategy_table", "main",
                   "parameter table of every strategy for a network shape"),
    "plot": ("marlshare.components.analysis.plots", "main", "learning curve(s) of run directories"),
    "eval": ("marlshare.recipes.eval_cmd", "main",
             "evaluate a trained run: mean, IQM, CIs; --per-agent, --video (writes RUN/eval.json)"),
    "export": ("marlshare.recipes.eval_cmd", "export_main",
               "write a run's policy as exported-program / onnx / torchscript"),
}

USAGE = "usage: marlshare COMMAND [ARGS ...]\n\ncommands:\n" + "\n".join(
    f"  {name:<11} {description}" for name, (_, _, description) in COMMANDS.items()) + (
    "\n\nexamples:\n"
    "  marlshare train                                   # the default recipe: PS then PS+LoRA on VMAS navigation\n"
    "  marlshare train env=smax/3s5z strategy=seps schedule=single\n"
    "  marlshare train --help                            # config groups, their choices, key settings\n"
    "  marlshare sweep navigation_ps_nps && marlshare compare sweeps/navigation_ps_nps")


# --- marlshare train ------------------------------------------------------------------------------
# The command line's side of the training recipe (recipes/train.py): help, Hydra multiruns, resume
# arguments and one-line errors with exit codes (2: bad configuration, a damaged run file or a run directory
# another process writes; 3: diverged; 4: a write error, e.g. a full disk; 130: stopped by a signal).

def train_command(argv: list[str], train) -> None:
    """``marlshare train ARGS`` with the recipe's ``train`` function."""
    if any(a in ("-h", "--help") for a in argv):
        print(help_text())
        return
    if any(a in ("-m", "--multirun") or a.startswith("--") for a in argv):
        from marlshare.components.config import ConfigError
        from marlshare.recipes.compose import env_overrides

        try:
            sys.argv = [sys.argv[0]] + env_overrides(argv)
        except ConfigError as err:
            print(f"marlshare: invalid configuration: {err}", file=sys.stderr)
            sys.exit(2)
        _hydra_multirun(train)
    else:
        run_single(argv, train)


def _hydra_multirun(train) -> None:
    """Multirun (``-m``) jobs: Hydra makes each job's directory."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from marlshare.components.config import ConfigError
    from marlshare.components.run_lock import RunDirBusy
    from marlshare.recipes.compose import CONF_DIR

    @hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
    def job(cfg) -> None:
        run_dir = cfg.run_dir or HydraConfig.get().runtime.output_dir
        try:
            train(cfg, run_dir=None if cfg.resume else run_dir)
        except RunDirBusy as err:  # another process writes this job's run directory
            print(f"marlshare: {err}", file=sys.stderr)
            sys.exit(2)
        except ConfigError as err:  # one clear line, not a traceback
            print(f"marlshare: invalid configuration: {err}", file=sys.stderr)
            sys.exit(2)

    job()


def resume_overrides(args: list[str]) -> tuple[str, dict] | None:
    """For ``resume=RUN key=value ...``: the run and the other settings given (a resume may change only
    a few, see components/resume.py); None when not resuming."""
    pairs = [a.lstrip("+").partition("=") for a in args]
    run = next((v for k, _, v in pairs if k == "resume"), None)
    if not run:
        return None
    return run, {k: yaml_value(v) for k, _, v in pairs if k != "resume"}


def yaml_value(value):
    """A command-line value as Hydra would read it (``600`` -> 600, ``false`` -> False)."""
    import yaml

    try:
        return yaml.safe_load(value) if isinstance(value, str) else value
    except yaml.YAMLError:
        return value


def _run_dir(overrides: list[str]) -> str:
    """The run directory Hydra would use (``hydra.run.dir``), resolved without creating it."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from marlshare.recipes.compose import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        full = hydra_compose(config_name="train", overrides=overrides, return_hydra_config=True)
    return str(full.hydra.run.dir)


def run_single(argv: list[str], train) -> None:
    """One run: compose, check everything (the env included), and only then create the run directory."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from marlshare.components.interrupts import RunInterrupted
    from marlshare.components.runs import RunFileError
    from marlshare.components.trainer import ConfigError, RunDirBusy, Trainer, TrainingDiverged, WriteFailed
    from marlshare.recipes.compose import compose, env_overrides, explain

    try:
        overrides = env_overrides(argv)
        resume = resume_overrides(argv)
        if resume is not None:  # continue a run as configured, with the few changes a resume allows
            cfg = {"resume": resume[0]}
            trainer = Trainer(cfg, resume_changes=resume[1])
        else:
            cfg = compose(overrides)
            trainer = Trainer(cfg, run_dir=cfg.run_dir or _run_dir(overrides))
    except (RunDirBusy, RunFileError) as err:  # the line names the holder's pid / the damaged file
        print(f"marlshare: {err}", file=sys.stderr)
        sys.exit(2)
    except (ConfigError, HydraException, OmegaConfBaseException) as err:  # one clear line, not a traceback
        message = " ".join(line.strip() for line in str(err).strip().splitlines()) or type(err).__name__
        if not isinstance(err, ConfigError):  # Hydra's text, with the expected type or the valid choices
            message = explain(err, overrides)
        print(f"marlshare: invalid configuration: {message}", file=sys.stderr)
        sys.exit(2)
    try:
        train(cfg, trainer=trainer)
    except ConfigError as err:
        print(f"marlshare: invalid configuration: {err}", file=sys.stderr)
        sys.exit(2)
    except TrainingDiverged as err:
        print(f"marlshare: training diverged: {err} The summary is in {trainer.run_dir / 'summary.json'}.",
              file=sys.stderr)
        sys.exit(3)
    except RunInterrupted as err:
        print(f"marlshare: {err}", file=sys.stderr)
        sys.exit(130)
    except WriteFailed as err:  # e.g. "no space left on RUN; last good checkpoint: PATH at frame N"
        print(f"marlshare: {err}", file=sys.stderr)
        sys.exit(4)


def presets(group: str) -> list[str]:
    """The preset names of a config group: the registry's names (strategy, algorithm), then the
    ``recipes/conf/<group>/**.yaml`` files."""
    from marlshare.components.algorithms import ALGORITHMS
    from marlshare.components.strategies import STRATEGIES
    from marlshare.recipes.compose import CONF_DIR

    if group == "strategy":
        return list(STRATEGIES)
    root = CONF_DIR / group
    files = sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))
    return (list(ALGORITHMS) if group == "algorithm" else []) + files


KEY_WIDTH = 34  # the key column of the settings list (algorithm.network.critic_agent_id fits)


def _setting_lines(prefix: str, value) -> list[str]:
    """``prefix.key  default`` per field of the dataclass instance ``value``, nested ones key by key
    (``algorithm.network.actor_hidden``)."""
    lines = []
    for f in dataclasses.fields(value):
        if f.name in ("options",) or f.name.startswith("auto_"):
            continue
        inner = getattr(value, f.name)
        if dataclasses.is_dataclass(inner):
            lines += _setting_lines(f"{prefix}.{f.name}", inner)
        else:
            lines.append(f"  {prefix + '.' + f.name:<{KEY_WIDTH}} {inner}")
    return lines


def help_text() -> str:
    """``marlshare train --help``: the config groups with their choices, and the key settings."""
    from marlshare.components.config import PhaseConfig, as_train_config
    from marlshare.recipes import lorasa_grid
    from marlshare.recipes.compose import compose

    recipe = as_train_config(compose([]))  # the defaults `marlshare train` runs (recipes/conf/train.yaml)
    defaults = {**dataclasses.asdict(recipe), "threads": recipe.threads if recipe.threads is not None else
                "null (auto: OMP_NUM_THREADS when set, else the usable cores up to 4)"}
    lines = ["usage: marlshare train [group=choice ...] [key=value ...] [-m for a Hydra sweep]", "",
             "config groups (group=choice):"]
    for group in ("env", "strategy", "algorithm", "schedule", "logger"):
        lines.append(f"  {group:<10} " + ", ".join(presets(group)))
    lines.append("  (env also takes any registered env name: `marlshare envs` lists them)")
    g = lorasa_grid.grid()
    lines.append(f"  {'experiment':<10} lorasa/<algorithm>/<task>/<strategy>: the LoRASA paper's grid, "
                 f"{len(lorasa_grid.names())} cells (docs/lorasa_grid.md)")
    lines.append(f"             algorithm {', '.join(g['algorithms'])}; task {', '.join(g['tasks'])}; "
                 f"strategy {', '.join(g['strategies'])}")
    lines += ["", "key settings (key=value; the default recipe's values shown):"]
    for key in ("total_frames", "eval_every", "checkpoint_every", "checkpoint_keep", "seed", "threads", "device",
                "run_dir", "resume"):
        lines.append(f"  {key:<{KEY_WIDTH}} {defaults[key]}")
    for prefix in ("env", "algorithm"):
        lines += _setting_lines(prefix, getattr(recipe, prefix))
    lines += [f"  {'env.options.<name>':<{KEY_WIDTH}} passed to the env (e.g. env.options.n_agents=4)",
              f"  {'strategy.<hyperparameter>':<{KEY_WIDTH}} the first phase's strategy (see docs/strategies.md)"]
    for f in dataclasses.fields(recipe.schedule):
        value = getattr(recipe.schedule, f.name)
        if f.name == "phases":  # each phase's settings that differ from an empty phase's
            value = "[" + ", ".join("{" + ", ".join(f"{k}: {v}" for k, v in dataclasses.asdict(p).items()
                                                    if v != getattr(PhaseConfig(), k)) + "}" for p in value) + "]"
        if not f.name.startswith("auto_"):
            lines.append(f"  {'schedule.' + f.name:<{KEY_WIDTH}} {value}")
    lines += [f"  {'schedule.phases.<i>.<key>':<{KEY_WIDTH}} strategy, until, auto, lr, critic_lr, clip_epsilon, "
              f"entropy_coeff, label",
              f"  {'':<{KEY_WIDTH}} (a strategy with no fine-tuning successor, e.g. strategy=nps, runs "
              f"schedule=single unless a schedule is given)", "",
              "a resume continues a run as configured: resume=RUN [total_frames=N] [threads=..] [device=..] "
              "[logger.progress=..]",
              "every setting: components/config.py; examples: recipes/train.py, README.md"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        sys.exit(f"marlshare: unknown command {command!r}; valid commands: {list(COMMANDS)} (marlshare --help)")
    import importlib

    module, function, _ = COMMANDS[command]
    getattr(importlib.import_module(module), function)(rest)


if __name__ == "__main__":
    main()
