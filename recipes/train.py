"""The training recipe: ``marlshare train key=value ...`` or ``python -m recipes.train key=value ...``.

Configuration is Hydra over the typed dataclasses of ``components/config.py``, with config groups
``env``, ``strategy``, ``algorithm``, ``schedule`` and ``logger`` (presets in ``recipes/conf``).
Strategy presets are generated from the strategy dataclasses, so their defaults have one home.

Examples::

    marlshare train                                    # the default recipe (make run)
    marlshare train env=vmas/balance strategy=ps algorithm=mappo schedule=two_phase \\
        schedule.switch_at=300000 total_frames=600000 seed=0
    marlshare train -m strategy=ps,nps,mtl seed=0,1,2 schedule=single   # a sweep

From Python::

    from recipes.train import compose, train
    summary = train(compose(["env=vmas/balance", "schedule=single", "total_frames=60000"]))
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from components.config import AlgorithmConfig, EnvConfig, LoggerConfig, ScheduleConfig, TrainConfig
from components.strategies import STRATEGIES

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
    every registered env (e.g. any VMAS scenario) works from the command line."""
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if key == "env" and sep and "," not in value and not (CONF_DIR / "env" / f"{value}.yaml").exists():
            out += ["env=default", f"env.name={value}"]
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


def train(cfg, run_dir: str | None = None, quiet: bool = False) -> dict:
    """Train one run; writes the run directory, prints the summary table, returns the summary."""
    from components.trainer import Trainer
    from tools.plots import plot_learning_curve

    trainer = Trainer(cfg, run_dir=run_dir)
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

    console = Console(width=max(Console().width, 110))
    table = Table(title=f"{summary['env']} · {summary['algorithm']} · seed {summary['seed']}")
    table.add_column("phase")
    table.add_column("strategy")
    table.add_column("frames", justify="right")
    table.add_column("eval return at end", justify="right")
    table.add_column("params total", justify="right")
    table.add_column("shared", justify="right")
    table.add_column("per agent", justify="right")
    table.add_column("trainable", justify="right")
    ends = {summary["phases"][0]["name"]: summary.get("eval_return_at_switch")}
    ends[summary["phases"][-1]["name"]] = summary["final_eval_return"]
    for phase in summary["phases"]:
        counts = summary["parameters"].get(phase["name"], {})
        ret = ends.get(phase["name"])
        table.add_row(phase["name"], phase["strategy"], f"{phase['start_frame']:,}–{phase['end_frame']:,}",
                      "-" if ret is None else f"{ret:.4g}", *(f"{counts.get(k, 0):,}" for k in
                                                             ("total", "shared", "per_agent", "trainable")))
    console.print(table)
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
    from hydra.core.hydra_config import HydraConfig

    from components.trainer import ConfigError

    run_dir = cfg.run_dir or HydraConfig.get().runtime.output_dir
    try:
        train(cfg, run_dir=None if cfg.resume else run_dir)
    except ConfigError as err:  # one clear line, not a traceback
        print(f"marlshare: invalid configuration: {err}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    sys.argv = [sys.argv[0]] + env_overrides(argv)
    _hydra_main()


if __name__ == "__main__":
    main()
