"""A tqdm progress bar over frames: the current stage, frames/s, an ETA that counts the evaluations
still to come, the phase and the current returns::

    evaluate:  40%|████      | 96.0k/240k [01:02 elapsed, 1.53kframes/s, eta=1:41, phase=pretrain, train=0.12, eval=0.3]

The stage (``collect``, ``update``, ``fit``, ``evaluate``) is shown while it runs, so a long fit or
evaluation no longer looks like a hang. tqdm's own remaining time divides the frames left by the
recent frame rate, which counts evaluations only when one happened recently; :func:`eta` instead adds
the training time per frame (collection and update, measured) times the frames left to the mean
evaluation time times the evaluations left.
"""

from __future__ import annotations

import math
import sys
import time


def eta(frames_left: int, train_s_per_frame: float, evals_left: int, eval_s: float) -> float:
    """Seconds until the end: training (``frames_left x train_s_per_frame``) plus evaluations
    (``evals_left x eval_s``)."""
    return max(0, frames_left) * train_s_per_frame + max(0, evals_left) * eval_s


def evaluations_left(frames: int, total: int, every: int, step: int) -> int:
    """Evaluations in the iterations after frame ``frames`` (``step`` frames each): one at each
    crossing of a multiple of ``every``, and one at the end."""
    if frames >= total:
        return 0
    end = frames + -(-(total - frames) // step) * step  # the frame count of the last iteration
    crossings = end // every - frames // every
    return crossings + (0 if end // every > (end - step) // every else 1)  # the last one evaluates anyway


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """A no-op when ``enabled`` is false. ``eval_every`` and ``frames_per_batch`` let the ETA count the
    evaluations to come; ``file``: where the bar goes (stderr)."""

    def __init__(self, enabled: bool, total: int, initial: int, eval_every: int | None = None,
                 frames_per_batch: int | None = None, file=None):
        self.bar = None
        self.total, self.frames, self.eval_every, self.step = total, initial, eval_every, frames_per_batch
        self.current = "start"
        self._since = time.perf_counter()
        self._train_s = self._train_frames = 0.0  # collection and update time, and their frames
        self._eval_times: list[float] = []
        self._post: dict = {}
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="frames", unit_scale=True, dynamic_ncols=True,
                            file=file or sys.stderr, desc=self.current,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                       "[{elapsed} elapsed, {rate_fmt}{postfix}]")

    def stage(self, name: str) -> None:
        """Enter stage ``name`` (collect, update, fit, evaluate): timed, and shown at once."""
        now = time.perf_counter()
        if self.current == "evaluate":
            self._eval_times.append(now - self._since)
        elif self.current in ("collect", "update"):
            self._train_s += now - self._since
        self.current, self._since = name, now
        if self.bar is not None:
            self.bar.set_description_str(name, refresh=True)

    def eta(self) -> float:
        """Seconds left (NaN until an iteration has been timed)."""
        if not self._train_frames:
            return math.nan
        evals = (evaluations_left(self.frames, self.total, self.eval_every, self.step)
                 if self.eval_every and self.step else 0)
        eval_s = sum(self._eval_times) / len(self._eval_times) if self._eval_times else 0.0
        return eta(self.total - self.frames, self._train_s / self._train_frames, evals, eval_s)

    def update(self, n, row):
        self.frames += n
        self._train_frames += n
        if self.bar is not None:
            self.bar.update(n)
            if not math.isnan(row.get("eval_return", math.nan)):
                self._post["eval"] = f"{row['eval_return']:.3g}"  # the latest evaluation stays shown
            post = {"eta": _clock(self.eta()), "phase": row["phase"], "train": f"{row['train_return']:.3g}",
                    **self._post}
            self.bar.set_postfix(post, refresh=True)  # once per iteration: the ETA and stage stay current

    def notice(self, message: str):
        """One line for the user (stderr; above the bar when there is one)."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
