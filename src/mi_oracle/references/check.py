"""check_references: every generated reference graded against a folder of committed ones, with the bars
of candle-mi's test for its kind; one job writes the check and the resurrection table.

Strict (``references.strict``, a folder of this config's own references): a difference past a bar, a
reference not made on this machine, a reference without a committed copy and a committed file the
config does not generate each fail the job, listed at once, and nothing is written. Not strict (a
folder shared with others, as candle-mi's ``scripts/``, or not there yet): rows without a copy say
so, and the table records failures in ``pass``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mi_oracle.atomic import write_json_atomic
from mi_oracle.errors import ReferenceDataError
from mi_oracle.references.compare import differences_summary
from mi_oracle.references.item import ReferenceItem
from mi_oracle.references.kinds import bars_for
from mi_oracle.references.kinds.base import NEEDS_GPU
from mi_oracle.references.resurrection import NO_COPY, resurrection_table, write_resurrection_table

log = logging.getLogger(__name__)


def differences(
    table: Mapping[str, Any], items: Sequence[ReferenceItem], committed_dir: Path | None, strict: bool
) -> list[str]:
    """Every difference a strict check fails on (a non-strict one: only the failing rows'), one a
    line: inputs first, then values; strict also a reference not made here, one without a
    committed copy, and a committed file no item makes."""
    if committed_dir is None:
        return []
    found, inputs = [], []
    for row, item in zip(table["rows"], items, strict=True):
        committed = committed_dir / row["reference"]
        if row["verdict"] == "fails":
            for failure in row["failures"]:
                (inputs if failure.startswith("inputs differ") else found).append(f"{committed}: {failure}")
        elif row["verdict"] == NO_COPY and strict:
            found.append(f"{committed}: missing (the config generates {item.name}, kind {item.kind})")
        elif row["verdict"] == NEEDS_GPU and strict:
            found.append(
                f"{committed}: {item.name} was not made here: it needs {' and '.join(row['missing'])}"
            )
    if strict:
        names = {item.name for item in items}
        found += [
            f"{stray}: committed, but the config generates no reference named {stray.stem!r}"
            for stray in sorted(committed_dir.glob("*.json"))
            if stray.stem not in names
        ]
    return inputs + found


def check_references(
    items: Sequence[Mapping[str, Any]],
    folders: Mapping[str, Path],
    committed_dir: Path | None,
    outputs: Mapping[str, Path],
    strict: bool = True,
) -> dict[str, Any]:
    """Grade; write the check (``outputs["check"]``) and the table (``json``, ``markdown``,
    ``html``); a strict check with differences raises listing every one and writes nothing.
    Without a committed folder every row says "no committed copy" (the table still records what
    each reference was made from)."""
    committed_dir = None if committed_dir is None else Path(committed_dir)
    if committed_dir is not None and strict and not committed_dir.is_dir():
        raise ReferenceDataError(f"references.committed: {committed_dir} is not a directory")
    if committed_dir is not None and not committed_dir.is_dir():  # not strict: no copies (yet)
        log.warning("references.committed: %s is not a directory (yet): no committed copies", committed_dir)
    typed = [ReferenceItem.from_json(item) for item in items]
    table = resurrection_table(typed, folders, committed_dir)
    found = differences(table, typed, committed_dir, strict)
    if found and strict:
        message = differences_summary(found)
        log.error("%d difference(s) from %s:\n%s", len(found), committed_dir, message)
        raise ReferenceDataError(
            f"{len(found)} difference(s) between the generated references and {committed_dir}:\n{message}"
        )
    rows = {row["reference"].removesuffix(".json"): row for row in table["rows"]}
    ordered = sorted(typed, key=lambda item: item.name)
    # each reference's bars on the device it ran on (a quantized one by its scheme)
    bars = {
        item.name: bars_for(item.kind, rows[item.name].get("device", "cpu"), item.scheme) for item in ordered
    }
    summary = {
        "committed": None if committed_dir is None else str(committed_dir),
        "compared": {item.name: item.kind for item in ordered},
        "bars": {name: bar.label for name, bar in bars.items()},
        "tolerances": {
            name: {field: vars(tolerance) for field, tolerance in bar.tolerances.items()}
            for name, bar in bars.items()
        },
        "pass": not found,
        "differences": found,
    }
    write_resurrection_table(table, outputs)
    write_json_atomic(Path(outputs["check"]), summary)
    log.info("%d references graded against %s: %s", len(typed), committed_dir, table["counts"])
    return summary
