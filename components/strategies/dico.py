"""DiCo: diversity control (Bettini, Kortvelesy, Prorok, "Controlling Behavioral Diversity in
Multi-Agent Reinforcement Learning", ICML 2024; code proroklab/ControllingBehavioralDiversity,
``het_control/models/het_control_mlp_empirical.py``).

Agent i's action mean is ``shared(o_i) + (SND_des / SND_est) * delta_i(o_i)``: a parameter-shared
network without the agent id, plus one deviation MLP per agent (stacked, one batched call), with the
scale of a Gaussian policy from the shared network alone (:class:`~components.dico_network.DiCoNetwork`).
SND (system neural diversity) is the mean over agent pairs of the Wasserstein distance between their
action distributions on the same observations (closed form, :mod:`components.distances`); with the
estimate exact, the team's SND equals ``SND_des`` (the paper's theorem). ``snd_des = 0``: the shared
policy exactly (the deviations are scaled by 0); ``snd_des < 0``: no scaling (unconstrained).

The estimate: once per iteration, after the update (:meth:`DiCo.after_update`), the SND of the unscaled
deviations is measured on up to ``snd_samples`` observations of the iteration's batch (evenly spaced,
every agent's deviation on the same observations), then ``SND_est <- (1 - tau) SND_est + tau SND``;
the first measurement is taken as it is (the paper's ``bootstrap_from_desired_snd=False``), and until
then the ratio is 1 (as in the paper). Both live in buffers of the network, so checkpoints keep them.

Where this differs from the paper's code:

- the paper re-estimates at every training forward pass with ``tau = 0.01`` (45 epochs x ~15
  minibatches per iteration in its VMAS runs: about 660 soft updates, ``1 - 0.99^660 = 0.9987`` weight
  on the iteration's measurements); here the update is once per iteration on the updated policy, so
  ``tau`` is per iteration and its default 1.0 is the paper's effective value (lower it to smooth a
  noisy estimate). The estimate carries no gradient (the paper lets ``tau`` of it through);
- the deviations' measured SND of exactly 0 (zero deviations after ``ps -> dico``) gives no estimate:
  the ratio stays 1 until the deviations move, as at the paper's first iteration;
- no tanh squashing of the shared mean (``process_shared``): the actor's ``TanhNormal`` squashes the
  whole action; the paper's extra action-space loss is not added;
- discrete actions (not in the paper): the deviation is added to the logits and SND is the L2
  distance of the centred logits (:mod:`components.dico_network` says why);
- GRU actors (not in the paper): the deviations read ``[o_i, h'_i]``, the shared GRU's new state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from marlshare.components.dico_network import DiCoNetwork
from marlshare.components.strategies.base import Strategy
from marlshare.components.strategies.nps import NPS
from marlshare.envs import GROUP

OBS, HIDDEN = (GROUP, "observation"), "rnn_hidden"  # the batch keys of components.algorithms.keys


@dataclass
class DiCo(Strategy):
    name = "dico"
    shared = "the shared network (no agent id), its log-std included"
    agent_specific = "a deviation MLP per agent, scaled to the diversity target snd_des"
    predecessors = ("ps",)  # the PS network becomes the shared part, deviations start at zero

    append_id: bool = False  # the paper's shared network sees no agent id
    snd_des: float = -1.0  # the paper has no default (it depends on the action scale); < 0: unconstrained
    tau: float = 1.0  # soft-update weight per iteration (see the module docstring)
    snd_samples: int = 4096  # observations per estimate (the paper's minibatch size)

    def validate(self):
        for field_name in ("snd_des", "tau"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"dico: {field_name} must be a finite number, got {field_name}={value!r}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"dico: tau must be in (0, 1], got tau={self.tau!r}")
        if isinstance(self.snd_samples, bool) or not isinstance(self.snd_samples, int) or self.snd_samples < 2:
            raise ValueError(f"dico: snd_samples must be an integer >= 2, got snd_samples={self.snd_samples!r}")

    def make_network(self, n_agents, in_features, out_features, hidden=(64, 64), recurrent=False,
                     log_std="auto", activation="relu", gru_hidden=None, layer_norm=False, **kwargs):
        if log_std == "agent":
            raise ValueError("dico: log_std='agent' would make agents differ outside the scaled deviations; the "
                             "scale comes from the shared network as in the paper: use auto, shared or state")
        shared = super().make_network(n_agents, in_features, out_features, hidden=hidden, recurrent=recurrent,
                                      log_std=log_std, activation=activation, gru_hidden=gru_hidden,
                                      layer_norm=layer_norm, **kwargs)
        d_dev = in_features + (shared.hidden_size if recurrent else 0)
        deviation = NPS().make_network(n_agents, d_dev, out_features, hidden=hidden, activation=activation,
                                       layer_norm=layer_norm, append_id=False)
        net = DiCoNetwork(shared, deviation, ratio=self._ratio(float("nan")))
        net.strategy_name, net.build_kwargs = self.name, shared.build_kwargs
        return net

    def adopt(self, previous, net):
        if type(previous) is type(self):  # dico -> dico: the same network, this phase's target
            net.ratio.fill_(self._ratio(float(net.snd_est)))
            return net
        self.check_predecessor(previous)
        new = self.make_network(**{**net.build_kwargs, "append_id": net.append_id})
        new.shared.load_state_dict(net.state_dict())  # the PS network is the shared part, as trained
        with torch.no_grad():  # zero deviations: the outputs are the PS network's exactly
            new.deviation.head.layer.weight.zero_()
            new.deviation.head.layer.bias.zero_()
        return new

    def _ratio(self, estimate: float) -> float:
        """The deviations' scale for an estimate (nan: none yet)."""
        if self.snd_des == 0:
            return 0.0
        if self.snd_des < 0 or not estimate > 0:  # unconstrained, or nothing measured yet
            return 1.0
        return self.snd_des / estimate

    @torch.no_grad()
    def measure(self, net: DiCoNetwork, batch) -> torch.Tensor:
        """SND of the unscaled deviations on up to ``snd_samples`` observations of ``batch``
        (``[*B, N, ...]``), evenly spaced (no random draw: training samples the same either way)."""
        n = net.n_agents
        obs = batch.get(OBS).reshape(-1, n, net.in_features)
        k = min(obs.shape[0], max(1, -(-self.snd_samples // n)))
        idx = torch.linspace(0, obs.shape[0] - 1, k, device=obs.device).round().long()
        hidden = None
        if net.recurrent:
            hidden = batch.get(HIDDEN).reshape(-1, n, net.hidden_size)[idx]
            starts = batch.get("is_init").reshape(-1, 1)[idx]
            hidden = hidden * (~starts).unsqueeze(-1).to(hidden.dtype)
        rows = net.deviation_input(obs[idx], hidden)
        return net.deviation_snd(rows.reshape(-1, rows.shape[-1]))

    def after_update(self, net, batch, frames):
        net = getattr(net, "net", net)  # the actor's holder, or the network itself
        if not isinstance(net, DiCoNetwork) or net.n_agents < 2:
            return {}
        measured = float(self.measure(net, batch))
        estimate = float(net.snd_est)
        if measured > 0:
            estimate = measured if math.isnan(estimate) else (1 - self.tau) * estimate + self.tau * measured
            net.snd_est.fill_(estimate)
        net.ratio.fill_(self._ratio(estimate))
        return {"dico_snd_deviations": measured, "dico_snd_est": estimate, "dico_ratio": float(net.ratio),
                "dico_snd_target": self.snd_des}
