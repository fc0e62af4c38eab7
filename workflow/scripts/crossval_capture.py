"""Snakemake adapter for rule crossval_capture: see mi_oracle.crossval.capture."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.atomic import write_json_atomic
from mi_oracle.crossval.capture import compare_capture
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    first = Path(snakemake.input.activations[0])
    shard = first.stem
    model_dir = Path(snakemake.input.model)
    result = compare_capture(
        model_dir,
        Path(snakemake.input.tokens) / f"{shard}.parquet",
        first.parents[2],
        [tuple(point) for point in snakemake.params.points],
        n_prompts=snakemake.params.prompts,
    )
    write_json_atomic(Path(snakemake.output[0]), result)
