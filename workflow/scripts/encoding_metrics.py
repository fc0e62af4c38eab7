"""Snakemake adapter for rule encoding_metrics: see mi_oracle.encoding.summary."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.dictionaries.manifest import read_manifest
from mi_oracle.encoding.summary import write_metrics
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    write_metrics(
        read_manifest(Path(snakemake.input.manifest)),
        [Path(path) for path in snakemake.input.shards],
        Path(snakemake.output.metrics),
        Path(snakemake.output.table),
    )
