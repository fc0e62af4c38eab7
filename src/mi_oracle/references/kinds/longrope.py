"""``longrope``: a forward-parity reference of a LongRoPE checkpoint (Phi-3.5), with its
``attention_scaling`` (mscale) and a case past ``original_max_position_embeddings``."""

from __future__ import annotations

from typing import Any

from mi_oracle.references.families import BASE_FIELDS, family_for
from mi_oracle.references.item import ReferenceItem
from mi_oracle.references.kinds.base import Bars, BuildContext
from mi_oracle.references.kinds.forward import Forward
from mi_oracle.references.tolerance import Tolerance

# candle-mi's longrope file carries other fields (inv_freq; no head counts): not matched yet
LONGROPE_FIELDS = (*BASE_FIELDS, "rope_scaling")


class Longrope(Forward):
    name = "longrope"
    schema_versions = ("0.1.24",)
    required = ("prompts", "long_prompt")

    def build(self, item: ReferenceItem, context: BuildContext) -> dict[str, Any]:
        from mi_oracle.references.forward_parity import forward_parity_reference

        return forward_parity_reference(
            item.name,
            family_for(item, context.model_dir),
            item.prompts,
            context.model_dir,
            context.settings,
            long_text=item.long_prompt,
            arm=self.name,
            fields=LONGROPE_FIELDS,
        )

    def bars(self, device: str = "cpu", scheme: str | None = None) -> Bars:
        return Bars(
            "top-10 indices exact, logits 5e-3, attention_scaling 1e-4",
            {"*": Tolerance(5e-3), "attention_scaling": Tolerance(1e-4)},
        )
