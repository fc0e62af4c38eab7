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


def recorded_rope_scaling(raw: Mapping[str, Any], theta: float | None) -> dict[str, Any] | None:
    """``rope_scaling`` as candle-mi's scripts record it (what transformers 5 makes of the
    checkpoint's): the checkpoint's own entries, then ``rope_theta`` and ``rope_type``."""
    scaling = rope_scaling(raw)
    if scaling is None:
        return None
    return {**scaling, "rope_theta": theta, "rope_type": scaling.get("rope_type", scaling.get("type"))}


def config_values(model: Any, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Every config field a forward reference may carry (a family picks which, in its order)."""
    config = model.config
    attention = model.model.layers[0].self_attn
    values = {"model_type": config.model_type, **model_fields(model)}
    bias = getattr(config, "attention_bias", None)
    values |= {
        "rope_scaling": recorded_rope_scaling(raw, values["rope_theta"]),
        "attn_logit_softcapping": getattr(config, "attn_logit_softcapping", None),
        "final_logit_softcapping": getattr(config, "final_logit_softcapping", None),
        "query_pre_attn_scalar": getattr(config, "query_pre_attn_scalar", None),
        "hidden_act_in_checkpoint_config": raw.get("hidden_act", raw.get("hidden_activation")),
        "hidden_act_used": getattr(config, "hidden_act", getattr(config, "hidden_activation", None)),
        # the model's own when its config does not say (transformers 5's Qwen2Config)
        "attention_bias": bias
        if bias is not None
        else getattr(getattr(attention, "q_proj", None), "bias", None) is not None,
        "norm_epsilon": getattr(config, "norm_epsilon", None),
        "use_bias": getattr(config, "use_bias", None),
        # transformers 5.23's Starcoder2Config has no norm_type: the model's own final norm says
        "norm_type": getattr(config, "norm_type", None)
        or ("layer_norm" if isinstance(getattr(model.model, "norm", None), torch.nn.LayerNorm) else None),
        "sliding_window": getattr(config, "sliding_window", None),
    }
    return values


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
    fields: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The candle-mi 0.1.24 forward reference ``reference`` of ``prompts`` on the model in ``model_dir``.

    ``long_text`` (longrope) adds ``attention_scaling`` and a ``long``-regime case: that text
    repeated past the checkpoint's ``original_max_position_embeddings``. ``arm`` names the entry
    in the methodology and environment (default: the family's slug); ``fields`` the fields between
    ``platform`` and ``test_cases`` (default: the family's).
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
    values, wanted = config_values(model, raw), fields or family.fields
    return {
        "model_repo": model_info["repo"] or model_info["name"],
        "methodology": (
            f"mi-oracle {SCHEMA_VERSION}: transformers AutoModelForCausalLM, {settings['dtype']} "
            f"{device.type.upper()}, {family.attention} attention; {arm or family.slug} arm"
        ),
        "torch_version": str(torch.__version__),
        "transformers_version": str(transformers.__version__),
        "platform": platform_label(),
        **{key: values[key] for key in wanted},
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
