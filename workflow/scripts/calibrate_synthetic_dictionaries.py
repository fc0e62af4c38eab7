"""Snakemake adapter for rule calibrate_synthetic_dictionaries: see mi_oracle.dictionaries.synthetic."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.dictionaries.synthetic import calibrate
from mi_oracle.numerics.mode import numerics_from_config
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    calibrate(
        Path(snakemake.input.model),
        Path(snakemake.input.tokens),
        snakemake.params.definitions,
        Path(snakemake.output[0]),
        snakemake.params.capture,
        snakemake.params.calibration_tokens,
        numerics_from_config(snakemake.params.numerics, "synthetic"),
    )
