"""Adapter for rules generate_reference and generate_native_reference: see mi_oracle.references.generate."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.numerics.job_process import enter
from mi_oracle.numerics.mode import Numerics

NUMERICS = Numerics(snakemake.params.numerics["mode"], snakemake.params.numerics["threads"])
enter(NUMERICS)  # before torch loads: a portable job runs in its numerics itself

from mi_oracle.references.generate import write_reference  # noqa: E402
from mi_oracle.rule_logging import logged_to  # noqa: E402

with logged_to(snakemake.log[0]):
    manifest = snakemake.input.get("manifest")
    write_reference(
        snakemake.params.item,
        snakemake.params.options,
        Path(snakemake.input.model),
        Path(manifest) if manifest else None,
        Path(snakemake.output.reference),
        Path(snakemake.output.provenance),
        numerics=NUMERICS,
    )
