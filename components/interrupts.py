"""Stopping a run cleanly on Ctrl-C (SIGINT) or SIGTERM: the trainer finishes the current update,
writes a checkpoint and the summary, and raises :class:`RunInterrupted` with a one-line message on how
to resume. A second Ctrl-C stops at once (Python's usual KeyboardInterrupt)."""

from __future__ import annotations

import signal
import threading


class RunInterrupted(Exception):
    """The run stopped on a signal after saving; the message says how to resume."""


class StopSignals:
    """While active, SIGINT and SIGTERM set :attr:`received` (the signal's name) instead of killing the
    process. Only the main thread can install handlers; elsewhere this does nothing."""

    def __init__(self):
        self.received: str | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        return False
