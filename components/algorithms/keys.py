"""The batch keys every algorithm module reads and writes, and the one batch fix-up GAE needs.

Keys follow ``envs``: everything per agent lives under ``"agents"``; the log-probability is
``("agents", "action_log_prob")``, values ``("agents", "state_value")``.
"""

from __future__ import annotations

from marlshare.envs import GROUP

OBS, ACTION, LOGP = (GROUP, "observation"), (GROUP, "action"), (GROUP, "action_log_prob")
VALUE, MASK, CRITIC_IN = (GROUP, "state_value"), (GROUP, "action_mask"), (GROUP, "critic_input")
DIM_MASK = (GROUP, "action_dim_mask")
HIDDEN = "rnn_hidden"  # the GRU actor's hidden state [*B, N, H] (at the root: the policy writes it under
# "next" before the env step, where no agent sub-tensordict exists yet), carried by the collector


def expand_done(batch) -> None:
    """Copy the root ``done``/``terminated`` to the agent shape ``[*B, N, 1]`` GAE needs (in place)."""
    shape = batch.get(("next", GROUP, "reward")).shape
    for key in ("done", "terminated"):
        if ("next", GROUP, key) not in batch.keys(True):
            batch.set(("next", GROUP, key), batch.get(("next", key)).unsqueeze(-2).expand(shape))
