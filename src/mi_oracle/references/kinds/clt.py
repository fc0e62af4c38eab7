"""``clt``: a cross-layer transcoder's encoders on seeded residuals (mi-oracle's fp32 encoder)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mi_oracle.references.item import ReferenceItem
from mi_oracle.references.kinds.base import Bars, BuildContext, ReferenceKind
from mi_oracle.references.kinds.encoders import TRANSCODER_BARS, transcoder_layers


class Clt(ReferenceKind):
    name = "clt"
    schema_versions = ("0.1.12",)
    required = ("set",)
    allowed = ("layers",)
    reads_set = True

    def reads_model(self, item: ReferenceItem) -> bool:
        return False

    def layers_needed(self, item: ReferenceItem, available: Sequence[int]) -> list[int]:
        return transcoder_layers(item, available)

    def build(self, item: ReferenceItem, context: BuildContext) -> dict[str, Any]:
        from mi_oracle.references.transcoder_reference import transcoder_reference

        layers = transcoder_layers(item, context.manifest.listed_layers)
        return transcoder_reference(
            self.name, context.manifest, layers, context.options["seeds_per_layer"], context.base
        )

    def bars(self, device: str = "cpu", scheme: str | None = None) -> Bars:
        return TRANSCODER_BARS
