"""candle-mi 0.1.24's ``*_forward_reference.json``: forward parity per family, longrope, quantized.

Every oracle loads the checkpoint with its family's pins (eager attention; Gemma 1's tanh GELU),
checks that they took, and records what the checkpoint itself says beside what ran
(``hidden_act_in_checkpoint_config`` / ``hidden_act_used``, ``rope_scaling``). A longrope reference
adds ``attention_scaling`` (mscale) and a per-case ``regime``: ``short``, and ``long`` for a prompt
past ``original_max_position_embeddings``, where the long factors take over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from mi_oracle.devices import DTYPES, resolve_device
from mi_oracle.errors import ReferenceDataError
from mi_oracle.json_files import read_json
from mi_oracle.references.families import Family
from mi_oracle.references.forward_reference import model_fields, run_case
from mi_oracle.references.numbers import deterministic_torch
from mi_oracle.references.provenance import ENVIRONMENT_KEY, environment_block, model_record, platform_label
from mi_oracle.references.tokenizer import load_tokenizer

SCHEMA_VERSION = "0.1.24"
ROPE_PARAMETER_KEYS_NOT_SCALING = ("rope_theta", "partial_rotary_factor")


def checkpoint_config(model_dir: Path) -> dict[str, Any]:
    """The checkpoint's ``config.json`` as written (transformers rewrites some fields on load)."""
    return read_json(Path(model_dir) / "config.json", ReferenceDataError)


def rope_scaling(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """The checkpoint's RoPE scaling: ``rope_scaling`` as written, or the scaling entries of
    ``rope_parameters`` (transformers 5's name); ``None`` for plain RoPE."""
    if raw.get("rope_scaling") is not None:
        return dict(raw["rope_scaling"])
    parameters = raw.get("rope_parameters") or {}
    if parameters.get("rope_type", "default") == "default":
        return None
    return {key: value for key, value in parameters.items() if key not in ROPE_PARAMETER_KEYS_NOT_SCALING}


def load_pinned(model_dir: Path, family: Family, dtype: torch.dtype, device: torch.device, reference: str):
    """The model with ``family``'s pins, each checked to have taken; and the activation the
    checkpoint's own config names."""
    from transformers import AutoConfig, AutoModelForCausalLM

    raw = checkpoint_config(model_dir)
    if raw.get("model_type") != family.model_type:
        raise ReferenceDataError(
            f"{reference}: {model_dir}/config.json: model_type is {raw.get('model_type')!r}, "
            f"family {family.slug} expects {family.model_type!r}"
        )
    config = AutoConfig.from_pretrained(model_dir)
    if family.hidden_act is not None:
        config.hidden_act = family.hidden_act
    quantized = "quantization_config" in raw  # placed by its backend, not moved after loading
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        config=config,
        dtype=dtype,
        attn_implementation=family.attention,
        **({"device_map": {"": str(device)}} if quantized else {}),
    )
    model = (model if quantized else model.to(device)).eval()
    if model.config._attn_implementation != family.attention:
        raise ReferenceDataError(
            f"{reference}: attention is {model.config._attn_implementation}, not {family.attention}"
        )
    if family.hidden_act is not None and getattr(model.config, "hidden_act", None) != family.hidden_act:
        raise ReferenceDataError(f"{reference}: the activation pin to {family.hidden_act} did not take")
    return model, raw


def long_prompt(tokenizer: Any, text: str, past: int) -> str:
    """``text`` repeated (space-joined) the fewest times that tokenize to more than ``past`` tokens."""
    per_copy = max(1, len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    copies = past // per_copy + 1
    while len(tokenizer(" ".join([text] * copies), add_special_tokens=True)["input_ids"]) <= past:
        copies += 1
    return " ".join([text] * copies)


def longrope_fields(model: Any, raw: Mapping[str, Any], reference: str) -> dict[str, Any]:
    """``attention_scaling`` (the mscale transformers derives) and the short/long threshold."""
    scaling = rope_scaling(raw) or {}
    if scaling.get("rope_type", scaling.get("type")) != "longrope":
        raise ReferenceDataError(
            f"{reference}: config.json: rope_scaling.rope_type is {scaling.get('rope_type')!r}, "
            "expected 'longrope'"
        )
    original = raw.get("original_max_position_embeddings") or scaling.get("original_max_position_embeddings")
    if original is None:
        raise ReferenceDataError(f"{reference}: config.json: original_max_position_embeddings is missing")
    return {
        "attention_scaling": float(model.model.rotary_emb.attention_scaling),
        "original_max_position_embeddings": int(original),
    }


def forward_parity_reference(
    reference: str,
    family: Family,
    prompts: Sequence[str],
    model_dir: Path,
    settings: Mapping[str, Any],
    long_text: str | None = None,
    arm: str | None = None,
) -> dict[str, Any]:
    """The candle-mi 0.1.24 forward reference ``reference`` of ``prompts`` on the model in ``model_dir``.

    ``long_text`` (longrope) adds ``attention_scaling`` and a ``long``-regime case: that text
    repeated past the checkpoint's ``original_max_position_embeddings``. ``arm`` names the entry
    in the methodology and environment (default: the family's slug).
    """
    import transformers

    device = resolve_device(settings["device"])
    model_info = model_record(model_dir)
    with deterministic_torch(threads=settings["threads"]):
        tokenizer = load_tokenizer(model_dir)
        model, raw = load_pinned(model_dir, family, DTYPES[settings["dtype"]], device, reference)
        config = model.config
        extra = longrope_fields(model, raw, reference) if long_text is not None else {}
        cases = [{"prompt": prompt, **run_case(model, tokenizer, prompt, device)} for prompt in prompts]
        if extra:
            cases = [{"prompt": case["prompt"], "regime": "short", **case} for case in cases]
            text = long_prompt(tokenizer, long_text, extra["original_max_position_embeddings"])
            cases.append({"prompt": text, "regime": "long", **run_case(model, tokenizer, text, device)})
    fields = model_fields(model)
    fields.pop("use_qk_norm")
    recorded = {
        "attn_logit_softcapping": getattr(config, "attn_logit_softcapping", None),
        "final_logit_softcapping": getattr(config, "final_logit_softcapping", None),
        "hidden_act_in_checkpoint_config": raw.get("hidden_act", raw.get("hidden_activation")),
        "hidden_act_used": getattr(config, "hidden_act", getattr(config, "hidden_activation", None)),
    }
    return {
        "model_repo": model_info["repo"] or model_info["name"],
        "methodology": (
            f"mi-oracle {SCHEMA_VERSION}: transformers AutoModelForCausalLM, {settings['dtype']} "
            f"{device.type.upper()}, {family.attention} attention; {arm or family.slug} arm"
        ),
        "torch_version": str(torch.__version__),
        "transformers_version": str(transformers.__version__),
        "platform": platform_label(),
        "model_type": config.model_type,
        **fields,
        "rope_scaling": rope_scaling(raw),
        **{key: recorded[key] for key in family.extra_fields},
        **extra,
        **({"quantization_config": raw["quantization_config"]} if "quantization_config" in raw else {}),
        "test_cases": cases,
        ENVIRONMENT_KEY: environment_block(
            device.type,
            settings["dtype"],
            schema_version=SCHEMA_VERSION,
            family=arm or family.slug,
            attn_implementation=config._attn_implementation,
            model={**model_info, "model_type": config.model_type},
        ),
    }
