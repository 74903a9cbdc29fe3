"""Training and sampling devices (``device=``, ``env.device=``). The CUDA tests are skipped on a
machine without a GPU; the CPU tests run the same code path with both devices on the CPU."""

import pytest
import torch

from marlshare.components.algorithms import actor_net
from marlshare.components.algorithms.ppo import ValueNorm
from marlshare.components.config import resolve_device
from marlshare.components.trainer import ConfigError, Trainer

from tests.components.test_trainer import ITER, tiny

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_a_device_this_machine_lacks_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match=r"device='tpu' is not a device; valid: cpu, cuda, cuda:N, auto"):
        Trainer(tiny(device="tpu"))
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ConfigError, match=rf"env.device='cuda:{count}': this machine has {count} CUDA device"):
        Trainer(tiny(**{"env.device": f"cuda:{count}"}))
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_the_sampling_device_follows_the_family_declaration(monkeypatch):
    """``run_envs.devices`` on any machine (device names are not resolved against this one): a family
    that simulates in torch (VMAS) samples on the training device by default and may take a GPU;
    the others sample on the CPU and refuse one."""
    from types import SimpleNamespace

    from marlshare.components import run_envs

    monkeypatch.setattr(run_envs, "resolve_device", lambda value, key: torch.device(value))
    cuda_device, cpu = torch.device("cuda"), torch.device("cpu")

    def devices(name, env_device=None):
        return run_envs.devices(SimpleNamespace(device="cuda", env=SimpleNamespace(name=name, device=env_device)))

    assert devices("vmas/balance") == (cuda_device, cuda_device)
    assert devices("vmas/balance", "cpu") == (cuda_device, cpu)
    assert devices("mamujoco/halfcheetah-2x3") == (cuda_device, cpu)
    assert devices("mamujoco/halfcheetah-2x3", "cpu") == (cuda_device, cpu)
    with pytest.raises(ConfigError, match="only VMAS simulates on a GPU; mamujoco/halfcheetah-2x3 samples on the CPU"):
        devices("mamujoco/halfcheetah-2x3", "cuda")


def _devices_of(trainer):
    tensors = list(actor_net(trainer.actor).parameters()) + list(trainer.critic.parameters())
    tensors += [v for state in trainer.optimiser.state.values() for v in state.values()
                if isinstance(v, torch.Tensor) and v.dim() > 0]
    return {t.device for t in tensors}


def test_cpu_devices_train_and_keep_everything_on_the_cpu(tmp_path):
    trainer = Trainer(tiny(device="cpu", **{"env.device": "cpu", "total_frames": 2 * ITER}), run_dir=tmp_path)
    assert (trainer.device, trainer.env_device) == (torch.device("cpu"), torch.device("cpu"))
    trainer.run()
    assert _devices_of(trainer) == {torch.device("cpu")}


def test_value_norm_statistics_follow_the_module():
    norm = ValueNorm()
    norm.update(torch.tensor([1.0, 3.0]))
    moved = norm.to(torch.float64)  # .to(device) takes the same path (Module._apply)
    assert all(getattr(moved, name).dtype == torch.float64 for name in ValueNorm.STATS)
    assert moved.running_mean.item() == pytest.approx(2.0 * (1 - norm.beta))


@cuda
def test_vmas_trains_on_the_gpu_and_resumes_on_the_cpu(tmp_path):
    trainer = Trainer(tiny(device="cuda", total_frames=2 * ITER), run_dir=tmp_path)
    assert trainer.env_device.type == "cuda"  # VMAS simulates where the networks train
    trainer.run()
    assert {d.type for d in _devices_of(trainer)} == {"cuda"}
    resumed = Trainer(tiny(resume=str(tmp_path)), resume_changes={"device": "cpu", "env.device": "cpu",
                                                                  "total_frames": 3 * ITER})
    resumed.run()
    assert resumed.state.frames == 3 * ITER and _devices_of(resumed) == {torch.device("cpu")}


@cuda
def test_cpu_sampling_with_gpu_training_casts_the_batches(tmp_path):
    trainer = Trainer(tiny(device="cuda", **{"env.device": "cpu", "algorithm.value_norm": True,
                                             "total_frames": 2 * ITER}), run_dir=tmp_path)
    assert trainer.env_device.type == "cpu"
    summary = trainer.run()
    assert {d.type for d in _devices_of(trainer)} == {"cuda"} and summary["frames"] == 2 * ITER


@cuda
def test_only_vmas_simulates_on_a_gpu():
    with pytest.raises(ConfigError, match="only VMAS simulates on a GPU"):
        Trainer(tiny(**{"env.name": "mamujoco/halfcheetah-2x3", "env.options": {}, "env.device": "cuda"}))


def test_auto_threads_follow_omp_num_threads_then_the_usable_cores(monkeypatch):
    from marlshare.components.config import AUTO_THREADS_MAX, auto_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert auto_threads() == 3  # a launcher of parallel runs gave this process its share
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    assert auto_threads() == 2
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)))
    assert auto_threads() == AUTO_THREADS_MAX
    before = torch.get_num_threads()
    try:
        Trainer(tiny(threads=None))  # auto: the trainer sets what auto_threads gives
        assert torch.get_num_threads() == AUTO_THREADS_MAX
        Trainer(tiny(threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
