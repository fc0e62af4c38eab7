"""The devices section (this run against another run of the same prompts) and the GPU check
script, exercised on this CPU machine: its CUDA steps skipped, each with the reason."""

from __future__ import annotations

import json
import os
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from mi_oracle.crossval.devices import compare_runs
from mi_oracle.crossval.report import render_html
from mi_oracle.layout import activation_path, features_dir, features_file, report_path
from mi_oracle.parquet_files import record_sha256
from tests.conftest import REPO_ROOT, SNAKEMAKE

pytestmark = pytest.mark.slow
POINTS = [("resid_post", 9), ("mlp_out", 17)]


def perturbed_copy(source, target, column: str, change) -> None:
    table = pq.read_table(source)
    values = table[column].to_pylist()
    change(values)
    target.parent.mkdir(parents=True, exist_ok=True)
    field = table.schema.field(column)
    pq.write_table(
        table.set_column(table.schema.get_field_index(column), field, pa.array(values, field.type)), target
    )
    record_sha256(target)  # a faithful write of other values: only the comparison may notice


def test_another_run_is_compared_point_by_point_and_feature_by_feature(
    embedded_workdir, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    for folder in ("activations", "features"):
        (tmp_path / "results" / folder).mkdir(parents=True)
        (tmp_path / "results" / folder / "default").symlink_to(
            embedded_workdir / "results" / folder / "default"
        )
    for hook, layer in POINTS:
        source = embedded_workdir / activation_path("default", hook, layer, "00000")
        target = tmp_path / activation_path("other", hook, layer, "00000")
        perturbed_copy(source, target, "activation", lambda rows: rows[3].__setitem__(7, rows[3][7] + 0.5))
    source = features_file(embedded_workdir / features_dir("default", "synthetic-clt", "00000"), 9)
    target = features_file(tmp_path / features_dir("other", "synthetic-clt", "00000"), 9)
    perturbed_copy(source, target, "feature_values", lambda rows: rows[2].__setitem__(0, rows[2][0] + 1e-3))

    result = compare_runs({"this": "default", "other": "other"}, "00000", POINTS, {"synthetic-clt": [9]})
    assert result["runs"] == {
        "this": {"run": "default", "device": "cpu"},
        "other": {"run": "other", "device": "cpu"},
    }
    for row in result["activations"]:
        assert row["max_abs_diff"] == pytest.approx(0.5, rel=1e-5) and row["n_tokens"] > 1000
    (features,) = result["features"]
    assert features["flips"] == 0 and features["max_abs_diff"] == pytest.approx(1e-3, rel=1e-3)
    report = json.loads((embedded_workdir / report_path("default", "json")).read_text())
    report["devices"]["comparison"] = result
    html = render_html(report)
    assert "Run <code>default</code> (cpu) against run <code>other</code> (cpu), shard 00000" in html
    assert "<td>synthetic-clt</td><td>9</td>" in html


def test_the_gpu_check_runs_here_with_its_cuda_steps_skipped_by_reason(embedded_workdir, tmp_path):
    out = tmp_path / "gpu_check"
    env = {**os.environ, "CORES": "2", "SNAKEMAKE": str(SNAKEMAKE)}
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "benchmarks" / "gpu_check.sh"), str(out)],
        cwd=embedded_workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = (out / "SUMMARY.md").read_text()
    device = json.loads((out / "device.json").read_text())
    assert device["cuda_available"] is torch.cuda.is_available()
    gpu = yaml.safe_load((out / "gpu.yaml").read_text())
    assert (gpu["capture"]["run"], gpu["capture"]["device"], gpu["encoding"]["device"]) == (
        "gpu",
        "cuda",
        "cuda",
    )
    assert gpu["crossval"]["compare_run"] == "default"
    assert "CPU run (run default): done" in summary
    if torch.cuda.is_available():
        report = json.loads((out / "crossval.json").read_text())
        assert report["devices"]["comparison"]["runs"]["this"]["device"] == "cuda"
        assert json.loads((out / "capture_cuda.json").read_text())["device"] == "cuda"
        families = json.loads((out / "gpu_references.json").read_text())["families"]
        assert all(row["verdict"] != "fails" for row in families)
    else:
        for step in (
            "CUDA run",
            "devices section (CPU against CUDA)",
            "capture benchmark on CUDA",
            "encode benchmark on CUDA",
            "candle-mi suite's GPU rows (gpu_references.py)",
        ):
            assert f"{step}: skipped: no CUDA device (torch.cuda.is_available() is False)" in summary
        planned = (out / "gpu_run_dry.log").read_text()
        # the capture plan of run gpu; its capture jobs follow from that checkpoint
        assert "checkpoint plan_capture:" in planned and "output: results/tokens/gpu" in planned
