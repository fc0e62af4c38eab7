"""The synthetic fit's threshold placement (``firing_cut``)."""

from __future__ import annotations

import itertools

import torch

from mi_oracle.dictionaries.synthetic_fit import firing_cut


def widest_gap_by_full_sort(raw: torch.Tensor, rate: float) -> torch.Tensor:
    """The definition, spelled out with a full sort of every column."""
    n = raw.shape[0]
    target = max(1, round(rate * n))
    spread = max(1, target // 4)
    ranked = torch.sort(raw, dim=0).values
    cuts = []
    for column in ranked.T.tolist():
        window = column[max(0, n - target - spread) : min(n - 1, n - target + spread) + 1]
        gaps = [b - a for a, b in itertools.pairwise(window)]
        at = gaps.index(max(gaps))  # the first widest gap, as argmax picks it
        cuts.append((window[at] + window[at + 1]) / 2)
    return torch.tensor(cuts, dtype=raw.dtype)


def test_the_cut_is_the_widest_gap_near_the_quantile_with_ties_and_tiny_columns():
    generator = torch.Generator().manual_seed(3)
    for n, d, rate in [(2048, 64, 0.125), (300, 9, 0.5), (5, 3, 0.99), (64, 4, 0.01)]:
        raw = torch.randn(n, d, generator=generator, dtype=torch.float64)
        raw[: n // 3] = torch.round(raw[: n // 3] * 4) / 4  # blocks of equal values
        cut = firing_cut(raw, rate)
        assert torch.equal(cut, widest_gap_by_full_sort(raw, rate))
        fired = (raw > cut).double().mean(0)
        assert torch.all((fired - rate).abs() <= rate / 4 + 1 / n)
