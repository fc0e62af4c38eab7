"""Snakemake adapter for checkpoint plan_capture: see mi_oracle.capture.plan."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.capture.plan import make_plan
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    make_plan(
        Path(snakemake.input.model),
        Path(snakemake.input.prompts),
        snakemake.params.capture,
        snakemake.params.text_field,
        Path(snakemake.output[0]),
    )
