"""Snakemake adapter for rule generate_references, one job per model and numerics mode: see
mi_oracle.references.generate (a portable step runs in a child interpreter started pinned)."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.numerics.mode import Numerics
from mi_oracle.references.generate import write_model_references
from mi_oracle.retry import retry_transient
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    model = snakemake.input.get("model")
    retry_transient(
        write_model_references,
        snakemake.params.references,
        snakemake.params.options,
        Path(model) if model else None,
        {name: Path(path) for name, path in snakemake.params.manifests.items()},
        Path(snakemake.output[0]),
        Numerics(snakemake.params.numerics["mode"], snakemake.params.numerics["threads"]),
    )
