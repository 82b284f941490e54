"""The two regressors, with a first layer that reads sparse rows directly.

``SparseLinear`` is ``nn.Linear`` on the dense row, computed as a weighted sum of the weight
rows of the non-zero columns (``embedding_bag``), so the 5000-wide input is never densified.
Both models also accept a dense float tensor, which goes through the same parameters with
``F.linear``: that is the reference formulation the sparse path is tested against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SparseBatch:
    """Rows of a CSR matrix as embedding_bag inputs: column ids, row starts, values."""

    indices: torch.Tensor  # int64, all non-zero column ids of the batch, row after row
    offsets: torch.Tensor  # int64, start of each row in ``indices``
    values: torch.Tensor  # float32, the non-zero values, aligned with ``indices``

    @property
    def rows(self) -> int:
        return int(self.offsets.shape[0])

    def to(self, device: torch.device | str) -> SparseBatch:
        return SparseBatch(
            self.indices.to(device, non_blocking=True),
            self.offsets.to(device, non_blocking=True),
            self.values.to(device, non_blocking=True),
        )


ModelInput = SparseBatch | torch.Tensor


class SparseLinear(nn.Module):
    """``nn.Linear(in_features, out_features)`` over sparse rows.

    The weight is stored transposed, (in_features, out_features), because embedding_bag
    gathers rows; initialisation matches ``nn.Linear`` (fan-in = in_features).

    With ``sparse_gradient`` the weight's gradient is a sparse tensor holding only the rows of
    the batch's columns (``embedding_bag(sparse=True)``): the same gradient without writing
    and reading back a dense zero-filled (in_features, out_features) matrix every step. Only
    plain SGD consumes it (``training.fit`` switches it on for that recipe alone); the
    default is the ordinary dense gradient that every optimizer, clipping and DDP accept.
    """

    def __init__(self, in_features: int, out_features: int, *, sparse_gradient: bool = False) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.sparse_gradient = sparse_gradient
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)  # what nn.Linear's default init amounts to
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, inputs: ModelInput) -> torch.Tensor:
        if isinstance(inputs, SparseBatch):
            summed = F.embedding_bag(
                inputs.indices,
                self.weight,
                inputs.offsets,
                mode="sum",
                per_sample_weights=inputs.values,
                sparse=self.sparse_gradient,
            )
            return summed + self.bias
        return F.linear(inputs, self.weight.t(), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, sparse input"


def _kaiming_init(model: nn.Module) -> None:
    """He initialisation for ReLU stacks: without it the 8-layer MLP never leaves the median."""
    for module in model.modules():
        if isinstance(module, SparseLinear):
            nn.init.normal_(module.weight, std=math.sqrt(2.0 / module.in_features))
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)


class MLP(nn.Module):
    """The seed's SGD MLP: n_features → hidden_layers… → 1 with ReLU between linear layers."""

    def __init__(self, n_features: int, hidden_layers: tuple[int, ...], init: str = "kaiming") -> None:
        super().__init__()
        self.input = SparseLinear(n_features, hidden_layers[0])
        layers: list[nn.Module] = []
        for width_in, width_out in zip(hidden_layers[:-1], hidden_layers[1:], strict=False):
            layers += [nn.ReLU(), nn.Linear(width_in, width_out)]
        layers += [nn.ReLU(), nn.Linear(hidden_layers[-1], 1)]
        self.body = nn.Sequential(*layers)
        if init == "kaiming":
            _kaiming_init(self)
        elif init != "default":
            raise ValueError(f"init must be 'kaiming' or 'default', got {init!r}")

    def forward(self, inputs: ModelInput) -> torch.Tensor:
        return self.body(self.input(inputs)).squeeze(-1)


class ResidualBlock(nn.Module):
    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.block(x) + x)


class ResidualNet(nn.Module):
    """Input Linear→LayerNorm→ReLU→Dropout, (layers − 2) residual blocks, then Linear→1."""

    def __init__(self, n_features: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        if layers < 2:
            raise ValueError(f"layers must be >= 2, got {layers}")
        self.input = SparseLinear(n_features, hidden)
        self.input_norm = nn.Sequential(nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout))
        self.blocks = nn.Sequential(*(ResidualBlock(hidden, dropout) for _ in range(layers - 2)))
        self.output = nn.Linear(hidden, 1)

    def forward(self, inputs: ModelInput) -> torch.Tensor:
        x = self.input_norm(self.input(inputs))
        return self.output(self.blocks(x)).squeeze(-1)


def build_model(architecture: dict[str, Any]) -> nn.Module:
    """Build a model from its saved architecture config (``kind`` plus its sizes)."""
    config = dict(architecture)
    kind = config.pop("kind", None)
    if kind == "mlp":
        return MLP(config["n_features"], tuple(config["hidden_layers"]), config.get("init", "kaiming"))
    if kind == "resnet":
        return ResidualNet(config["n_features"], config["hidden"], config["layers"], config["dropout"])
    raise ValueError(f"unknown model kind {kind!r}; expected 'mlp' or 'resnet'")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
