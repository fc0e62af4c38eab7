"""Snakemake adapter for rule capture_activations: see mi_oracle.capture.run."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.capture.plan import read_plan
from mi_oracle.capture.run import capture_shard
from mi_oracle.layout import tokens_file
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    tokens_dir = Path(snakemake.input.tokens)
    points = [tuple(point) for point in snakemake.params.points]
    capture_shard(
        Path(snakemake.input.model),
        tokens_file(tokens_dir, snakemake.wildcards.shard),
        dict(zip(points, map(Path, snakemake.output), strict=True)),
        snakemake.params.capture,
        read_plan(tokens_dir),
        shard=snakemake.wildcards.shard,
        threads=snakemake.threads,
    )
