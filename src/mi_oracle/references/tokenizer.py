"""The model's tokenizer, loaded once per process for every reference that reads it.

Gemma 3's tokenizer takes seconds to load (a 262k-entry vocabulary parsed from JSON); the
references of one job share it. The cache key holds each file's size and modification time, so
a folder rewritten in place loads afresh.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any


def load_tokenizer(model_dir: Path) -> Any:
    """``AutoTokenizer.from_pretrained(model_dir)``, reused while the folder's files are unchanged."""
    folder = Path(model_dir).resolve()
    files = tuple(
        (path.name, stat.st_size, stat.st_mtime_ns)
        for path in sorted(folder.iterdir())
        if path.is_file() and (stat := path.stat())
    )
    return _load(folder, files)


@lru_cache(maxsize=2)
def _load(folder: Path, files: tuple[tuple[str, int, int], ...]) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)
