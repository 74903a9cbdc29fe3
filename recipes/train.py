"""The training recipe: ``marlshare train key=value ...`` or ``python -m recipes.train key=value ...``.

Configuration is Hydra over the typed dataclasses of ``components/config.py``, with config groups
``env``, ``strategy``, ``algorithm``, ``schedule`` and ``logger`` (presets in ``recipes/conf``).
Strategy presets are generated from the strategy dataclasses, so their defaults have one home.

Examples::

    marlshare train                                    # the default recipe (make run)
    marlshare train env=vmas/balance strategy=ps algorithm=mappo schedule=two_phase \\
        schedule.switch_at=300000 total_frames=600000 seed=0
    marlshare train env=smax/3s5z strategy=seps schedule=single   # clusters learnt from trajectories
    marlshare train schedule=three_phase                # ps -> seps -> seps_lora
    marlshare train schedule.chain=[ps,prism] schedule.switch_at=60000   # any chain the registry allows
    marlshare train -m strategy=ps,nps,mtl seed=0,1,2 schedule=single   # a sweep
    marlshare train experiment=lorasa/mappo/ant-4x2/ps_lora    # a cell of the LoRASA paper's grid
    marlshare train experiment=lorasa/a2po/3s5z/seps total_frames=200000   # ... shortened

A single run is composed and fully checked (env included) before anything is written: a bad setting
is one line on stderr and exit code 2, with no run directory created.

From Python::

    from marlshare.recipes.train import compose, train
    summary = train(compose(["env=vmas/balance", "schedule=single", "total_frames=60000"]))
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from marlshare.components.config import AlgorithmConfig, EnvConfig, LoggerConfig, ScheduleConfig, TrainConfig
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


register_configs()


def env_overrides(args: list[str]) -> list[str]:
    """``env=family/task`` without a preset file becomes ``env=default env.name=family/task`` so
    every registered env (e.g. any VMAS scenario) works from the command line, and
    ``env.options.KEY=VALUE`` sets an env option whether or not the preset has it (``++``).
    ``experiment=NAME`` must name a cell of the LoRASA grid (stored for Hydra here; else a ConfigError
    listing the choices)."""
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if key.lstrip("+") == "experiment" and sep and value != "null":
            lorasa_grid.use(value)
        if key == "env" and sep and "," not in value and not (CONF_DIR / "env" / f"{value}.yaml").exists():
            out += ["env=default", f"env.name={value}"]
        elif key.startswith("env.options.") and sep:
            out.append(f"++{arg}")
        else:
            out.append(arg)
    return out


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


def compose(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """The resolved config for ``overrides`` (command-line syntax), outside a Hydra run."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=env_overrides(list(overrides or [])))
    return cfg


def train(cfg, run_dir: str | None = None, quiet: bool = False, trainer=None) -> dict:
    """Train one run; writes the run directory, prints the summary table, returns the summary."""
    from marlshare.components.trainer import Trainer
    from tools.plots import plot_learning_curve

    trainer = trainer or Trainer(cfg, run_dir=run_dir)
    summary = trainer.run()
    png = plot_learning_curve(trainer.run_dir)
    summary["learning_curve"] = str(png)
    (trainer.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if not quiet:
        print_summary(summary)
    return summary


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 130))
    table = Table(title=f"{summary['env']} · {summary['algorithm']} · seed {summary['seed']}")
    table.add_column("phase")
    table.add_column("strategy")
    table.add_column("frames", justify="right")
    table.add_column("eval return at end", justify="right")
    table.add_column("params total", justify="right")
    table.add_column("shared", justify="right")
    table.add_column("per cluster (all)", justify="right")
    table.add_column("per agent", justify="right")
    table.add_column("trainable", justify="right")
    evals = dict(summary.get("eval_return_at_phase_end") or {})  # the last evaluation at each phase's end
    evals[summary["phases"][-1]["name"]] = summary["final_eval_return"]
    for phase in summary["phases"]:
        counts = summary["parameters"].get(phase["name"], {})
        ret = evals.get(phase["name"])
        table.add_row(phase["name"], phase["strategy"], f"{phase['start_frame']:,}–{phase['end_frame']:,}",
                      "-" if ret is None else f"{ret:.4g}", *(f"{counts.get(k, 0):,}" for k in
                                                             ("total", "shared", "clustered", "per_agent", "trainable")))
    console.print(table)
    for label, fit in (summary.get("fits") or {}).items():
        facts = []
        if "clusters" in fit:
            facts.append(f"clusters {fit['clusters']} (K={fit['k']}")
            facts[-1] += (f", {fit['selection']} {fit['scores']})" if fit.get("scores") else ")")
            facts.append(f"VAE loss {fit['vae_loss']:.4g} on {fit['fit_frames']:,} frames")
        if "keep_fractions" in fit:
            facts.append("units kept per cluster " + "; ".join(f"{k}: {v}" for k, v in fit["keep_fractions"].items()))
        if facts:
            console.print(f"{label}: " + ", ".join(facts))
    first = summary.get("initial_eval_return")
    console.print(f"eval return: start {first:.4g} -> best {summary['best_eval_return']:.4g} -> "
                  f"final {summary['final_eval_return']:.4g}" + (f", win rate {summary['win_rate']:.2f}"
                                                                 if "win_rate" in summary else ""))
    if summary.get("switch_reason"):
        console.print(f"switch: {summary['switch_reason']}")
    console.print(f"wall time {summary['wall_time_s']:.0f}s · run dir {summary['run_dir']}"
                  f" · learning curve {summary.get('learning_curve')}")


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    """Multirun (``-m``) jobs: Hydra makes each job's directory."""
    from hydra.core.hydra_config import HydraConfig

    from marlshare.components.trainer import ConfigError

    run_dir = cfg.run_dir or HydraConfig.get().runtime.output_dir
    try:
        train(cfg, run_dir=None if cfg.resume else run_dir)
    except ConfigError as err:  # one clear line, not a traceback
        print(f"marlshare: invalid configuration: {err}", file=sys.stderr)
        sys.exit(2)


def _run_dir(overrides: list[str]) -> str:
    """The run directory Hydra would use (``hydra.run.dir``), resolved without creating it."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        full = hydra_compose(config_name="train", overrides=overrides, return_hydra_config=True)
    return str(full.hydra.run.dir)


def run_single(argv: list[str]) -> None:
    """One run: compose, check everything (the env included), and only then create the run directory."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from marlshare.components.trainer import ConfigError, Trainer

    from marlshare.components.interrupts import RunInterrupted
    from marlshare.components.trainer import TrainingDiverged

    try:
        overrides = env_overrides(argv)
        resume = resume_overrides(argv)
        if resume is not None:  # continue a run as configured, with the few changes a resume allows
            cfg = {"resume": resume[0]}
            trainer = Trainer(cfg, resume_changes=resume[1])
        else:
            cfg = compose(overrides)
            trainer = Trainer(cfg, run_dir=cfg.run_dir or _run_dir(overrides))
    except (ConfigError, HydraException, OmegaConfBaseException) as err:  # one clear line, not a traceback
        message = " ".join(line.strip() for line in str(err).strip().splitlines()) or type(err).__name__
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


def presets(group: str) -> list[str]:
    """The preset names of a config group (``recipes/conf/<group>/**.yaml``)."""
    if group == "strategy":
        return list(STRATEGIES)
    root = CONF_DIR / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def help_text() -> str:
    """``marlshare train --help``: the config groups with their choices, and the key settings."""
    from marlshare.components.config import AlgorithmConfig, EnvConfig, ScheduleConfig, TrainConfig

    defaults = dataclasses.asdict(TrainConfig())
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
    lines += ["", "key settings (key=value; defaults shown):"]
    for key in ("total_frames", "eval_every", "checkpoint_every", "checkpoint_keep", "seed", "threads", "device",
                "run_dir", "resume"):
        lines.append(f"  {key:<32} {defaults[key]}")
    for prefix, cls in (("env", EnvConfig), ("algorithm", AlgorithmConfig)):
        for f in dataclasses.fields(cls):
            if f.name in ("options",) or f.name.startswith("auto_"):
                continue
            value = getattr(cls(), f.name)
            lines.append(f"  {prefix + '.' + f.name:<32} {value}")
    lines += [f"  {'env.options.<name>':<32} passed to the env (e.g. env.options.n_agents=4)",
              f"  {'strategy.<hyperparameter>':<32} the first phase's strategy (see docs/strategies.md)"]
    for f in dataclasses.fields(ScheduleConfig):
        if not f.name.startswith("auto_"):
            lines.append(f"  {'schedule.' + f.name:<32} {getattr(ScheduleConfig(), f.name)}")
    lines += [f"  {'schedule.phases.<i>.<key>':<32} strategy, until, auto, lr, critic_lr, clip_epsilon, "
              f"entropy_coeff, label", "",
              "a resume continues a run as configured: resume=RUN [total_frames=N] [threads=..] [device=..] "
              "[logger.progress=..]",
              "every setting: components/config.py; examples: recipes/train.py, README.md"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(help_text())
        return
    if any(a in ("-m", "--multirun") or a.startswith("--") for a in argv):
        from marlshare.components.config import ConfigError

        try:
            sys.argv = [sys.argv[0]] + env_overrides(argv)
        except ConfigError as err:
            print(f"marlshare: invalid configuration: {err}", file=sys.stderr)
            sys.exit(2)
        _hydra_main()
    else:
        run_single(argv)


if __name__ == "__main__":
    main()
