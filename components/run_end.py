"""How a run ends when it does not simply finish, and the summary it leaves.

- **A stop signal** (the first Ctrl-C / SIGTERM): the trainer saves a checkpoint of where it stopped
  and the summary records ``"stopped": {"signal": "SIGINT", "frame": N}``.
- **Ended at once** (a second signal, or a stop that arrived while ``torch.compile`` was compiling,
  whose compiler errors are then beside the point), and **a write error** (a full disk, a quota, a
  read-only run directory): nothing more is written but the summary, and that is the summary of the
  last good checkpoint (:class:`LastGood`, taken after every checkpoint written), so ``summary.json``
  and ``last.pt`` always agree. Where no checkpoint was written yet, a stale ``summary.json`` is
  removed rather than left to contradict the run.

Exit codes of ``marlshare train`` (recipes/cli.py): 2 a bad configuration or a run directory another
process writes, 3 diverged, 4 a write error (:class:`WriteFailed`), 130 stopped by a signal.
"""

from __future__ import annotations

import copy
import dataclasses
import errno
import json
from dataclasses import dataclass
from pathlib import Path

from marlshare.components import checkpoint as ckpt
from marlshare.components.interrupts import RunInterrupted, StopRequested
from marlshare.components.summary import run_summary

#: errno values that mean "the run directory cannot take this write" (anything else is not ours to explain)
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG, errno.EACCES}


class WriteFailed(RuntimeError):
    """A file of the run directory could not be written; the message names the last good checkpoint."""


def write_failure(err: BaseException) -> OSError | None:
    """The OSError of ``err`` if it is a failed write (:data:`WRITE_ERRNOS` or a checkpoint write), else None."""
    if isinstance(err, ckpt.RunDirWriteError):
        return err
    cause = ckpt.write_error(err)
    return cause if cause is not None and cause.errno in WRITE_ERRNOS else None


@dataclass
class LastGood:
    """The last checkpoint written whole, with the run's summary at that moment."""

    path: Path
    frames: int
    summary: dict

    @classmethod
    def after_save(cls, trainer, path: Path) -> "LastGood":
        return cls(path, trainer.state.frames, run_summary(trainer.cfg, copy.deepcopy(trainer.state), trainer.run_dir))

    def where(self) -> str:
        return f"last good checkpoint: {self.path} at frame {self.frames:,}"


def where(good: LastGood | None) -> str:
    return good.where() if good is not None else "no training checkpoint (last.pt) had been written yet"


def write_failed(run_dir: Path, err: OSError, good: LastGood | None) -> WriteFailed:
    """The one-line error of a failed write."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        what = f"no space left on {run_dir}" + (" (disk quota)" if err.errno == errno.EDQUOT else "")
    else:
        what = f"cannot write {err.filename or run_dir} ({err.strerror or err})"
    return WriteFailed(f"{what}; {where(good)}")


def write_summary(run_dir: Path, summary: dict | None) -> bool:
    """``summary.json`` written whole (None: remove a stale one); False when even that failed, in
    which case no summary is left rather than one that disagrees with the checkpoints."""
    path = Path(run_dir) / "summary.json"
    if summary is not None:
        try:
            ckpt.write_text_atomic(json.dumps(summary, indent=2), path)
            return True
        except OSError:
            pass
    path.unlink(missing_ok=True)
    return summary is None


def snapshot_summary(good: LastGood | None, stopped: dict, best: dict | None) -> dict | None:
    """The last good checkpoint's summary, saying why the run stopped there (``best``: the best
    checkpoint on disk now, which may be newer)."""
    if good is None:
        return None
    summary = dict(good.summary)
    summary["stopped"] = {**stopped, "frame": good.frames}
    if best is not None:
        summary["best"] = {**best, "path": "checkpoints/best.pt"}
    return summary


class UpdateAbandoned(Exception):
    """The update failed after a stop signal (e.g. torch.compile's compiler killed by the same Ctrl-C)."""


def classify(err: BaseException, trainer, stop) -> tuple[dict | None, Exception | None]:
    """``(ended, failure)`` for an exception that ended ``trainer``'s run early: ``ended`` says why
    the run ended without a new checkpoint (None: it saved one where it stopped), ``failure`` is the
    error to raise. Re-raises an exception that is none of these."""
    if isinstance(err, StopRequested):  # an evaluation or a fit stopped at its next step, saved as pending
        return (None if trainer.last_good is not None else {"signal": stop.received}), None
    if isinstance(err, KeyboardInterrupt):
        return {"signal": stop.received or "SIGINT", "at_once": True}, None
    if isinstance(err, UpdateAbandoned):
        return {"signal": stop.received, "abandoned": str(err)}, None
    cause = write_failure(err) if isinstance(err, Exception) else None
    if cause is None:
        raise err
    failure = write_failed(trainer.run_dir, cause, trainer.last_good)
    return {"write_error": str(failure)}, failure


def write_run_summary(trainer, ended: dict | None, stop) -> dict | None:
    """The live summary after a normal end or a stop that saved; the last good checkpoint's after an
    abrupt end (``ended``). Written whole; returns it."""
    if not trainer.entered:
        return None
    if ended is None:
        summary = trainer.summary()
        if stop.received:
            summary["stopped"] = {"signal": stop.received, "frame": trainer.state.frames}
    else:
        summary = snapshot_summary(trainer.last_good, ended, trainer.state.best)
    write_summary(trainer.run_dir, summary)
    return summary


def interruption(trainer, stop, ended: dict | None) -> RunInterrupted | None:
    """The one-line RunInterrupted of a run a signal stopped (None if none did)."""
    if not stop.received and not (ended and "signal" in ended):
        return None
    resume = f"continue with: marlshare train resume={trainer.run_dir}"
    if ended is None:
        return RunInterrupted(f"stopped by {stop.received} at frame {trainer.state.frames:,} after saving a "
                              f"checkpoint and the summary; {resume}")
    how = ("at once by a second " if ended.get("at_once") else
           "during the update (its compile abandoned) by " if ended.get("abandoned") else "by ")
    return RunInterrupted(f"stopped {how}{ended['signal']}; {where(trainer.last_good)}; {resume}")


# --- what a stop leaves pending, finished on resume -------------------------------------------------
def finish_pending(trainer, logger, progress, stop) -> bool:
    """What a stop left unfinished in the resumed checkpoint: the iteration whose evaluation was
    interrupted (``{"row"}``), or the phase switch whose fit was (``{"switch"}``). True to stop now."""
    pending, trainer.state.pending = trainer.state.pending, None
    if pending and pending.get("row") is not None:
        return trainer._finish_iteration(dict(pending["row"]), 0, logger, progress, stop)
    if pending and pending.get("switch"):
        return switch_phase(trainer, pending["switch"], progress)
    return False


def switch_phase(trainer, reason: str, progress) -> bool:
    """Enter the next phase and checkpoint it (``phase_switch.pt``). A fit interrupted by a stop leaves
    the run as it was before the switch, saved with the switch pending, so the fit restarts on resume
    (the network and optimiser change only after the fit). True when a stop has arrived."""
    run = trainer.state
    before = dataclasses.replace(run, phases=[dataclasses.replace(p) for p in run.phases],
                                 strategies=list(run.strategies), fits=copy.deepcopy(run.fits))
    progress.stage("fit")
    try:
        trainer.enter_phase(run.phase_index + 1, reason)
    except StopRequested:
        trainer.state = before
        before.pending = {"switch": reason}
        trainer.save_checkpoint("last")
        raise
    if trainer.plan.label in run.fits:
        progress.notice(f"{trainer.plan.label}: {trainer.strategy.name}: {run.fits[trainer.plan.label]}")
    trainer.save_checkpoint("phase_switch")
    progress.stage("collect")
    return trainer._stop is not None and trainer._stop.received is not None
