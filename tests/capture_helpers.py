"""Helpers for capture tests: write a tokens table and capture it, and a reference forward pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mi_oracle.capture.plan import TOKENS_SCHEMA
from mi_oracle.capture.run import capture_shard
from mi_oracle.hook_points import HOOK_POINTS
from mi_oracle.parquet_files import record_sha256

SETTINGS = {
    "device": "cpu",
    "dtype": "float32",
    "batch_tokens": 4096,
    "max_padding": 0.2,
    "row_group_rows": 4096,
    "compression": "zstd",
    "float_encoding": "byte_stream_split",
    "storage_dtype": "float32",
}
PLAN = {"prompt_set": {"name": "test", "sha256": "0" * 64, "n_prompts": 0}, "tokenization": {}}


def write_tokens(path: Path, token_rows: list[list[int]]) -> Path:
    table = pa.table(
        {
            "prompt_id": list(range(len(token_rows))),
            "source_line": list(range(1, len(token_rows) + 1)),
            "text": ["" for _ in token_rows],
            "token_ids": token_rows,
            "n_tokens": [len(r) for r in token_rows],
            "truncated": [False for _ in token_rows],
        },
        schema=TOKENS_SCHEMA,
    )
    pq.write_table(table, path)
    record_sha256(path)
    return path


def capture(model_dir: Path, token_rows: list[list[int]], layers: list[int], out: Path, **settings) -> dict:
    """Capture every hook at ``layers``; return {(hook, layer): {prompt_id: [n_tokens, d] array}}."""
    out.mkdir(parents=True, exist_ok=True)
    tokens = write_tokens(out / "tokens.parquet", token_rows)
    outputs = {
        (h, layer): out / f"hook={h}" / f"layer={layer}" / "part-00000.parquet"
        for h in HOOK_POINTS
        for layer in layers
    }
    capture_shard(model_dir, tokens, outputs, {**SETTINGS, **settings}, PLAN, "00000", threads=2)
    result = {}
    for key, path in outputs.items():
        table = pq.read_table(path).to_pydict()
        values = np.array(table["activation"], dtype=np.float32)
        per_prompt = {}
        for pid in sorted(set(table["prompt_id"])):
            rows = [i for i, p in enumerate(table["prompt_id"]) if p == pid]
            order = np.argsort([table["position"][i] for i in rows])
            per_prompt[pid] = values[np.array(rows)[order]]
            assert [table["token_id"][rows[i]] for i in order] == token_rows[pid]
        result[key] = per_prompt
    return result


def reference_forward(model_dir: Path, token_ids: list[int]):
    """An unhooked full forward of one prompt alone: hidden states and the model."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        hidden = model.model(input_ids=torch.tensor([token_ids]), output_hidden_states=True).hidden_states
    return model, [h[0].double().numpy() for h in hidden]


def tokenize(model_dir: Path, prompts: list[str]) -> list[list[int]]:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return [tokenizer(p).input_ids for p in prompts]


def fetched_tiny(tmp_path: Path, model_type: str) -> Path:
    """A tiny model placed by the real local fetch (so it has provenance.json)."""
    from mi_oracle.models.local_folder import fetch_local
    from tests.builders import save_tiny_causal_lm

    save_tiny_causal_lm(tmp_path / "src" / model_type, model_type)
    target = tmp_path / "resources" / "models" / model_type
    fetch_local(model_type, f"src/{model_type}", ["src"], target, base=tmp_path)
    return target
