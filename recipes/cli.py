"""The ``marlshare`` command: one subcommand per task; ``marlshare COMMAND --help`` for each one's options."""

from __future__ import annotations

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
}

USAGE = "usage: marlshare COMMAND [ARGS ...]\n\ncommands:\n" + "\n".join(
    f"  {name:<11} {description}" for name, (_, _, description) in COMMANDS.items()) + (
    "\n\nexamples:\n"
    "  marlshare train                                   # the default recipe: PS then PS+LoRA on VMAS navigation\n"
    "  marlshare train env=smax/3s5z strategy=seps schedule=single\n"
    "  marlshare train --help                            # config groups, their choices, key settings\n"
    "  marlshare sweep navigation_ps_nps && marlshare compare sweeps/navigation_ps_nps")


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
