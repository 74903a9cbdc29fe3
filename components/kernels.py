"""How the per-agent layers of :mod:`components.layers` run fast on a CPU.

:mod:`components.layers` says what each agent's weight is; this module holds the code that only
makes computing it faster, and exists because of measurements, not maths: every function here
computes what the plain formula computes (exactly, or to float rounding where a docstring says so),
and each was kept because it won in ``tools/bench_strategies.py``, ``tools/bench_id.py`` or
``tools/bench_update.py`` (numbers in ``docs/benchmarks.md`` and ``docs/benchmarks-strategies.md``;
one thread, MKL):

- the agent-major layout ``[N, M, features]`` (``M`` rows per agent): per-agent weights go through one
  ``bmm`` (:func:`agent_matmul`, :func:`agent_bmm`), and an output left as a transposed view lets a
  chain of per-agent layers run without copying activations;
- the one-hot agent id as a bias (:func:`split_id`, :func:`agent_matmul_with_id`): the id's weight
  column is added instead of building a ``[*, N, in + N]`` input;
- the dense path (:func:`uses_dense_path`): a product-parametrised layer (LoRA, Prism) builds each
  agent's dense weight once the batch is large enough that the weight is cheap next to the matmul;
- a hand-written LoRA forward and backward (:func:`low_rank_agent_major`): every GEMM in the
  orientation a CPU runs fast, the base layer's output reused as the sum's buffer;
- :func:`cached_if_frozen`: a frozen tensor derived from parameters (SePS+LoRA's gathered cluster
  weights) computed once while its inputs keep their version.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F


def agent_bmm(xt: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Per-agent affine map on the agent-major layout: ``xt [N, M, in] -> [N, M, out]``, one ``bmm``."""
    wt = weight.transpose(1, 2)  # [N, in, out]
    return torch.bmm(xt, wt) if bias is None else torch.baddbmm(bias.unsqueeze(1), xt, wt)


def agent_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Per-agent affine map in one ``bmm``.

    x: ``[*batch, N, in]``, weight: ``[N, out, in]``, bias: ``[N, out]`` or None -> ``[*batch, N, out]``.
    The agent-major view ``[N, M, in]`` is a transpose, not a copy; the result is returned as a
    transposed view too, so a chain of these layers never copies activations.
    """
    *batch, n, _ = x.shape
    y = agent_bmm(x.reshape(-1, n, x.shape[-1]).transpose(0, 1), weight, bias)
    return y.transpose(0, 1).reshape(*batch, n, weight.shape[1])


def split_id(weight: torch.Tensor, bias: torch.Tensor | None, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-agent ``weight [N, out, d + N]`` acting on ``[x, one-hot id]`` as ``weight [N, out, d]`` (a
    view) on ``x`` plus agent i's id column ``weight[i, :, d + i]`` added to its bias: the same function."""
    id_column = torch.diagonal(weight[:, :, d:], dim1=0, dim2=2).T  # [N, out]
    return weight[:, :, :d], id_column if bias is None else bias + id_column


def agent_matmul_with_id(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``agent_matmul([x, one-hot id], weight, bias)`` without building the ``[*, N, d + N]`` input."""
    return agent_matmul(x, *split_id(weight, bias, x.shape[-1]))


def linear_with_id(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear([x, one-hot id], weight, bias)`` for one shared ``weight [out, d + N]``: the id selects
    one weight column per agent, added as agent i's bias, so the cost does not grow with N."""
    d = x.shape[-1]
    return F.linear(x, weight[:, :d], bias) + weight[:, d:].T


def dense_forward(layer, x: torch.Tensor, with_id: bool = False) -> torch.Tensor:
    """``layer`` (``forward_with_id`` when ``with_id``) through its dense per-agent weights
    (``layer.agent_weight()``) in one ``bmm``: see :func:`uses_dense_path`."""
    return (agent_matmul_with_id if with_id else agent_matmul)(x, *layer.agent_weight())


def agent_bmm_maybe_id(xt: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, with_id: bool) -> torch.Tensor:
    """:func:`agent_bmm` on ``xt`` (``with_id``: on ``[xt, one-hot id]``, the id taken as a bias)."""
    return agent_bmm(xt, *split_id(weight, bias, xt.shape[-1])) if with_id else agent_bmm(xt, weight, bias)


def linear_agent_major(xt: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, with_id: bool) -> torch.Tensor:
    """One shared ``weight [out, in]`` on the agent-major ``xt [N, M, in]`` (``with_id``: on
    ``[xt, one-hot id]``, agent i's id column added as its bias): a new ``[N, M, out]`` tensor."""
    xt = xt.contiguous()  # a network's input arrives batch-major: copy it (narrower than the output)
    if not with_id:
        return F.linear(xt, weight, bias)
    d = xt.shape[-1]
    y, id_bias = F.linear(xt, weight[:, :d], bias), weight[:, d:].T.unsqueeze(1)
    return y + id_bias if torch.is_grad_enabled() else y.add_(id_bias)


class AgentMajor:
    """What :func:`low_rank_agent_major` calls on a LoRA's frozen base layer (mixed into every
    ``AgentLinear``): the layer on the agent-major layout and its input gradient. These defaults go
    through the layer's own ``forward``; a layer overrides them where one GEMM does better."""

    def forward_agent_major(self, xt: torch.Tensor, with_id: bool = False) -> torch.Tensor:
        """The layer (``forward_with_id`` when ``with_id``) on the agent-major layout:
        ``xt [N, M, in] -> [N, M, out]``, any strides; a new tensor the caller may modify."""
        x = xt.transpose(0, 1)
        return (self.forward_with_id(x) if with_id else self(x)).transpose(0, 1)

    @torch.no_grad()
    def input_grad_agent_major(self, grad: torch.Tensor, d: int) -> torch.Tensor:
        """The gradient of ``forward_agent_major`` with respect to the first ``d`` input features
        (all of them, or all but the id), from ``grad [N, M, out]``: a new ``[N, M, d]`` tensor. Every
        layer here is linear in its input, so this is ``grad_i W_i[:, :d]``."""
        return torch.bmm(grad, self.agent_weight()[0][:, :, :d])


def agent_major(x: torch.Tensor) -> torch.Tensor:
    """``[*batch, N, d] -> [N, M, d]``, a view (contiguous when ``x`` is a layer's agent-major output)."""
    return x.reshape(-1, x.shape[-2], x.shape[-1]).transpose(0, 1)


#: Layers whose per-agent weight is a product (LoRA, Prism) switch to building each agent's dense
#: weight and running one ``bmm`` once every agent has at least this many rows per weight dimension
#: (rows >= factor * max(in, out)): the weight is then cheap next to the matmul, while the factored
#: path's thin products run far below peak speed on a CPU. Small batches (acting in a few envs) keep
#: the factored path. ``float("inf")`` on a layer keeps it factored always. Both paths compute the
#: same function; they agree to float rounding.
DENSE_ROWS_FACTOR = 2.0

#: LoRA's dense path from 1.25 x max(in, out) rows per agent (measured crossover of fwd+bwd at 256x256,
#: rank 8, one CPU thread: between 256 and 400 rows; narrow layers win at any size). Below it, and so
#: when acting in a few dozen envs, the factored path keeps a zero adapter exactly equal to the base.
LOW_RANK_DENSE_ROWS_FACTOR = 1.25


def uses_dense_path(layer, x: torch.Tensor) -> bool:
    """Whether ``layer`` (an ``AgentLinear``; its ``dense_rows_factor`` if it sets one) should build
    its dense per-agent weights for input ``x [*batch, N, in]``."""
    rows = x.numel() // max(1, x.shape[-1] * x.shape[-2])
    return rows >= getattr(layer, "dense_rows_factor", DENSE_ROWS_FACTOR) * max(layer.in_features, layer.out_features)


def cached_if_frozen(owner, name: str, inputs: Sequence[torch.Tensor | None], compute: Callable[[], object]):
    """``compute()``, kept in ``owner.__dict__[name]`` while every tensor of ``inputs`` is frozen and
    stays the same tensor at the same version (any in-place change, ``load_state_dict`` included, bumps
    a tensor's version), so a value derived from frozen parameters is not recomputed every step.
    Recomputed (with its graph) whenever one of ``inputs`` requires grad."""
    tensors = [t for t in inputs if t is not None]
    if any(t.requires_grad for t in tensors):
        return compute()
    key = tuple((t.data_ptr(), t._version) for t in tensors)
    cache = owner.__dict__.get(name)
    if cache is None or cache[0] != key:
        with torch.no_grad():
            cache = (key, compute())
        owner.__dict__[name] = cache
    return cache[1]


def low_rank_agent_major(x: torch.Tensor, base, lora_a: torch.Tensor, lora_b: torch.Tensor, scaling: float,
                         bias_delta: torch.Tensor | None, with_id: bool) -> torch.Tensor:
    """``base(x) + scaling * B A x (+ bias_delta)`` per agent, for ``x [*batch, N, in]`` (``with_id``:
    ``base.forward_with_id(x)`` plus the adapter on ``[x, one-hot id]``), run agent-major by
    :class:`_LowRankAdd`; returns a ``[*batch, N, out]`` view of agent-major memory, so the next adapted
    layer reads its input without a copy. A frozen base runs inside :class:`_LowRankAdd`; a base
    someone unfroze keeps its own graph."""
    *batch, n, _ = x.shape
    xt = agent_major(x)
    if _trains(base):
        y = base.forward_agent_major(xt, with_id) + _LowRankAdd.apply(xt, lora_a, lora_b, scaling, None, with_id)
    else:
        y = _LowRankAdd.apply(xt, lora_a, lora_b, scaling, base, with_id)
    if bias_delta is not None:
        y = y + bias_delta.unsqueeze(1)
    return y.transpose(0, 1).reshape(*batch, n, lora_b.shape[1])


def _trains(module) -> bool:
    params = module._parameters.values() if not module._modules else module.parameters()
    return any(p is not None and p.requires_grad for p in params)


class _LowRankAdd(torch.autograd.Function):
    """``base(x) + scaling * (x A_x^T + a_id) B^T`` per agent, on the agent-major layout, with every
    product in the orientation a CPU GEMM runs fast.

    ``base``: the frozen base layer, run here (``forward_agent_major``, no graph of its own); the
    adapter is added into its fresh output in place, and the backward pass adds the base's input
    gradient (``input_grad_agent_major``) to the adapter's. ``base=None``: the adapter's term alone
    (for a base that trains, which keeps its own graph). ``x [N, M, d]``; ``A [N, r, d]`` or, for an
    input layer that takes the one-hot id as a bias, ``A [N, r, d + N]`` (agent i's id column
    ``A[i, :, d + i]`` is added in rank space: the same function as appending the id); ``B [N, out, r]``.

    Why a hand-written backward: with rank r = 8 every product has one thin side, and a GEMM whose
    output has only r (or ``out = 8``) columns runs 3-4x slower than one whose output has r rows
    (MKL, one thread, on this project's CPU). Autograd's backward of two ``bmm`` always produces one
    gradient of the thin shape (``[M, r]`` or ``[out, r]``); here each one is computed transposed
    (``[r, M]``, ``[r, out]``).
    """

    @staticmethod
    def forward(ctx, x, lora_a, lora_b, scaling, base, with_id):
        d = x.shape[-1]
        a_x = lora_a if lora_a.shape[-1] == d else lora_a[:, :, :d]
        ht = torch.bmm(a_x, x.mT)  # [N, r, M]
        if lora_a.shape[-1] > d:  # the id columns: agent i's column d + i, as a bias in rank space
            ht += torch.diagonal(lora_a[:, :, d:], dim1=0, dim2=2).T.unsqueeze(-1)
        if base is None:
            y = torch.bmm(ht.mT, lora_b.mT)
            if scaling != 1.0:
                y *= scaling
        else:
            y = base.forward_agent_major(x, with_id)  # a new tensor, [N, M, out]
            y = y.baddbmm_(ht.mT, lora_b.mT, alpha=scaling) if y.is_contiguous() else \
                torch.baddbmm(y, ht.mT, lora_b.mT, alpha=scaling)
        ctx.save_for_backward(x, lora_a, lora_b, ht)
        ctx.scaling, ctx.base = scaling, base
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, lora_a, lora_b, ht = ctx.saved_tensors
        scaling, d = ctx.scaling, x.shape[-1]
        if 0 in grad.stride():  # an expanded gradient (of a sum): a BLAS call needs real strides
            grad = grad.contiguous()
        need_x, need_a, need_b, _, _, _ = ctx.needs_input_grad
        grad_x = grad_a = grad_b = None
        ght = torch.bmm(lora_b.mT, grad.mT)  # d(loss)/d(h^T) / scaling: [N, r, M]
        if scaling != 1.0:
            ght *= scaling
        if need_b:
            grad_b = torch.bmm(ht, grad).mT  # [N, r, out] -> [N, out, r]
            if scaling != 1.0:
                grad_b = grad_b * scaling
        if need_a:
            grad_a = torch.bmm(ght, x)  # [N, r, d]
            if lora_a.shape[-1] > d:
                grad_a = torch.cat([grad_a, torch.diag_embed(ght.sum(-1).T, dim1=0, dim2=2)], dim=-1)
        if need_x:
            a_x = lora_a if lora_a.shape[-1] == d else lora_a[:, :, :d]
            if ctx.base is None:  # the base's input gradient comes through its own graph
                grad_x = torch.bmm(ght.mT, a_x)
            else:
                grad_x = ctx.base.input_grad_agent_major(grad, d)  # a fresh [N, M, d] tensor
                grad_x.baddbmm_(ght.mT, a_x)
        return grad_x, grad_a, grad_b, None, None, None
