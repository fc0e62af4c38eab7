"""Snakemake adapter for rule fetch_model: see mi_oracle.models.fetch."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.models.fetch import fetch_model
from mi_oracle.retry import retry_transient
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    retry_transient(
        fetch_model, snakemake.params.model, snakemake.params.local_roots, Path(snakemake.output[0])
    )
