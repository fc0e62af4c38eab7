"""Snakemake adapter for rule build_synthetic_dictionaries: see mi_oracle.dictionaries.synthetic."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.dictionaries.synthetic import build_synthetic_sets
from mi_oracle.numerics.mode import numerics_from_config
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    definitions = snakemake.params.definitions
    build_synthetic_sets(
        Path(snakemake.input.model),
        Path(snakemake.input.tokens),
        definitions,
        dict(zip(definitions, map(Path, snakemake.output), strict=True)),
        snakemake.params.capture,
        snakemake.params.calibration_tokens,
        numerics_from_config(snakemake.params.numerics, "synthetic"),
    )
