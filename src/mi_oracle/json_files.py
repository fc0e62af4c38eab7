"""JSON object files read with an error that names the file and fits what it is."""

from __future__ import annotations

import json
from pathlib import Path

from mi_oracle.errors import DataFileError, MiOracleError


def read_json(path: Path, error_type: type[MiOracleError] = DataFileError) -> dict:
    """Parse a JSON object file; on failure raise ``error_type`` naming the file."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise error_type(f"{path}: cannot read as JSON ({error})") from error
    if not isinstance(value, dict):
        raise error_type(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value
