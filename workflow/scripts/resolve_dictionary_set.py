"""Snakemake adapter for rule resolve_dictionary_set: see mi_oracle.dictionaries.resolve."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.dictionaries.resolve import ResolveRequest, resolve_set
from mi_oracle.layout import CURATION_FILE
from mi_oracle.references.plan import layers_by_reference
from mi_oracle.retry import retry_transient
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    synthetic = snakemake.input.get("synthetic")
    request = ResolveRequest(
        snakemake.wildcards.set,
        snakemake.params.definition,
        Path(snakemake.input.model),
        snakemake.params.layers,
        snakemake.params.capture_layers,
        snakemake.params.local_roots,
        Path(snakemake.output.manifest),
        Path(snakemake.output.files),
        curation_path=Path(synthetic) / CURATION_FILE if synthetic else None,
        reference_layers=layers_by_reference(snakemake.params.references),
    )
    retry_transient(resolve_set, request)
