"""The workflow submitted to a real one-node SLURM cluster with profiles/slurm.

Runs where root and Debian's SLURM packages are available (README's test command installs
them); in CI it fails when they are not, elsewhere it skips, saying why.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mi_oracle.parquet_files import METADATA_KEY, read_metadata, verify_sha256
from tests.conftest import REPO_ROOT, run_snakemake, snakemake_command
from tests.slurm_cluster import slurm_cluster, unavailable_reason
from tests.test_capture_workflow import tiny_workflow

pytestmark = pytest.mark.slow

SLURM_ARGS = (
    "--workflow-profile",
    str(REPO_ROOT / "profiles" / "slurm"),
    # No accounting on the test cluster: poll with squeue (the profile explains the choice).
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--slurm-keep-successful-logs",
    # Exercise GPU requests through gres (the node declares gpu:1 backed by /dev/null).
    "--set-resources",
    "capture_activations:gpu=1",
)


@pytest.fixture(scope="module")
def cluster():
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SLURM test: {reason}")
        pytest.skip(reason)
    with slurm_cluster() as logs:
        yield logs


def outputs(workdir: Path) -> dict[str, object]:
    """Every result file a run produced (activations and token tables), by relative path: the bytes,
    or for Parquet its rows and its metadata but the hardware record (a node may differ from the
    submit host, and its threads do: the record says so, the data must not). A file's sha256 sidecar
    is checked against the file it names instead (it hashes the hardware record too)."""
    results = workdir / "results"
    found: dict[str, object] = {}
    for folder in ("activations", "tokens"):
        for path in sorted((results / folder).rglob("*")):
            if not path.is_file():
                continue
            if path.name.startswith("_") and path.suffix in (".blake3", ".sha256"):
                verify_sha256(path.with_name(path.name[1:].removesuffix(path.suffix)), "data file")
                continue
            if path.suffix == ".parquet":
                table = pq.read_table(path)
                metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k != METADATA_KEY}
                if METADATA_KEY in (table.schema.metadata or {}):
                    record = read_metadata(path)
                    assert record["environment"]["hardware"]["cpu"]["vendor"]
                    record["environment"].pop("hardware")
                    metadata["record"] = record
                found[str(path.relative_to(results))] = (table.replace_schema_metadata(None), metadata)
            else:
                found[str(path.relative_to(results))] = path.read_bytes()
    return found


def prepare(tmp_path: Path, name: str) -> tuple[Path, Path]:
    workdir = tmp_path / name
    workdir.mkdir()
    return workdir, tiny_workflow(workdir, 40, shard_tokens=150, batch_tokens=64)


@pytest.fixture(scope="module")
def local_outputs(tmp_path_factory) -> dict[str, object]:
    """The same workflow run locally, for the SLURM run to match."""
    local_dir, local_config = prepare(tmp_path_factory.mktemp("slurm-local"), "local")
    run_snakemake(local_dir, local_config)
    return outputs(local_dir)


def test_the_dag_runs_through_slurm_retries_a_cancelled_job_and_matches_a_local_run(
    cluster, local_outputs, tmp_path
):
    """One SLURM run: every job submitted through the profile, one capture job cancelled while it
    runs (scancel), retried by Snakemake, and no partial output accepted: the results match a
    local run's."""
    workdir, configfile = prepare(tmp_path, "slurm")
    command = snakemake_command(workdir, configfile, *SLURM_ARGS)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cancelled = None
    deadline = time.monotonic() + 300
    while cancelled is None and time.monotonic() < deadline and process.poll() is None:
        queue = subprocess.run(["squeue", "-h", "-o", "%i %T %k"], capture_output=True, text=True).stdout
        for job_id, state, comment in (line.split(maxsplit=2) for line in queue.splitlines() if line.strip()):
            if state == "RUNNING" and "capture_activations" in comment:
                subprocess.run(["scancel", job_id], check=True)
                cancelled = job_id
                break
        time.sleep(0.2)
    log, _ = process.communicate(timeout=600)
    assert cancelled is not None, f"no capture job was seen running:\n{log[-3000:]}"
    assert process.returncode == 0, log[-5000:]
    assert re.search(rf"{cancelled}.*(CANCELLED|failed)|(CANCELLED|failed).*{cancelled}", log, re.IGNORECASE)

    submitted = dict(re.findall(r"SLURM jobid (\d+) \(log: [^)]*/rule_(\w+)/", log))
    assert cancelled in submitted
    assert sorted(set(submitted.values())) == ["capture_activations", "crossval_capture", "plan_capture"]
    n_capture_jobs = list(submitted.values()).count("capture_activations")
    assert n_capture_jobs >= 3  # one job per shard (at least two), plus the cancelled one's retry
    controller_log = (cluster / "slurmctld.log").read_text()
    finished = [job_id for job_id in submitted if job_id != cancelled]
    for job_id in finished:  # fetch_model, crossval_report and all stay local
        assert re.search(rf"(sched: Allocate|_start_job: Started) JobId={job_id} ", controller_log)
        assert re.search(rf"_job_complete: JobId={job_id} WEXITSTATUS 0", controller_log)
    slurm_logs = list((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert {p.stem for p in slurm_logs} >= set(finished)
    for job_id, rule in submitted.items():  # the GPU request reached SLURM as a gres, on capture jobs only
        record = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        assert bool(re.search(r"gres[:/]gpu", record)) == (rule == "capture_activations"), record

    assert outputs(workdir) == local_outputs
