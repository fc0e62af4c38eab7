"""``forward``: a model's tokens, top-10 logits and last residual per prompt.

0.1.24 (candle-mi's forward-parity references, one per family, its pins checked) or 0.1.12 (the
seeds' ``forward_reference.json``).
"""

from __future__ import annotations

from typing import Any

from mi_oracle.references.families import FAMILIES, family_for
from mi_oracle.references.item import ReferenceItem
from mi_oracle.references.kinds.base import Bars, BuildContext, ReferenceKind
from mi_oracle.references.tolerance import Tolerance

LABEL = "top-10 indices exact, logits {bar:g}"


def forward_bars(device: str) -> Bars:
    """candle-mi's forward bars: top-10 indices exact, logits within 1e-3 on a CPU, 5e-3 on a GPU."""
    bar = 5e-3 if device.startswith("cuda") else 1e-3
    return Bars(LABEL.format(bar=bar), {"*": Tolerance(bar)})


class Forward(ReferenceKind):
    name = "forward"
    schema_versions = ("0.1.24", "0.1.12")
    required = ("prompts",)
    allowed = ("family",)
    newest_marker = "model_type"

    def check(self, item: ReferenceItem) -> list[str]:
        problems = super().check(item)
        if item.family is not None and item.family not in FAMILIES:
            problems.append(f"family {item.family!r} is not supported (supported: {', '.join(FAMILIES)})")
        return problems

    def build(self, item: ReferenceItem, context: BuildContext) -> dict[str, Any]:
        if self.schema_version(item) == "0.1.12":
            from mi_oracle.references.forward_reference import forward_reference

            return forward_reference(item.prompts, context.model_dir, context.settings)
        from mi_oracle.references.forward_parity import forward_parity_reference

        family = family_for(item, context.model_dir)
        return forward_parity_reference(item.name, family, item.prompts, context.model_dir, context.settings)

    def bars(self, device: str = "cpu", scheme: str | None = None) -> Bars:
        return forward_bars(device)
