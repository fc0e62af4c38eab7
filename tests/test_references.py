"""Reference generation on small dictionaries: candle-mi's schemas, its residual recipe, an
independent float64 oracle, byte-identical rewrites, and the comparison check_references runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mi_oracle.config import load_schema, validate_config
from mi_oracle.dictionaries.manifest import read_manifest
from mi_oracle.dictionaries.resolve import ResolveRequest, resolve_set
from mi_oracle.dictionaries.synthetic_plan import plan_set
from mi_oracle.encoding.plan import encoding_points
from mi_oracle.errors import ConfigError, DictionaryError, ReferenceDataError
from mi_oracle.reference_plan import ends_and_middle, reference_items
from mi_oracle.references.check import check_references
from mi_oracle.references.compare import compare_documents
from mi_oracle.references.generate import write_reference
from mi_oracle.references.tokenizer import load_tokenizer
from tests.builders import save_tiny_tokenizer
from tests.dictionary_files import clt_split, gemma_scope_npz, model_folder, plt_bundle
from tests.planted import PLANTS
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
            references=references,
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


def generate(work: Path, item: dict, manifest: Path, name: str = "reference.json") -> tuple[dict, Path]:
    output = work / "results" / "references" / name
    document = write_reference(item, OPTIONS, work / "model", manifest, output, base=work)
    return document, output


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
    _, first = generate(tmp_path, item, manifest, "first.json")
    _, second = generate(tmp_path, item, manifest, "second.json")
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
    assert not (tmp_path / "results" / "references" / "reference.json").exists()


def test_ends_and_middle_match_candle_mi_choices():
    assert ends_and_middle(list(range(26))) == [0, 12, 25]
    assert ends_and_middle(list(range(16))) == [0, 7, 15]
    assert ends_and_middle(list(range(28))) == [0, 13, 27]
    assert ends_and_middle([3]) == [3]


# --- comparison -----------------------------------------------------------------------------


@pytest.fixture
def reference() -> dict:
    document = fixture("plt_gemma_reference.json")
    document["test_cases"] = document["test_cases"][:3]
    return document


def test_an_identical_reference_has_no_differences(reference):
    other = json.loads(json.dumps(reference))
    other["platform"] = "Linux"  # provenance: not compared
    other["torch_version"] = "2.13.0+cpu"
    assert compare_documents(reference, other, "plt") == []


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        ("wrong top-10 index", "test_cases[layer 0, seed 100].top_10[3].index: expected "),
        (
            "activation off by 2e-4",
            "test_cases[layer 0, seed 0].top_10[0].activation: expected 11.09428596496582, got 11.0944859",
        ),
        ("missing d_model", "d_model: missing (expected 2304)"),
        ("missing last case", "test_cases[layer 0, seed 200]: case missing"),
        ("extra case", "test_cases[layer 0, seed 300]: unexpected case"),
        ("NaN n_active", "test_cases[layer 0, seed 200].n_active: got nan"),
        ("residual changed", "test_cases[layer 0, seed 0].residual[5]:"),
        ("extra key", "extra: unexpected key (1)"),
        ("other schema", 'schema: expected "GemmaScopeNpz", got "PltBundle"'),
    ],
)
def test_each_planted_fault_is_named(reference, plant, expected):
    planted = json.loads(json.dumps(reference))
    PLANTS[plant](planted)
    found = compare_documents(reference, planted, "plt")
    assert len(found) == 1 and found[0].startswith(expected), found


def test_residual_tolerance_is_tighter_than_activation_tolerance(reference):
    planted = json.loads(json.dumps(reference))
    planted["test_cases"][0]["residual"][0] += 5e-6
    planted["test_cases"][0]["top_10"][0]["activation"] += 5e-5
    found = compare_documents(reference, planted, "plt")
    assert len(found) == 1 and "residual[0]" in found[0]


def test_check_references_lists_every_difference_and_stray_files(tmp_path, reference):
    committed, generated = tmp_path / "committed", tmp_path / "generated"
    committed.mkdir()
    generated.mkdir()
    (committed / "a.json").write_text(json.dumps(reference))
    (committed / "stale.json").write_text("{}")
    planted = json.loads(json.dumps(reference))
    planted["test_cases"][0]["n_active"] += 1
    (generated / "a.json").write_text(json.dumps(planted))
    (generated / "b.json").write_text(json.dumps(reference))
    paths = {"a": ("plt", generated / "a.json"), "b": ("plt", generated / "b.json")}
    with pytest.raises(ReferenceDataError) as raised:
        check_references(paths, committed, tmp_path / "check.json")
    message = str(raised.value)
    assert "3 difference(s)" in message
    assert f"{committed / 'a.json'}: test_cases[layer 0, seed 0].n_active: expected 659, got 660" in message
    assert f"{committed / 'b.json'}: missing" in message
    assert f"{committed / 'stale.json'}: committed, but the config generates no reference" in message
    assert not (tmp_path / "check.json").exists()

    shutil.copy(generated / "b.json", committed / "b.json")
    (committed / "stale.json").unlink()
    shutil.copy(generated / "a.json", committed / "a.json")
    summary = check_references(paths, committed, tmp_path / "check.json")
    assert summary["differences"] == [] and (tmp_path / "check.json").exists()


def test_check_references_without_a_committed_folder_says_which_key(tmp_path):
    with pytest.raises(ReferenceDataError, match=r"references\.committed is not set"):
        check_references({}, None, tmp_path / "check.json")


# --- configuration --------------------------------------------------------------------------


def validated(references: dict) -> dict:
    config = {"model": {"name": "m", "source": "gguf-package"}, "references": references}
    return validate_config(config, load_schema(SCHEMA))


def test_reference_config_defaults_and_per_kind_requirements():
    config = validated({"items": [{"name": "f", "kind": "forward", "prompts": ["a"]}]})
    assert config["references"]["device"] == "cpu" and config["references"]["seeds_per_layer"] == 3
    with pytest.raises(ConfigError, match=r"references.items.0.layer: required key is missing"):
        validated({"items": [{"name": "s", "kind": "sae", "set": "x", "prompt": "p"}]})
    with pytest.raises(ConfigError, match=r"references.items.0.prompts: required key is missing"):
        validated({"items": [{"name": "f", "kind": "forward"}]})


def test_reference_items_name_unknown_sets_and_duplicates():
    items = [{"name": "a", "kind": "plt", "set": "nope"}]
    with pytest.raises(ConfigError, match=r"references.items\[a\].set: 'nope' is not a dictionary set"):
        reference_items({"items": items}, ["real"])
    twice = [{"name": "a", "kind": "forward", "prompts": ["p"]}] * 2
    with pytest.raises(ConfigError, match="two references are named 'a'"):
        reference_items({"items": twice}, [])


def test_a_synthetic_transcoder_may_read_another_input_hook_and_an_sae_may_not():
    planned = plan_set("c", {"schema": "CltSplitJumpReLU", "input_hook": "ln2_normalized"}, 4, [0])
    assert (planned.input_hook, planned.output_hook) == ("ln2_normalized", "mlp_out")
    assert plan_set("c", {"schema": "CltSplitJumpReLU"}, 4, [0]).input_hook == "resid_mid"
    with pytest.raises(DictionaryError, match=r"dictionaries\[s\].synthetic.input_hook: transcoders only"):
        plan_set("s", {"schema": "GemmaScopeNpz", "kind": "sae", "input_hook": "mlp_in"}, 4, [0])


def test_a_planted_dictionary_change_is_named_as_an_input_difference_first(tmp_path):
    work = tmp_path / "work"
    yaml_path = gemma_scope_set(work, 32, 3, [0, 1, 2])
    item = {"name": "plt_reference", "kind": "plt", "set": "set"}
    manifest = resolve(work, yaml_path, [item])
    _, committed = generate(work, item, manifest, "committed/plt_reference.json")
    old_sha = json.loads(manifest.read_text())["layers"][1]["files"][0]["sha256"]
    # another machine (or a changed build) wrote other weights for layer 1
    gemma_scope_npz(work / "weights/layer_1/width_16k/average_l0_51/params.npz", 32, D_SAE, seed=99)
    manifest = resolve(work, yaml_path, [item])
    new_sha = json.loads(manifest.read_text())["layers"][1]["files"][0]["sha256"]
    _, generated = generate(work, item, manifest, "generated/plt_reference.json")
    with pytest.raises(ReferenceDataError) as raised:
        check_references({"plt_reference": ("plt", generated)}, committed.parent, tmp_path / "check.json")
    lines = str(raised.value).splitlines()
    assert lines[0] == "2 difference(s) between the generated references and " + str(committed.parent) + ":"
    assert lines[1] == (
        f"{committed}: inputs differ: set set layer 1 file 1 (params.npz): "
        f"sha256 {old_sha[:16]}... committed, {new_sha[:16]}... generated"
    )
    assert re.fullmatch(
        rf"{re.escape(str(committed))}: \d+ value difference\(s\), from the different inputs above", lines[2]
    )


def test_deterministic_torch_sets_the_switch_and_restores_it_without_the_inductor():
    script = """
import sys, torch
from mi_oracle.references.numbers import deterministic_torch
assert not torch.are_deterministic_algorithms_enabled()
with deterministic_torch(threads=1):
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == 1
assert not torch.are_deterministic_algorithms_enabled()
assert "torch._inductor" not in sys.modules, "the switch imported the inductor"
import torch._inductor.config as inductor_config
with deterministic_torch(threads=1):  # once imported, the inductor's switch follows too
    assert torch.are_deterministic_algorithms_enabled() and inductor_config.deterministic
assert not torch.are_deterministic_algorithms_enabled() and not inductor_config.deterministic
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_the_tokenizer_loads_once_per_folder_and_again_when_a_file_changes(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    save_tiny_tokenizer(folder)
    first = load_tokenizer(folder)
    assert load_tokenizer(folder) is first
    assert first("the city", add_special_tokens=True)["input_ids"][0] == first.bos_token_id
    config = folder / "tokenizer_config.json"
    document = json.loads(config.read_text())
    document["bos_token"] = "<eos>"  # same size or not, the rewrite is a new modification time
    config.write_text(json.dumps(document))
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 1_000_000))
    second = load_tokenizer(folder)
    assert second is not first and second.bos_token == "<eos>"
