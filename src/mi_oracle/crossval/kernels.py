"""How far references made with this CPU's native kernels lie from the portable ones.

Portable numerics buys the same bytes on every machine; this measures what it changes on the
machine at hand: per reference, the largest absolute and relative difference of any number
(relative to the portable value) and how many integers (indices, counts) differ. A candidate
made on another machine with native kernels should be judged with bars at least this loose.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mi_oracle.json_files import read_json
from mi_oracle.references.compare import PROVENANCE_KEYS


class _Spread:
    def __init__(self) -> None:
        self.values = self.differing_values = self.differing_integers = self.structure = 0
        self.max_abs = self.max_rel = 0.0

    def walk(self, portable: Any, native: Any) -> None:
        if isinstance(portable, dict) and isinstance(native, dict):
            for key in portable.keys() | native.keys():
                if key in PROVENANCE_KEYS:
                    continue
                if key in portable and key in native:
                    self.walk(portable[key], native[key])
                else:
                    self.structure += 1
        elif isinstance(portable, list) and isinstance(native, list):
            self.structure += len(portable) != len(native)
            for a, b in zip(portable, native, strict=False):
                self.walk(a, b)
        elif isinstance(portable, float) and isinstance(native, int | float):
            self.values += 1
            diff = abs(native - portable)
            if diff:
                self.differing_values += 1
                self.max_abs = max(self.max_abs, diff)
                self.max_rel = max(self.max_rel, diff / abs(portable) if portable else float("inf"))
        elif isinstance(portable, int) and not isinstance(portable, bool):
            self.differing_integers += portable != native
        elif portable != native:
            self.structure += 1


def kernel_spread(portable: Mapping[str, Any], native: Mapping[str, Any]) -> dict[str, Any]:
    """Max abs and relative differences of every number, and counts of what differs."""
    spread = _Spread()
    spread.walk(dict(portable), dict(native))
    return {
        "values": spread.values,
        "differing_values": spread.differing_values,
        "max_abs_diff": spread.max_abs,
        "max_rel_diff": spread.max_rel,
        "differing_integers": spread.differing_integers,
        "other_differences": spread.structure,
    }


def _mode(document: Mapping[str, Any]) -> str | None:
    return document.get("environment", {}).get("numerics", {}).get("mode")


def kernel_spreads(
    references: Mapping[str, tuple[str, Path]], native: Mapping[str, Path]
) -> list[dict[str, Any]]:
    """One row per reference that has a native copy: its name, kind, both numerics and the spread."""
    rows = []
    for name, (kind, path) in sorted(references.items()):
        if name not in native or not Path(path).is_file() or not Path(native[name]).is_file():
            continue  # no native copy, or not made on this machine (a quantized one without CUDA)
        portable_doc, native_doc = read_json(path), read_json(native[name])
        modes = [_mode(doc) for doc in (portable_doc, native_doc)]
        rows.append(
            {"reference": name, "kind": kind, "numerics": modes, **kernel_spread(portable_doc, native_doc)}
        )
    return rows
