"""Reference generation on small dictionaries: candle-mi's schemas, its residual recipe, an
independent float64 oracle, byte-identical rewrites, and the comparison check_references runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from mi_oracle.dictionaries.manifest import read_manifest
from mi_oracle.dictionaries.resolve import ResolveRequest, resolve_set
from mi_oracle.encoding.plan import encoding_points
from mi_oracle.errors import DictionaryError, ReferenceDataError
from mi_oracle.references.generate import write_reference
from mi_oracle.references.kinds.encoders import ends_and_middle
from mi_oracle.references.plan import layers_by_reference
from tests.dictionary_files import clt_split, gemma_scope_npz, model_folder, plt_bundle
from tests.reference_checks import assert_matches_float64_oracle, assert_same_shape, fixture

SCHEMA = Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml"
OPTIONS = {"device": "cpu", "dtype": "float32", "threads": 1, "seeds_per_layer": 3}
D_SAE = 48


def write_yaml(path: Path, document: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def resolve(work: Path, yaml_path: Path, references: list[dict], encode=(0,)) -> Path:
    manifest = work / "results" / "manifest.json"
    resolve_set(
        ResolveRequest(
            "set",
            {"name": "set", "curation": str(yaml_path.relative_to(work))},
            work / "model",
            None,
            list(encode),
            ["."],
            manifest,
            work / "resources" / "set",
            base=work,
            reference_layers=layers_by_reference(references),
        )
    )
    return manifest


def gemma_scope_set(work: Path, d_model: int, n_layers: int, layers: list[int]) -> Path:
    """A GemmaScope transcoder set laid out like google/gemma-scope-2b-pt-transcoders (the
    listed layers written; the YAML names every layer, as the real one does)."""
    model_folder(work / "model", "google/gemma-2-2b", d_model, n_layers)
    entries = []
    for layer in range(n_layers):
        relative = f"weights/layer_{layer}/width_16k/average_l0_{50 + layer}/params.npz"
        if layer in layers:
            gemma_scope_npz(work / relative, d_model, D_SAE, seed=layer)
        entries.append(relative.removeprefix("weights/"))
    document = {
        "model_name": "google/gemma-2-2b",
        "model_kind": "transcoder_set",
        "feature_input_hook": "ln2.hook_normalized",
        "feature_output_hook": "hook_mlp_out",
        "transcoders": entries,
    }
    return write_yaml(work / "weights" / "config.yaml", document)


def plt_bundle_set(work: Path, d_model: int, n_layers: int, layers: list[int]) -> Path:
    """A PltBundle set laid out like mntss/transcoder-Llama-3.2-1B (layer_<l>.safetensors)."""
    model_folder(work / "model", "meta-llama/Llama-3.2-1B", d_model, n_layers)
    entries = []
    for layer in range(n_layers):
        if layer in layers:
            plt_bundle(
                work / "weights" / f"layer_{layer}.safetensors", d_model, D_SAE, seed=layer, skip=False
            )
        entries.append(f"layer_{layer}.safetensors")
    document = {
        "model_name": "meta-llama/Llama-3.2-1B",
        "model_kind": "transcoder_set",
        "feature_input_hook": "mlp.hook_in",
        "feature_output_hook": "mlp.hook_out",
        "transcoders": entries,
    }
    return write_yaml(work / "weights" / "config.yaml", document)


def clt_set(work: Path, d_model: int, n_layers: int) -> Path:
    model_folder(work / "model", "Qwen/Qwen3-1.7B-Base", d_model, n_layers)
    for layer in range(n_layers):
        clt_split(work / "weights", layer, n_layers, d_model, D_SAE, jump=True)
    document = {
        "model_name": "Qwen/Qwen3-1.7B-Base",
        "model_kind": "cross_layer_transcoder",
        "feature_input_hook": "hook_resid_mid",
        "feature_output_hook": "hook_mlp_out",
    }
    return write_yaml(work / "weights" / "config.yaml", document)


def generate(work: Path, item: dict, manifest: Path, folder: str = "model") -> tuple[dict, Path]:
    """The reference made into results/references/<folder>/, and its file."""
    output = work / "results" / "references" / folder
    document = write_reference(item, OPTIONS, work / "model", manifest, output, base=work)
    return document, output / f"{item['name']}.json"


@pytest.mark.parametrize(
    ("fixture_name", "make_set", "d_model", "n_layers", "activation"),
    [
        ("plt_gemma_reference.json", "gemma_scope_set", 2304, 26, "jumprelu"),
        ("plt_llama_reference.json", "plt_bundle_set", 2048, 16, "relu"),
    ],
)
def test_plt_reference_reproduces_the_fixture_residuals_and_schema(
    tmp_path, fixture_name, make_set, d_model, n_layers, activation
):
    theirs = fixture(fixture_name)
    layers = sorted({case["layer"] for case in theirs["test_cases"]})
    assert layers == ends_and_middle(list(range(n_layers)))
    yaml_path = globals()[make_set](tmp_path, d_model, n_layers, layers)
    item = {"name": fixture_name.removesuffix(".json"), "kind": "plt", "set": "set"}
    manifest = resolve(tmp_path, yaml_path, [item])
    ours, _ = generate(tmp_path, item, manifest)

    assert_same_shape(ours, theirs)
    assert [(c["layer"], c["seed"]) for c in ours["test_cases"]] == [
        (c["layer"], c["seed"]) for c in theirs["test_cases"]
    ]
    for case, their_case in zip(ours["test_cases"], theirs["test_cases"], strict=True):
        np.testing.assert_allclose(case["residual"], their_case["residual"], atol=1e-6, rtol=0)
    assert (ours["schema"], ours["encoder_formula"]) == (theirs["schema"], theirs["encoder_formula"])
    assert (ours["d_model"], ours["n_features_per_layer"]) == (d_model, D_SAE)
    assert ours["environment"]["dictionary"]["files"][0]["sha256"]
    assert_matches_float64_oracle(ours, read_manifest(manifest), tmp_path, activation)


def test_clt_reference_keys_cases_and_oracle(tmp_path):
    yaml_path = clt_set(tmp_path, 32, 6)
    item = {"name": "clt", "kind": "clt", "set": "set", "layers": [0, 3, 5]}
    manifest = resolve(tmp_path, yaml_path, [item])
    ours, _ = generate(tmp_path, item, manifest)
    assert list(ours) == [
        "clt_repo",
        "methodology",
        "schema",
        "encoder_formula",
        "torch_version",
        "platform",
        "d_model",
        "n_features_per_layer",
        "test_cases",
        "environment",
    ]
    assert ours["schema"] == "CltSplitJumpReLU"
    assert [(c["layer"], c["seed"]) for c in ours["test_cases"]] == [
        (layer, seed_idx * 100 + layer) for layer in (0, 3, 5) for seed_idx in range(3)
    ]
    assert any(case["n_active"] > 10 for case in ours["test_cases"])
    assert_matches_float64_oracle(ours, read_manifest(manifest), tmp_path, "jumprelu")


def test_a_second_generation_writes_identical_bytes(tmp_path):
    yaml_path = gemma_scope_set(tmp_path, 64, 4, [0, 1, 3])
    item = {"name": "r", "kind": "plt", "set": "set"}
    manifest = resolve(tmp_path, yaml_path, [item])
    _, first = generate(tmp_path, item, manifest, "first")
    _, second = generate(tmp_path, item, manifest, "second")
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes().isascii() and b"NaN" not in first.read_bytes()


def test_reference_layers_are_resolved_but_not_encoded(tmp_path):
    yaml_path = gemma_scope_set(tmp_path, 16, 5, list(range(5)))
    item = {"name": "r", "kind": "plt", "set": "set"}
    manifest = read_manifest(resolve(tmp_path, yaml_path, [item], encode=(1,)))
    assert manifest.resolved_layers == [0, 1, 2, 4]
    assert manifest.encode_layers == (1,)
    assert [layer for layer, _, _ in encoding_points(manifest, ["ln2_normalized", "mlp_out"], [1])] == [1]


def test_a_reference_layer_the_set_lacks_is_named(tmp_path):
    yaml_path = gemma_scope_set(tmp_path, 16, 4, list(range(4)))
    item = {"name": "late", "kind": "plt", "set": "set", "layers": [0, 7]}
    with pytest.raises(DictionaryError, match=r"references.items\[late\]: layers \[7\] are not in set set"):
        resolve(tmp_path, yaml_path, [item])
    assert not (tmp_path / "results" / "manifest.json").exists()


def test_a_clt_reference_of_a_plt_set_is_refused(tmp_path):
    yaml_path = gemma_scope_set(tmp_path, 16, 3, [0, 1, 2])
    item = {"name": "wrong", "kind": "clt", "set": "set"}
    manifest = resolve(tmp_path, yaml_path, [item])
    with pytest.raises(ReferenceDataError, match="a clt reference needs a set of schema CltSplit"):
        generate(tmp_path, item, manifest)
    assert list((tmp_path / "results" / "references").iterdir()) == []  # no folder, no partial one
