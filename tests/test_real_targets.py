"""The three real-target configs, run whole and unchanged against a stand-in hub.

Each test publishes small random-weight stand-ins under the real repository names, file paths,
formats and config files (tests/real_targets.py), copies config/ into a working directory as a
user's clone has it, and runs `snakemake --configfile config/<target>.yaml` with HF_ENDPOINT on
the stand-in: fetch, resolution, capture (fp32, as configured), encoding, references and the
cross-validation report. Nothing in the config is overridden; only the models and dictionaries
are small.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.dataset as ds
import pytest
import yaml

from mi_oracle.dictionaries.manifest import read_manifest
from mi_oracle.layout import report_path
from tests.conftest import NO_PEERS, REPO_ROOT, hub_env, run_snakemake, write_config
from tests.real_targets import (
    D_MODEL,
    D_SAE,
    GEMMA_CURATION_REPO,
    GEMMA_SAE_REPO,
    GEMMA_WEIGHTS_REPO,
    LLAMA_PLT_REPO,
    QWEN_CLT_REPO,
    publish_gemma_2_2b,
    publish_llama_3_2_1b,
    publish_qwen3_1_7b,
)
from tests.reference_checks import (
    FORWARD_KEYS,
    assert_matches_float64_oracle,
    assert_same_shape,
    fixture,
    reference_in,
)

pytestmark = pytest.mark.slow


def run_target(hub, tmp_path: Path, configfile: str, peers: bool = False) -> Path:
    """A clone-like working directory where the whole workflow ran with ``config/<configfile>``;
    the peer environment's implementations only with ``peers`` (they cost ~20 s a run)."""
    work = tmp_path / "work"
    shutil.copytree(REPO_ROOT / "config", work / "config")
    if not peers:
        config = yaml.safe_load((work / "config" / configfile).read_text())
        config.setdefault("crossval", {}).update(NO_PEERS)
        write_config(work / "config" / configfile, config)
    run_snakemake(work, work / "config" / configfile, env=hub_env(hub, tmp_path / "hf"))
    return work


def read(work: Path, relative: str) -> dict:
    return json.loads((work / relative).read_text(encoding="utf-8"))


def assert_fetched(work: Path, name: str, repo: str, commit: str) -> None:
    provenance = read(work, f"resources/models/{name}/provenance.json")
    assert (provenance["repo"], provenance["resolved_revision"]) == (repo, commit)


def assert_crossval_passes(work: Path, run: str, points: int) -> dict:
    """Every capture point against HF, TransformerLens and nnsight, every encoder, in the capture's dtype."""
    report = read(work, report_path(run, "json"))
    assert report["pass"] is True, [row for row in report["summary"] if row["pass"] is False]
    capture = report["capture"]
    assert capture["model_dtype"] == "float32" and len(capture["points"]) == points
    for point in capture["points"]:
        judged = [point[peer] for peer in ("hf", "transformer_lens") if "pass" in point[peer]]
        assert "pass" in point["transformer_lens"] and all(result["pass"] for result in judged), point
    if "nnsight" in capture["peers"]:  # in .venv-peers, by this architecture's module paths
        by_nnsight = [point for point in capture["points"] if "pass" in point["nnsight"]]
        assert len(by_nnsight) >= points - 1 and all(point["nnsight"]["pass"] for point in by_nnsight)
    for row in report["encoders"]:
        assert row["project"]["pass"] and row["project"]["compared"] > 0, row
    assert (work / report_path(run)).stat().st_size > 0
    return report


def assert_encoded(work: Path, run: str, name: str, layers: list[int]) -> None:
    """Every token of the capture is encoded at each layer, and the metrics cover those layers."""
    tokens = ds.dataset(work / "results" / "tokens" / run, format="parquet").to_table(["n_tokens"])
    n_tokens = sum(tokens["n_tokens"].to_pylist())
    folder = work / "results" / "features" / run / name
    features = ds.dataset(folder, format="parquet", partitioning="hive", exclude_invalid_files=True)
    assert features.count_rows() == n_tokens * len(layers)
    metrics = read(work, f"results/features/{run}/{name}/metrics.json")
    assert sorted(map(int, metrics["layers"])) == layers and metrics["synthetic"] is False


def transcoder_reference(
    work: Path, name: str, set_name: str, layers: list[int], curation_commit: str, activation: str
) -> tuple[dict, dict]:
    """Reference ``name`` and its set's manifest: the layers, the curation commit, the float64 oracle."""
    document = json.loads(reference_in(work, name).read_text())
    assert sorted({case["layer"] for case in document["test_cases"]}) == layers
    assert (document["d_model"], document["n_features_per_layer"]) == (D_MODEL, D_SAE)
    manifest = read(work, f"results/curation/{set_name}/manifest.json")
    assert manifest["curation"]["resolved_revision"] == curation_commit
    assert_matches_float64_oracle(
        document, read_manifest(work / f"results/curation/{set_name}/manifest.json"), work, activation
    )
    return document, manifest


def test_gemma_2_2b_regenerates_the_sae_and_gemma_scope_transcoder_references(hub, tmp_path):
    commits = publish_gemma_2_2b(hub, tmp_path / "hub")
    work = run_target(hub, tmp_path, "gemma-2-2b.yaml")
    assert_fetched(work, "gemma-2-2b", "google/gemma-2-2b", commits["model"])

    sae = json.loads(reference_in(work, "sae_reference").read_text())
    theirs = fixture("sae_reference.json")
    assert list(sae) == [*theirs, "environment"]
    assert all(type(sae[key]) is type(value) for key, value in theirs.items())
    assert sae["prompt"] == "The capital of France is" and sae["n_tokens"] == len(sae["tokens"])
    (file,) = sae["environment"]["dictionary"]["files"]
    assert (file["repo"], file["resolved_revision"]) == (GEMMA_SAE_REPO, commits["sae"])

    plt, _ = transcoder_reference(
        work, "plt_gemma_reference", "gemma-scope-transcoders", [0, 12, 25], commits["curation"], "jumprelu"
    )
    assert_same_shape(plt, fixture("plt_gemma_reference.json"))
    assert (plt["weights_repo"], plt["curation_repo"]) == (GEMMA_WEIGHTS_REPO, GEMMA_CURATION_REPO)

    assert_encoded(work, "gemma-2-2b", "gemma-scope-res", [0])
    assert_encoded(work, "gemma-2-2b", "gemma-scope-transcoders", [0, 12, 25])
    assert_crossval_passes(work, "gemma-2-2b", points=9)


def test_llama_3_2_1b_regenerates_the_plt_reference(hub, tmp_path):
    commits = publish_llama_3_2_1b(hub, tmp_path / "hub")
    work = run_target(hub, tmp_path, "llama-3.2-1b.yaml", peers=True)  # nnsight's Llama module paths
    assert_fetched(work, "llama-3.2-1b", "meta-llama/Llama-3.2-1B", commits["model"])

    plt, manifest = transcoder_reference(
        work, "plt_llama_reference", "transcoder-llama-3.2-1b", [0, 7, 15], commits["plt"], "relu"
    )
    assert_same_shape(plt, fixture("plt_llama_reference.json"))
    assert plt["plt_repo"] == LLAMA_PLT_REPO
    revisions = {f["resolved_revision"] for layer in manifest["layers"] for f in layer["files"]}
    assert revisions == {commits["plt"]}

    assert_encoded(work, "llama-3.2-1b", "transcoder-llama-3.2-1b", [0, 7, 15])
    report = assert_crossval_passes(work, "llama-3.2-1b", points=6)
    assert "nnsight" in report["capture"]["peers"]


def test_qwen3_1_7b_regenerates_the_clt_and_forward_references(hub, tmp_path):
    commits = publish_qwen3_1_7b(hub, tmp_path / "hub")
    work = run_target(hub, tmp_path, "qwen3-1.7b.yaml")
    assert_fetched(work, "qwen3-1.7b-base", "Qwen/Qwen3-1.7B-Base", commits["model"])

    clt, _ = transcoder_reference(
        work, "clt_qwen3_reference", "clt-qwen3-1.7b-base-20k", [0, 13, 27], commits["clt"], "jumprelu"
    )
    assert list(clt) == ["clt_repo", *list(fixture("plt_llama_reference.json"))[1:], "environment"]
    assert clt["clt_repo"] == QWEN_CLT_REPO

    forward = json.loads(reference_in(work, "qwen3_forward_reference").read_text())
    assert list(forward) == FORWARD_KEYS and forward["model_repo"] == "Qwen/Qwen3-1.7B-Base"
    assert (forward["hidden_size"], forward["num_layers"], forward["use_qk_norm"]) == (D_MODEL, 28, True)
    assert [case["prompt"] for case in forward["test_cases"]] == [
        "The capital of France is",
        "Two plus two equals",
        "Once upon a time, there was a",
    ]

    assert_encoded(work, "qwen3-1.7b", "clt-qwen3-1.7b-base-20k", [0, 13, 27])
    assert_crossval_passes(work, "qwen3-1.7b", points=6)
