"""The model families candle-mi checks forward parity for: one data entry per family, holding
what differs between them.

An entry names the ``model_type`` its checkpoint must declare, the attention its oracle runs
(eager everywhere: SDPA drops Gemma 2's attention soft-capping, and its backend varies by host),
the activation pinned over the checkpoint's config (Gemma 1's legacy ``hidden_act: gelu`` means
the tanh GELU; transformers 4.48 to 5.x ran exact GELU for it), the config fields its reference
also records, its prompts (None: the references' prompts), and its traps with how each is checked.
LongRoPE and quantization are properties of a reference (its kind), not families.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mi_oracle.errors import ReferenceDataError
from mi_oracle.json_files import read_json

SOFTCAPPING = ("attn_logit_softcapping", "final_logit_softcapping")
# the fields every candle-mi forward reference carries between ``platform`` and ``test_cases``
# (docs/research/candle-mi-forward-scripts.md); a family's entry says which, in its order
BASE_FIELDS = (
    "model_type",
    "hidden_size",
    "num_layers",
    "vocab_size",
    "head_dim",
    "num_attention_heads",
    "num_kv_heads",
    "max_position_embeddings",
    "rope_theta",
    "rms_norm_eps",
)
# every field a family may name (forward_parity.config_values computes each)
FORWARD_FIELDS = (
    *BASE_FIELDS,
    "use_qk_norm",
    "rope_scaling",
    "attn_logit_softcapping",
    "final_logit_softcapping",
    "query_pre_attn_scalar",
    "hidden_act_in_checkpoint_config",
    "hidden_act_used",
    "attention_bias",
    "norm_epsilon",
    "use_bias",
    "norm_type",
    "sliding_window",
)
EAGER_CHECK = "eager attention: the loaded model's _attn_implementation is checked before any case runs"


@dataclass(frozen=True)
class Family:
    """One forward-parity family: what its checkpoint is and how its oracle must run."""

    slug: str  # candle-mi's entry id (scripts/resurrect.ps1)
    model_type: str
    attention: str = "eager"
    hidden_act: str | None = None  # the activation pinned over the checkpoint's config
    # the fields its reference carries between ``platform`` and ``test_cases``, in candle-mi's order
    fields: tuple[str, ...] = BASE_FIELDS
    prompts: tuple[str, ...] | None = None  # None: references.prompts
    # trap -> how the oracle avoids it (documentation of the checks forward_parity.load_pinned runs:
    # model_type, attention, the activation pin; and of what the reference records)
    traps: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        unknown = [field for field in self.fields if field not in FORWARD_FIELDS]
        if unknown:
            raise ReferenceDataError(
                f"family {self.slug}: {', '.join(unknown)} is no field a forward reference carries "
                f"(known: {', '.join(FORWARD_FIELDS)})"
            )


GEMMA_GELU = {
    "legacy hidden_act: gelu": "the tanh GELU is pinned over the config and checked to have taken; "
    "the reference records hidden_act_in_checkpoint_config and hidden_act_used"
}
SOFTCAP_TRAP = {"attention soft-capping (dropped by SDPA)": EAGER_CHECK}

FAMILIES: dict[str, Family] = {
    family.slug: family
    for family in (
        Family("qwen3", "qwen3", fields=(*BASE_FIELDS[1:], "use_qk_norm")),
        Family(
            "llama32",
            "llama",
            fields=(*BASE_FIELDS, "rope_scaling"),
            traps={"llama3 RoPE scaling": "rope_scaling recorded as the checkpoint says"},
        ),
        Family(
            "gemma",
            "gemma",
            hidden_act="gelu_pytorch_tanh",
            fields=(*BASE_FIELDS, *SOFTCAPPING, "hidden_act_in_checkpoint_config", "hidden_act_used"),
            traps=GEMMA_GELU,
        ),
        Family(
            "gemma2",
            "gemma2",
            fields=(*BASE_FIELDS, *SOFTCAPPING, "query_pre_attn_scalar"),
            traps=SOFTCAP_TRAP,
        ),
        # candle-mi commits no Gemma 3 reference: the fields mi-oracle chose
        Family(
            "gemma3", "gemma3_text", fields=(*BASE_FIELDS, "rope_scaling", *SOFTCAPPING), traps=SOFTCAP_TRAP
        ),
        Family(
            "deepseek",
            "llama",
            fields=(*BASE_FIELDS, "rope_scaling"),
            prompts=("The capital of France is", "def fibonacci(n):", "import numpy as"),
            traps={"linear RoPE scaling": "rope_scaling recorded as the checkpoint says"},
        ),
        Family("qwen25coder", "qwen2", fields=(*BASE_FIELDS, "attention_bias")),
        Family(
            "starcoder2", "starcoder2", fields=(*BASE_FIELDS[:-1], "norm_epsilon", "use_bias", "norm_type")
        ),
        Family("phi3", "phi3"),
        Family("mistral7b", "mistral", fields=(*BASE_FIELDS, "sliding_window")),
    )
}


def register_family(family: Family) -> None:
    """Add (or replace) a family."""
    FAMILIES[family.slug] = family


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
        if family.model_type == model_type:
            return family
    raise ReferenceDataError(
        f"{reference}: model_type {model_type!r} belongs to no supported family "
        f"(supported: {', '.join(sorted({f.model_type for f in FAMILIES.values()}))})"
    )


def family_for(item, model_dir: Path) -> Family:
    """A reference item's family: as named, else by its checkpoint's ``model_type``."""
    if item.family is not None:
        return family_named(item.family, item.name)
    config = read_json(Path(model_dir) / "config.json", ReferenceDataError)
    return family_of_model_type(config.get("model_type", ""), item.name)
