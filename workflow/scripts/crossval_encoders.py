"""Snakemake adapter for rule crossval_encoders: see mi_oracle.crossval.encoders."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.atomic import write_json_atomic
from mi_oracle.crossval.encoders import compare_layer
from mi_oracle.dictionaries.manifest import read_manifest
from mi_oracle.encoding.plan import encoding_files
from mi_oracle.layout import features_file
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    peer = snakemake.params.peers.get("circuit-tracer")
    for item in snakemake.params.sets.values():
        manifest = read_manifest(Path(item["manifest"]))
        points = encoding_files(manifest, **snakemake.params.points)
        results = [
            compare_layer(
                manifest,
                layer,
                features_file(item["features"], layer),
                Path(inputs),
                Path.cwd(),
                circuit_tracer=Path(peer) if peer else None,
            )
            for layer, inputs, _ in points
        ]
        write_json_atomic(Path(item["output"]), results)
