"""Snakemake adapter for rule crossval_capture: see mi_oracle.crossval.capture."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.atomic import write_json_atomic
from mi_oracle.crossval.capture import compare_capture
from mi_oracle.layout import tokens_file
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    shard = snakemake.params.shard
    result = compare_capture(
        Path(snakemake.input.model),
        tokens_file(snakemake.input.tokens, shard),
        Path(snakemake.params.activations),
        shard,
        [tuple(point) for point in snakemake.params.points],
        n_prompts=snakemake.params.prompts,
        peers={peer: Path(folder) for peer, folder in snakemake.params.peers.items()},
    )
    write_json_atomic(Path(snakemake.output[0]), result)
