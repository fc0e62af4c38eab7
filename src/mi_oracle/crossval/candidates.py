"""Candidate references (another implementation's JSON, named like ours) graded against ours."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mi_oracle.crossval.bars import judge_candidate
from mi_oracle.errors import ReferenceDataError
from mi_oracle.references.compare import input_differences, read_reference


def _read_candidate(path: Path) -> dict[str, Any] | str:
    """The candidate document, or why it cannot be read (NaN and Infinity are accepted to be named)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"not readable as JSON ({error})"
    return document if isinstance(document, dict) else f"a JSON {type(document).__name__}, not an object"


def grade_candidates(references: Mapping[str, tuple[str, Path]], folder: Path | None) -> list[dict[str, Any]]:
    """One entry per candidate file in ``folder``: its reference, kind, grade and named failures."""
    if folder is None:
        return []
    if not Path(folder).is_dir():
        raise ReferenceDataError(f"crossval.candidates: {folder} is not a directory")
    results = []
    for path in sorted(Path(folder).glob("*.json")):
        entry: dict[str, Any] = {"candidate": str(path), "reference": path.stem}
        if path.stem not in references:
            known = ", ".join(sorted(references)) or "none"
            results.append(
                {**entry, "grade": "fail", "failures": [f"no reference named {path.stem!r} ({known})"]}
            )
            continue
        kind, reference_path = references[path.stem]
        candidate = _read_candidate(path)
        if isinstance(candidate, str):
            results.append({**entry, "kind": kind, "grade": "fail", "failures": [candidate]})
            continue
        reference = read_reference(reference_path)
        judged = judge_candidate(reference, candidate, kind)
        inputs = input_differences(reference, candidate, ("generated", "candidate"))
        if inputs:  # named first: a candidate made from other weights cannot validate against this one
            follow = [f"{len(judged['failures'])} bar failure(s), from the different inputs"]
            judged = {**judged, "grade": "fail", "failures": inputs + (follow if judged["failures"] else [])}
        results.append({**entry, "kind": kind, **judged})
    return results
