"""The ``marlshare`` command.

    marlshare train [key=value ...]      train (Hydra overrides; see recipes/train.py)
    marlshare strategies [options]       parameter table of every strategy for a network
    marlshare plot RUN_DIR [RUN_DIR ...] learning curve(s)
    marlshare analyze RUN_DIR [options]   figures and numbers inside a trained team (tools/analyze, docs/analysis.md)
    marlshare sweep [SPEC] [key=a,b ...]  a grid of trials on Ray (see tools/sweep.py, docs/sweeps.md)
    marlshare compare SWEEP_DIR [...]     IQM / mean with bootstrap CIs and rliable figures (tools/compare.py)
"""

from __future__ import annotations

import sys

COMMANDS = ("train", "strategies", "plot", "sweep", "compare", "analyze")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    command, rest = argv[0], argv[1:]
    if command == "train":
        from recipes.train import main as train_main

        train_main(rest)
    elif command == "strategies":
        from tools.strategy_table import main as table_main

        table_main(rest)
    elif command == "plot":
        from tools.plots import main as plot_main

        plot_main(rest)
    elif command == "analyze":
        from tools.analyze import main as analyze_main

        analyze_main(rest)
    elif command == "sweep":
        from tools.sweep import main as sweep_main

        sweep_main(rest)
    elif command == "compare":
        from tools.compare import main as compare_main

        compare_main(rest)
    else:
        sys.exit(f"marlshare: unknown command {command!r}; valid commands: {list(COMMANDS)}")


if __name__ == "__main__":
    main()
