"""``forward`` reference: per prompt, the tokens, the top-10 next-token logits and the final residual.

``last_residual_f32`` is the last position's input to the LM head: ``hidden_states[-1]``,
which carries the final norm (candle-mi's forward oracles read the same tensor).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from mi_oracle.devices import DTYPES, resolve_device
from mi_oracle.references.numbers import TOP_K, deterministic_torch, f32, f32_list, top_indices
from mi_oracle.references.provenance import ENVIRONMENT_KEY, environment_block, model_record, platform_label
from mi_oracle.references.tokenizer import load_tokenizer

METHODOLOGY = "mi-oracle: transformers AutoModelForCausalLM forward, logits of the last position"


def rope_theta(config: Any) -> float | None:
    """The RoPE base: a flat attribute, flat ``rope_parameters``, or the full-attention entry of them."""
    if getattr(config, "rope_theta", None) is not None:
        return float(config.rope_theta)
    parameters = getattr(config, "rope_parameters", None) or {}
    if "rope_theta" in parameters:
        return float(parameters["rope_theta"])
    full = parameters.get("full_attention") or {}
    return float(full["rope_theta"]) if "rope_theta" in full else None


def model_fields(model: torch.nn.Module) -> dict[str, Any]:
    """The configuration fields candle-mi's forward tests compare, in their order."""
    config = model.config
    attention = model.model.layers[0].self_attn
    return {
        "hidden_size": config.hidden_size,
        "num_layers": config.num_hidden_layers,
        "vocab_size": config.vocab_size,
        "head_dim": getattr(config, "head_dim", config.hidden_size // config.num_attention_heads),
        "num_attention_heads": config.num_attention_heads,
        "num_kv_heads": config.num_key_value_heads,
        "max_position_embeddings": getattr(config, "max_position_embeddings", None),
        "rope_theta": rope_theta(config),
        "rms_norm_eps": getattr(config, "rms_norm_eps", None),
        "use_qk_norm": hasattr(attention, "q_norm"),
    }


def run_case(model: Any, tokenizer: Any, prompt: str, device: torch.device) -> dict[str, Any]:
    """Tokens, top-10 logits of the last position and its final residual (post final norm)."""
    ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    with torch.inference_mode():
        outputs = model(
            input_ids=torch.tensor([ids], device=device),
            output_hidden_states=True,
            use_cache=False,
            logits_to_keep=1,
        )
    logits = outputs.logits[0, -1].to(torch.float32).cpu().numpy()
    return {
        "tokens": ids,
        "top_10": [{"index": int(i), "logit": f32(logits[i])} for i in top_indices(logits, TOP_K)],
        "last_residual_f32": f32_list(outputs.hidden_states[-1][0, -1]),
    }


def forward_reference(prompts: Sequence[str], model_dir: Path, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``forward`` reference of ``prompts`` on the model in ``model_dir``."""
    import transformers
    from transformers import AutoModelForCausalLM

    device = resolve_device(settings["device"])
    model_info = model_record(model_dir)
    with deterministic_torch(threads=settings["threads"]):
        tokenizer = load_tokenizer(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=DTYPES[settings["dtype"]])
        model = model.to(device).eval()
        cases = [{"prompt": prompt, **run_case(model, tokenizer, prompt, device)} for prompt in prompts]
    return {
        "model_repo": model_info["repo"] or model_info["name"],
        "methodology": METHODOLOGY,
        "torch_version": str(torch.__version__),
        "transformers_version": str(transformers.__version__),
        "platform": platform_label(),
        **model_fields(model),
        "test_cases": cases,
        ENVIRONMENT_KEY: environment_block(
            device.type, settings["dtype"], model={**model_info, "model_type": model.config.model_type}
        ),
    }
