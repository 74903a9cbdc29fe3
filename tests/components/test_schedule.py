"""The automatic switch rule on synthetic learning curves."""

import numpy as np
import pytest

from marlshare.components.schedule import AutoSwitch

FRAMES = np.arange(1, 61) * 10_000


def first_switch(curve, **kw):
    rule = AutoSwitch(**kw)
    for f, r in zip(FRAMES, curve):
        if rule.update(int(f), float(r)):
            return int(f), rule.reason
    return None, ""


def sigmoid(noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return 100 / (1 + np.exp(-(FRAMES - 250_000) / 50_000)) + noise * rng.standard_normal(len(FRAMES))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("noise", [0.0, 3.0])
def test_s_curve_switches_after_the_steepest_part_and_before_the_plateau(noise, seed):
    frame, reason = first_switch(sigmoid(noise, seed))
    assert frame is not None, "the rule never fired on a learning curve"
    progress = 1 / (1 + np.exp(-(frame - 250_000) / 50_000))
    assert 0.5 <= progress <= 0.97, (frame, progress)  # competent, and not yet plateaued
    assert "competent" in reason


def test_flat_noisy_curve_never_switches():
    rng = np.random.default_rng(0)
    frame, _ = first_switch(5 + rng.standard_normal(len(FRAMES)))
    assert frame is None


def test_steady_linear_improvement_waits_for_the_fallback():
    frame, reason = first_switch(FRAMES / 10_000.0, max_frames=400_000)
    assert frame == 400_000 and "fallback" in reason


def test_min_frames_is_respected():
    frame, _ = first_switch(sigmoid(), min_frames=450_000)
    assert frame >= 450_000


def test_state_round_trips():
    rule = AutoSwitch()
    for f, r in zip(FRAMES[:10], sigmoid()[:10]):
        rule.update(int(f), float(r))
    rule._streak = 1  # part-way through the rule's patience
    other = AutoSwitch()
    other.load_state_dict(rule.state_dict())
    assert other.history == rule.history and other._streak == 1


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="window"):
        AutoSwitch(window=1)
    with pytest.raises(ValueError, match="decel"):
        AutoSwitch(decel=1.5)
