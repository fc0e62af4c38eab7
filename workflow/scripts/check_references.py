"""Snakemake adapter for rule check_references: see mi_oracle.references.check."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.references.check import check_references
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    committed = snakemake.params.committed
    check_references(
        snakemake.params.references,
        {name: Path(folder) for name, folder in snakemake.params.folders.items()},
        Path(committed) if committed else None,
        {key: Path(snakemake.output[key]) for key in ("check", "json", "markdown", "html")},
        strict=snakemake.params.strict,
    )
