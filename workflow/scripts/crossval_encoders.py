"""Snakemake adapter for rule crossval_encoders: see mi_oracle.crossval.encoders."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.atomic import write_json_atomic
from mi_oracle.crossval.encoders import compare_layer
from mi_oracle.models.folder import read_json
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    manifest = read_json(Path(snakemake.input.manifest))
    results = []
    for features, activations in zip(snakemake.input.features, snakemake.input.activations, strict=True):
        layer = int(Path(features).parent.name.removeprefix("layer="))
        results.append(compare_layer(manifest, layer, Path(features), Path(activations), Path.cwd()))
    write_json_atomic(Path(snakemake.output[0]), results)
