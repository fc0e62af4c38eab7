"""Snakemake adapter for rule build_synthetic_dictionaries: see mi_oracle.dictionaries.synthetic
(named, not imported: the step runs in its numerics' interpreter, which alone loads torch)."""

import _src_path  # noqa: F401

from mi_oracle.numerics.mode import numerics_from_config
from mi_oracle.rule_logging import logged_to

NUMERICS = numerics_from_config(snakemake.params.numerics, "synthetic")

with logged_to(snakemake.log[0]):
    NUMERICS.run(
        "mi_oracle.dictionaries.synthetic:build_one",
        name=snakemake.wildcards.set,
        definition=dict(snakemake.params.definition),
        calibration_dir=snakemake.input.calibration,
        target=snakemake.output[0],
        numerics={"mode": NUMERICS.mode, "threads": NUMERICS.threads},
    )
