"""Reconstruction and sparsity metrics: additive per-shard sums, aggregated per (set, layer).

Per token: L0 (active features). Against the target (the input for an SAE, the captured output
hook for a transcoder, a CLT's same-layer output hook): squared error summed over dimensions.
FVU = SSE / sum((y - mean(y))^2), the mean taken over every token of every shard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mi_oracle.encoding.native import SparseRows

L0_BIN_EDGES = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]


@dataclass
class MetricSums:
    """Sums that add across batches and shards."""

    d_sae: int
    d_out: int
    n_tokens: int = 0
    l0_sum: int = 0
    l0_histogram: np.ndarray = field(default_factory=lambda: np.zeros(len(L0_BIN_EDGES), np.int64))
    squared_error: float = 0.0
    target_sum: np.ndarray | None = None
    target_squared: float = 0.0
    fire_count: np.ndarray | None = None
    max_activation: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.target_sum = np.zeros(self.d_out) if self.target_sum is None else np.asarray(self.target_sum)
        self.fire_count = (
            np.zeros(self.d_sae, np.int64) if self.fire_count is None else np.asarray(self.fire_count)
        )
        if self.max_activation is None:
            self.max_activation = np.zeros(self.d_sae)
        self.max_activation = np.asarray(self.max_activation, dtype=np.float64)
        self.l0_histogram = np.asarray(self.l0_histogram, dtype=np.int64)

    def add(self, acts: torch.Tensor, active: SparseRows, output: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch: activations, its active features (``compute.sparse_rows``), the
        dictionary's output and the target. Counts come from the sparse rows, not the dense
        mask (a bool tensor's ``sum`` converts every element: 35 ms against 1 ms for 4,096 rows).
        """
        l0 = np.diff(active.offsets)
        self.n_tokens += len(l0)
        self.l0_sum += int(l0.sum())
        bins = np.searchsorted(L0_BIN_EDGES, l0, side="right") - 1
        self.l0_histogram += np.bincount(bins, minlength=len(L0_BIN_EDGES))
        error = output - target  # in the compute dtype; squares are summed in float64
        self.squared_error += float(torch.sum(error * error, dtype=torch.float64))
        self.target_sum += target.sum(0, dtype=torch.float64).cpu().numpy()
        self.target_squared += float(torch.sum(target * target, dtype=torch.float64))
        self.fire_count += np.bincount(active.ids, minlength=self.d_sae)
        self.max_activation = np.maximum(self.max_activation, acts.amax(0).to(torch.float64).cpu().numpy())

    def to_json(self) -> dict[str, Any]:
        return {
            "d_sae": self.d_sae,
            "d_out": self.d_out,
            "n_tokens": self.n_tokens,
            "l0_sum": self.l0_sum,
            "l0_histogram": self.l0_histogram.tolist(),
            "squared_error": self.squared_error,
            "target_sum": self.target_sum.tolist(),
            "target_squared": self.target_squared,
            "fire_count": self.fire_count.tolist(),
            "max_activation": self.max_activation.tolist(),
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> MetricSums:
        return cls(**record)

    def merge(self, other: MetricSums) -> MetricSums:
        return MetricSums(
            d_sae=self.d_sae,
            d_out=self.d_out,
            n_tokens=self.n_tokens + other.n_tokens,
            l0_sum=self.l0_sum + other.l0_sum,
            l0_histogram=self.l0_histogram + other.l0_histogram,
            squared_error=self.squared_error + other.squared_error,
            target_sum=self.target_sum + other.target_sum,
            target_squared=self.target_squared + other.target_squared,
            fire_count=self.fire_count + other.fire_count,
            max_activation=np.maximum(self.max_activation, other.max_activation),
        )


def summarise(parts: Iterable[MetricSums]) -> dict[str, Any]:
    """The metrics of one (set, layer) from its shards' sums."""
    parts = list(parts)
    total = parts[0]
    for part in parts[1:]:
        total = total.merge(part)
    n, d_out = total.n_tokens, total.d_out
    centred = total.target_squared - float((total.target_sum**2).sum()) / n
    dead = int((total.fire_count == 0).sum())
    return {
        "n_tokens": n,
        "mean_l0": total.l0_sum / n,
        "l0_histogram": {"bin_lower_edges": L0_BIN_EDGES, "counts": total.l0_histogram.tolist()},
        "mse": total.squared_error / (n * d_out),
        "fvu": total.squared_error / centred if centred > 0 else None,
        "zero_baseline_mse": total.target_squared / (n * d_out),
        "dead_features": dead,
        "dead_fraction": dead / total.d_sae,
        "fire_count": total.fire_count.tolist(),
        "top_activation_per_feature": total.max_activation.tolist(),
    }
