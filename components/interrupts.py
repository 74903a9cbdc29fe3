"""Stopping a run cleanly on Ctrl-C (SIGINT) or SIGTERM.

The first signal prints one line at once ("stopping after the current step ...") and sets a flag.
The trainer checks it after each update; the long steps check it as they go and raise
:class:`StopRequested` at their next batch: an evaluation at its next env step, the SePS identity-VAE
fit at its next minibatch (:func:`stop_requested` is their default ``should_stop``). The trainer then
writes a checkpoint and the summary and raises :class:`RunInterrupted` with a one-line message on
how to resume. A second signal stops at once (KeyboardInterrupt), except while a checkpoint is
being written (:meth:`StopSignals.deferred`): then right after it, so the last good checkpoint is
always whole.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Callable


class RunInterrupted(Exception):
    """The run stopped on a signal after saving; the message says how to resume."""


class StopRequested(Exception):
    """Raised inside a long step (an evaluation, a fit) when a stop signal has arrived."""


_active: "StopSignals | None" = None  # the StopSignals of the run in progress in this process


def stop_requested() -> bool:
    """Whether the run in progress in this process has received a stop signal."""
    return _active is not None and _active.received is not None


def check_stop(where: str) -> None:
    """Raise :class:`StopRequested` (naming ``where``) if a stop signal has arrived."""
    if stop_requested():
        raise StopRequested(f"{where} interrupted by {_active.received}")


class StopSignals:
    """While active, SIGINT and SIGTERM set :attr:`received` (the signal's name) and print one line
    through ``notice`` (default: stderr) instead of killing the process. Only the main thread can
    install handlers; elsewhere the handlers are not installed (:func:`request` still works).
    ``stage``: a callable naming what the run is doing (for the line). ``abandon``: a callable saying
    whether the current step is one to give up at once rather than finish (a ``torch.compile`` in
    progress, which can take minutes): then the first signal raises StopRequested right there."""

    def __init__(self, notice: Callable[[str], None] | None = None, stage: Callable[[], str] | None = None,
                 abandon: Callable[[], bool] | None = None):
        self.received: str | None = None
        self.at_once = False  # whether a second signal stopped the run at once
        self._notice = notice or (lambda line: print(line, file=sys.stderr, flush=True))
        self._stage, self._abandon = stage, abandon
        self._previous = {}
        self._deferring = 0
        self._abort_pending = False

    def request(self, name: str) -> None:
        """What a signal ``name`` ("SIGINT", "SIGTERM") does: the first asks for a stop, a second one
        stops at once (KeyboardInterrupt), deferred to the end of a checkpoint write."""
        if self.received is not None:
            if self._deferring:
                self._abort_pending = True
                return
            self.at_once = True
            raise KeyboardInterrupt
        self.received = name
        stage = self._stage() if self._stage else None
        if self._abandon is not None and self._abandon():
            self._notice(f"marlshare: {name} received during {stage}: abandoning it and stopping; the last good "
                         f"checkpoint is kept")
            raise StopRequested(f"{stage} abandoned on {name}")
        self._notice(f"marlshare: {name} received{f' during {stage}' if stage else ''}: stopping after the "
                     f"current step, then saving a checkpoint and the summary (Ctrl-C again stops at once)")

    def _handle(self, signum, frame):
        self.request(signal.Signals(signum).name)

    @contextlib.contextmanager
    def deferred(self):
        """A block (a checkpoint write) that a second signal does not cut short: it stops right after."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if not self._deferring and self._abort_pending:
            self._abort_pending = False
            self.at_once = True
            raise KeyboardInterrupt

    def __enter__(self):
        global _active
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        _active = self
        return self

    def __exit__(self, *exc):
        global _active
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        if _active is self:
            _active = None
        return False
