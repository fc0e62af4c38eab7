"""Snakemake adapter for rule generate_references, one job per numerics mode: see mi_oracle.references."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.numerics.job_process import enter
from mi_oracle.numerics.mode import Numerics

NUMERICS = Numerics(snakemake.params.numerics["mode"], snakemake.params.numerics["threads"])
enter(NUMERICS)  # before torch loads: a portable job runs in its numerics itself

from mi_oracle.references.generate import write_references  # noqa: E402
from mi_oracle.rule_logging import logged_to  # noqa: E402

with logged_to(snakemake.log[0]):
    write_references(
        snakemake.params.reference_items,
        snakemake.params.options,
        Path(snakemake.input.model),
        {name: Path(path) for name, path in snakemake.params.manifests.items()},
        {
            name: (Path(reference), Path(provenance))
            for name, (reference, provenance) in snakemake.params.outputs.items()
        },
        numerics=NUMERICS,
    )
