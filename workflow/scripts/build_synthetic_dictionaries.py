"""Snakemake adapter for rule build_synthetic_dictionaries: see mi_oracle.dictionaries.synthetic."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.dictionaries.synthetic import build_one
from mi_oracle.numerics.mode import numerics_from_config
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    build_one(
        snakemake.wildcards.set,
        snakemake.params.definition,
        Path(snakemake.input.calibration),
        Path(snakemake.output[0]),
        numerics_from_config(snakemake.params.numerics, "synthetic"),
    )
