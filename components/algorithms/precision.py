"""Mixed precision of the update step: ``algorithm.precision=fp32|bf16|auto``.

``bf16``: the forward passes of the actor and the critic inside the PPO loss run under
``torch.autocast(dtype=torch.bfloat16)`` (matmuls and linear layers in bfloat16, on the CPU and on
CUDA), and every network's output is cast back to float32 where it leaves the network
(:func:`float32_outputs`). The parameters, their gradients, the optimiser state, GAE (its critic
forward runs outside autocast), the distributions' log-probabilities and every loss reduction stay
float32. Acting (collection, evaluation) stays float32: a policy forward is a small share of
collection (tools/bench_collection.py) and bfloat16 only pays on hardware that has bf16 matmuls.

``auto``: ``bf16`` where the hardware multiplies bfloat16 natively, a CPU with AMX-BF16 or
AVX512-BF16 (``/proc/cpuinfo`` flags ``amx_bf16`` / ``avx512_bf16``) or a CUDA device that
supports bfloat16, otherwise ``fp32``, saying so once. ``bf16`` on a CPU without them still runs
(oneDNN emulates the bfloat16 matmuls; correct, but slower than float32).
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import torch
from tensordict.nn import TensorDictModule

PRECISIONS = ("fp32", "bf16", "auto")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
_SAID: set[str] = set()  # messages already given (``auto``'s fallback is said once per process)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device) -> tuple[bool, str]:
    """``(whether device multiplies bfloat16 natively, why)``."""
    device = torch.device(device)
    if device.type == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return ok, f"CUDA device {'supports' if ok else 'does not support'} bfloat16"
    found = [flag for flag in CPU_BF16_FLAGS if flag in cpu_flags()]
    if found:
        return True, f"the CPU has {', '.join(found)}"
    return False, (f"the CPU has none of {list(CPU_BF16_FLAGS)} (torch's CPU capability: "
                   f"{torch.backends.cpu.get_cpu_capability()})")


def resolve_precision(setting: str, device) -> str:
    """``fp32`` or ``bf16`` for ``algorithm.precision=setting`` on ``device``."""
    setting = str(setting).lower()
    if setting not in PRECISIONS:
        raise ValueError(f"algorithm.precision={setting!r}; valid: {list(PRECISIONS)}")
    if setting != "auto":
        return setting
    ok, why = native_bf16(device)
    if ok:
        return "bf16"
    message = f"algorithm.precision=auto: training in fp32 because {why}"
    if message not in _SAID:
        _SAID.add(message)
        warnings.warn(message, stacklevel=2)
    return "fp32"


def forward_context(precision: str, device_type: str):
    """The context the loss's forward passes run in: bfloat16 autocast, or nothing for ``fp32``."""
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_float32(module, args, output):
    if isinstance(output, torch.Tensor):
        return output.float() if output.is_floating_point() else output
    if isinstance(output, tuple):
        return tuple(_to_float32(module, args, o) for o in output)
    return output


def float32_outputs(*networks: torch.nn.Module) -> None:
    """Cast the outputs of the modules that the ``TensorDictModule`` s in ``networks`` wrap to float32
    (a forward hook; idempotent). Under autocast a network's last linear layer returns bfloat16;
    cast here, its distribution, log-probabilities, values and losses are computed in float32. On a
    float32 output the hook returns the same tensor."""
    for network in networks:
        for m in network.modules():
            inner = getattr(m, "module", None) if isinstance(m, TensorDictModule) else None
            if isinstance(inner, torch.nn.Module) and not getattr(inner, "_float32_outputs", False):
                inner.register_forward_hook(_to_float32)
                inner._float32_outputs = True
