"""The algorithm config's layout: shared PPO settings, ``algorithm.network.*``, each algorithm's own
settings built from the registry, validation under the new key names, and older flat configs (a run
directory's config.yaml from before the split) read at the new places."""

import dataclasses

import pytest
import torch
from omegaconf import OmegaConf

from marlshare.components.algorithms import ALGORITHMS
from marlshare.components.algorithms.a2po import A2POSettings, A2POUpdate
from marlshare.components.algorithms.mappo import MAPPO
from marlshare.components.config import (MOVED, AlgorithmConfig, ConfigError, NetworkConfig, PPOConfig, TrainConfig,
                                         algorithm_config_class, as_train_config, config_to_dict)
from marlshare.components.config_checks import validate_config
from tests.components.test_trainer import ITER, params, tiny

#: every moved setting's default before the split: the move keeps them
OLD_DEFAULTS = {
    "algorithm.action_dist": "tanh_normal", "algorithm.actor_hidden": [64, 64], "algorithm.critic_hidden": [64, 64],
    "algorithm.critic_sharing": "shared", "algorithm.critic_agent_id": True, "algorithm.activation": "relu",
    "algorithm.recurrent": False, "algorithm.gru_hidden": None, "algorithm.log_std": "auto",
    "algorithm.log_std_init": 0.0, "algorithm.layer_norm": False, "algorithm.head_gain": None,
    "algorithm.std_mapping": "exp", "algorithm.others_clip": 0.1, "algorithm.a2po_loop": "agent",
    "algorithm.a2po_clip_tuner": None, "algorithm.a2po_advantage": "gae", "algorithm.a2po_two_stage": False,
}
#: a value other than the default for each moved setting
OTHER = {
    "algorithm.action_dist": "normal", "algorithm.actor_hidden": [12, 12], "algorithm.critic_hidden": [10],
    "algorithm.critic_sharing": "nps", "algorithm.critic_agent_id": False, "algorithm.activation": "tanh",
    "algorithm.recurrent": True, "algorithm.gru_hidden": 8, "algorithm.log_std": "agent",
    "algorithm.log_std_init": 1.0, "algorithm.layer_norm": True, "algorithm.head_gain": 0.01,
    "algorithm.std_mapping": "sigmoid", "algorithm.others_clip": 0.3, "algorithm.a2po_loop": "ppo",
    "algorithm.a2po_clip_tuner": 0.5, "algorithm.a2po_advantage": "gae_trace", "algorithm.a2po_two_stage": True,
}


def get(cfg, key):
    for part in key.split("."):
        cfg = cfg[part] if isinstance(cfg, dict) else getattr(cfg, part)
    return cfg


def nest(flat: dict) -> dict:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``."""
    out = {}
    for key, value in flat.items():
        *path, last = key.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def test_the_algorithm_config_is_ppo_settings_the_network_and_each_algorithms_own():
    fields = {f.name: f.type for f in dataclasses.fields(AlgorithmConfig)}
    assert issubclass(AlgorithmConfig, PPOConfig) and AlgorithmConfig.__module__ == "marlshare.components.config"
    assert isinstance(AlgorithmConfig().network, NetworkConfig) and fields["a2po"] is A2POSettings
    assert [name for name, cls in ALGORITHMS.items() if cls.settings is not None] == ["a2po"]
    assert set(fields) - {f.name for f in dataclasses.fields(PPOConfig)} == {"a2po"}
    assert set(MOVED) == set(OLD_DEFAULTS)
    defaults = TrainConfig()
    for old, new in MOVED.items():
        assert get(defaults, new) == OLD_DEFAULTS[old], new
        assert not hasattr(defaults.algorithm, old.split(".")[1]), old  # moved, not copied
    # the speed settings and the recurrent update's chunk stay with the algorithm
    assert {"compile", "clip_grad_per_network", "chunk_length"} <= {f.name for f in dataclasses.fields(PPOConfig)}


def test_an_algorithm_with_settings_gets_a_config_field_through_the_registry_alone():
    @dataclasses.dataclass
    class WidthSettings:
        width: int = 3

    class WithSettings(MAPPO):
        name = "with_settings"
        settings = WidthSettings

    cls = algorithm_config_class({**ALGORITHMS, WithSettings.name: WithSettings})
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls),
                                              {"with_settings": {"width": 5}, "a2po": {"loop": "ppo"}}))
    assert cfg.with_settings == WidthSettings(5) and cfg.a2po.loop == "ppo" and cfg.network == NetworkConfig()
    assert WithSettings.update_options(cfg) == {"width": 5} and MAPPO.update_options(cfg) == {}


def test_a2po_passes_its_settings_to_its_update():
    a = AlgorithmConfig(name="a2po", a2po=A2POSettings(others_clip=0.3, loop="ppo", clip_tuner=0.5,
                                                       advantage="gae_trace", two_stage=True))
    update = ALGORITHMS["a2po"].make_update(a, 1, on_nonfinite=None, on_finite=None)
    assert isinstance(update, A2POUpdate)
    assert (update.others_clip, update.loop, update.clip_tuner, update.advantage, update.two_stage) == (
        0.3, "ppo", 0.5, "gae_trace", True)


@pytest.mark.parametrize("key,value,match", [
    ("algorithm.network.action_dist", "beta", r"algorithm.network.action_dist='beta' is not valid"),
    ("algorithm.network.critic_sharing", "mixed", r"algorithm.network.critic_sharing='mixed' is not valid"),
    ("algorithm.network.actor_hidden", [16, 0], r"algorithm.network.actor_hidden entry=0 must be an integer >= 1"),
    ("algorithm.network.critic_hidden", [1.5], r"algorithm.network.critic_hidden entry=1.5 must be an integer"),
    ("algorithm.network.head_gain", -1.0, r"algorithm.network.head_gain=-1.0 must be > 0"),
    ("algorithm.network.std_mapping", "relu", r"algorithm.network.std_mapping='relu' is not valid"),
    ("algorithm.a2po.loop", "turns", r"algorithm.a2po.loop='turns' is not valid; choose one of \['agent', 'ppo'\]"),
    ("algorithm.a2po.advantage", "vtrace", r"algorithm.a2po.advantage='vtrace' is not valid"),
    ("algorithm.a2po.clip_tuner", 1.5, r"algorithm.a2po.clip_tuner=1.5 must be in \[0, 1\] or null"),
    ("algorithm.a2po.others_clip", 1.0, r"algorithm.a2po.others_clip=1.0 must be in \[0, 1\)"),
])
def test_validation_names_the_settings_at_their_new_place(key, value, match):
    with pytest.raises(ConfigError, match=match):
        validate_config(tiny(**{key: value}))


def test_a_recurrent_network_checks_the_algorithms_chunk_length():
    with pytest.raises(ConfigError, match="algorithm.chunk_length=7 must divide"):
        validate_config(tiny(**{"algorithm.network.recurrent": True, "algorithm.chunk_length": 7}))
    validate_config(tiny(**{"algorithm.network.recurrent": False, "algorithm.chunk_length": 7}))


def test_a_flat_config_written_before_the_split_is_read_at_the_new_places():
    flat = nest(OTHER)
    flat["algorithm"]["epochs"] = 3
    expected = TrainConfig()
    expected.algorithm.epochs = 3
    for old, new in MOVED.items():
        *path, last = new.split(".")
        setattr(get(expected, ".".join(path)), last, OTHER[old])
    for source in (flat, OmegaConf.create(flat)):
        assert as_train_config(source) == expected
    assert flat["algorithm"]["a2po_loop"] == "ppo"  # the caller's dict is left as it was
    # where both are given, the new place wins
    both = as_train_config({"algorithm": {"actor_hidden": [1], "network": {"actor_hidden": [2]}}})
    assert both.algorithm.network.actor_hidden == [2]


def test_an_older_run_directory_loads_and_resumes_bit_identically(tmp_path):
    """A run whose config.yaml has the flat keys of before the split (written here by moving the keys
    back) loads for analysis and resumes to what an uninterrupted run gives."""
    from marlshare.components.runs import load_run
    from marlshare.components.trainer import Trainer

    changes = {"algorithm.network.actor_hidden": [12, 12], "algorithm.network.layer_norm": True,
               "algorithm.network.recurrent": True, "algorithm.chunk_length": 5, "algorithm.name": "a2po",
               "algorithm.a2po.advantage": "gae_trace", "algorithm.a2po.others_clip": 0.2,
               "strategy": {"name": "nps"}, "total_frames": 3 * ITER}
    full = Trainer(tiny(**changes), run_dir=tmp_path / "full")
    full.run()
    old = Trainer(tiny(**{**changes, "total_frames": 2 * ITER}), run_dir=tmp_path / "old")
    old.run()
    saved = OmegaConf.to_container(OmegaConf.load(tmp_path / "old" / "config.yaml"))
    for old_key, new_key in MOVED.items():  # back to the layout of before the split
        *path, last = new_key.split(".")
        saved["algorithm"][old_key.split(".")[1]] = get(saved, ".".join(path)).pop(last)
    del saved["algorithm"]["network"], saved["algorithm"]["a2po"]
    OmegaConf.save(OmegaConf.create(saved), tmp_path / "old" / "config.yaml")
    written = OmegaConf.load(tmp_path / "old" / "config.yaml").algorithm
    assert written.actor_hidden == [12, 12] and written.a2po_advantage == "gae_trace" and "network" not in written

    run = load_run(tmp_path / "old")
    assert run.cfg.algorithm.network.actor_hidden == [12, 12] and run.cfg.algorithm.a2po.others_clip == 0.2
    assert run.net.hidden_size == 12
    resumed = Trainer({"resume": str(tmp_path / "old")}, resume_changes={"total_frames": 3 * ITER})
    assert config_to_dict(resumed.cfg)["algorithm"] == config_to_dict(full.cfg)["algorithm"]
    resumed.run()
    a, b = params(full), params(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
