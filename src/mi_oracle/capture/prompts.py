"""Prompt sets: a text file (one prompt a line), JSONL or Parquet with a text column."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from mi_oracle.errors import MiOracleError
from mi_oracle.hashing import sha256_file


class PromptSetError(MiOracleError):
    """A prompt set cannot be read or holds no usable prompt."""


def read_prompts(path: Path, text_field: str = "text") -> list[str]:
    """The prompts of ``path`` in file order; empty prompts are refused, not skipped silently."""
    path = Path(path)
    if not path.is_file():
        raise PromptSetError(f"{path}: prompt set not found")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        prompts = [line for _number, line in _lines(path)]
    elif suffix == ".jsonl":
        prompts = [_jsonl_text(path, number, line, text_field) for number, line in _lines(path)]
    elif suffix == ".parquet":
        table = pq.read_table(path)
        if text_field not in table.column_names:
            raise PromptSetError(
                f"{path}: no column {text_field!r}; columns are {', '.join(table.column_names)}"
            )
        prompts = table.column(text_field).to_pylist()
        bad = [i for i, p in enumerate(prompts) if not isinstance(p, str) or not p.strip()]
        if bad:
            raise PromptSetError(f"{path}: rows {bad[:5]} of column {text_field!r} are empty or not text")
    else:
        raise PromptSetError(
            f"{path}: unknown prompt-set format {suffix!r}; expected .txt, .jsonl or .parquet"
        )
    if not prompts:
        raise PromptSetError(f"{path}: no prompts")
    return prompts


def _lines(path: Path):
    """(line number, line) of every non-blank line, split on ``\n`` (and ``\r\n``) only: a form
    feed or U+2028 inside a line is part of the prompt, as in JSON strings written raw."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise PromptSetError(
            f"{path}:{line}: not valid UTF-8 (byte {error.start} of the file: {error.reason})"
        ) from error
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            yield number, line


def _jsonl_text(path: Path, number: int, line: str, text_field: str) -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise PromptSetError(f"{path}:{number}: not valid JSON ({error.msg})") from error
    text = record.get(text_field) if isinstance(record, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise PromptSetError(f"{path}:{number}: expected a non-empty string under key {text_field!r}")
    return text


def describe_prompt_set(path: Path, prompts: list[str]) -> dict[str, object]:
    """Identity of a prompt set for provenance: its file name, sha256 and size."""
    return {"name": Path(path).name, "sha256": sha256_file(path), "n_prompts": len(prompts)}
