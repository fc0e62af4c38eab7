"""``plt``: per-layer transcoders on seeded residuals. 0.1.12: mi-oracle's fp32 encoder on a
dictionary set's files; 0.1.24: SAELens loads and encodes a release (``plt_gemma_reference``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mi_oracle.references.item import ReferenceItem
from mi_oracle.references.kinds.base import Bars, BuildContext, ReferenceKind
from mi_oracle.references.kinds.encoders import TRANSCODER_BARS, transcoder_layers

SAELENS = "0.1.24"


class Plt(ReferenceKind):
    name = "plt"
    schema_versions = ("0.1.12", SAELENS)
    allowed = ("set", "layers", "oracle_release", "oracle_sae_ids", "curation_repo")
    newest_marker = "sae_lens_version"

    def saelens(self, item: ReferenceItem) -> bool:
        return self.schema_version(item) == SAELENS

    def reads_model(self, item: ReferenceItem) -> bool:
        return False

    def item_set(self, item: ReferenceItem) -> str | None:
        return None if self.saelens(item) else item.set

    def check(self, item: ReferenceItem) -> list[str]:
        problems = super().check(item)
        if self.saelens(item):
            if not item.oracle_release or not item.layers:
                problems.append("a 0.1.24 plt reference names oracle_release (a SAELens release) and layers")
        elif item.set is None:
            problems.append("a plt reference names its set")
        return problems

    def layers_needed(self, item: ReferenceItem, available: Sequence[int]) -> list[int]:
        return [] if self.saelens(item) else transcoder_layers(item, available)

    def build(self, item: ReferenceItem, context: BuildContext) -> dict[str, Any]:
        seeds = context.options["seeds_per_layer"]
        if self.saelens(item):
            from mi_oracle.references.plt_saelens import saelens_plt_reference

            return saelens_plt_reference(item, list(item.layers), seeds)
        from mi_oracle.references.transcoder_reference import transcoder_reference

        layers = transcoder_layers(item, context.manifest.listed_layers)
        return transcoder_reference(self.name, context.manifest, layers, seeds, context.base)

    def bars(self, device: str = "cpu", scheme: str | None = None) -> Bars:
        return TRANSCODER_BARS
