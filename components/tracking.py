"""Run tracking: ``metrics.csv`` (always), TorchRL's CSV / W&B / TensorBoard loggers, a progress bar.

W&B runs offline unless an API key and a network are both available (``wandb_mode="auto"``); offline
runs are synced later with ``wandb sync <run_dir>/wandb/offline-run-*``. Tracking never stops a
run: a logger that fails to start is reported once and dropped.
"""

from __future__ import annotations

import contextlib
import csv
import math
import netrc
import os
import socket
import warnings
from pathlib import Path

METRIC_COLUMNS = [
    "iteration", "frames", "phase", "strategy", "train_return", "eval_return", "win_rate", "loss_objective",
    "loss_critic", "loss_entropy", "loss_aux", "entropy", "kl_approx", "clip_fraction", "grad_norm",
    "skipped_updates", "fps", "wall_time_s",
]


def resolve_wandb_mode(setting: str) -> str:
    """``auto``: WANDB_MODE if set; otherwise online only with an API key and a reachable server."""
    if setting in ("online", "offline", "disabled"):
        return setting
    if setting != "auto":
        raise ValueError(f"logger.wandb_mode must be one of ['auto', 'offline', 'online', 'disabled'], got {setting!r}")
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    has_key = bool(os.environ.get("WANDB_API_KEY"))
    if not has_key:
        try:
            has_key = netrc.netrc().authenticators("api.wandb.ai") is not None
        except (OSError, netrc.NetrcParseError):
            has_key = False
    if not has_key:
        return "offline"
    try:  # a short, bounded probe so a missing network can never hang the run
        socket.create_connection(("api.wandb.ai", 443), timeout=2).close()
        return "online"
    except OSError:
        return "offline"


def cut_back(run_dir: Path, frames: int) -> None:
    """Drop what a run logged after frame ``frames`` (its last checkpoint) from ``metrics.csv`` and
    TorchRL's scalar CSVs, so a resumed run appends to exactly what the checkpoint had seen."""
    path = run_dir / "metrics.csv"
    if path.exists():
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(r for r in rows if r.get("frames") and int(float(r["frames"])) <= frames)
    for scalars in run_dir.glob("torchrl/scalars/*.csv"):  # TorchRL's CSVLogger: "step,value" lines
        lines = scalars.read_text().splitlines()
        kept = [line for line in lines if line and int(float(line.split(",")[0])) <= frames]
        scalars.write_text("".join(line + "\n" for line in kept))


WANDB_ID = "wandb_run_id.txt"  # the run's W&B id: a resumed run continues the same W&B run


class RunLogger:
    """Writes one row per iteration to ``metrics.csv`` and forwards scalars to TorchRL loggers.
    ``resume_frames``: continue a run, first cutting its logs back to that frame."""

    def __init__(self, run_dir: Path, cfg, exp_name: str, config_dict: dict, resume_frames: int | None = None):
        self.run_dir = Path(run_dir)
        path = self.run_dir / "metrics.csv"
        append = resume_frames is not None
        if append:
            cut_back(self.run_dir, resume_frames)
        new_file = not (append and path.exists())
        self._file = open(path, "w" if new_file else "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        if new_file:
            self._writer.writeheader()
        self.loggers = []
        if cfg.csv:
            self._start("csv", lambda: __import__("torchrl.record.loggers", fromlist=["CSVLogger"]).CSVLogger(
                exp_name="torchrl", log_dir=str(self.run_dir)))
            for empty in ("videos", "texts"):  # TorchRL's CSVLogger makes these up front; it recreates them on use
                with contextlib.suppress(OSError):
                    (self.run_dir / "torchrl" / empty).rmdir()  # only when empty
        if cfg.tensorboard:
            self._start("tensorboard", lambda: __import__("torchrl.record.loggers", fromlist=["TensorboardLogger"])
                        .TensorboardLogger(exp_name="tensorboard", log_dir=str(self.run_dir)))
        self.wandb_mode = None
        if cfg.wandb:
            mode = resolve_wandb_mode(cfg.wandb_mode)
            if mode != "disabled":
                self.wandb_mode = mode
                self._start("wandb", lambda: self._wandb(cfg, mode, exp_name, config_dict))

    def _wandb(self, cfg, mode, exp_name, config_dict):
        from torchrl.record.loggers import WandbLogger

        os.environ.setdefault("WANDB_SILENT", "true")
        # extra keyword arguments go to wandb.init: a sweep puts its trials in one group, tagged by axis
        id_file = self.run_dir / WANDB_ID
        if not id_file.exists():  # W&B ids are 8 lowercase letters or digits
            import secrets
            import string

            id_file.write_text("".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8)))
        logger = WandbLogger(exp_name=exp_name, offline=mode == "offline", save_dir=str(self.run_dir),
                             project=cfg.wandb_project, config=config_dict, log_env_packages=False,
                             group=cfg.wandb_group, tags=list(cfg.wandb_tags) or None,
                             id=id_file.read_text().strip())  # TorchRL passes resume="allow"
        return logger

    def _start(self, name, factory):
        try:
            self.loggers.append(factory())
        except Exception as err:  # tracking must never take a run down
            warnings.warn(f"{name} logger disabled: {type(err).__name__}: {err}")

    def log(self, row: dict) -> None:
        self._writer.writerow({k: _fmt(row.get(k)) for k in METRIC_COLUMNS})
        self._file.flush()
        for logger in self.loggers:
            for key, value in row.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    try:
                        logger.log_scalar(key, float(value), step=int(row["frames"]))
                    except Exception as err:
                        warnings.warn(f"{type(logger).__name__} failed, disabled: {err}")
                        self.loggers.remove(logger)
                        break

    def log_video(self, path: Path, step: int) -> None:
        """Send a recorded episode (an MP4/GIF file, :mod:`~marlshare.components.video`) to W&B as
        ``eval_video``; the file itself stays in the run directory."""
        for logger in self.loggers:
            if type(logger).__name__ == "WandbLogger":
                try:
                    import wandb

                    logger.experiment.log({"eval_video": wandb.Video(str(path), format=Path(path).suffix[1:])},
                                          step=int(step))
                except Exception as err:  # tracking must never take a run down
                    warnings.warn(f"W&B video logging failed: {type(err).__name__}: {err}")

    def close(self) -> None:
        self._file.close()
        for logger in self.loggers:
            experiment = getattr(logger, "experiment", None)
            finish = getattr(experiment, "finish", None)
            if callable(finish):
                try:
                    finish()
                except Exception:
                    pass


def _fmt(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value
