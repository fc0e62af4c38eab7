"""The capture stage as Snakemake runs it: a shard plan, one job per shard, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from mi_oracle.crossval.capture import compare_capture
from mi_oracle.layout import report_path
from mi_oracle.parquet_files import read_metadata, record_sha256
from tests.builders import WORDS, save_tiny_causal_lm
from tests.conftest import NO_PEERS, run_snakemake, snakemake_command, write_config

pytestmark = pytest.mark.slow


def tiny_workflow(tmp_path: Path, n_prompts: int, **capture: object) -> Path:
    save_tiny_causal_lm(tmp_path / "models" / "tiny", "llama")
    prompts = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(3 + i % 17)) for i in range(n_prompts)]
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n")
    config = {
        "models": {"tiny": {"source": "local", "path": "models/tiny"}},
        "local_roots": ["."],
        "prompts": {"path": "prompts.txt"},
        "capture": {
            "run": "t",
            "hooks": ["resid_post", "mlp_out"],
            "layers": [0, 2],
            "threads": 1,
            **capture,
        },
        "crossval": NO_PEERS,
    }
    return write_config(tmp_path / "config.yaml", config)


def completed_files(root: Path) -> list[Path]:
    return sorted(root.rglob("part-*.parquet")) if root.exists() else []


def test_one_job_per_shard_and_a_dataset_of_every_token(tmp_path):
    configfile = tiny_workflow(tmp_path, 60, shard_tokens=200, batch_tokens=64)
    result = run_snakemake(tmp_path, configfile)
    plan = json.loads((tmp_path / "results" / "tokens" / "t" / "_plan.json").read_text())
    n_shards = len(plan["shards"])
    assert n_shards >= 3
    assert all(s["n_tokens"] <= 200 for s in plan["shards"])
    assert (result.stdout + result.stderr).count("rule capture_activations:") == n_shards
    root = tmp_path / "results" / "activations" / "t"
    assert len(completed_files(root)) == n_shards * 4
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == plan["n_tokens"] * 4
    tokens = pq.read_table(tmp_path / "results" / "tokens" / "t")
    assert tokens.num_rows == 60 and sum(tokens["n_tokens"].to_pylist()) == plan["n_tokens"]
    meta = read_metadata(root / "hook=mlp_out" / "layer=2" / "part-00001.parquet")
    assert meta["prompt_set"]["sha256"] == plan["prompt_set"]["sha256"]
    assert meta["tokenization"]["starts_with_bos"] is True and meta["shard"] == "00001"
    assert list((tmp_path / "results" / "benchmarks" / "capture_activations" / "t").glob("part-*.tsv"))
    again = run_snakemake(tmp_path, configfile, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_killed_capture_leaves_nothing_complete_and_a_rerun_finishes(tmp_path):
    configfile = tiny_workflow(tmp_path, 3000, shard_tokens=1_000_000, batch_tokens=8)
    command = snakemake_command(tmp_path, configfile, "--cores", "1")
    root = tmp_path / "results" / "activations" / "t"
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        while not list(root.rglob(".part-*.partial")):
            assert process.poll() is None, "the capture finished before it could be killed"
            assert time.monotonic() < deadline, "no capture started"
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert list(root.rglob(".part-*.partial"))
    assert completed_files(root) == []
    assert ds.dataset(root, format="parquet", partitioning="hive").count_rows() == 0

    run_snakemake(tmp_path, configfile, "--unlock")
    run_snakemake(tmp_path, configfile)
    plan = json.loads((tmp_path / "results" / "tokens" / "t" / "_plan.json").read_text())
    assert len(completed_files(root)) == 4
    assert ds.dataset(root, format="parquet", partitioning="hive").count_rows() == plan["n_tokens"] * 4


def test_default_run_captures_every_default_hook_and_layer(embedded_workdir):
    plan = json.loads((embedded_workdir / "results" / "tokens" / "default" / "_plan.json").read_text())
    assert plan["n_tokens"] > 5000 and plan["prompt_set"]["n_prompts"] >= 180
    assert plan["tokenization"]["starts_with_bos"] is True
    root = embedded_workdir / "results" / "activations" / "default"
    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    counts = (
        dataset.to_table(columns=["hook", "layer"]).group_by(["hook", "layer"]).aggregate([([], "count_all")])
    )
    got = {(row["hook"], row["layer"]): row["count_all"] for row in counts.to_pylist()}
    hooks = ["resid_pre", "attn_out", "resid_mid", "ln2_normalized", "mlp_in", "mlp_out", "resid_post"]
    assert got == {(hook, layer): plan["n_tokens"] for hook in hooks for layer in (0, 9, 17)}
    meta = read_metadata(root / "hook=resid_post" / "layer=17" / "part-00000.parquet")
    assert meta["model"]["repo"] == "google/gemma-3-270m" and meta["model"]["model_type"] == "gemma3_text"
    assert (
        meta["hf_module"] == "model.layers.17:output"
        and meta["transformer_lens"] == "blocks.17.hook_resid_post"
    )
    assert dataset.schema.field("activation").type.list_size == 640


def test_the_capture_cross_check_passes_and_catches_a_planted_difference(tmp_path):
    configfile = tiny_workflow(tmp_path, 12, shard_tokens=400, batch_tokens=64)
    run_snakemake(tmp_path, configfile)
    report = json.loads((tmp_path / report_path("t", "json")).read_text())
    assert report["pass"] is True
    assert {(p["hook"], p["layer"]) for p in report["capture"]["points"] if p["hf"].get("pass")} == {
        ("resid_post", 0),
        ("resid_post", 2),
    }
    assert all(p["transformer_lens"]["pass"] for p in report["capture"]["points"])

    root = tmp_path / "results" / "activations" / "t"
    path = root / "hook=resid_post" / "layer=0" / "part-00000.parquet"
    table = pq.read_table(path)
    rows = table.column("activation").to_pylist()
    first_prompt = pq.read_table(tmp_path / "results" / "tokens" / "t" / "part-00000.parquet")["prompt_id"][0]
    planted = table.column("prompt_id").to_pylist().index(first_prompt.as_py())
    rows[planted] = [value + 1.0 for value in rows[planted]]
    column = pa.array(rows, type=table.schema.field("activation").type)
    pq.write_table(table.set_column(table.schema.get_field_index("activation"), "activation", column), path)
    record_sha256(path)  # a faithful write of a wrong value: only the comparison may notice
    points = [("resid_post", 0), ("mlp_out", 2)]
    result = compare_capture(
        tmp_path / "resources" / "models" / "tiny",
        tmp_path / "results" / "tokens" / "t" / "part-00000.parquet",
        root,
        "00000",
        points,
    )
    verdicts = {
        (p["hook"], p["layer"]): (p["hf"].get("pass"), p["transformer_lens"]["pass"])
        for p in result["points"]
    }
    assert verdicts == {("resid_post", 0): (False, False), ("mlp_out", 2): (None, True)}
