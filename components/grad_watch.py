"""A warning, once per run, when the gradient norm stays far above ``algorithm.max_grad_norm``.

``GradNormWatch.observe(norm)`` takes each iteration's mean pre-clipping gradient norm (the update's
``grad_norm``). When it exceeds ``min(FACTOR * max_grad_norm, CEILING)`` for ``PATIENCE`` iterations in
a row, one line goes to stderr above the progress bar (``tqdm.write``, as ``Progress.notice`` writes):
either every step is being scaled down many times over, or, with a huge ``max_grad_norm`` that clips
nothing (``algorithm.lr=3 algorithm.max_grad_norm=1e9``: norms of 1e6-6e7 against about 0.05 at the
default lr on VMAS navigation), the network is diverging while training goes on.
"""

from __future__ import annotations

import math
import sys

FACTOR = 10.0  # "far above": every step scaled down at least this much
CEILING = 1e5  # whatever max_grad_norm says, norms above this mean divergence
PATIENCE = 5  # iterations in a row


class GradNormWatch:
    def __init__(self, max_grad_norm: float, patience: int = PATIENCE, write=None):
        self.max_grad_norm, self.patience = float(max_grad_norm), int(patience)
        self.threshold = min(FACTOR * self.max_grad_norm, CEILING)
        self.streak, self.warned = 0, False
        self._write = write

    def observe(self, grad_norm: float) -> str | None:
        """Record one iteration's gradient norm; returns (and writes) the warning the first time the
        norm has stayed above the threshold for ``patience`` iterations, else None."""
        above = not math.isnan(grad_norm) and grad_norm > self.threshold
        self.streak = self.streak + 1 if above else 0
        if self.warned or self.streak < self.patience:
            return None
        self.warned = True
        cause = ("each step is scaled down more than 10x" if self.threshold < CEILING
                 else "clipping at this max_grad_norm does nothing and the network is diverging")
        message = (f"marlshare: warning: the gradient norm has stayed above {self.threshold:.3g} for {self.streak} "
                   f"iterations (last {grad_norm:.3g}, algorithm.max_grad_norm={self.max_grad_norm:g}): {cause}; "
                   f"try a lower algorithm.lr")
        (self._write or _write)(message)
        return message


def _write(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)
