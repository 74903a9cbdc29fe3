"""Learning the clusters from data: the identity VAE and k-means recover agents' hidden types, the
trainer fits SePS / AdaPS at their phase start, and a resumed run does not refit."""

import numpy as np
import pytest
import torch

from marlshare import envs
from marlshare.components.clustering import agent_transitions, fit_clusters, kmeans_clusters, train_identity_vae, VAESettings
from marlshare.components.config import PhaseConfig, ScheduleConfig, TrainConfig
from marlshare.components.checkpoint import load
from marlshare.components.trainer import ConfigError, Trainer
from tests.components.hidden_types_env import HiddenTypesEnv

TYPES = [0, 1, 2, 0, 1, 2]


@pytest.fixture(scope="module")
def transitions():
    env = HiddenTypesEnv(num_envs=20, seed=0, types=TYPES)
    torch.manual_seed(0)
    return agent_transitions(env.rollout(100, break_when_any_done=False), discrete=False, action_dim=2)


def test_identity_vae_codes_separate_hidden_types(transitions):
    latents, _ = train_identity_vae(*transitions, VAESettings(epochs=10), seed=0)
    d = np.linalg.norm(latents[:, None] - latents[None], axis=-1)
    same = d[np.equal.outer(TYPES, TYPES) & ~np.eye(6, dtype=bool)]
    other = d[~np.equal.outer(TYPES, TYPES)]
    assert same.max() * 3 < other.min()  # alike agents are far closer to each other than to the rest


@pytest.mark.parametrize("how", [{"k": 3}, {"selection": "silhouette"}], ids=["k_given", "silhouette"])
def test_fit_recovers_the_hidden_types_exactly(transitions, how):
    fit = fit_clusters(*transitions, settings=VAESettings(epochs=10), seed=0, **how)
    assert fit.clusters == TYPES and fit.k == 3


def test_davies_bouldin_never_mixes_types_but_may_split_them(transitions):
    """The default criterion over-splits with few agents (singletons have zero scatter) but every
    cluster it finds holds agents of one type only (documented in docs/results.md)."""
    fit = fit_clusters(*transitions, settings=VAESettings(epochs=10), seed=0, selection="davies_bouldin")
    assert 3 <= fit.k <= 5 and set(fit.scores) == {2, 3, 4, 5}
    for c in range(fit.k):
        assert len({t for t, label in zip(TYPES, fit.clusters) if label == c}) == 1


def test_kmeans_selection_on_constructed_codes():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    latents = centres[[0, 0, 1, 1, 1, 2, 2, 0]] + 0.01 * rng.standard_normal((8, 2))
    for selection in ("davies_bouldin", "silhouette"):
        labels, k, scores = kmeans_clusters(latents, seed=0, selection=selection)
        assert labels == [0, 0, 1, 1, 1, 2, 2, 0] and k == 3 and set(scores) == set(range(2, 8))
    assert kmeans_clusters(latents, k=2, seed=0)[1] == 2
    with pytest.raises(ValueError, match="empty for N=2"):
        kmeans_clusters(latents[:2])


@pytest.fixture
def hidden_env(monkeypatch):
    monkeypatch.setitem(envs.FAMILIES, "hidden", "tests.components.hidden_types_env")


def hidden_config(strategy: dict, **changes) -> TrainConfig:
    cfg = TrainConfig()
    cfg.env.name, cfg.env.num_envs, cfg.env.eval_num_envs, cfg.env.max_steps = "hidden/types", 10, 2, 20
    a = cfg.algorithm
    a.frames_per_batch, a.minibatch_size, a.epochs = 200, 100, 1
    a.network.actor_hidden, a.network.critic_hidden = [16, 16], [16, 16]
    cfg.total_frames, cfg.eval_every, cfg.checkpoint_every = 400, 400, 200
    cfg.logger.wandb, cfg.logger.csv, cfg.logger.progress = False, False, False
    cfg.strategy = dict(strategy)
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def test_single_phase_seps_fits_its_clusters_at_the_start_and_resume_does_not_refit(tmp_path, hidden_env, monkeypatch):
    cfg = hidden_config({"name": "seps", "k_selection": "silhouette", "fit_frames": 2000})
    trainer = Trainer(cfg, run_dir=tmp_path)
    trainer.run(max_iterations=1)
    assert trainer.strategy.clusters == TYPES
    fit = trainer.state.fits["train"]
    assert fit["clusters"] == TYPES and fit["k"] == 3 and fit["fit_frames"] == 2000
    assert load(tmp_path / "checkpoints" / "last.pt")["strategies"][0]["clusters"] == TYPES

    from marlshare.components.strategies.clustered import Clustered

    def no_refit(*args, **kwargs):
        raise AssertionError("a resumed run must not refit")

    monkeypatch.setattr(Clustered, "fit", no_refit)
    resumed = Trainer(hidden_config({"name": "seps"}, resume=str(tmp_path)))
    summary = resumed.run()
    assert summary["frames"] == 400 and summary["fits"]["train"]["clusters"] == TYPES


def test_adaps_after_ps_masks_come_from_the_fitted_centres(tmp_path, hidden_env):
    cfg = hidden_config({"name": "ps"})
    cfg.schedule = ScheduleConfig(phases=[PhaseConfig(until=200),
                                          PhaseConfig(strategy={"name": "adaps", "fit_frames": 2000, "n_clusters": 3})])
    trainer = Trainer(cfg, run_dir=tmp_path)
    summary = trainer.run()
    fit = summary["fits"]["finetune"]
    assert fit["clusters"] == TYPES
    centres = np.array(summary["strategies"][1]["centres"])
    assert centres.shape == (3, 10) and np.linalg.norm(centres[0] - centres[1]) > 0.5
    fractions = fit["keep_fractions"]
    assert set(fractions) == {"trunk.0", "trunk.2"} and all(len(f) == 3 for f in fractions.values())
    from marlshare.components.layers import MaskedLinear
    from marlshare.components.algorithms import actor_net

    masks = [m.masks for m in actor_net(trainer.actor).net.modules() if isinstance(m, MaskedLinear)]
    assert all(not torch.equal(m[0], m[1]) for m in masks)  # clusters keep different units


def test_fit_that_cannot_work_is_a_config_error_before_the_run_directory(tmp_path, hidden_env):
    cfg = hidden_config({"name": "seps", "n_clusters": 7})
    with pytest.raises(ConfigError, match=r"n_clusters=7 exceeds the 6 agents"):
        Trainer(cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
