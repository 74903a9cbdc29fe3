"""The strategy registry. Adding a strategy is one module plus one line here; the contract tests
parametrised over ``STRATEGIES`` then cover it.

Public API::

    from marlshare.components.strategies import STRATEGIES, make_strategy
    strategy = make_strategy("ps_lora", rank=8, alpha=8.0)
    net = strategy.make_network(n_agents=4, in_features=10, out_features=6, hidden=(64, 64))
    y = net(torch.randn(32, 4, 10))  # [32, 4, 6]
"""

from __future__ import annotations

import dataclasses

from marlshare.components.strategies.adaps import AdaPS
from marlshare.components.strategies.base import Strategy
from marlshare.components.strategies.dico import DiCo
from marlshare.components.strategies.hypermarl import HyperMARL
from marlshare.components.strategies.kaleidoscope import Kaleidoscope
from marlshare.components.strategies.mtl import MTL
from marlshare.components.strategies.nps import NPS
from marlshare.components.strategies.prism import Prism
from marlshare.components.strategies.ps import PS
from marlshare.components.strategies.ps_lora import PSLoRA
from marlshare.components.strategies.seps import SePS
from marlshare.components.strategies.seps_lora import SePSLoRA

STRATEGIES: dict[str, type[Strategy]] = {
    "ps": PS,
    "nps": NPS,
    "seps": SePS,
    "mtl": MTL,
    "ps_lora": PSLoRA,
    "seps_lora": SePSLoRA,
    "adaps": AdaPS,
    "prism": Prism,
    "dico": DiCo,
    "hypermarl": HyperMARL,
    "kaleidoscope": Kaleidoscope,
}


def strategy_from_config(config: dict) -> Strategy:
    """``make_strategy`` from a config dict ``{"name": ..., **hyperparameters}``."""
    hp = dict(config)
    return make_strategy(hp.pop("name", None), **hp)


def successors(name: str) -> list[str]:
    """The strategies a phase of ``name`` can hand over to (those that declare it a predecessor, and
    ``name`` itself: continuing the same strategy with other settings)."""
    return [name] + [other for other, cls in STRATEGIES.items() if name in cls.predecessors and other != name]


def make_strategy(name: str, **hyperparameters) -> Strategy:
    """Build a strategy by registry name, rejecting unknown names and hyperparameters clearly."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid strategies: {list(STRATEGIES)}")
    cls = STRATEGIES[name]
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(hyperparameters) - set(valid))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown} for strategy {name!r}; valid: {valid}")
    return cls(**hyperparameters)


__all__ = ["STRATEGIES", "Strategy", "make_strategy", "strategy_from_config", "successors"] + [cls.__name__ for cls in STRATEGIES.values()]
