"""The peers in their own environment (.venv-peers: circuit-tracer, nnsight) on the default run:
what they report, and a fault planted in a set's weights that they and the float64 oracle see and
the project's features do not."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mi_oracle.crossval.encoders import compare_layer
from mi_oracle.crossval.summary import encoder_rows
from mi_oracle.dictionaries.manifest import Manifest, read_manifest
from mi_oracle.hashing import digest_file
from mi_oracle.layout import (
    activation_path,
    features_dir,
    features_file,
    manifest_path,
    peer_dir,
    report_path,
)
from mi_oracle.parquet_files import read_parquet
from mi_oracle.peers.jobs import MAX_TOKENS
from mi_oracle.peers.launch import peer_python
from mi_oracle.peers.run import run_circuit_tracer
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow
SET, LAYER, SHARD = "synthetic-plt-npz", 9, "00000"


def test_every_peer_ran_in_its_own_environment_and_agrees(embedded_workdir):
    report = json.loads((embedded_workdir / report_path("default", "json")).read_text())
    points = report["capture"]["points"]
    assert all(p["nnsight"]["pass"] for p in points)  # every hook, ln2_normalized through .source
    known = {p["hook"] for p in points if "pass" in p["circuit-tracer"]}
    assert known == {"resid_mid", "ln2_normalized", "mlp_in", "mlp_out"}  # its Gemma 3 mapping
    transcoders = [e for e in report["encoders"] if e["set"] != "synthetic-sae"]
    assert len(transcoders) == 9 and all(e["circuit_tracer"]["pass"] for e in transcoders)
    graded = {c["reference"]: c["grade"] for c in report["peer_references"]["circuit-tracer"]}
    assert set(graded) == {"plt_gemmascope_reference", "plt_bundle_reference", "clt_reference"}
    assert set(graded.values()) <= {"exact", "pass"}
    rows = {row["comparison"]: row for row in report["summary"]}
    assert rows["capture (21 hook points, 8 prompts)"]["agree"] == "4 of 4"
    assert rows["encoders of synthetic-clt vs float64 oracle (3 layers)"]["agree"] == "3 of 3"
    assert not any(row["not_run"] for row in report["summary"])
    for peer in ("circuit-tracer", "nnsight"):
        status = json.loads((embedded_workdir / peer_dir("default", peer) / "status.json").read_text())
        assert status["status"] == "run" and status["python"].endswith(".venv-peers/bin/python")
        versions = json.loads((embedded_workdir / peer_dir("default", peer) / "versions.json").read_text())
        assert versions["transformers"].startswith("4.57")  # not this environment's 5.x


def most_active_feature(features: Path) -> int:
    rows = read_parquet(features, "features file", ["feature_ids"]).slice(0, MAX_TOKENS)
    counts = Counter(f for ids in rows["feature_ids"].to_pylist() for f in ids)
    return counts.most_common(1)[0][0]


def plant(manifest: Manifest, base: Path, folder: Path, feature: int) -> dict:
    """A copy of the manifest whose layer reads a copy of its weights with one encoder column negated."""
    planted = manifest.to_json()
    record = next(r for r in planted["layers"] if r["layer"] == LAYER)
    source = base / record["files"][0]["local_path"]
    with np.load(source, allow_pickle=False) as params:
        weights = {name: params[name].copy() for name in params.files}
    weights["W_enc"][:, feature] *= -1
    target = folder / "params.npz"
    np.savez(target, **weights)
    record["files"][0].update(local_path=str(target), sha256=digest_file(target).sha256)
    return planted


def test_a_planted_encoder_column_is_named_by_set_layer_and_feature(embedded_workdir, tmp_path, monkeypatch):
    base = embedded_workdir
    manifest = read_manifest(base / manifest_path(SET))
    features = base / features_file(features_dir("default", SET, SHARD), LAYER)
    feature = most_active_feature(features)
    planted = plant(manifest, base, tmp_path, feature)
    (tmp_path / "manifest.json").write_text(json.dumps(planted))
    activations = base / activation_path("default", "ln2_normalized", LAYER, SHARD)
    out = tmp_path / "circuit-tracer"
    monkeypatch.chdir(base)  # the workflow's jobs run in the workdir
    status = run_circuit_tracer(
        peer_python(".venv-peers/bin/python", REPO_ROOT),
        REPO_ROOT / "workflow" / "peers" / "circuit_tracer_peer.py",
        [tmp_path / "manifest.json"],
        {"hooks": ["ln2_normalized", "mlp_out"], "layers": [0, 9, 17], "run": "default", "shard": SHARD},
        {},
        None,
        out,
        threads=2,
    )
    assert status["status"] == "run"
    layer = compare_layer(Manifest.from_json(planted), LAYER, features, activations, base, circuit_tracer=out)

    # the oracle, SAELens and circuit-tracer read the planted weights and agree with each other
    assert layer["saelens"]["pass"] and layer["circuit_tracer"]["pass"]
    # the project's features were made from the original weights: they disagree at that feature
    assert not layer["project"]["pass"]
    assert layer["project"]["worst_features"][0]["feature"] == feature
    (row,) = encoder_rows([layer])
    assert row["pass"] is False and row["agree"] == "2 of 3"
    assert f"mi-oracle at {SET} layer {LAYER}: feature {feature} (" in row["detail"]
