"""Stand-ins for every repository config/candle-mi.yaml reads, published on a stand-in hub.

The three real targets (Gemma 2 2B with Gemma Scope, Llama 3.2 1B with its transcoders, Qwen3
1.7B with its CLT) come from tests/real_targets.py; every other family's tiny checkpoint from
tests/family_checkpoints.py; the quantized repositories are tiny Llamas whose config.json carries
each scheme's real ``quantization_config`` (their weights are plain: no backend runs here).
"""

from __future__ import annotations

from pathlib import Path

from tests.builders import save_tiny_causal_lm
from tests.family_checkpoints import CHECKPOINTS, publish_families
from tests.real_targets import (
    GEMMA_WEIGHTS_REPO,
    publish_gemma_2_2b,
    publish_llama_3_2_1b,
    publish_qwen3_1_7b,
)

QUANTIZED = {
    "medmekk/Llama-3.2-1B-Instruct-bnb-nf4": {
        "quant_method": "bitsandbytes",
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_compute_dtype": "float32",
    },
    "casperhansen/llama-3.2-1b-instruct-awq": {
        "quant_method": "awq",
        "bits": 4,
        "group_size": 128,
        "version": "gemm",
        "zero_point": True,
    },
    "shuyuej/Llama-3.2-1B-Instruct-GPTQ": {
        "quant_method": "gptq",
        "bits": 4,
        "group_size": 128,
        "desc_act": False,
        "sym": True,
    },
}
# published by the real targets (with their dictionaries) rather than as family checkpoints
FROM_REAL_TARGETS = ("qwen3", "llama32", "gemma2")


def publish_suite(hub, work: Path) -> dict[str, str]:
    """Every model and dictionary of config/candle-mi.yaml; the commits of the models and of the
    Gemma Scope transcoders, by repository."""
    gemma = publish_gemma_2_2b(hub, work / "gemma-2-2b")
    commits = {
        "google/gemma-2-2b": gemma["model"],
        GEMMA_WEIGHTS_REPO: gemma["weights"],
        "meta-llama/Llama-3.2-1B": publish_llama_3_2_1b(hub, work / "llama-3.2-1b")["model"],
        "Qwen/Qwen3-1.7B-Base": publish_qwen3_1_7b(hub, work / "qwen3-1.7b")["model"],
    }
    slugs = [slug for slug in CHECKPOINTS if slug not in FROM_REAL_TARGETS]
    for slug, commit in publish_families(hub, work / "families", slugs).items():
        commits[CHECKPOINTS[slug][0]] = commit
    for index, (repo, quantization) in enumerate(QUANTIZED.items()):
        folder = save_tiny_causal_lm(
            work / "quantized" / str(index),
            "llama",
            seed=index,
            raw_config={"quantization_config": quantization},
        )
        commits[repo] = hub.add_folder(repo, folder)
    return commits
