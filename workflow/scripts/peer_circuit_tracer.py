"""Snakemake adapter for rule peer_circuit_tracer: see mi_oracle.peers.run."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.peers.launch import peer_python
from mi_oracle.peers.run import run_circuit_tracer
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    run_circuit_tracer(
        peer_python(snakemake.params.python, Path(snakemake.scriptdir).resolve().parents[1]),
        Path(snakemake.input.script),
        [Path(path) for path in snakemake.input.manifests],
        snakemake.params.points,
        snakemake.params.references,
        snakemake.params.capture,
        Path(snakemake.output[0]),
        snakemake.threads,
    )
