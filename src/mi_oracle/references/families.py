"""The model families candle-mi checks forward parity for, each with the trap its oracle must avoid.

A family names the ``model_type`` its checkpoint must declare and its pins: every oracle runs
eager attention (SDPA drops Gemma 2's attention soft-capping, and its backend varies by host),
and Gemma 1 runs the tanh GELU its checkpoint's legacy ``hidden_act: gelu`` means
(transformers 4.48 to 5.x ran exact GELU for it).
"""

from __future__ import annotations

from dataclasses import dataclass

from mi_oracle.errors import ReferenceDataError

SOFTCAPPING = ("attn_logit_softcapping", "final_logit_softcapping")


@dataclass(frozen=True)
class Family:
    """One forward-parity family: what its checkpoint is and how its oracle must run."""

    slug: str  # candle-mi's entry id (scripts/resurrect.ps1)
    model_type: str
    attention: str = "eager"
    hidden_act: str | None = None  # the activation pinned over the checkpoint's config
    extra_fields: tuple[str, ...] = ()  # config fields this family's reference also records
    rope_type: str | None = None  # the RoPE scaling its checkpoint must declare (longrope)


FAMILIES = {
    family.slug: family
    for family in (
        Family("qwen3", "qwen3"),
        Family("llama32", "llama"),
        Family(
            "gemma",
            "gemma",
            hidden_act="gelu_pytorch_tanh",
            extra_fields=(*SOFTCAPPING, "hidden_act_in_checkpoint_config", "hidden_act_used"),
        ),
        Family("gemma2", "gemma2", extra_fields=SOFTCAPPING),
        Family("gemma3", "gemma3_text", extra_fields=SOFTCAPPING),
        Family("deepseek", "llama"),
        Family("qwen25coder", "qwen2"),
        Family("starcoder2", "starcoder2"),
        Family("phi3", "phi3"),
        Family("mistral7b", "mistral"),
        Family("longrope", "phi3", rope_type="longrope"),
        Family("quantized", "llama"),
    )
}


def family_named(slug: str, reference: str) -> Family:
    """The family ``slug``; an unknown one is an error naming the reference and the families known."""
    if slug not in FAMILIES:
        raise ReferenceDataError(
            f"{reference}: family {slug!r} is not supported (supported: {', '.join(FAMILIES)})"
        )
    return FAMILIES[slug]


def family_of_model_type(model_type: str, reference: str) -> Family:
    """The first family whose checkpoints declare ``model_type`` (a reference that names none)."""
    for family in FAMILIES.values():
        if family.model_type == model_type and family.rope_type is None:
            return family
    raise ReferenceDataError(
        f"{reference}: model_type {model_type!r} belongs to no supported family "
        f"(supported: {', '.join(sorted({f.model_type for f in FAMILIES.values()}))})"
    )
