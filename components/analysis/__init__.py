"""Looking at runs after training: comparison across runs, analyses inside one run, tables and plots.

Each command of ``marlshare`` (``recipes/cli.py``) is a module here with a ``main(argv)``:

- :mod:`.compare` (``marlshare compare``): IQM / mean with bootstrap CIs and rliable figures of runs
  or sweeps, and the marl-eval JSON export;
- :mod:`.run_analysis` (``marlshare analyze``): figures and numbers inside one trained team
  (docs/analysis.md), from the numbers of :mod:`.measures`, the states of :mod:`.states` and the
  parameter / time scaling of :mod:`.scaling`;
- :mod:`.plots` (``marlshare plot``): learning curves of run directories;
- :mod:`.env_table` (``marlshare envs``) and :mod:`.strategy_table` (``marlshare strategies``): what
  is registered, and its sizes.

Nothing is imported here, so ``marlshare envs`` does not pay for torch or scipy; import the module
you need, e.g. ``from marlshare.components.analysis.run_analysis import analyze``.
"""
