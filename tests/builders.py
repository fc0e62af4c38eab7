"""Small models the tests build themselves, in the real Hugging Face folder layout."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

WORDS = ("the", "capital", "of", "france", "is", "paris", "a", "city", "in", "europe", "and", "river")
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]

TINY_ARCHITECTURES = {
    "gemma2": {"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 8},
    "llama": {"head_dim": 16},
    "qwen3": {"head_dim": 16},
    "qwen2": {},
    "mistral": {"head_dim": 16, "sliding_window": 8},
    "gemma": {"head_dim": 16},
    "gemma3_text": {"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 8},
    "phi3": {},
    "starcoder2": {"sliding_window": 8},
}


def save_tiny_tokenizer(folder: Path) -> int:
    """Write a word-level tokenizer (tokenizer.json + tokenizer_config.json); return its vocab size."""
    vocab = {token: index for index, token in enumerate([*SPECIALS, *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(folder)
    return len(vocab)


def save_tiny_causal_lm(
    folder: Path,
    model_type: str = "gemma2",
    seed: int = 0,
    raw_config: dict | None = None,
    **overrides: object,
) -> Path:
    """Save a randomly initialised, tiny model of a real architecture with its tokenizer;
    ``raw_config`` entries are then written into config.json as a real checkpoint has them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = save_tiny_tokenizer(folder)
    sizes = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 64,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
    }
    config = AutoConfig.for_model(
        model_type, **{**sizes, **TINY_ARCHITECTURES.get(model_type, {}), **overrides}
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    if raw_config:
        path = folder / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **raw_config}, indent=2))
    return folder
