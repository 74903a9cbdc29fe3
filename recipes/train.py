"""The training recipe: ``marlshare train key=value ...`` or ``python -m marlshare.recipes.train key=value ...``.

It reads top to bottom::

    cfg = compose(overrides)                 # Hydra: presets + overrides over the typed dataclasses
    trainer = Trainer(cfg)                   # env, phase plan, actor/critic/optimiser (or a resumed run),
                                             # everything checked before the run directory exists
    summary = trainer.run()                  # collect -> update -> evaluate -> checkpoint, phase by phase
    plot_learning_curve(trainer.run_dir)     # learning_curve.png; summary.json; the summary table

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
is one line on stderr and exit code 2, with no run directory created (the command line's plumbing:
``recipes/cli.py``).

From Python::

    from marlshare.recipes.train import compose, train
    summary = train(compose(["env=vmas/balance", "schedule=single", "total_frames=60000"]))
"""

from __future__ import annotations

import json
import sys

from marlshare.recipes.compose import compose

__all__ = ["compose", "main", "train"]


def train(cfg, run_dir: str | None = None, quiet: bool = False, trainer=None) -> dict:
    """Train one run; writes the run directory, prints the summary table, returns the summary."""
    from marlshare.components.analysis.plots import plot_learning_curve
    from marlshare.components.summary import print_summary
    from marlshare.components.trainer import Trainer

    # the env, the phase plan and the networks (or the resumed run's), all checked
    trainer = trainer or Trainer(cfg, run_dir=run_dir)
    # collect -> update -> evaluate -> checkpoint, phase after phase, until total_frames
    summary = trainer.run()
    # the learning curve next to the summary, and the table
    summary["learning_curve"] = str(plot_learning_curve(trainer.run_dir))
    (trainer.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if not quiet:
        print_summary(summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    """``marlshare train ARGS``: help, a Hydra multirun, or one checked run (see recipes/cli.py)."""
    from marlshare.recipes.cli import train_command

    train_command(list(sys.argv[1:] if argv is None else argv), train)


if __name__ == "__main__":
    main()
