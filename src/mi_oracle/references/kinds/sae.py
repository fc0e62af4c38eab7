"""``sae``: one prompt through the model to one layer's residual, and that layer's SAE on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mi_oracle.references.item import ReferenceItem
from mi_oracle.references.kinds.base import Bars, BuildContext, ReferenceKind
from mi_oracle.references.kinds.encoders import ENCODER_ATOL, ENCODER_LABEL
from mi_oracle.references.tolerance import Tolerance

SAE_BARS = Bars(ENCODER_LABEL, {"*": Tolerance(ENCODER_ATOL, 1e-5)})


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
