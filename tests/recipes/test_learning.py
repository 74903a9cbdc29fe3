"""Learning evidence (slow): MAPPO-PS improves on VMAS navigation and the LoRA phase holds it."""

import pytest

from marlshare.components.trainer import Trainer
from marlshare.recipes.train import compose


@pytest.mark.slow
def test_mappo_ps_then_lora_learns_navigation(tmp_path):
    cfg = compose(["total_frames=90000", "schedule.switch_at=60000", "eval_every=30000", "logger=csv",
                   "logger.progress=false"])
    summary = Trainer(cfg, run_dir=tmp_path).run()
    assert summary["eval_return_at_switch"] > summary["initial_eval_return"] + 1.0
    # fine-tuning starts from the same policy: no collapse after the switch
    assert summary["final_eval_return"] > summary["eval_return_at_switch"] - 0.5
