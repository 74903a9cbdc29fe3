"""One PPO update on a collected batch: GAE, then ``epochs`` passes over minibatches drawn without
replacement (TorchRL's ``SamplerWithoutReplacement``), the strategy's auxiliary loss added to the actor
loss, non-finite losses or gradients skipped, gradient norms clipped.

Recurrent actors learn from chunks of ``chunk`` consecutive steps (``[E, T] -> [E T / L, L]``) re-run
from their stored hidden states.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement

from components.algorithms.ppo import expand_done

STATS = ("loss_objective", "loss_critic", "loss_entropy", "loss_aux", "entropy", "kl_approx", "clip_fraction",
         "grad_norm")


class PPOUpdate:
    """``update(batch, loss, optimiser, trainable, aux, holder) -> row of mean statistics``.

    ``aux()`` returns the strategy's auxiliary loss for the current network; ``on_nonfinite(what)`` is
    called for every skipped update (the trainer stops after too many in a row) and
    ``on_finite()`` after every good one.
    """

    def __init__(self, frames_per_batch: int, minibatch_size: int, epochs: int, max_grad_norm: float, chunk: int,
                 on_nonfinite, on_finite):
        self.chunk, self.epochs, self.max_grad_norm = chunk, epochs, max_grad_norm
        self.steps = frames_per_batch // minibatch_size
        self.on_nonfinite, self.on_finite = on_nonfinite, on_finite
        self.buffer = ReplayBuffer(storage=LazyTensorStorage(frames_per_batch // chunk),
                                   sampler=SamplerWithoutReplacement(), batch_size=minibatch_size // chunk)

    def __call__(self, batch, loss, optimiser, trainable, aux, holder) -> dict:
        expand_done(batch)
        with torch.no_grad():
            loss.value_estimator(batch, params=loss.critic_network_params,
                                 target_params=loss.target_critic_network_params)
        self.buffer.empty()
        if self.chunk > 1:  # [E, T] -> [E * T / L, L]: chunks of consecutive steps
            items = batch.reshape(batch.shape[0], -1, self.chunk).reshape(-1, self.chunk)
        else:
            items = batch.reshape(-1)
        self.buffer.extend(items)  # storage row i is items[i] (the buffer was emptied)
        stats: dict[str, list] = {k: [] for k in STATS}
        holder.sequence_mode = self.chunk > 1
        try:
            skipped = self._train(items, loss, optimiser, trainable, aux, holder, stats)
        finally:
            holder.sequence_mode = False
        row = {k: (float(np.mean(v)) if v else math.nan) for k, v in stats.items()}
        row["skipped_updates"] = skipped
        return row

    def _train(self, items, loss, optimiser, trainable, aux, holder, stats) -> int:
        """The gradient steps on the stored ``items``; returns the number of skipped updates."""
        return self._epochs(loss, optimiser, trainable, aux, stats)

    def apply(self, total, optimiser, trainable, mask_gradients=None, step=None):
        """One gradient step on ``total``: skipped (returns None, reported to ``on_nonfinite``) when the
        loss or the gradient norm is not finite; otherwise the clipped gradient's norm. ``mask_gradients``
        runs after backward and ``step`` replaces ``optimiser.step`` (the sequential updates use both)."""
        optimiser.zero_grad(set_to_none=True)
        if not torch.isfinite(total):
            self.on_nonfinite("loss")
            return None
        total.backward()
        if mask_gradients is not None:
            mask_gradients()
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, self.max_grad_norm)
        if not torch.isfinite(grad_norm):
            optimiser.zero_grad(set_to_none=True)
            self.on_nonfinite("gradient")
            return None
        (step or optimiser.step)()
        self.on_finite()
        return grad_norm

    def _epochs(self, loss, optimiser, trainable, aux, stats) -> int:
        skipped = 0
        for _ in range(self.epochs):
            for _ in range(self.steps):
                out = loss(self.buffer.sample())
                aux_loss = aux()
                total = out["loss_objective"] + out["loss_critic"] + out.get("loss_entropy", 0.0) + aux_loss
                grad_norm = self.apply(total, optimiser, trainable)
                if grad_norm is None:
                    skipped += 1
                    continue
                for key in ("loss_objective", "loss_critic", "loss_entropy", "entropy", "kl_approx", "clip_fraction"):
                    if key in out.keys():
                        stats[key].append(out[key].detach().float().mean().item())
                stats["loss_aux"].append(float(aux_loss))
                stats["grad_norm"].append(grad_norm.item())
        return skipped
