"""Snakemake adapter for rule peer_nnsight: see mi_oracle.peers.run."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.peers.launch import peer_python
from mi_oracle.peers.run import run_nnsight
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    run_nnsight(
        peer_python(snakemake.params.python, Path(snakemake.scriptdir).resolve().parents[1]),
        Path(snakemake.input.script),
        snakemake.params.capture,
        Path(snakemake.output[0]),
        snakemake.threads,
    )
