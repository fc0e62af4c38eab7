"""What the encoder kinds (plt, clt, sae) share: their bars and how they pick a set's layers."""

from __future__ import annotations

from collections.abc import Sequence

from mi_oracle.references.item import ReferenceItem
from mi_oracle.references.kinds.base import Bars
from mi_oracle.references.tolerance import Tolerance

ENCODER_ATOL = 1e-4  # candle-mi: encoder activations, fp32 CPU vs CPU
RESIDUAL_ATOL = 1e-6  # the seeded residual recipe reproduces within 2.4e-7
ENCODER_LABEL = "n_active and top-10 indices exact, activations 1e-4"
TRANSCODER_BARS = Bars(ENCODER_LABEL, {"*": Tolerance(ENCODER_ATOL), "residual": Tolerance(RESIDUAL_ATOL)})


def ends_and_middle(layers: Sequence[int]) -> list[int]:
    """First, middle (lower middle for an even count) and last of ``layers``: 26 layers give 0/12/25."""
    ordered = sorted(set(layers))
    picks = [ordered[0], ordered[(len(ordered) - 1) // 2], ordered[-1]]
    return sorted(set(picks))


def transcoder_layers(item: ReferenceItem, available: Sequence[int]) -> list[int]:
    """A plt/clt reference's layers: as configured, else the ends and middle of the set's layers."""
    return sorted(item.layers) if item.layers else ends_and_middle(available)
