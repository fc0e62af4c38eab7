"""Tiny random-weight checkpoints of every family candle-mi checks, under the real repository names.

Each is the real architecture with small sizes and the config traits its trap depends on: Gemma 1's
legacy ``hidden_act: gelu``, Gemma 2's soft-capping (small caps, so that dropping them shows in the
logits), Llama 3.2's llama3 RoPE scaling, DeepSeek-Coder's linear scaling, Phi-3.5's longrope
factors past a small ``original_max_position_embeddings``. Weights are drawn wider than the
default init (std 0.2) so that a wrong activation or scaling moves the logits past candle-mi's bars.
"""

from __future__ import annotations

from pathlib import Path

from mi_oracle.models.local_folder import fetch_local
from tests.builders import save_tiny_causal_lm

INIT = {"initializer_range": 0.2}
LONGROPE_ORIGINAL = 16
HEAD_DIM = 16

# slug: (repo, model_type, config overrides, raw config.json entries)
CHECKPOINTS: dict[str, tuple[str, str, dict, dict]] = {
    "qwen3": ("Qwen/Qwen3-1.7B-Base", "qwen3", {}, {}),
    "llama32": (
        "meta-llama/Llama-3.2-1B",
        "llama",
        {
            "rope_parameters": {
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 32.0,
                "high_freq_factor": 4.0,
                "low_freq_factor": 1.0,
                "original_max_position_embeddings": 8,
            }
        },
        {},
    ),
    "gemma": ("google/gemma-2b", "gemma", {}, {"hidden_act": "gelu"}),
    "gemma2": (
        "google/gemma-2-2b",
        "gemma2",
        {"attn_logit_softcapping": 0.5, "final_logit_softcapping": 2.0},
        {},
    ),
    "gemma3": ("google/gemma-3-270m", "gemma3_text", {}, {}),
    "deepseek": (
        "deepseek-ai/deepseek-coder-1.3b-base",
        "llama",
        {"rope_parameters": {"rope_type": "linear", "rope_theta": 100000.0, "factor": 4.0}},
        {},
    ),
    "qwen25coder": ("Qwen/Qwen2.5-Coder-3B-Instruct", "qwen2", {}, {}),
    "starcoder2": ("bigcode/starcoder2-3b", "starcoder2", {}, {}),
    "phi3": ("microsoft/Phi-3-mini-4k-instruct", "phi3", {}, {}),
    "mistral7b": ("mistralai/Mistral-7B-v0.1", "mistral", {}, {}),
    "longrope": (
        "microsoft/Phi-3.5-mini-instruct",
        "phi3",
        {
            "original_max_position_embeddings": LONGROPE_ORIGINAL,
            "rope_parameters": {
                "rope_type": "longrope",
                "rope_theta": 10000.0,
                "short_factor": [1.0 + 0.1 * i for i in range(HEAD_DIM // 2)],
                "long_factor": [1.0 + 2.0 * i for i in range(HEAD_DIM // 2)],
            },
        },
        {},
    ),
}


def save_family_checkpoint(
    folder: Path, slug: str, seed: int = 0, raw_config: dict | None = None, **overrides: object
) -> Path:
    """The tiny checkpoint of family ``slug`` in ``folder`` (``overrides`` change its config,
    ``raw_config`` what its config.json says)."""
    _repo, model_type, config, raw = CHECKPOINTS[slug]
    return save_tiny_causal_lm(
        folder, model_type, seed, raw_config={**raw, **(raw_config or {})}, **{**INIT, **config, **overrides}
    )


def family_model_dir(root: Path, slug: str, label: str = "", **overrides: object) -> Path:
    """A fetched model folder (with its provenance.json) of family ``slug``'s checkpoint."""
    name = f"{slug}{label}"
    source = save_family_checkpoint(root / "checkpoints" / name, slug, **overrides)
    fetch_local(name, str(source), [str(root)], root / "models" / name)
    return root / "models" / name


def publish_families(hub, work: Path, slugs=tuple(CHECKPOINTS)) -> dict[str, str]:
    """Every family's checkpoint on the stand-in hub under its real name; the commits by slug."""
    return {
        slug: hub.add_folder(CHECKPOINTS[slug][0], save_family_checkpoint(work / slug, slug))
        for slug in slugs
    }
