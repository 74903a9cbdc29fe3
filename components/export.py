"""The deterministic team policy as a plain torch module, and its export to a self-contained file.

:func:`deterministic_module` turns a :class:`~marlshare.components.policy_io.TeamPolicy` into a module
of tensors only (no TensorDict, no TorchRL distribution), with the actions TorchRL's deterministic mode
takes:

- continuous, ``tanh_normal``: ``(high + low) / 2 + (high - low) / 2 * clamp(tanh(loc), -1 + r, 1 - r)``
  (``TanhNormal``'s deterministic sample; ``r`` the dtype's resolution, TorchRL's safe tanh);
- continuous, ``normal``: ``loc``; discrete: ``argmax`` of the logits, unavailable actions masked out.

Signatures (``B`` is dynamic; one step of one team is ``B = 1``: ``obs[None]``):

=========================  =================================================================
feed-forward actor          ``(obs [B, N, obs_dim]) -> action``
GRU actor                   ``(obs [B, N, obs_dim], hidden [B, N, H]) -> (action, next hidden)``;
                            start an episode with zeros
discrete with action masks  one more input last: ``action_mask [B, N, n_actions]`` (bool)
=========================  =================================================================

``action``: ``[B, N, act_dim]`` float (continuous) or ``[B, N]`` int64 (discrete).

Formats (:data:`FORMATS`), each loadable without marlshare:
``exported-program`` (``torch.export.save``; load with ``torch.export.load(path).module()``),
``onnx`` (``torch.onnx.export``, dynamo exporter; run with ``onnxruntime``), ``torchscript``
(``torch.jit.trace``; load with ``torch.jit.load``).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import nn

from marlshare.components.layers import AgentLinear

FORMATS = {"exported-program": ".pt2", "onnx": ".onnx", "torchscript": ".ts.pt"}


class _Team(nn.Module):
    """The action rule shared by the exported signatures; ``net`` is the strategy network."""

    def __init__(self, policy):
        super().__init__()
        info = policy.info
        self.net = copy.deepcopy(policy.net)
        for layer in self.net.modules():  # one code path for every batch size (a traced graph has no
            # branches): the dense one, plain tensor ops (the factored one is a custom autograd Function)
            if hasattr(layer, "dense_rows_factor") or isinstance(layer, AgentLinear):
                layer.dense_rows_factor = 0.0
        self.kind = "discrete" if info.discrete else policy.action_dist
        if self.kind == "tanh_normal":
            low, high = info.action_low.float(), info.action_high.float()
            self.register_buffer("center", (high + low) / 2)
            self.register_buffer("half_range", (high - low) / 2)

    def act(self, out: torch.Tensor) -> torch.Tensor:
        if self.kind == "discrete":
            return out.argmax(-1)
        if self.kind == "normal":
            return out
        lim = 1.0 - torch.finfo(out.dtype).resolution
        return self.center + self.half_range * out.tanh().clamp(-lim, lim)

    def masked_act(self, logits: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
        return logits.masked_fill(~action_mask, float("-inf")).argmax(-1)


class FeedForwardTeam(_Team):
    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.net(obs)
        return self.act(out if self.kind == "discrete" else out[0])


class MaskedFeedForwardTeam(_Team):
    def forward(self, obs: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
        return self.masked_act(self.net(obs), action_mask)


class RecurrentTeam(_Team):
    def forward(self, obs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(obs, hidden)
        return self.act(out[0]), out[-1]


class MaskedRecurrentTeam(_Team):
    def forward(self, obs: torch.Tensor, hidden: torch.Tensor, action_mask: torch.Tensor):
        logits, next_hidden = self.net(obs, hidden)
        return self.masked_act(logits, action_mask), next_hidden


def deterministic_module(policy) -> _Team:
    """The team policy's deterministic actions as a plain module (signatures in the module docstring)."""
    masked = policy.info.discrete and policy.info.has_action_mask
    cls = {(False, False): FeedForwardTeam, (False, True): MaskedFeedForwardTeam,
           (True, False): RecurrentTeam, (True, True): MaskedRecurrentTeam}[(policy.recurrent, masked)]
    return cls(policy).eval()


def example_inputs(policy, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Random inputs of the exported signature: observations, the GRU state, the action mask."""
    info = policy.info
    inputs = [torch.randn(batch, info.n_agents, info.obs_dim)]
    if policy.recurrent:
        inputs.append(torch.randn(batch, info.n_agents, policy.hidden_size))
    if info.discrete and info.has_action_mask:
        mask = torch.rand(batch, info.n_agents, info.action_dim) < 0.7
        mask[..., 0] = True  # at least one available action
        inputs.append(mask)
    return tuple(inputs)


def export_policy(policy, path, fmt: str = "exported-program") -> Path:
    """Write ``policy`` (a TeamPolicy on the CPU) to ``path`` in format ``fmt`` (:data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = deterministic_module(policy).cpu()
    inputs = example_inputs(policy)
    batch = torch.export.Dim("batch", min=1)
    dynamic = tuple({0: batch} for _ in inputs)
    with torch.no_grad():
        if fmt == "exported-program":
            torch.export.save(torch.export.export(module, inputs, dynamic_shapes=dynamic), str(path))
        elif fmt == "onnx":
            names = ["observation", "hidden", "action_mask"]
            in_names = [n for n, keep in zip(names, (True, policy.recurrent, len(inputs) > 1 + policy.recurrent)) if keep]
            out_names = ["action"] + (["next_hidden"] if policy.recurrent else [])
            torch.onnx.export(module, inputs, str(path), input_names=in_names, output_names=out_names,
                              dynamic_shapes=dynamic, dynamo=True, external_data=False, verbose=False)
        else:
            with warnings.catch_warnings():  # shape checks read as constants: true for every batch size here
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                torch.jit.save(torch.jit.trace(module, inputs, check_trace=False), str(path))
    return path


def load_exported(path, fmt: str | None = None):
    """A callable ``f(*inputs) -> outputs`` (numpy in, numpy out for ONNX) of an exported file, using
    only torch or onnxruntime, as a user without marlshare would."""
    path = Path(path)
    fmt = fmt or next((f for f, ext in FORMATS.items() if path.name.endswith(ext)), None)
    if fmt == "exported-program":
        return torch.export.load(str(path)).module()
    if fmt == "torchscript":
        return torch.jit.load(str(path))
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return lambda *inputs: session.run(None, dict(zip(names, (x.numpy() if hasattr(x, "numpy") else x for x in inputs))))
    raise ValueError(f"cannot tell the format of {path}; pass fmt, one of {list(FORMATS)}")
