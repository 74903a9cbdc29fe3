"""The actor and critic modules every algorithm of the registry trains, on TorchRL.

The actor is any strategy's network wrapped as a TorchRL ``ProbabilisticActor``:
continuous actions through a ``TanhNormal`` (or ``IndependentNormal``, the ``action_dist`` setting)
scaled to the action spec, discrete actions through a ``Categorical`` (``MaskedCategorical`` when
the env provides ``("agents", "action_mask")``). The critic is a per-agent MLP, shared by default
(``critic_sharing="nps"`` gives each agent its own), of the kind an algorithm declares
(:attr:`~components.algorithms.algorithm.Algorithm.critic`):

- ``central`` (MAPPO, HAPPO, A2PO): a centralised input, the env's global ``state`` when it has one,
  otherwise every agent's observation concatenated, with the agent's one-hot id appended;
- ``local`` (IPPO): the agent's own observation.

Keys: :mod:`components.algorithms.keys`.
"""

from __future__ import annotations

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.modules import IndependentNormal, MaskedCategorical, ProbabilisticActor, TanhNormal

from marlshare.components.algorithms.keys import (  # noqa: F401  (expand_done: still importable from here)
    ACTION, CRITIC_IN, DIM_MASK, HIDDEN, LOGP, MASK, OBS, VALUE, expand_done,
)
from marlshare.components.strategies import make_strategy
from marlshare.envs import GROUP, EnvInfo

ACTION_DISTS = ("tanh_normal", "normal")
CRITIC_SHARING = ("shared", "nps")
CENTRAL, LOCAL = "central", "local"  # the critic kinds an algorithm declares
CRITICS = (CENTRAL, LOCAL)


class PolicyNet(nn.Module):
    """Holds the actor's strategy network in ``self.net`` so a phase switch can replace it in place
    (the collector keeps its reference to the actor)."""

    def __init__(self, net: nn.Module, action_dim_mask: bool = False):
        super().__init__()
        self.net = net
        self.action_dim_mask = action_dim_mask

    def forward(self, obs, *extra):
        return self.masked(self.net(obs), *extra)

    def masked(self, out, dim_mask=None):
        """Padded continuous action entries (``("agents", "action_dim_mask")`` false) get a fixed
        ``loc = 0, scale = 1`` that no parameter reaches: their log-probability is the same constant
        under the old and the new policy, so they add nothing to the PPO ratio or its gradient."""
        if dim_mask is None or not isinstance(out, tuple):
            return out
        loc, scale, *rest = out
        return (torch.where(dim_mask, loc, torch.zeros_like(loc)),
                torch.where(dim_mask, scale, torch.ones_like(scale)), *rest)


class RecurrentPolicyNet(PolicyNet):
    """Holds a GRU actor. Reads ``(obs, hidden, is_init)`` and returns the actor's outputs and the
    next hidden state (``hidden`` is zeroed where an episode starts).

    Step mode (collection, evaluation): ``obs [*B, N, d]``, ``hidden [*B, N, H]``, ``is_init [*B, 1]``.
    Sequence mode (``sequence_mode = True``, PPO updates on chunks): ``obs [*B, L, N, d]``; the chunk
    is re-run from its first stored hidden state, so gradients flow through ``L`` steps (the MAPPO /
    LoRASA "chunk length").
    """

    sequence_mode = False

    def forward(self, obs, hidden, is_init, *extra):
        if not self.sequence_mode:
            hidden = hidden * (~is_init).unsqueeze(-1).to(hidden.dtype)
            return self.masked(self.net(obs, hidden), *extra)
        h, outs, hiddens = hidden[..., 0, :, :], [], []
        for t in range(obs.shape[-3]):
            h = h * (~is_init[..., t, :]).unsqueeze(-1).to(h.dtype)
            *out, h = self.net(obs[..., t, :, :], h)
            outs.append(out)
            hiddens.append(h)
        out = (*(torch.stack(parts, dim=-3) for parts in zip(*outs)), torch.stack(hiddens, dim=-3))
        return self.masked(out, *extra)


class CentralInput(nn.Module):
    """MAPPO critic input: ``state [*B, S] -> [*B, N, S]``, or all observations
    ``[*B, N, obs] -> [*B, N, N * obs]`` when the env has no global state."""

    def __init__(self, n_agents: int):
        super().__init__()
        self.n_agents = n_agents

    def forward(self, obs, state=None):
        central = obs.flatten(-2) if state is None else state
        return central.unsqueeze(-2).expand(*central.shape[:-1], self.n_agents, central.shape[-1])


class TeamCritic(nn.Module):
    """MAPPO's team value V(s): one value per sample from the centralised input, broadcast (a view)
    to the agents: ``obs [*B, N, obs] (, state [*B, S]) -> [*B, N, 1]``. Computes the MLP once per
    sample instead of once per agent (no agent id), as TorchRL's centralised shared MultiAgentMLP."""

    def __init__(self, net: nn.Module, n_agents: int):
        super().__init__()
        self.net, self.n_agents = net, n_agents

    def forward(self, obs, state=None):
        central = obs.flatten(-2) if state is None else state
        value = self.net(central.unsqueeze(-2))  # [*B, 1, 1]
        return value.expand(*value.shape[:-2], self.n_agents, value.shape[-1])


class ValueNorm(nn.Module):
    """Running mean and standard deviation of the value targets (the MAPPO / LoRASA code's
    ``use_valuenorm``, on by default there): debiased exponential moving averages of ``x`` and
    ``x^2`` with weight ``beta`` per update, variance floored at ``1e-2``. Placed at the end of the
    critic it *denormalises* the network's output, so GAE, the stored values and the logs are on the
    return scale, and the loss compares ``normalize(target)`` with ``normalize(value)`` (= the raw
    network output) as the reference does. The statistics are plain tensors, not buffers, and a deep
    copy returns the same module: a copy of the critic (TorchRL's loss makes one when it is built
    ``functional=True``; :func:`make_loss` does not) must read and update the trainer's statistics,
    not copied buffers. They are saved in the critic's ``state_dict`` as the module's extra state."""

    STATS = ("running_mean", "running_mean_sq", "debiasing_term")

    def __init__(self, beta: float = 0.99999, epsilon: float = 1e-5):
        super().__init__()
        self.beta, self.epsilon = beta, epsilon
        for name in self.STATS:
            setattr(self, name, torch.zeros(()))

    def __deepcopy__(self, memo):  # TorchRL's loss runs a copy of the critic: it must share these statistics
        return self

    def _apply(self, fn, recurse=True):  # .to(device) moves the statistics too (they are not buffers)
        for name in self.STATS:
            setattr(self, name, fn(getattr(self, name)))
        return super()._apply(fn, recurse)

    def get_extra_state(self):
        return {name: getattr(self, name).clone() for name in self.STATS}

    def set_extra_state(self, state):
        for name in self.STATS:
            getattr(self, name).copy_(state[name])

    def stats(self):
        debias = self.debiasing_term.clamp(min=self.epsilon)
        mean = self.running_mean / debias
        var = (self.running_mean_sq / debias - mean ** 2).clamp(min=1e-2)
        return mean, var.sqrt()

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.detach()
        for buffer, value in ((self.running_mean, x.mean()), (self.running_mean_sq, (x ** 2).mean()),
                              (self.debiasing_term, torch.ones(()))):
            buffer.mul_(self.beta).add_((1.0 - self.beta) * value)  # in place: functional copies share it

    def normalize(self, x):
        mean, std = self.stats()
        return (x - mean) / std

    def forward(self, value):  # the critic's last module: network output -> return scale
        mean, std = self.stats()
        return value * std + mean


def make_actor(net: nn.Module, info: EnvInfo, action_dist: str = "tanh_normal", device=None) -> ProbabilisticActor:
    """Wrap a strategy network (head "normal" for continuous, "linear" logits for discrete). A GRU
    actor (``net.recurrent``) also reads ``"rnn_hidden"`` and ``is_init`` and writes the
    next hidden state; its env needs :func:`recurrent_env_transforms`. ``device``: where the action
    bounds of the ``TanhNormal`` live (the network's device)."""
    if action_dist not in ACTION_DISTS:
        raise ValueError(f"action_dist must be one of {list(ACTION_DISTS)}, got {action_dist!r}")
    recurrent = getattr(net, "recurrent", False)
    module = RecurrentPolicyNet(net) if recurrent else PolicyNet(net)
    in_keys = [OBS, HIDDEN, "is_init"] if recurrent else [OBS]
    if info.has_action_dim_mask and not info.discrete:
        in_keys.append(DIM_MASK)
    extra_out = [("next", HIDDEN)] if recurrent else []
    if info.discrete:
        logits = TensorDictModule(module, in_keys=in_keys, out_keys=[(GROUP, "logits")] + extra_out)
        in_keys, dist = {"logits": (GROUP, "logits")}, torch.distributions.Categorical
        if info.has_action_mask:
            in_keys["mask"], dist = MASK, MaskedCategorical
        return ProbabilisticActor(logits, in_keys=in_keys, out_keys=[ACTION], distribution_class=dist,
                                  return_log_prob=True, log_prob_key=LOGP)
    params = TensorDictModule(module, in_keys=in_keys, out_keys=[(GROUP, "loc"), (GROUP, "scale")] + extra_out)
    low, high = info.action_low.to(device), info.action_high.to(device)
    if action_dist == "tanh_normal":
        dist, kwargs = TanhNormal, {"low": low, "high": high}
    else:
        dist, kwargs = IndependentNormal, {}
    return ProbabilisticActor(params, in_keys=[(GROUP, "loc"), (GROUP, "scale")], out_keys=[ACTION],
                              distribution_class=dist, distribution_kwargs=kwargs, return_log_prob=True,
                              log_prob_key=LOGP)


def recurrent_env_transforms(n_agents: int, hidden_size: int):
    """``InitTracker`` (marks episode starts) and a primer that puts a zero hidden state in the env's
    spec, so the collector carries the actor's hidden state from step to step."""
    from torchrl.data import Unbounded
    from torchrl.envs import Compose, InitTracker, TensorDictPrimer

    return Compose(InitTracker(), TensorDictPrimer({HIDDEN: Unbounded(shape=(n_agents, hidden_size))},
                                                   expand_specs=True))


def actor_net(actor: ProbabilisticActor) -> PolicyNet:
    """The ``PolicyNet`` inside an actor built by :func:`make_actor`."""
    return next(m for m in actor.modules() if isinstance(m, PolicyNet))


def build_critic(info: EnvInfo, kind: str = CENTRAL, sharing: str = "shared", hidden=(64, 64),
                 activation: str = "relu", agent_id: bool = True, value_norm: bool = False) -> TensorDictSequential:
    """The critic of ``kind`` (:data:`CRITICS`); ``value_norm=True`` appends a :class:`ValueNorm` that
    denormalises its output."""
    critic = _critic(info, kind, sharing, hidden, activation, agent_id)
    if value_norm:
        critic.append(TensorDictModule(ValueNorm(), in_keys=[VALUE], out_keys=[VALUE]))
    return critic


def value_norm_of(critic: nn.Module) -> ValueNorm | None:
    return next((m for m in critic.modules() if isinstance(m, ValueNorm)), None)


def _critic(info, kind, sharing, hidden, activation, agent_id) -> TensorDictSequential:
    if kind not in CRITICS:
        raise ValueError(f"critic kind must be one of {list(CRITICS)}, got {kind!r}")
    if sharing not in CRITIC_SHARING:
        raise ValueError(f"critic sharing must be one of {list(CRITIC_SHARING)}, got {sharing!r}")
    n = info.n_agents
    strategy = make_strategy("ps" if sharing == "shared" else "nps")
    if kind == CENTRAL:
        in_keys = [OBS] + (["state"] if info.state_dim is not None else [])
        d_in = info.state_dim if info.state_dim is not None else n * info.obs_dim
        if sharing == "shared" and not agent_id:
            net = strategy.make_network(1, d_in, 1, hidden=hidden, activation=activation, append_id=False)
            return TensorDictSequential(TensorDictModule(TeamCritic(net, n), in_keys=in_keys, out_keys=[VALUE]))
        central = TensorDictModule(CentralInput(n), in_keys=in_keys, out_keys=[CRITIC_IN])
        net = strategy.make_network(n, d_in, 1, hidden=hidden, activation=activation)
        return TensorDictSequential(central, TensorDictModule(net, in_keys=[CRITIC_IN], out_keys=[VALUE]))
    net = strategy.make_network(n, info.obs_dim, 1, hidden=hidden, activation=activation)
    return TensorDictSequential(TensorDictModule(net, in_keys=[OBS], out_keys=[VALUE]))
