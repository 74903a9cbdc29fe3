"""Episodes of a team as video files (MP4 through imageio-ffmpeg, or GIF through Pillow), headless.

What renders, with no display (the envs' own ``rgb_array`` modes; :data:`RENDERABLE`):

- ``vmas``: ``VmasEnv``'s simulator, ``render(mode="rgb_array")`` (pyglet-free since VMAS 1.4);
- ``pettingzoo`` (MPE2 and SISL): built with ``render_mode="rgb_array"`` (pygame, no window);
- ``mamujoco``: ``render_mode="rgb_array"`` through MuJoCo's EGL backend (``MUJOCO_GL=egl``, set here
  when unset; it needs the system's ``libEGL`` and Mesa, which Debian's ``libegl1`` /
  ``libegl-mesa0`` give; OSMesa does not work with the mujoco wheel here).

What does not: ``lbf`` and ``rware`` draw with pyglet windows, which need an X display (run under
``xvfb-run``, from Debian's ``xvfb``, to get one); ``smax`` has no frame renderer in the env (JaxMARL's
``jaxmarl.viz.visualizer.SMAXVisualizer`` animates a saved state sequence with matplotlib); ``smac``
(StarCraft II) renders only in the game client. :func:`record_episodes` says so for these.

Frames are taken from the first env copy: at the reset, then after each step, until the episode
ends (``1 + steps`` frames per episode).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

#: family -> the env options that turn its rendering on
RENDERABLE = {"vmas": {}, "pettingzoo": {"render_mode": "rgb_array", "num_workers": 0},
              "mamujoco": {"render_mode": "rgb_array", "num_workers": 0}}
NOT_RENDERABLE = {
    "lbf": "LBF draws with a pyglet window, which needs an X display: run the command under xvfb-run (apt: xvfb)",
    "rware": "RWARE draws with a pyglet window, which needs an X display: run the command under xvfb-run (apt: xvfb)",
    "smax": "SMAX has no frame renderer; JaxMARL's jaxmarl.viz.visualizer.SMAXVisualizer animates a state sequence",
    "smac": "SMAC renders only in the StarCraft II client",
}
VIDEO_FORMATS = (".mp4", ".gif")


def check_renderable(env_name: str) -> str:
    family = env_name.partition("/")[0]
    if family not in RENDERABLE:
        reason = NOT_RENDERABLE.get(family, "no rgb_array renderer is wired for it")
        raise ValueError(f"cannot render {env_name}: {reason}. Families that render: {sorted(RENDERABLE)}")
    if family == "mamujoco":
        os.environ.setdefault("MUJOCO_GL", "egl")  # headless MuJoCo; must be set before mujoco loads
    return family


def render_options(env_name: str) -> dict:
    """The env options that make ``env_name``'s family render ``rgb_array`` frames (copied)."""
    return dict(RENDERABLE[check_renderable(env_name)])


def _base(env):
    while hasattr(env, "base_env"):
        env = env.base_env
    return env


def render_frame(env, family: str, size: int | None = None) -> np.ndarray:
    """One ``[H, W, 3]`` uint8 frame of the first copy of ``env`` (built with :func:`render_options`);
    ``size``: the longer side in pixels (VMAS draws at that size, other frames are resized)."""
    base = _base(env)
    if family == "vmas":
        if size is not None and tuple(base._env.scenario.viewer_size) != (size, size):
            base._env.scenario.viewer_size = (size, size)  # VMAS draws at this size (default 700 x 700)
            base._env.viewer = None
        frame = base._env.render(mode="rgb_array", env_index=0, visualize_when_rgb=False)
    elif family == "mamujoco":
        frame = base._sims[0].single.render()
    else:
        frame = base._sims[0].env.render()
    frame = np.asarray(frame, dtype=np.uint8)[..., :3]
    if size is not None and max(frame.shape[:2]) != size:
        from PIL import Image

        h, w = frame.shape[:2]
        scale = size / max(h, w)
        frame = np.asarray(Image.fromarray(frame).resize((max(2, round(w * scale)), max(2, round(h * scale)))))
    return np.ascontiguousarray(frame)


@torch.no_grad()
def rollout_frames(env, policy, family: str, max_steps: int, size: int | None = None) -> list[np.ndarray]:
    """Frames of one episode of the first env copy: at the reset and after each step until it ends or
    ``max_steps`` steps ran (``1 + steps`` frames)."""
    from torchrl.envs.utils import step_mdp

    td = env.reset()
    frames = [render_frame(env, family, size)]
    for _ in range(max_steps):
        td = env.step(policy(td))
        frames.append(render_frame(env, family, size))
        if bool(td.get(("next", "done")).reshape(-1)[0]):
            break
        td = step_mdp(td)
    return frames


def write_video(frames: list[np.ndarray], path, fps: int = 15) -> Path:
    """``frames`` to ``path`` (``.mp4``: H.264 through imageio-ffmpeg; ``.gif``: Pillow, looping)."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix not in VIDEO_FORMATS:
        raise ValueError(f"video path must end in one of {list(VIDEO_FORMATS)}, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    stack = np.stack(frames)
    if path.suffix == ".gif":
        iio.imwrite(path, stack, duration=1000 / fps, loop=0)
    else:
        h, w = stack.shape[1:3]  # H.264 wants even sizes; ffmpeg's macro blocks want multiples of 16
        stack = stack[:, : h - h % 2, : w - w % 2]
        iio.imwrite(path, stack, fps=fps, codec="libx264", macro_block_size=2)
    return path


def record_episodes(run, policy, path, episodes: int = 1, seed: int = 0, overrides: dict | None = None,
                    max_steps: int | None = None, fps: int = 15, every: int = 1,
                    size: int | None = None, device: str = "cpu") -> tuple[Path, int]:
    """Render ``episodes`` episodes of ``policy`` (a TeamPolicy) in ``run``'s env (a
    :class:`~marlshare.components.policy_io.RunHandle`) into one video at ``path``, keeping every
    ``every``-th frame, ``size`` pixels on the longer side (None: the env's own). Returns the path and the frame count."""
    family = check_renderable(run.cfg.env.name)
    env_cfg = run.env_config(overrides)
    max_steps = max_steps or env_cfg.max_steps or run.cfg.env.eval_max_steps
    frames = []
    for episode in range(episodes):
        env = run.make_env(1, seed + episode, device=device,
                           overrides={**(overrides or {}), **render_options(run.cfg.env.name)})
        env.set_seed(seed + episode)
        frames += rollout_frames(env, policy, family, max_steps, size)[::every]
        env.close()
    return write_video(frames, path, fps), len(frames)


def maybe_record_video(trainer, logger) -> Path | None:
    """The trainer's hook, after each iteration: when ``logger.video_every`` frames have passed, one
    deterministic evaluation episode of the current actor into ``RUN/videos/frames_<frames>.mp4`` and
    to W&B, in a forked RNG so that recording never changes what training samples. A family that
    cannot render is reported once and skipped."""
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    from marlshare.components.checkpoint import forked_rng
    from marlshare.components.policy_io import RunHandle

    cfg, frames = trainer.cfg, trainer.state.frames
    every, step = cfg.logger.video_every, cfg.algorithm.frames_per_batch
    if not every or frames // every <= (frames - step) // every or getattr(trainer, "_video_off", False):
        return None
    try:
        check_renderable(cfg.env.name)
    except ValueError as err:
        import warnings

        warnings.warn(f"logger.video_every={cfg.logger.video_every}: {err}; no videos are recorded")
        trainer._video_off = True
        return None
    path = trainer.run_dir / "videos" / f"frames_{trainer.state.frames}.mp4"
    with forked_rng(), set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        path, _ = record_episodes(RunHandle(trainer.run_dir, cfg, None), trainer.actor, path,
                                  seed=cfg.seed + 1_000_003, device=str(trainer.device))
    logger.log_video(path, trainer.state.frames)
    return path
