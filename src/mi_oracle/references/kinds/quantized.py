"""``quantized``: a quantized checkpoint's forward (bnb NF4, AWQ, GPTQ), its scheme's own library
as the oracle, on CUDA; where this machine lacks CUDA or the backend, a record of what it lacks."""

from __future__ import annotations

from typing import Any

from mi_oracle.references.families import family_for
from mi_oracle.references.item import ReferenceItem
from mi_oracle.references.kinds.base import Bars, BuildContext, Unmade
from mi_oracle.references.kinds.forward import Forward
from mi_oracle.references.quantized import (
    QUANTIZED_BARS,
    SCHEMES,
    missing_for,
    needs_gpu_record,
    quantization_config,
)
from mi_oracle.references.tolerance import Tolerance


class Quantized(Forward):
    name = "quantized"
    schema_versions = ("0.1.24",)
    required = ("prompts", "scheme")
    needs_gpu = True

    def check(self, item: ReferenceItem) -> list[str]:
        problems = super().check(item)
        if item.scheme is not None and item.scheme not in SCHEMES:
            problems.append(f"scheme {item.scheme!r} is not supported (supported: {', '.join(SCHEMES)})")
        return problems

    def portable(self, item: ReferenceItem) -> bool:
        return False

    def unmade(self, item: ReferenceItem, context: BuildContext) -> Unmade | None:
        from mi_oracle.references.provenance import model_record

        config = quantization_config(context.model_dir, item.scheme, item.name)
        missing = missing_for(item.scheme, "cuda")
        if not missing:
            return None
        record = needs_gpu_record(item.name, item.scheme, missing, config, model_record(context.model_dir))
        return Unmade(missing, record)

    def build(self, item: ReferenceItem, context: BuildContext) -> dict[str, Any]:
        from mi_oracle.references.forward_parity import forward_parity_reference

        settings = {**context.settings, "device": "cuda", "dtype": SCHEMES[item.scheme].dtype}
        family = family_for(item, context.model_dir)
        return forward_parity_reference(
            item.name, family, item.prompts, context.model_dir, settings, arm=self.name
        )

    def bars(self, device: str = "cuda", scheme: str | None = None) -> Bars:
        bar = QUANTIZED_BARS[scheme or ""]
        return Bars(f"top-1 exact, logits {bar:g}", {"*": Tolerance(bar)}, top1_bar=bar)
