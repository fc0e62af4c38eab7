"""``sae``: one prompt through the model to one layer's residual, and that layer's SAE on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mi_oracle.references.item import ReferenceItem
from mi_oracle.references.kinds.base import Bars, BuildContext, ReferenceKind
from mi_oracle.references.kinds.encoders import ENCODER_ATOL, ENCODER_LABEL
from mi_oracle.references.tolerance import Tolerance

SAE_BARS = Bars(ENCODER_LABEL, {"*": Tolerance(ENCODER_ATOL, 1e-5)})
# candle-mi's tests/validate_sae.rs, for another implementation's output (a candidate)
ACTIVE_SLACK = 10  # n_active_last_pos within this
TOP_MATCH_SHARE = 0.5  # of the top-10 indices equal position by position, at least
MSE_RATIO = (0.1, 10.0)  # reconstruction_mse ratio in [low, high)
NORM_ATOL = 1.0  # resid_last_norm
CANDIDATE_LABEL = (
    f"d_in, d_sae, n_tokens equal; active count within {ACTIVE_SLACK}; at least half the top-10 "
    f"indices equal position by position; MSE ratio in [{MSE_RATIO[0]:g}, {MSE_RATIO[1]:g}); "
    f"resid_last_norm within {NORM_ATOL:g}"
)


class Sae(ReferenceKind):
    name = "sae"
    schema_versions = ("0.1.12",)
    required = ("set", "layer", "prompt")
    reads_set = True

    def layers_needed(self, item: ReferenceItem, available: Sequence[int]) -> list[int]:
        return [item.layer]

    def build(self, item: ReferenceItem, context: BuildContext) -> dict[str, Any]:
        from mi_oracle.references.sae_reference import sae_reference

        return sae_reference(
            context.manifest, item.layer, item.prompt, context.model_dir, context.settings, context.base
        )

    def bars(self, device: str = "cpu", scheme: str | None = None) -> Bars:
        return SAE_BARS
