"""Snakemake adapter for rule calibrate_synthetic_dictionaries: see mi_oracle.dictionaries.synthetic
(named, not imported: the step runs in its numerics' interpreter, which alone loads torch)."""

import _src_path  # noqa: F401

from mi_oracle.numerics.mode import numerics_from_config
from mi_oracle.rule_logging import logged_to

NUMERICS = numerics_from_config(snakemake.params.numerics, "synthetic")

with logged_to(snakemake.log[0]):
    NUMERICS.run(
        "mi_oracle.dictionaries.synthetic:calibrate_from_prompts",
        model_dir=snakemake.input.model,
        prompts_path=snakemake.input.prompts,
        plan_settings=dict(snakemake.params.plan),
        text_field=snakemake.params.text_field,
        definitions=dict(snakemake.params.definitions),
        target=snakemake.output[0],
        capture_settings=dict(snakemake.params.capture),
        calibration_tokens=snakemake.params.calibration_tokens,
        numerics={"mode": NUMERICS.mode, "threads": NUMERICS.threads},
    )
