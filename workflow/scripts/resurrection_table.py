"""Snakemake adapter for rule resurrection_table: see mi_oracle.references.resurrection."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.references.resurrection import write_resurrection_table
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    items = snakemake.params.references
    write_resurrection_table(
        items,
        {item["name"]: Path(folder) for item, folder in zip(items, snakemake.input.references, strict=True)},
        None if snakemake.params.committed is None else Path(snakemake.params.committed),
        {key: Path(snakemake.output[key]) for key in ("json", "markdown", "html")},
    )
