"""Snakemake adapter for rule candle_mi_reference: see mi_oracle.references.suite."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.numerics.mode import Numerics
from mi_oracle.references.suite import write_suite_reference
from mi_oracle.retry import retry_transient
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    model = snakemake.input.get("model")
    manifest = snakemake.input.get("manifest")
    retry_transient(
        write_suite_reference,
        snakemake.params.item,
        snakemake.params.options,
        Path(model) if model else None,
        Path(manifest) if manifest else None,
        Path(snakemake.output[0]),
        Numerics(snakemake.params.numerics["mode"], snakemake.params.numerics["threads"]),
    )
