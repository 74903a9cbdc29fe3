"""One PPO update on a collected batch: GAE, then ``epochs`` passes over minibatches drawn without
replacement, the strategy's auxiliary loss added to the actor loss, non-finite losses or gradients
skipped, gradient norms clipped.

Recurrent actors learn from chunks of ``chunk`` consecutive steps (``[E, T] -> [E T / L, L]``) re-run
from their stored hidden states.

Speed (docs/benchmarks.md, "compiled update step"):

- the loss (actor and critic forward, PPO objective, value loss, auxiliary loss) can run through
  ``torch.compile`` (:func:`compile_mode`): AOTAutograd compiles its forward and backward graphs,
  inductor fuses the elementwise work on CPU, CUDA graphs (``mode="reduce-overhead"``) remove the
  launch overhead on a GPU. It is compiled once per loss object, i.e. once per phase (a phase builds
  its own loss: the parameters that train change); the first call's time is in ``compile_s``;
- minibatches are rows of the flat batch indexed directly (:class:`Minibatches`), not copies through a
  replay buffer;
- nothing in the minibatch loop waits for a value: the statistics stay tensors until the end of the
  update, and a non-finite loss or gradient is skipped by the fused Adam itself (``found_inf``), its
  flags reported once the update is done (:meth:`PPOUpdate.step_in_flight`). The sequential updates
  decide per step (:meth:`PPOUpdate.apply`): their per-agent Adam rows are restored around the step.
"""

from __future__ import annotations

import math
import time

import torch

from marlshare.components.algorithms.keys import expand_done
from marlshare.components.algorithms.precision import float32_outputs, forward_context
from marlshare.components.grad_watch import GradNormWatch

STATS = ("loss_objective", "loss_critic", "loss_entropy", "loss_aux", "entropy", "kl_approx", "clip_fraction",
         "grad_norm")
COMPILE_CHOICES = ("auto", "true", "false")
# ``compile=auto`` compiles a phase that takes at least this many gradient steps: on a GPU, where CUDA
# graphs remove the launch overhead of many small kernels, from 3000 steps (the compile takes tens of
# seconds); on a CPU from 10000 steps and for feed-forward actors only. There a compiled step of the
# default recipe's networks saves about 2.4 ms (2x, tools/bench_update) against a first compile of
# 5-14 s, so it pays from about 5000 steps; a GRU actor's compiled step was slower than the eager one
# (0.83-0.92x at the LoRASA MaMuJoCo preset; its first compile took 54 s) and stays eager on a CPU.
AUTO_COMPILE_MIN_STEPS = {"cuda": 3000, "cpu": 10000}


def _partitioner_settings():
    """The AOTAutograd partitioner settings every compile and call of the objective runs under.

    ``recompute_views``: a layer's ReLU output reaches the next matmul through a reshape, so the
    partitioner sees only that view as saved for the backward pass and saves ReLU's boolean mask
    besides it. Inductor's CPU kernels write a boolean mask through a slow scalar path of
    ``at::vec::VecMask::store`` (torch 2.13: about 0.8 ms for a ``[400, 3, 64]`` mask against 0.03 ms
    for the eager comparison), which made the compiled step slower than the eager one at 64-wide
    ReLU networks (docs/benchmarks.md, section 6). Recomputing views saves the ReLU output itself
    and recomputes the mask inside the backward kernel: no mask is stored.
    """
    import torch._functorch.config as functorch_config

    return functorch_config.patch(recompute_views=True)


class Minibatches:
    """Row indices of minibatches of ``size`` drawn without replacement from ``n`` rows, one fresh
    ``torch.randperm(n)`` whenever the previous one is used up (a short minibatch takes what is left).

    These are exactly the draws of TorchRL's ``SamplerWithoutReplacement(drop_last=False)`` (same
    permutations from the global generator, drawn at the same moments, including the one it draws
    when an epoch ends), so switching to direct indexing changed no trajectory; indexing the flat
    batch itself is what saves the replay buffer's storage round trip per minibatch.
    """

    def __init__(self, size: int):
        self.size, self.n, self.queue = size, 0, None

    def reset(self, n: int) -> None:
        self.n, self.queue = n, None

    def next(self) -> torch.Tensor:
        if self.queue is None:
            self.queue = torch.randperm(self.n)
        index, self.queue = self.queue[:self.size], self.queue[self.size:]
        if not len(self.queue):
            self.queue = torch.randperm(self.n)
        return index


def compile_mode(setting, device, steps_in_phase: int, recurrent: bool = False) -> str | None:
    """The ``torch.compile`` mode for a phase, or None for eager. ``setting``: ``auto`` (compile when
    the phase takes at least :data:`AUTO_COMPILE_MIN_STEPS` gradient steps on its device type; on a
    CPU not for a ``recurrent`` actor), ``true`` or ``false``. CUDA uses ``reduce-overhead`` (CUDA
    graphs), the CPU inductor's default mode."""
    setting = str(setting).lower()
    if setting not in COMPILE_CHOICES:
        raise ValueError(f"algorithm.compile={setting!r}; valid: {list(COMPILE_CHOICES)}")
    cuda = torch.device(device).type == "cuda"
    long_enough = steps_in_phase >= AUTO_COMPILE_MIN_STEPS["cuda" if cuda else "cpu"]
    on = setting == "true" or (setting == "auto" and long_enough and (cuda or not recurrent))
    if not on:
        return None
    return "reduce-overhead" if cuda else "default"


def _compile_options(mode: str) -> dict:
    """``torch.compile`` keyword arguments for a :func:`compile_mode`. On the CPU (``default``) tanh is
    decomposed into ``exp``: inductor's own vectorised tanh (SLEEF's) ran 5.7x slower than eager's
    (MKL's) on a ``[1600, 256]`` activation, the decomposition 1.9x (absolute error <= 2e-7 against
    eager, where tanh's values are within 1 of 0 and carry float32's 6e-8 spacing near 1)."""
    if mode == "default":
        return {"options": {"cpp.use_decompose_tanh": True}}
    return {"mode": mode}


def _objective(loss, aux, keys=("loss_objective", "loss_critic", "loss_entropy"), precision="fp32", device_type="cpu"):
    """``(items, index) -> (total loss, loss outputs, auxiliary loss)`` of the minibatch
    ``items[index]``: the part of a step that compiles. The rows are taken inside, so that a compiled
    objective gathers them in its own kernels instead of one indexing call per key (20% of a
    compiled step at the default recipe's networks). ``precision="bf16"``: the loss's network
    forwards under bfloat16 autocast (:mod:`components.algorithms.precision`); the auxiliary loss and
    the sums stay float32."""

    def objective(items, index):
        with forward_context(precision, device_type):
            out = loss(items[index])
        aux_loss = torch.as_tensor(aux())
        total = aux_loss
        for key in keys:
            if key in out.keys():
                total = total + out[key]
        return total, out, aux_loss

    return objective


class PPOUpdate:
    """``update(batch, loss, optimiser, trainable, aux, holder) -> row of mean statistics``.

    ``aux()`` returns the strategy's auxiliary loss for the current network; ``trainable`` is the list
    of parameters clipped together, or a tuple of such lists each clipped on its own (actor and critic
    separately, ``algorithm.clip_grad_per_network``). ``on_nonfinite(what)`` is called for every
    skipped update (the trainer stops after too many in a row) and ``on_finite()`` after every good
    one. ``compile`` is the ``torch.compile`` mode of the loss (None: eager); set per phase.
    ``precision`` (``fp32`` or ``bf16``, :func:`~components.algorithms.precision.resolve_precision`):
    the loss's forward passes; the trainer sets it once.
    """

    def __init__(self, frames_per_batch: int, minibatch_size: int, epochs: int, max_grad_norm: float, chunk: int,
                 on_nonfinite, on_finite, compile: str | None = None, precision: str = "fp32"):
        self.chunk, self.epochs, self.max_grad_norm = chunk, epochs, max_grad_norm
        self.steps = frames_per_batch // minibatch_size
        self.on_nonfinite, self.on_finite = on_nonfinite, on_finite
        self.minibatches = Minibatches(minibatch_size // chunk)
        self.compile, self.precision = compile, precision
        self.compile_s = None  # seconds of the first call of the latest compiled objective
        self._objective_for = (None, None)  # (loss, objective): rebuilt when the loss changes
        self.grad_watch = GradNormWatch(max_grad_norm)  # one warning when the norm stays far above the clip

    def objective(self, loss, aux):
        """The (compiled) objective of ``loss``; one per loss object, so one compile per phase."""
        if self._objective_for[0] is not loss:
            if self.precision == "bf16":  # before any compile: the hooks are traced with the networks
                float32_outputs(loss.actor_network, loss.critic_network)
            fn = _objective(loss, aux, precision=self.precision, device_type=next(loss.parameters()).device.type)
            if self.compile is not None:
                fn = torch.compile(fn, dynamic=False, **_compile_options(self.compile))
            self._objective_for, self.compile_s = (loss, fn), None
        return self._objective_for[1]

    def evaluate(self, objective, items, index):
        """``objective(items, index)``, timing the first call of a compiled one (that call compiles)."""
        if self.compile is None:
            return objective(items, index)
        with _partitioner_settings():  # a guard failure recompiles at any call, so every call
            if self.compile_s is not None:
                return objective(items, index)
            start = time.perf_counter()
            result = objective(items, index)
            self.compile_s = time.perf_counter() - start
            return result

    def __call__(self, batch, loss, optimiser, trainable, aux, holder) -> dict:
        expand_done(batch)
        with torch.no_grad():
            loss.value_estimator(batch, params=loss.critic_network_params,
                                 target_params=loss.target_critic_network_params)
        if self.chunk > 1:  # [E, T] -> [E * T / L, L]: chunks of consecutive steps
            items = batch.reshape(batch.shape[0], -1, self.chunk).reshape(-1, self.chunk)
        else:
            items = batch.reshape(-1)
        self.minibatches.reset(items.shape[0])
        self.batch_shape = batch.shape  # [E, T]: the time layout of the rows of ``items``
        stats: dict[str, list] = {k: [] for k in STATS}
        holder.sequence_mode = self.chunk > 1
        try:
            skipped = self._train(items, loss, optimiser, trainable, aux, holder, stats)
        finally:
            holder.sequence_mode = False
        # one synchronisation per update: every statistic was kept as a tensor until here
        row = {k: (torch.stack(v).float().mean().item() if v else math.nan) for k, v in stats.items()}
        row["skipped_updates"] = skipped
        self.grad_watch.observe(row["grad_norm"])
        if self.compile_s is not None:
            row["compile_s"] = self.compile_s
        return row

    def _train(self, items, loss, optimiser, trainable, aux, holder, stats) -> int:
        """The gradient steps on ``items``; returns the number of skipped updates."""
        return self._epochs(items, loss, optimiser, trainable, aux, stats)

    def apply(self, total, optimiser, trainable, mask_gradients=None, step=None):
        """One gradient step on ``total``: skipped (returns None, reported to ``on_nonfinite``) when the
        loss or the gradient norm is not finite; otherwise the clipped gradient's norm (with several
        clip groups: the norm over all of them). ``mask_gradients`` runs after backward and ``step``
        replaces ``optimiser.step`` (the sequential updates use both). Waits for the loss and the norm
        to decide; :meth:`step_in_flight` is the same step without waiting."""
        optimiser.zero_grad(set_to_none=True)
        if not torch.isfinite(total):
            self.on_nonfinite("loss")
            return None
        total.backward()
        if mask_gradients is not None:
            mask_gradients()
        grad_norm = self._clip(trainable)
        if not torch.isfinite(grad_norm):
            optimiser.zero_grad(set_to_none=True)
            self.on_nonfinite("gradient")
            return None
        (step or optimiser.step)()
        self.on_finite()
        return grad_norm

    def _clip(self, trainable) -> torch.Tensor:
        groups = trainable if isinstance(trainable, tuple) else (trainable,)
        norms = [torch.nn.utils.clip_grad_norm_(group, self.max_grad_norm, foreach=True) for group in groups]
        return norms[0] if len(norms) == 1 else torch.stack(norms).square().sum().sqrt()

    def step_in_flight(self, total, optimiser, trainable):
        """:meth:`apply` without a synchronisation: backward and clipping always run, and a fused Adam
        skips its step by itself where the loss or the gradient norm is not finite (its ``found_inf``
        input, the one AMP's gradient scaler uses: parameters, moments and step count stay as they
        were). Returns ``(grad_norm, loss_finite, grad_finite)`` as tensors; the caller reports them
        (:meth:`_report`) once the update is done. On a GPU the minibatch loop then never waits for
        the device; on a CPU it is the same step."""
        optimiser.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = self._clip(trainable)
        loss_finite, grad_finite = torch.isfinite(total.detach()), torch.isfinite(grad_norm)
        optimiser.found_inf = (~(loss_finite & grad_finite)).to(torch.float32)
        try:
            optimiser.step()
        finally:
            optimiser.found_inf = None
        return grad_norm, loss_finite, grad_finite

    def _report(self, flags) -> list[bool]:
        """Replay ``(loss_finite, grad_finite)`` per step, in order, to ``on_nonfinite`` / ``on_finite``
        (one synchronisation for the whole update); returns which steps were taken."""
        taken = []
        values = torch.stack([torch.stack(f) for f in flags]).tolist() if flags else []
        for loss_finite, grad_finite in values:
            if not loss_finite or not grad_finite:
                self.on_nonfinite("loss" if not loss_finite else "gradient")
            else:
                self.on_finite()
            taken.append(bool(loss_finite and grad_finite))
        return taken

    def _epochs(self, items, loss, optimiser, trainable, aux, stats) -> int:
        objective, flags, skipped = self.objective(loss, aux), [], 0
        fused = bool(optimiser.defaults.get("fused"))  # only a fused optimiser can skip a step by itself
        keys = ("loss_objective", "loss_critic", "loss_entropy", "entropy", "kl_approx", "clip_fraction")
        step_stats = {k: [] for k in stats}
        for _ in range(self.epochs):
            for _ in range(self.steps):
                total, out, aux_loss = self.evaluate(objective, items, self.minibatches.next())
                if fused:
                    grad_norm, *finite = self.step_in_flight(total, optimiser, trainable)
                    flags.append(finite)
                else:
                    grad_norm = self.apply(total, optimiser, trainable)
                    if grad_norm is None:
                        skipped += 1
                        continue
                for key in keys:
                    if key in out.keys():
                        step_stats[key].append(out[key].detach().mean())
                step_stats["loss_aux"].append(aux_loss.detach())
                step_stats["grad_norm"].append(grad_norm)
        taken = self._report(flags) if fused else [True] * len(step_stats["grad_norm"])
        for key, values in step_stats.items():  # the statistics of the steps taken
            stats[key].extend(v for v, ok in zip(values, taken) if ok)
        return skipped + taken.count(False)
