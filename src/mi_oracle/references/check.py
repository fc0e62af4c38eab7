"""check_references: the generated references against a folder of committed ones."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from mi_oracle.atomic import write_json_atomic
from mi_oracle.errors import ReferenceDataError
from mi_oracle.references.compare import KIND_TOLERANCES, check_against_committed, differences_summary

log = logging.getLogger(__name__)


def check_references(
    generated: Mapping[str, tuple[str, Path]], committed_dir: Path | None, output: Path
) -> dict:
    """Compare; write a summary to ``output`` when all agree, else raise listing every difference."""
    if committed_dir is None:
        raise ReferenceDataError(
            "references.committed is not set: name the folder of committed references to check against"
        )
    found = check_against_committed(generated, committed_dir)
    if found:
        message = differences_summary(found)
        log.error("%d difference(s) from %s:\n%s", len(found), committed_dir, message)
        raise ReferenceDataError(
            f"{len(found)} difference(s) between the generated references and {committed_dir}:\n{message}"
        )
    tolerances = {
        kind: {field: vars(tolerance) for field, tolerance in KIND_TOLERANCES[kind].items()}
        for kind in sorted({kind for kind, _ in generated.values()})
    }
    summary = {
        "committed": str(committed_dir),
        "compared": {name: kind for name, (kind, _) in sorted(generated.items())},
        "tolerances": tolerances,
        "differences": [],
    }
    write_json_atomic(output, summary)
    log.info("%d references agree with %s", len(generated), committed_dir)
    return summary
