"""HyperMARL: agent-conditioned hypernetworks (Tessera et al., NeurIPS 2025, arXiv 2412.04233; JAX
code KaleabTessera/HyperMARL, ``baselines/IPPO/ippo_ff_shared_weights_mlp_hypernets.py``).

Every layer of the actor is a :class:`~components.generated.GeneratedLinear`: a hypernetwork shared by
all agents maps agent i's embedding (one-hot id, or a learnt vector) to agent i's weight and bias, and
the generated per-agent weights run in one ``bmm``. No extra loss and no diversity hyperparameter:
observation-conditioned gradients reach the generated weights, agent-conditioned ones the
hypernetwork. A linear hypernetwork on one-hot ids reaches exactly NPS's family of weights (with
``hyper_bias=False`` it has exactly NPS's parameter count); the MLP hypernetwork (the paper's main
variant, ``hypernet="mlp"``) shares a hidden layer of ``hypernet_hidden`` units across agents.

Defaults, from their scripts: MLP hypernetwork with 64 hidden units, one-hot ids (their feed-forward
scripts; their recurrent ones use learnt 64-dimensional embeddings: ``embedding="learnt"``),
hypernetwork biases on, generated weights orthogonal per agent with gain ``sqrt(2)`` and 0.01 on the
action head, generated biases zero, one shared state-independent log-std, no agent id in the input.

Where this differs from their code:

- the GRU actor: every layer is generated here, the encoder and the GRU's input-to-hidden and
  hidden-to-hidden projections included (gain 1 for the GRU's projections); their recurrent scripts
  keep the encoder and the GRU shared and generate only the post-GRU layer and the action head;
- one hidden layer per generated layer feeds both the weight and the bias heads (theirs: two MLPs);
- the critic is whatever the run's critic is (their scripts generate the critic too);
- no ``predecessors``: the paper trains hypernetworks from scratch, and a trained shared network has
  no exact image in a hypernetwork with per-agent orthogonal starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from marlshare.components.generated import EMBEDDINGS, AgentEmbedding, GeneratedLinear
from marlshare.components.strategies.base import Strategy

HYPERNETS = ("mlp", "linear")
GRU_ROLES = ("gru_ih", "gru_hh")


@dataclass
class HyperMARL(Strategy):
    name = "hypermarl"
    shared = "the hypernetwork of every layer, and the log-std"
    agent_specific = "its embedding (one-hot id or learnt vector), from which the hypernetwork generates its weights"

    append_id: bool = False
    hypernet: str = "mlp"
    hypernet_hidden: int = 64
    embedding: str = "one_hot"
    embedding_dim: int = 64
    hyper_bias: bool = True
    init_gain: float = math.sqrt(2)
    head_init_gain: float = 0.01

    def validate(self):
        if self.hypernet not in HYPERNETS:
            raise ValueError(f"hypermarl: hypernet must be one of {list(HYPERNETS)}, got hypernet={self.hypernet!r}")
        if self.embedding not in EMBEDDINGS:
            raise ValueError(f"hypermarl: embedding must be one of {list(EMBEDDINGS)}, got embedding={self.embedding!r}")
        for field_name in ("hypernet_hidden", "embedding_dim"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"hypermarl: {field_name} must be a positive integer, got {field_name}={value!r}")
        if not isinstance(self.hyper_bias, bool):
            raise ValueError(f"hypermarl: hyper_bias must be True or False, got hyper_bias={self.hyper_bias!r}")
        for field_name in ("init_gain", "head_init_gain"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"hypermarl: {field_name} must be a number > 0, got {field_name}={value!r}")

    def gain(self, role: str) -> float:
        if role == "head":
            return float(self.head_init_gain)
        return 1.0 if role in GRU_ROLES else float(self.init_gain)

    def layer_factory(self, n_agents):
        # one embedding table per network, shared by all its generated layers (the paper's)
        embedding = AgentEmbedding(n_agents, self.embedding, self.embedding_dim, gain=float(self.init_gain))
        hidden = self.hypernet_hidden if self.hypernet == "mlp" else 0

        def layer(role, d_in, d_out):
            return GeneratedLinear(embedding, d_in, d_out, role=role, hidden=hidden, gain=self.gain(role),
                                   hyper_bias=self.hyper_bias)

        return layer

    def layer(self, role, n_agents, d_in, d_out):
        return self.layer_factory(n_agents)(role, d_in, d_out)
