"""DiCo's network (Bettini, Kortvelesy, Prorok, ICML 2024): a parameter-shared policy plus per-agent
deviations scaled to a diversity target, ``out_i = shared(o_i) + ratio * delta_i(o_i)``.

- ``shared``: any per-agent network of :mod:`components.networks` with shared layers (an MLP or a GRU
  actor, head ``linear`` for logits or ``normal`` for ``(loc, scale)``). It alone gives the scale of
  a Gaussian policy, as in the paper's code, where the shared MLP outputs the mean and the std and the
  agent MLPs only the mean deviations.
- ``deviation``: a stacked (NPS) MLP, ``[*B, N, d] -> [*B, N, A]``, all agents in one batched call.
  Its input is the agent's observation; for a GRU actor, the observation and the shared GRU's new
  hidden state ``h'_i`` (the paper has no recurrent model: the deviation then reads the agent's
  history through the shared memory instead of keeping a second hidden state).
- ``ratio`` (buffer): ``SND_des / SND_est``, set once per iteration by the strategy
  (:class:`~components.strategies.dico.DiCo`), with ``snd_est`` (buffer) the soft-updated estimate;
  both are in the ``state_dict``, so checkpoints keep them.

SND, the system neural diversity (:meth:`DiCoNetwork.deviation_snd`): the mean over agent pairs and
inputs of the Wasserstein distance between two agents' action distributions on the same input. With a
shared scale that is ``||delta_i - delta_j||`` times ``ratio`` for a Gaussian head
(:func:`components.distances.mean_pairwise`); for a discrete (logits) head it is the same L2 distance
taken between the *centred* logits (``l - mean(l)``, which determine the categorical distribution
one to one): scaling the deviation scales this distance exactly, which no distance between the
probabilities does, so DiCo's guarantee ``SND = SND_des`` holds for discrete actions too.
"""

from __future__ import annotations

import torch
from torch import nn

from marlshare.components.distances import mean_pairwise


class DiCoNetwork(nn.Module):
    """``x [*B, N, in] (, hidden [*B, N, H]) -> shared outputs with ratio * delta added to the mean``."""

    def __init__(self, shared: nn.Module, deviation: nn.Module, ratio: float = 1.0):
        super().__init__()
        self.shared, self.deviation = shared, deviation
        self.n_agents, self.in_features, self.out_features = shared.n_agents, shared.in_features, shared.out_features
        self.recurrent = bool(getattr(shared, "recurrent", False))
        self.hidden_size = shared.hidden_size if self.recurrent else None
        self.append_id = shared.append_id
        self.discrete = shared.head.kind == "linear"
        self.register_buffer("ratio", torch.tensor(float(ratio)))
        self.register_buffer("snd_est", torch.tensor(float("nan")))  # nan: not measured yet

    def initial_hidden(self, *batch: int, device=None) -> torch.Tensor:
        return self.shared.initial_hidden(*batch, device=device)

    def forward(self, x, hidden=None):
        if self.recurrent:
            *out, h = self.shared(x, hidden)
            delta = self.deviation(torch.cat([x, h], dim=-1))
        else:
            out = self.shared(x)
            out = list(out) if isinstance(out, tuple) else [out]
            delta = self.deviation(x)
        out[0] = out[0] + self.ratio * delta  # ratio = 0: exactly the shared output
        if self.recurrent:
            return (*out, h)
        return tuple(out) if len(out) > 1 else out[0]

    def deviation_input(self, x, hidden=None) -> torch.Tensor:
        """What the deviations read: ``x`` (MLP) or ``[x, h']`` (GRU: ``h'`` from the shared cell)."""
        if not self.recurrent:
            return x
        h = self.shared(x, hidden)[-1]
        return torch.cat([x, h], dim=-1)

    def all_deviations(self, rows: torch.Tensor) -> torch.Tensor:
        """Every agent's unscaled deviation on the same inputs: ``rows [S, d] -> [S, N, A]`` (logits
        centred for a discrete head)."""
        delta = self.deviation(rows[:, None, :].expand(rows.shape[0], self.n_agents, rows.shape[-1]))
        return delta - delta.mean(-1, keepdim=True) if self.discrete else delta

    def deviation_snd(self, rows: torch.Tensor) -> torch.Tensor:
        """SND of the unscaled deviations on ``rows [S, d]`` (the policy's SND is ``ratio`` times it)."""
        return mean_pairwise(self.all_deviations(rows))
