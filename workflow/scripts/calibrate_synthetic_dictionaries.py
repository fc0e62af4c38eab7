"""Snakemake adapter for rule calibrate_synthetic_dictionaries: see mi_oracle.dictionaries.synthetic."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.numerics.job_process import enter
from mi_oracle.numerics.mode import numerics_from_config

NUMERICS = numerics_from_config(snakemake.params.numerics, "synthetic")
enter(NUMERICS)  # before torch loads: this job runs in its numerics itself

from mi_oracle.dictionaries.synthetic import calibrate_from_prompts  # noqa: E402
from mi_oracle.rule_logging import logged_to  # noqa: E402

with logged_to(snakemake.log[0]):
    calibrate_from_prompts(
        Path(snakemake.input.model),
        Path(snakemake.input.prompts),
        snakemake.params.plan,
        snakemake.params.text_field,
        snakemake.params.definitions,
        Path(snakemake.output[0]),
        snakemake.params.capture,
        snakemake.params.calibration_tokens,
        NUMERICS,
    )
