"""The peer rules' entry points: build a peer's job from the workflow's files and run it in the
peer environment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mi_oracle.dictionaries.manifest import read_manifest
from mi_oracle.encoding.plan import encoding_files
from mi_oracle.parquet_files import verify_sha256
from mi_oracle.peers.jobs import MAX_TOKENS, circuit_tracer_job
from mi_oracle.peers.launch import run_peer


def run_circuit_tracer(
    python: Path,
    script: Path,
    manifest_paths: Sequence[Path],
    shard_points: Mapping[str, Any],
    references: Mapping[str, Mapping[str, Any]],
    capture: Mapping[str, Any] | None,
    out_dir: Path,
    threads: int,
) -> dict[str, Any]:
    """circuit-tracer on every transcoder set: reference residuals, captured activations, its capture.
    ``shard_points``: the capture's hooks, layers, run and shard each set's encoded layers are read in."""
    manifests = {manifest.name: manifest for manifest in map(read_manifest, manifest_paths)}
    points = {name: encoding_files(manifest, **shard_points) for name, manifest in manifests.items()}
    if capture:
        verify_sha256(Path(capture["tokens"]), "tokens table")
    # paths relative to the workdir (the peer runs in it): the job moves with the folder
    job = circuit_tracer_job(manifests, points, references, capture, Path(), MAX_TOKENS)
    idle = None if job["sets"] else "no transcoder set here that circuit-tracer can load"
    return run_peer("circuit-tracer", python, script, job, out_dir, threads, idle=idle)


def run_nnsight(python: Path, script: Path, capture: Mapping[str, Any], out_dir: Path, threads: int):
    """nnsight's capture of every hook point on the first prompts."""
    verify_sha256(Path(capture["tokens"]), "tokens table")
    return run_peer("nnsight", python, script, dict(capture), out_dir, threads)
