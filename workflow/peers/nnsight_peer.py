"""nnsight as an independent capture peer, run in the peer virtual environment (never mi-oracle's).

Traces the Hugging Face model with nnsight's ``LanguageModel`` and saves each hook point by its
module path (this file's own table, written from the Hugging Face module tree), prompt by prompt
with no padding. Writes ``capture.npz``: ``<hook>@<layer>`` -> [tokens, d_model] float32.

Usage: python nnsight_peer.py JOB.json OUT_DIR
"""

from __future__ import annotations

import json
import os
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from nnsight import LanguageModel, save
from transformers import PreTrainedTokenizerFast

# hook -> (module path inside decoder layer, "input" or "output"); "" is the layer itself.
GEMMA = {
    "resid_pre": ("", "input"),
    "attn_out": ("post_attention_layernorm", "output"),
    "resid_mid": ("pre_feedforward_layernorm", "input"),
    "ln2_normalized": ("pre_feedforward_layernorm.source.self__norm_0", "output"),
    "mlp_in": ("pre_feedforward_layernorm", "output"),
    "mlp_out": ("post_feedforward_layernorm", "output"),
    "resid_post": ("", "output"),
}
LLAMA = {
    "resid_pre": ("", "input"),
    "attn_out": ("self_attn", "output"),
    "resid_mid": ("post_attention_layernorm", "input"),
    "mlp_in": ("post_attention_layernorm", "output"),
    "mlp_out": ("mlp", "output"),
    "resid_post": ("", "output"),
}
MODULE_PATHS = {
    "Gemma2ForCausalLM": GEMMA,
    "Gemma3ForCausalLM": GEMMA,
    "LlamaForCausalLM": LLAMA,
    "MistralForCausalLM": LLAMA,
    "Qwen2ForCausalLM": LLAMA,
    "Qwen3ForCausalLM": LLAMA,
}


def tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    """The folder's fast tokenizer, from tokenizer.json alone: the prompts come as token ids, and a
    tokenizer_config.json written by transformers 5 names a class 4.57 does not have."""
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    special = {
        key: config[key]
        for key in ("bos_token", "eos_token", "pad_token", "unk_token")
        if isinstance(config.get(key), str)
    }
    return PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), **special)


def first(value):
    """A module's hidden-state output (decoder layers and attention return tuples)."""
    return value[0] if isinstance(value, tuple) else value


def envoy_at(layer, path: str):
    for name in filter(None, path.split(".")):
        layer = getattr(layer, name)
    return layer


def main(job_path: str, out_dir: str) -> None:
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    torch.set_num_threads(int(os.environ.get("PEER_THREADS", "1")))
    model = LanguageModel(
        job["model_dir"],
        tokenizer=tokenizer(Path(job["model_dir"])),
        device_map="cpu",
        dtype=torch.float32,
        dispatch=True,
    )
    architecture = model._model.config.architectures[0]
    if architecture not in MODULE_PATHS:
        raise SystemExit(f"nnsight peer: no module paths for {architecture} ({', '.join(MODULE_PATHS)})")
    paths = MODULE_PATHS[architecture]
    points = [(hook, layer) for layer in job["layers"] for hook in job["hooks"] if hook in paths]
    tokens = pq.read_table(job["tokens"], columns=["prompt_id", "token_ids"]).slice(0, job["n_prompts"])
    arrays: dict[str, list[np.ndarray]] = {}
    for ids in tokens["token_ids"].to_pylist():
        saved = {}
        with torch.inference_mode(), model.trace(torch.tensor([ids])):
            for hook, layer in points:  # in execution order: layer by layer, hooks in forward order
                path, io = paths[hook]
                envoy = envoy_at(model.model.layers[layer], path)
                value = envoy.output if io == "output" else envoy.input
                saved[f"{hook}@{layer}"] = save(first(value))
        for key, value in saved.items():
            arrays.setdefault(key, []).append(value[0].float().numpy())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "capture.npz", "wb") as handle:
        np.savez(handle, **{key: np.concatenate(parts) for key, parts in arrays.items()})
    versions = {p: version(p) for p in ("nnsight", "transformers", "torch")}
    (out / "versions.json").write_text(json.dumps(versions, indent=1) + "\n", encoding="utf-8")
    print(f"nnsight peer: {architecture}, {len(points)} hook points on {len(tokens)} prompts", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
