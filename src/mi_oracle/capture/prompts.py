"""Prompt sets: a text file (one prompt a line), JSONL or Parquet with a text column."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mi_oracle.errors import MiOracleError
from mi_oracle.hashing import sha256_file


class PromptSetError(MiOracleError):
    """A prompt set cannot be read or holds no usable prompt."""


@dataclass(frozen=True)
class PromptSet:
    """The prompts of a file in order; prompt id ``i`` is ``texts[i]``, read from line (or Parquet
    row) ``sources[i]``. Blank lines are skipped, and listed, so ids after one differ from lines."""

    texts: list[str]
    sources: list[int]
    blank_lines: list[int] = field(default_factory=list)


def read_prompts(path: Path, text_field: str = "text") -> PromptSet:
    """The prompts of ``path`` in file order; empty prompts are refused (Parquet, JSONL records) or
    skipped and reported (blank lines of a text or JSONL file)."""
    path = Path(path)
    if not path.is_file():
        raise PromptSetError(f"{path}: prompt set not found")
    suffix = path.suffix.lower()
    if suffix in (".txt", ".jsonl"):
        lines, blank = _lines(path)
        if suffix == ".txt":
            texts = [line for _number, line in lines]
        else:
            texts = [_jsonl_text(path, number, line, text_field) for number, line in lines]
        prompts = PromptSet(texts, [number for number, _line in lines], blank)
    elif suffix == ".parquet":
        prompts = _parquet_prompts(path, text_field)
    else:
        raise PromptSetError(
            f"{path}: unknown prompt-set format {suffix!r}; expected .txt, .jsonl or .parquet"
        )
    if not prompts.texts:
        raise PromptSetError(f"{path}: no prompts")
    return prompts


def _parquet_prompts(path: Path, text_field: str) -> PromptSet:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise PromptSetError(f"{path}: not a readable Parquet file ({error})") from error
    if text_field not in table.column_names:
        raise PromptSetError(f"{path}: no column {text_field!r}; columns are {', '.join(table.column_names)}")
    texts = table.column(text_field).to_pylist()
    bad = [i for i, p in enumerate(texts) if not isinstance(p, str) or not p.strip()]
    if bad:
        raise PromptSetError(f"{path}: rows {bad[:5]} of column {text_field!r} are empty or not text")
    return PromptSet(texts, list(range(len(texts))))


def _lines(path: Path) -> tuple[list[tuple[int, str]], list[int]]:
    """((line number, line) of every non-blank line, numbers of the blank lines). Lines split on
    ``\n`` (and ``\r\n``) only: a form feed or U+2028 inside a line is part of the prompt, as in
    JSON strings written raw. A final newline ends the last line; it does not make a blank one."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise PromptSetError(
            f"{path}:{line}: not valid UTF-8 (byte {error.start} of the file: {error.reason})"
        ) from error
    lines, blank = [], []
    for number, line in enumerate(text.removesuffix("\n").split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            lines.append((number, line))
        else:
            blank.append(number)
    return lines, blank


def _jsonl_text(path: Path, number: int, line: str, text_field: str) -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise PromptSetError(f"{path}:{number}: not valid JSON ({error.msg})") from error
    text = record.get(text_field) if isinstance(record, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise PromptSetError(f"{path}:{number}: expected a non-empty string under key {text_field!r}")
    return text


def describe_prompt_set(path: Path, prompts: PromptSet) -> dict[str, object]:
    """Identity of a prompt set for provenance: file name, sha256, size, and the blank lines skipped
    (prompt ids count prompts, not lines: the tokens tables map each id to its ``source_line``)."""
    return {
        "name": Path(path).name,
        "sha256": sha256_file(path),
        "n_prompts": len(prompts.texts),
        "renumbered": bool(prompts.blank_lines) and min(prompts.blank_lines) < prompts.sources[-1],
        "n_blank_lines_skipped": len(prompts.blank_lines),
        "blank_lines_skipped": prompts.blank_lines[:100],
    }
