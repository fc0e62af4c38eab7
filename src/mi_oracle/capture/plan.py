"""Tokenize a prompt set once and split it into shards of about a configured token count.

The plan folder holds ``_plan.json`` (Parquet readers skip it) and one tokens table per
shard (``part-<shard>.parquet``: prompt_id, source_line, text, token_ids, n_tokens, truncated;
``source_line`` is the prompt's line in the prompt file, its row for Parquet). Capture
jobs read their shard's table, so every job sees exactly the tokens the plan recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mi_oracle.atomic import atomic_directory
from mi_oracle.capture.prompts import describe_prompt_set, read_prompts
from mi_oracle.checked_json import read_checked_json, write_checked_json
from mi_oracle.layout import PLAN_FILE, shard_name, tokens_file
from mi_oracle.models.provenance import model_identity
from mi_oracle.parquet_files import WRITE_OPTIONS, record_sha256

log = logging.getLogger(__name__)

TOKENS_SCHEMA = pa.schema(
    [
        ("prompt_id", pa.int64()),
        ("source_line", pa.int64()),
        ("text", pa.string()),
        ("token_ids", pa.list_(pa.int32())),
        ("n_tokens", pa.int32()),
        ("truncated", pa.bool_()),
    ]
)


def tokenize(
    tokenizer: Any, prompts: list[str], max_length: int, add_special_tokens: bool
) -> tuple[list[list[int]], list[bool]]:
    """Token ids of each prompt, truncated to ``max_length`` tokens, and which were truncated."""
    encoded = tokenizer(prompts, add_special_tokens=add_special_tokens, truncation=False)["input_ids"]
    return [list(ids[:max_length]) for ids in encoded], [len(ids) > max_length for ids in encoded]


def split_into_shards(lengths: list[int], shard_tokens: int) -> list[list[int]]:
    """Consecutive prompt indices grouped so each shard holds about ``shard_tokens`` tokens."""
    shards: list[list[int]] = [[]]
    total = 0
    for index, length in enumerate(lengths):
        if shards[-1] and total + length > shard_tokens:
            shards.append([])
            total = 0
        shards[-1].append(index)
        total += length
    return shards


def make_plan(
    model_dir: Path, prompts_path: Path, capture: Mapping[str, Any], text_field: str, target: Path
) -> dict[str, Any]:
    """Tokenize the prompt set with the model's tokenizer and write the plan folder at ``target``."""
    from transformers import AutoTokenizer

    prompt_set = read_prompts(prompts_path, text_field)
    prompts = prompt_set.texts
    if prompt_set.blank_lines:
        log.warning(
            "%s: %d blank lines skipped (lines %s); prompt ids count prompts, not lines: each tokens "
            "table's source_line column gives a prompt's line",
            prompts_path,
            len(prompt_set.blank_lines),
            ", ".join(map(str, prompt_set.blank_lines[:10]))
            + (" ..." if len(prompt_set.blank_lines) > 10 else ""),
        )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    token_ids, truncated = tokenize(tokenizer, prompts, capture["max_length"], capture["add_special_tokens"])
    shards = split_into_shards([len(ids) for ids in token_ids], capture["shard_tokens"])
    plan = {
        "prompt_set": describe_prompt_set(prompts_path, prompt_set),
        "model": model_identity(model_dir),
        "tokenization": {
            "tokenizer_class": type(tokenizer).__name__,
            "add_special_tokens": capture["add_special_tokens"],
            "bos_token_id": tokenizer.bos_token_id,
            "starts_with_bos": all(ids[:1] == [tokenizer.bos_token_id] for ids in token_ids),
            "max_length": capture["max_length"],
            "truncation": "right, to max_length tokens",
            "n_truncated": sum(truncated),
            "padding": "right; padded positions are never written",
        },
        "n_tokens": sum(len(ids) for ids in token_ids),
        "shards": [
            {
                "shard": shard_name(i),
                "first_prompt": members[0],
                "n_prompts": len(members),
                "n_tokens": sum(len(token_ids[m]) for m in members),
            }
            for i, members in enumerate(shards)
        ],
    }
    with atomic_directory(Path(target)) as staging:
        for i, members in enumerate(shards):
            table = pa.table(
                {
                    "prompt_id": list(members),
                    "source_line": [prompt_set.sources[m] for m in members],
                    "text": [prompts[m] for m in members],
                    "token_ids": [token_ids[m] for m in members],
                    "n_tokens": [len(token_ids[m]) for m in members],
                    "truncated": [truncated[m] for m in members],
                },
                schema=TOKENS_SCHEMA,
            )
            path = tokens_file(staging, shard_name(i))
            pq.write_table(table, path, **WRITE_OPTIONS)
            record_sha256(path)
        write_checked_json(staging / PLAN_FILE, plan)
    log.info("%d prompts, %d tokens, %d shards", len(prompts), plan["n_tokens"], len(shards))
    return plan


def read_plan(tokens_dir: Path) -> dict[str, Any]:
    """The capture plan of a tokens folder, checked against its recorded hash."""
    return read_checked_json(Path(tokens_dir) / PLAN_FILE, "capture plan")
