"""Small JSON side files (a capture plan, a shard's metric sums) with their content hash recorded
beside them, as the Parquet files have: a changed byte is refused by name, whatever its mtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mi_oracle.atomic import write_json_atomic
from mi_oracle.json_files import read_json
from mi_oracle.parquet_files import record_sha256, verify_sha256


def write_checked_json(path: Path, document: Any) -> None:
    """Write ``document`` to ``path`` (temporary name, then rename) and record its hash beside it."""
    write_json_atomic(Path(path), document)
    record_sha256(Path(path))


def read_checked_json(path: Path, what: str) -> dict:
    """The JSON object at ``path``, refused unless its bytes have the hash recorded beside it."""
    verify_sha256(Path(path), what)
    return read_json(Path(path))
