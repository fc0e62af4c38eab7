"""Snakemake adapter for rule check_references: see mi_oracle.references.check."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.references.check import check_references
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    kinds = snakemake.params.kinds
    paths = [Path(path) for path in snakemake.input.references]
    committed = snakemake.params.committed
    check_references(
        {name: (kinds[name], path) for name, path in zip(kinds, paths, strict=True)},
        Path(committed) if committed else None,
        Path(snakemake.output[0]),
    )
