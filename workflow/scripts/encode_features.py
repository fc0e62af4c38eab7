"""Snakemake adapter for rule encode_features: see mi_oracle.encoding.run."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.dictionaries.manifest import read_manifest
from mi_oracle.encoding.run import encode_shard
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    manifest_path = Path(snakemake.input.manifest)
    encode_shard(
        read_manifest(manifest_path),
        manifest_path,
        snakemake.params.points,
        Path(snakemake.output[0]),
        snakemake.params.encoding,
        threads=snakemake.threads,
    )
