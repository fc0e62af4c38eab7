"""Compare two references of one kind: their inputs' hashes, and field by field within the kind's
bars (``references/kinds``).

Every difference is named: the file, the case (``layer 8, seed 108`` or the prompt), the field
path and both values. Provenance fields (``environment``, library versions, platform) are not
compared: they say what made the file, not what it claims.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mi_oracle.errors import ReferenceDataError
from mi_oracle.json_files import read_json
from mi_oracle.references.kinds import bars_for, kind_named
from mi_oracle.references.tolerance import Tolerance

PROVENANCE_KEYS = frozenset({"environment", "torch_version", "transformers_version", "platform"})


def schema_version(document: Mapping[str, Any], kind: str) -> str:
    """The candle-mi schema version of a ``kind`` reference: as recorded, else by its fields (what
    only the newest schema carries, the kind's ``newest_marker``): a committed reference of the
    other version is compared on the fields both carry."""
    recorded = (document.get("environment") or {}).get("schema_version")
    if recorded:
        return recorded
    marker = kind_named(kind).newest_marker
    return "0.1.24" if marker and marker in document else "0.1.12"


def one_sided_fields(expected: Mapping[str, Any], actual: Mapping[str, Any], kind: str) -> set[str]:
    """Across schema versions: the fields only one reference carries, and the methodology."""
    if schema_version(expected, kind) == schema_version(actual, kind):
        return set()
    return (expected.keys() ^ actual.keys()) | {"methodology"}


def case_label(case: Any, index: int) -> str:
    """How a test case is named in a difference: its layer and seed, its prompt, or its index."""
    if isinstance(case, Mapping):
        if "layer" in case and "seed" in case:
            return f"layer {case['layer']}, seed {case['seed']}"
        if "prompt" in case:
            return f"prompt {case['prompt']!r}"
    return f"#{index}"


def _describe(value: Any) -> str:
    text = json.dumps(value, allow_nan=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "list", dict: "object", type(None): "null"}[type(value)]


class FieldWalker:
    """Walks a generated document beside another, naming every field that differs past its tolerance."""

    def __init__(self, tolerances: Mapping[str, Tolerance]) -> None:
        self.tolerances = tolerances
        self.found: list[str] = []

    def walk(self, expected: Any, actual: Any, path: str, field: str) -> None:
        if _type_name(expected) != _type_name(actual):
            self.found.append(
                f"{path}: expected a {_type_name(expected)} ({_describe(expected)}), "
                f"got a {_type_name(actual)} ({_describe(actual)})"
            )
        elif isinstance(expected, dict):
            self._object(expected, actual, path)
        elif isinstance(expected, list):
            self._list(expected, actual, path, field)
        elif isinstance(expected, float) or isinstance(actual, float):
            self._number(float(expected), float(actual), path, field)
        elif expected != actual:
            self.found.append(f"{path}: expected {_describe(expected)}, got {_describe(actual)}")

    def _object(self, expected: dict, actual: dict, path: str) -> None:
        prefix = f"{path}." if path else ""
        for key in expected:
            if key not in actual:
                self.found.append(f"{prefix}{key}: missing (expected {_describe(expected[key])})")
            else:
                self.walk(expected[key], actual[key], f"{prefix}{key}", key)
        for key in actual:
            if key not in expected:
                self.found.append(f"{prefix}{key}: unexpected key ({_describe(actual[key])})")

    def _list(self, expected: list, actual: list, path: str, field: str) -> None:
        if field == "test_cases":
            self._cases(expected, actual, path)
            return
        if len(expected) != len(actual):
            self.found.append(f"{path}: {len(actual)} items, expected {len(expected)}")
        for index, (e, a) in enumerate(zip(expected, actual, strict=False)):
            self.walk(e, a, f"{path}[{index}]", field)

    def _cases(self, expected: list, actual: list, path: str) -> None:
        want = {case_label(case, i): case for i, case in enumerate(expected)}
        have = {case_label(case, i): case for i, case in enumerate(actual)}
        for label, case in want.items():
            if label not in have:
                self.found.append(f"{path}[{label}]: case missing")
            else:
                self.walk(case, have[label], f"{path}[{label}]", "")
        for label in have:
            if label not in want:
                self.found.append(f"{path}[{label}]: unexpected case")

    def _number(self, expected: float, actual: float, path: str, field: str) -> None:
        tolerance = self.tolerances.get(field, self.tolerances["*"])
        if math.isnan(actual) or math.isinf(actual):
            self.found.append(f"{path}: got {actual}, expected {expected!r}")
        elif not tolerance.accepts(expected, actual):
            self.found.append(
                f"{path}: expected {expected!r}, got {actual!r} "
                f"(diff {abs(actual - expected):.3g} > tolerance {tolerance.atol:g}"
                + (f" + {tolerance.rtol:g} x |expected|)" if tolerance.rtol else ")")
            )


EXACT = {"*": Tolerance(0.0)}


def compare_documents(
    expected: Mapping[str, Any], actual: Mapping[str, Any], kind: str, exact: bool = False
) -> list[str]:
    """Every difference of ``actual`` from ``expected`` beyond ``kind``'s tolerances (any, if ``exact``)."""
    walker = FieldWalker(EXACT if exact else bars_for(kind).tolerances)
    skipped = PROVENANCE_KEYS | one_sided_fields(expected, actual, kind)
    strip = lambda document: {k: v for k, v in document.items() if k not in skipped}  # noqa: E731
    walker.walk(strip(expected), strip(actual), "", "")
    return walker.found


def recorded_inputs(document: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Every input file a reference's ``environment`` records: label -> (file, sha256).

    Model weight files by path; dictionary files by set, layer and place in the layer's list
    (their paths can differ: a synthetic NPZ's folder names its mean L0).
    """
    environment = document.get("environment")
    environment = environment if isinstance(environment, Mapping) else {}
    found: dict[str, tuple[str, str]] = {}
    model = environment.get("model") if isinstance(environment.get("model"), Mapping) else {}
    for path, sha256 in sorted((model.get("weights_sha256") or {}).items()):
        found[f"model {model.get('repo') or model.get('name')}: {path}"] = (path, sha256)
    dictionary = environment.get("dictionary") if isinstance(environment.get("dictionary"), Mapping) else {}
    per_layer: dict[Any, int] = {}
    for record in dictionary.get("files") or []:
        place = per_layer[record.get("layer")] = per_layer.get(record.get("layer"), 0) + 1
        label = f"set {dictionary.get('set')} layer {record.get('layer')} file {place}"
        found[label] = (Path(str(record.get("source"))).name, record.get("sha256"))
    return found


def input_differences(expected: Mapping[str, Any], actual: Mapping[str, Any], names=("expected", "got")):
    """One line per input file whose sha256 differs between two references (both must record it)."""
    want, have = recorded_inputs(expected), recorded_inputs(actual)
    lines = []
    for label in sorted(want.keys() & have.keys()):
        (file, want_sha), (_, have_sha) = want[label], have[label]
        if want_sha != have_sha:
            lines.append(
                f"inputs differ: {label} ({file}): sha256 {str(want_sha)[:16]}... {names[0]}, "
                f"{str(have_sha)[:16]}... {names[1]}"
            )
    return lines


def read_reference(path: Path) -> dict[str, Any]:
    """A reference JSON object, or an error naming the file."""
    return read_json(path, ReferenceDataError)


def differences_summary(found: Sequence[str], limit: int = 200) -> str:
    """The differences as one message, one a line (the first ``limit``, then a count)."""
    lines = list(found[:limit])
    if len(found) > limit:
        lines.append(f"... and {len(found) - limit} more")
    return "\n".join(lines)
