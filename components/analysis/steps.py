"""Progress of a long command that is a few slow steps (``marlshare analyze``, ``marlshare compare``):
a rich progress line on stderr naming the current step, with a spinner and the elapsed time, so a
minute of bootstrap resampling or behaviour rollouts is not a silent minute.

    steps = Steps("compare", ["load runs", "bootstrap CIs", "figures"])
    with steps("load runs"):
        runs = load_runs(paths)
    steps.close()
"""

from __future__ import annotations

from contextlib import contextmanager


class Steps:
    """``enabled=False``: a no-op (library calls and tests)."""

    def __init__(self, command: str, labels: list[str], enabled: bool = True):
        self.labels, self.progress, self.task = list(labels), None, None
        if enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                       TimeElapsedColumn)

            self.progress = Progress(SpinnerColumn(), TextColumn(f"{command}: {{task.description}}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True),
                                     transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.labels[0] if self.labels else "", total=len(self.labels))

    @contextmanager
    def __call__(self, label: str):
        if self.progress is not None:
            self.progress.update(self.task, description=label)
        try:
            yield
        finally:
            if self.progress is not None:
                self.progress.advance(self.task)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
