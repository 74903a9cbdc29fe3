"""Parameters, training-step time and inference time of every strategy against the number of agents
(LoRASA Fig. 3), for the actor architecture of a run (or any network shape).

For each strategy of the registry and each N: the strategy's network is built with that N (strategies
that declare ``needs_clusters``: ``K = max(1, N // 4)`` clusters, agents round-robin, :func:`clusters_for`,
the rule of the strategy benchmarks too), parameters are counted with
:func:`marlshare.components.networks.count_parameters` (``total``, and
``trainable`` = what the strategy trains in its phase: adapters and log-std deltas for the LoRA
strategies, mask logits plus the shared factors for Prism), and two things are timed on a batch
``x [B, N, obs]`` of ``B`` states per agent:

- **train step**: forward, ``sum`` of the outputs, backward, one Adam step over the strategy's
  trainable parameters;
- **inference**: forward under ``torch.no_grad``, with LoRA adapters merged first
  (:func:`components.transforms.merge_adapters`, LoRASA Algorithm 3) for every strategy built on the
  :class:`~components.strategies.lora.LoRA` mixin (:func:`merges_adapters`).

Each time is the minimum over ``repeats`` of the mean per-call time of a block of calls lasting at
least ``min_time`` seconds, after three warm-up calls, in this process's torch threads (wall clock;
the minimum is the least disturbed block on a shared machine, and still an upper bound).
"""

from __future__ import annotations

import time

import torch

from marlshare.components.strategies import STRATEGIES, make_strategy
from marlshare.components.strategies.lora import LoRA
from marlshare.components.networks import count_parameters
from marlshare.components.transforms import merge_adapters

AGENTS = (2, 4, 8, 16, 32, 64, 128)


def clusters_for(n_agents: int) -> list[int]:
    """``K = max(1, N // 4)`` clusters, agents assigned round-robin (labels 0..K-1, all used)."""
    k = max(1, n_agents // 4)
    return [i % k for i in range(n_agents)]


def merges_adapters(name: str) -> bool:
    """Whether strategy ``name`` has LoRA adapters to merge for inference. Read off its registered
    class (the :class:`LoRA` mixin), not a list of names, so a new LoRA strategy is timed merged too."""
    return issubclass(STRATEGIES[name], LoRA)


def adapter_strategies() -> list[str]:
    """The registered strategies with LoRA adapters, in registry order."""
    return [name for name in STRATEGIES if merges_adapters(name)]


def build(name: str, n_agents: int, shape: dict, seed: int = 0):
    hp = {"clusters": clusters_for(n_agents)} if STRATEGIES[name].needs_clusters else {}
    strategy = make_strategy(name, **hp)
    torch.manual_seed(seed)
    return strategy, strategy.make_network(n_agents=n_agents, **shape)


def _per_call(fn, repeats: int, min_time: float) -> float:
    for _ in range(3):  # warm-up (allocator, thread pool)
        fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    k = max(1, int(min_time / once))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(k):
            fn()
        times.append((time.perf_counter() - start) / k)
    return min(times)


def _outputs_sum(out):
    if isinstance(out, tuple):
        return sum(o.sum() for o in out)
    return out.sum()


def measure(shape: dict, agents=AGENTS, strategies=None, batch: int = 256, repeats: int = 5,
            min_time: float = 0.05, timing: bool = True) -> list[dict]:
    """One row per (strategy, N): parameters (total, shared, per agent, trainable) and times in ms.

    ``shape``: ``in_features, out_features, hidden, recurrent, head`` (and ``gru_hidden``) of the actor.
    """
    rows = []
    for name in strategies or list(STRATEGIES):
        for n in agents:
            strategy, net = build(name, n, shape)
            counts = count_parameters(net)
            trainable = sum(p.numel() for p in strategy.trainable(net))
            row = dict(strategy=name, n_agents=n, total=counts["total"], shared=counts["shared"],
                       clustered=counts["clustered"], per_agent=counts["per_agent"], trainable=trainable)
            if timing:
                x = torch.randn(batch, n, shape["in_features"])
                params = strategy.trainable(net)
                opt = torch.optim.Adam(params, lr=1e-4)

                def train_step():
                    opt.zero_grad(set_to_none=True)
                    _outputs_sum(net(x)).backward()
                    opt.step()

                inference = merge_adapters(net) if merges_adapters(name) else net

                def infer():
                    with torch.no_grad():
                        inference(x)

                row["train_ms"] = 1e3 * _per_call(train_step, repeats, min_time)
                row["inference_ms"] = 1e3 * _per_call(infer, repeats, min_time)
            rows.append(row)
    return rows


def run_shape(run) -> dict:
    """The actor shape of a loaded run (``components.runs.Run``)."""
    a, info = run.cfg.algorithm.network, run.info
    shape = dict(in_features=info.obs_dim, out_features=info.action_dim, hidden=tuple(a.actor_hidden),
                 head="linear" if info.discrete else "normal")
    if a.recurrent:
        shape.update(recurrent=True, gru_hidden=a.gru_hidden)
    return shape
