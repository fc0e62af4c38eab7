"""The default run's synthetic dictionaries: real formats, labelled, realistic sparsity, SAELens-loadable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest
import torch
import yaml
from safetensors.torch import load_file

from mi_oracle.dictionaries.synthetic_fit import ENCODER_GAIN
from mi_oracle.dictionaries.synthetic_plan import SyntheticSet
from mi_oracle.dictionaries.synthetic_writer import build_set
from tests.reference_checks import reference_in

pytestmark = pytest.mark.slow

EXPECTED = {
    "synthetic-sae": ("GemmaScopeNpz", "sae", "resid_post", "resid_post"),
    "synthetic-plt-npz": ("GemmaScopeNpz", "transcoder_set", "ln2_normalized", "mlp_out"),
    "synthetic-plt-bundle": ("PltBundle", "transcoder_set", "mlp_in", "mlp_out"),
    # the default config points this CLT at the normalized input (see config/config.yaml)
    "synthetic-clt": ("CltSplitJumpReLU", "cross_layer_transcoder", "ln2_normalized", "mlp_out"),
}


def manifest(workdir: Path, name: str) -> dict:
    return json.loads((workdir / "results" / "curation" / name / "manifest.json").read_text())


def captured_rows(workdir: Path, hook: str, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(activations in float64, prompt ids, positions), in plan order."""
    dataset = ds.dataset(
        workdir / "results" / "activations" / "default", format="parquet", partitioning="hive"
    )
    table = dataset.to_table(filter=(ds.field("hook") == hook) & (ds.field("layer") == layer))
    table = table.sort_by([("prompt_id", "ascending"), ("position", "ascending")])
    x = np.stack(table.column("activation").to_numpy(zero_copy_only=False)).astype(np.float64)
    return x, table.column("prompt_id").to_numpy(), table.column("position").to_numpy()


def captured(workdir: Path, hook: str, layer: int) -> np.ndarray:
    return captured_rows(workdir, hook, layer)[0]


def canonical_weights(workdir: Path, layer_record: dict) -> dict[str, np.ndarray]:
    """W_enc [d_in, d_sae], W_dec [d_sae, d_out] etc. in float64, read with numpy/safetensors directly."""
    paths = [workdir / f["local_path"] for f in layer_record["files"]]
    layer = layer_record["layer"]
    if layer_record["schema"] == "GemmaScopeNpz":
        with np.load(paths[0], allow_pickle=False) as params:
            return {k: params[k].astype(np.float64) for k in params.files}
    tensors = {}
    for path in paths:
        tensors.update({k: v.to(torch.float64).numpy() for k, v in load_file(path).items()})
    if layer_record["schema"] == "PltBundle":
        return {**tensors, "W_enc": tensors["W_enc"].T}
    return {
        "W_enc": tensors[f"W_enc_{layer}"].T,
        "b_enc": tensors[f"b_enc_{layer}"],
        "threshold": tensors[f"threshold_{layer}"],
        "b_dec": tensors[f"b_dec_{layer}"],
        "W_dec": tensors[f"W_dec_{layer}"][:, 0],
    }


def numpy_encode(weights: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pre-activations, JumpReLU or ReLU activations) in float64."""
    pre = x @ weights["W_enc"] + weights["b_enc"]
    if "threshold" in weights:
        return pre, pre * (pre > weights["threshold"])
    return pre, np.maximum(pre, 0.0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_synthetic_set_is_labelled_and_resolved_like_a_real_one(embedded_workdir, name):
    record = manifest(embedded_workdir, name)
    kind = EXPECTED[name][1]
    assert record["synthetic"] is True and record["synthetic_provenance"]["synthetic"] is True
    assert record["synthetic_provenance"]["label"].startswith("SYNTHETIC")
    assert (record["schema"], record["kind"], record["input_hook"], record["output_hook"]) == EXPECTED[name]
    assert record["model_name"] == "google/gemma-3-270m" and record["d_model"] == 640
    assert record["encode_layers"] == [0, 9, 17]
    reference_layers = {"synthetic-sae": [], "synthetic-plt-bundle": [1, 8]}.get(name, [8])
    assert [layer["layer"] for layer in record["layers"]] == sorted([0, 9, 17, *reference_layers])
    n_available = 3 if kind == "sae" else 18
    assert len(record["available_layers"]) == n_available
    curation = (embedded_workdir / record["curation"]["local_path"]).read_text()
    assert curation.startswith("# SYNTHETIC")
    document = yaml.safe_load(curation)
    assert document["model_name"] == "google/gemma-3-270m" and document["model_kind"] == kind
    for quality in record["synthetic_provenance"]["layers"].values():
        assert 20 <= quality["mean_l0"] <= 200
        assert quality["mse"] < quality["zero_baseline_mse"] and quality["fvu"] < 1


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_synthetic_sets_are_sparse_and_reconstruct_on_all_captured_tokens(embedded_workdir, name):
    record = manifest(embedded_workdir, name)
    layer_record = next(layer for layer in record["layers"] if layer["layer"] == 9)
    weights = canonical_weights(embedded_workdir, layer_record)
    x, prompt_ids, positions = captured_rows(embedded_workdir, record["input_hook"], layer_record["layer"])
    # every encoder column has the gain 10 / rms of the calibration input: whole prompts (the
    # last one cut) spread over the plan, from its short prompts to its long documents
    calibration = record["synthetic_provenance"]["calibration"]
    assert calibration["n_tokens"] == 2048  # synthetic_calibration_tokens' default
    taken = np.zeros(len(x), dtype=bool)
    for prompt_id, n_tokens in calibration["prompts"]:
        taken |= (prompt_ids == prompt_id) & (positions < n_tokens)
    assert taken.sum() == 2048 and calibration["n_prompts"] == len(calibration["prompts"])
    ids = [prompt_id for prompt_id, _ in calibration["prompts"]]
    assert min(ids) == 0 and max(ids) >= 0.95 * prompt_ids.max() and max(positions[taken]) > 500
    calibration_rms = np.sqrt(np.mean(x[taken] ** 2))
    norms = np.linalg.norm(weights["W_enc"], axis=0)
    rtol = 1e-6 if layer_record["schema"] == "GemmaScopeNpz" else 1e-2
    np.testing.assert_allclose(norms, ENCODER_GAIN / calibration_rms, rtol=rtol)
    y = captured(embedded_workdir, record["output_hook"], layer_record["layer"])
    _pre, acts = numpy_encode(weights, x)
    out = acts @ weights["W_dec"] + weights["b_dec"]
    if "W_skip" in weights:
        out += x @ weights["W_skip"].T
    assert len(x) == 5363
    assert 20 <= (acts > 0).sum(1).mean() <= 200
    assert ((out - y) ** 2).mean() < (y**2).mean()


@pytest.mark.parametrize("name", ["plt_gemmascope_reference", "clt_reference"])
def test_unit_rms_transcoders_fire_in_the_tens_on_candle_mis_gaussian_residuals(embedded_workdir, name):
    """Like the published sets (GemmaScope: about 10-50), so an fp32 peer can meet the 1e-4 bar."""
    document = json.loads(reference_in(embedded_workdir, name).read_text())
    tops = [case["top_10"][0]["activation"] for case in document["test_cases"] if case["n_active"]]
    assert len(tops) == len(document["test_cases"])
    assert min(tops) > 5 and max(tops) < 100, tops


def test_synthetic_sae_loads_in_saelens_and_encodes_like_numpy_jumprelu(embedded_workdir):
    from mi_oracle.peers.saelens import load_gemma_scope_npz

    record = manifest(embedded_workdir, "synthetic-sae")
    layer_record = next(layer for layer in record["layers"] if layer["layer"] == 9)
    path = embedded_workdir / layer_record["files"][0]["local_path"]
    sae = load_gemma_scope_npz(path, f"blocks.{layer_record['layer']}.hook_resid_post", "google/gemma-3-270m")
    x = captured(embedded_workdir, "resid_post", layer_record["layer"])
    with torch.no_grad():
        theirs = sae.encode(torch.from_numpy(x.astype(np.float32))).double().numpy()
    weights = canonical_weights(embedded_workdir, layer_record)
    pre, ours = numpy_encode(weights, x)
    # float32 rounding bound of each pre-activation: relative 1e-5 of the magnitudes summed
    scale = np.abs(x) @ np.abs(weights["W_enc"]) + np.abs(weights["b_enc"])
    near = np.abs(pre - weights["threshold"]) <= 1e-5 * scale
    flips = ((ours > 0) != (theirs > 0)) & ~near
    assert flips.sum() == 0
    both = (ours > 0) & (theirs > 0)
    assert both.sum() > 20 * len(x)
    assert np.all(np.abs(ours - theirs)[both] <= 1e-5 * scale[both])
    assert ((ours > 0) != (theirs > 0)).sum() <= 1e-6 * ours.size  # flips near a threshold are rare


def test_building_a_set_twice_gives_identical_bytes(tmp_path):
    rng = np.random.default_rng(0)
    activations = {
        (hook, layer): rng.standard_normal((400, 16)).astype(np.float32)
        for hook in ("resid_mid", "mlp_out")
        for layer in range(3)
    }
    spec = SyntheticSet(
        "clt", "CltSplitJumpReLU", "cross_layer_transcoder", "resid_mid", "mlp_out", (0, 1, 2), 32, 6.0, 7
    )
    model = {"repo": "org/tiny", "hidden_size": 16, "num_hidden_layers": 3}
    for target in ("a", "b"):
        build_set(spec, activations, tmp_path / target, 3, model, {"n_tokens": 400})
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 9  # 6 weight files, config.yaml, provenance.json, _files.sha256
    listing = (tmp_path / "a" / "_files.sha256").read_text().splitlines()
    assert sorted(line.split("  ")[1] for line in listing) == sorted(
        str(p) for p in files if p.name != "_files.sha256"
    )
    for relative in files:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes()
