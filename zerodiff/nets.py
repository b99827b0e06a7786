"""Networks of the DRG and the DFG: conditional MLPs, embeddings, encoder and decoder.

Every generator and critic is a one-hidden-layer MLP with LeakyReLU(0.2) over the
concatenation of its inputs. Raw inputs (latent, class semantics, features) enter
as they are; the diffusion step t enters through a sinusoidal embedding followed
by a small MLP, and an SC representation r enters through a small MLP embedding.
An input that is switched off has no parameters at all: the first layer is
narrower and the embedding module does not exist.

No layer depends on the batch (no batch norm, no dropout), so running real and
fake samples through a critic in one concatenated batch gives exactly the
outputs of separate passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

LEAKY_SLOPE = 0.2
TIME_KEY = "t"
REPRESENTATION_KEY = "r"


def leaky_mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Linear -> LeakyReLU(0.2) -> Linear."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.LeakyReLU(LEAKY_SLOPE), nn.Linear(hidden, out_dim))


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Embed integer steps ``t`` [B] as [B, dim]: sines then cosines of t / max_period^(i / half).

    An odd ``dim`` gets one zero column at the end.

    >>> sinusoidal_embedding(torch.tensor([0]), 4).tolist()
    [[0.0, 0.0, 1.0, 1.0]]
    """
    half = dim // 2
    exponents = torch.arange(half, dtype=torch.float32, device=t.device) / max(half, 1)
    frequencies = torch.exp(-math.log(max_period) * exponents)
    angles = t.to(torch.float32).unsqueeze(1) * frequencies.unsqueeze(0)
    embedding = torch.cat([angles.sin(), angles.cos()], dim=1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=1)
    return embedding


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of the step t followed by a small MLP; [B] int64 -> [B, dim]."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = leaky_mlp(dim, dim, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.dim))


class ConditionalMLP(nn.Module):
    """One-hidden-layer MLP over named inputs, concatenated in a fixed order.

    ``raw_dims`` maps input names to widths; they are concatenated in that order.
    ``time_dim > 0`` adds a :class:`TimeEmbedding` for the input named ``"t"``;
    ``representation_dims = (D_sc, E)`` adds an MLP embedding of width E for the
    input named ``"r"``. ``sigmoid`` ends the network in a sigmoid (generators
    produce min-max scaled features in [0, 1]).
    """

    def __init__(
        self,
        raw_dims: Mapping[str, int],
        hidden: int,
        out_dim: int,
        *,
        time_dim: int = 0,
        representation_dims: tuple[int, int] | None = None,
        sigmoid: bool = False,
    ) -> None:
        super().__init__()
        self.raw_names = tuple(raw_dims)
        in_dim = sum(raw_dims.values())
        self.time_embedding = None
        if time_dim > 0:
            self.time_embedding = TimeEmbedding(time_dim)
            in_dim += time_dim
        self.representation_embedding = None
        if representation_dims is not None:
            representation_in, representation_out = representation_dims
            self.representation_embedding = leaky_mlp(representation_in, representation_out, representation_out)
            in_dim += representation_out
        self.hidden = nn.Linear(in_dim, hidden)
        self.activation = nn.LeakyReLU(LEAKY_SLOPE)
        self.output = nn.Linear(hidden, out_dim)
        self.sigmoid = sigmoid

    @property
    def input_names(self) -> tuple[str, ...]:
        """Every input name this network reads, raw inputs first."""
        names = self.raw_names
        if self.time_embedding is not None:
            names += (TIME_KEY,)
        if self.representation_embedding is not None:
            names += (REPRESENTATION_KEY,)
        return names

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Return [B, out_dim]; ``inputs`` must hold every name of :attr:`input_names` (extra keys are ignored)."""
        parts = [inputs[name] for name in self.raw_names]
        if self.time_embedding is not None:
            parts.append(self.time_embedding(inputs[TIME_KEY]))
        if self.representation_embedding is not None:
            parts.append(self.representation_embedding(inputs[REPRESENTATION_KEY]))
        out = self.output(self.activation(self.hidden(torch.cat(parts, dim=1))))
        return torch.sigmoid(out) if self.sigmoid else out


class VAEEncoder(nn.Module):
    """E(v0, a) -> (mu, logvar), each [B, latent]: the f-VAEGAN encoder."""

    def __init__(self, feature_dim: int, attribute_dim: int, hidden: int, latent: int) -> None:
        super().__init__()
        self.net = ConditionalMLP({"x": feature_dim, "a": attribute_dim}, hidden, 2 * latent)

    def forward(self, features: torch.Tensor, attributes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net({"x": features, "a": attributes}).chunk(2, dim=1)
        return mu, logvar


class SemanticDecoder(nn.Module):
    """Dec(v) -> â: the semantic feedback decoder, also exposing its hidden layer.

    ``forward`` returns ``(attributes [B, A], hidden [B, H])``; the hidden layer is
    taken after the LeakyReLU, as the VS/VCS feature spaces use it.
    """

    def __init__(self, feature_dim: int, hidden: int, attribute_dim: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(feature_dim, hidden)
        self.activation = nn.LeakyReLU(LEAKY_SLOPE)
        self.output = nn.Linear(hidden, attribute_dim)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.activation(self.hidden(features))
        return self.output(hidden), hidden


def count_parameters(module: nn.Module | None) -> int:
    """Return the number of parameters of ``module`` (0 for None)."""
    return 0 if module is None else sum(parameter.numel() for parameter in module.parameters())
