"""Curation-YAML resolution from local files: both entry forms, listing, schemas, and every bad input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from mi_oracle.dictionaries.manifest import Manifest
from mi_oracle.dictionaries.resolve import ResolveRequest, resolve_set
from mi_oracle.errors import DictionaryError, PathEscapeError
from tests.dictionary_files import (
    clt_split,
    gemma_scope_2,
    gemma_scope_npz,
    model_folder,
    plt_bundle,
    saelens_native,
)

D_MODEL, D_SAE, N_LAYERS = 8, 12, 4
REPO = "google/gemma-2-2b"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    model_folder(tmp_path / "model", REPO, D_MODEL, N_LAYERS)
    return tmp_path


def write_yaml(path: Path, document: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def curation(transcoders=None, **overrides) -> dict:
    document = {
        "model_name": REPO,
        "model_kind": "transcoder_set",
        "feature_input_hook": "ln2.hook_normalized",
        "feature_output_hook": "hook_mlp_out",
    }
    if transcoders is not None:
        document["transcoders"] = transcoders
    document.update(overrides)
    return document


def resolve(work: Path, yaml_path: Path, layers=None, default_layers=(0, 2), roots=(".",)) -> dict:
    """Resolve the set; the manifest's document (what resolution wrote)."""
    return resolve_set(
        ResolveRequest(
            "set",
            {"name": "set", "curation": str(yaml_path.relative_to(work))},
            work / "model",
            layers,
            list(default_layers),
            list(roots),
            work / "results" / "manifest.json",
            work / "resources" / "set",
            base=work,
        )
    ).to_json()


def npz_set(work: Path, n: int = N_LAYERS) -> list[str]:
    paths = []
    for layer in range(n):
        relative = f"tc/layer_{layer}/width_16k/average_l0_{10 + layer}/params.npz"
        gemma_scope_npz(work / relative, D_MODEL, D_SAE, seed=layer)
        paths.append(relative.removeprefix("tc/"))
    return paths


def assert_nothing_written(work: Path) -> None:
    assert not (work / "results" / "manifest.json").exists()
    assert not (work / "resources" / "set").exists()
    staging = work / "resources"
    assert not (staging.exists() and list(staging.glob(".*partial*"))), "a staging folder was left behind"


def test_list_form_resolves_requested_layers_with_hashes_shapes_and_hooks(work):
    yaml_path = write_yaml(work / "tc" / "config.yaml", curation(npz_set(work)))
    manifest = resolve(work, yaml_path)
    assert [entry["layer"] for entry in manifest["available_layers"]] == [0, 1, 2, 3]
    assert [layer["layer"] for layer in manifest["layers"]] == [0, 2]
    layer = manifest["layers"][1]
    assert layer["schema"] == "GemmaScopeNpz" and (layer["d_model"], layer["d_sae"]) == (D_MODEL, D_SAE)
    assert layer["tensors"]["params.npz"]["W_enc"] == {"shape": [D_MODEL, D_SAE], "dtype": "float32"}
    (file,) = layer["files"]
    assert file["local_path"] == "tc/layer_2/width_16k/average_l0_12/params.npz"
    assert (
        file["sha256"] == __import__("hashlib").sha256((work / file["local_path"]).read_bytes()).hexdigest()
    )
    assert (manifest["input_hook"], manifest["output_hook"]) == ("ln2_normalized", "mlp_out")
    assert manifest["hooks_as_written"]["feature_input_hook"] == "ln2.hook_normalized"
    assert manifest["activation"] == {"kind": "jumprelu", "source": "weights"}
    assert manifest["synthetic"] is False
    assert json.loads((work / "results" / "manifest.json").read_text()) == manifest
    assert Manifest.read(work / "results" / "manifest.json").to_json() == manifest  # typed round trip


def test_dict_form_and_explicit_layers(work):
    entries = [{"id": f"t{layer}", "layer": layer, "filepath": p} for layer, p in enumerate(npz_set(work))]
    yaml_path = write_yaml(work / "tc" / "config.yaml", curation(list(reversed(entries))))
    manifest = resolve(work, yaml_path, layers=[3])
    assert [layer["layer"] for layer in manifest["layers"]] == [3]
    assert manifest["layers"][0]["files"][0]["source"] == entries[3]["filepath"]


def test_plt_bundle_set_without_transcoders_list_uses_layer_files(work):
    for layer in range(N_LAYERS):
        plt_bundle(work / "plt" / f"layer_{layer}.safetensors", D_MODEL, D_SAE, seed=layer)
    yaml_path = write_yaml(
        work / "plt" / "config.yaml",
        curation(activation="relu", feature_input_hook="mlp.hook_in", feature_output_hook="mlp.hook_out"),
    )
    manifest = resolve(work, yaml_path)
    assert manifest["schema"] == "PltBundle" and manifest["activation"]["kind"] == "relu"
    assert manifest["layers"][0]["tensors"]["layer_0.safetensors"]["W_skip"]["dtype"] == "bfloat16"
    assert (manifest["input_hook"], manifest["output_hook"]) == ("mlp_in", "mlp_out")


@pytest.mark.parametrize(("jump", "schema"), [(True, "CltSplitJumpReLU"), (False, "CltSplit")])
def test_clt_set_without_transcoders_list_uses_encoder_and_decoder_files(work, jump, schema):
    for layer in range(N_LAYERS):
        clt_split(work / "clt", layer, N_LAYERS, D_MODEL, D_SAE, jump)
    yaml_path = write_yaml(
        work / "clt" / "config.yaml",
        curation(model_kind="cross_layer_transcoder", feature_input_hook="hook_resid_mid"),
    )
    manifest = resolve(work, yaml_path)
    assert manifest["schema"] == schema and manifest["kind"] == "cross_layer_transcoder"
    layer = manifest["layers"][1]
    assert [f["source"] for f in layer["files"]] == ["W_enc_2.safetensors", "W_dec_2.safetensors"]
    assert layer["tensors"]["W_dec_2.safetensors"]["W_dec_2"]["shape"] == [D_SAE, N_LAYERS - 2, D_MODEL]


def test_topk_activation_and_inline_sae_set(work):
    saelens_native(work / "sae" / "blocks.0.hook_resid_post", D_MODEL, D_SAE, "blocks.0.hook_resid_post")
    gemma_scope_2(work / "sae" / "l2" / "params.safetensors", D_MODEL, D_SAE, skip=True)
    definition = {
        "name": "set",
        "sae": {
            "hook": "resid_post",
            "activation": "topk",
            "k": 3,
            "entries": [
                {"layer": 0, "filepath": "sae/blocks.0.hook_resid_post/sae_weights.safetensors"},
                {"layer": 2, "filepath": "sae/l2/params.safetensors"},
            ],
        },
    }
    manifest = resolve_set(
        ResolveRequest(
            "set", definition, work / "model", None, [0, 2], ["."], work / "m.json", work / "files", base=work
        )
    ).to_json()
    assert [layer["schema"] for layer in manifest["layers"]] == ["SaeLensNative", "GemmaScope2"]
    assert [f["source"].rsplit("/", 1)[1] for f in manifest["layers"][0]["files"]] == [
        "sae_weights.safetensors",
        "cfg.json",
    ]
    assert manifest["layers"][1]["details"]["skip"] is True
    assert manifest["activation"] == {"kind": "topk", "source": "curation YAML"} and manifest["k"] == 3
    assert "schema" not in manifest  # mixed schemas are reported per layer only


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (curation(["a.npz"], model_kind="sparse_coder"), "model_kind 'sparse_coder' is unknown"),
        (
            curation(
                [{"id": "a", "layer": 0, "filepath": "a.npz"}, {"id": "b", "layer": 0, "filepath": "b.npz"}]
            ),
            "layer 0 is given twice (transcoders[0] and [1])",
        ),
        (
            curation(
                [{"id": "a", "layer": 0, "filepath": "a.npz"}, {"id": "c", "layer": 2, "filepath": "c.npz"}]
            ),
            "layers [1] are missing",
        ),
        (
            curation([f"l{i}.npz" for i in range(N_LAYERS + 1)]),
            "5 entries (layers up to 4) but the model has 4 layers",
        ),
        (
            curation(["a.npz"], model_name="meta-llama/Llama-3.2-1B"),
            "model_name is 'meta-llama/Llama-3.2-1B' but",
        ),
        (
            curation(["a.npz"], feature_input_hook="hook_nowhere"),
            "key 'feature_input_hook': hook 'hook_nowhere'",
        ),
        (curation(["a.npz"], activation="gelu"), "activation 'gelu' is unknown"),
        (
            {**curation(), "transcoderz": []},
            "unknown keys 'transcoderz' (did you mean 'transcoders'?); a curation YAML may have",
        ),
        (curation(["a.npz"], activation="topk"), "activation topk needs an integer k > 0"),
    ],
)
def test_bad_curation_documents_are_refused_with_the_file_and_key(work, document, message):
    yaml_path = write_yaml(work / "tc" / "config.yaml", document)
    with pytest.raises(DictionaryError) as error:
        resolve(work, yaml_path)
    assert str(yaml_path) in str(error.value) and message in str(error.value)
    assert_nothing_written(work)


def test_malformed_yaml_names_the_file(work):
    yaml_path = work / "tc" / "config.yaml"
    yaml_path.parent.mkdir()
    yaml_path.write_text("model_name: [unclosed\ntranscoders: - x\n")
    with pytest.raises(DictionaryError, match=r"tc/config.yaml: malformed YAML"):
        resolve(work, yaml_path)
    yaml_path.write_text("- just\n- a list\n")
    with pytest.raises(DictionaryError, match=r"config.yaml: expected a mapping with model_name"):
        resolve(work, yaml_path)
    assert_nothing_written(work)


def test_paths_escaping_their_root_are_refused(work, tmp_path_factory):
    outside = gemma_scope_npz(tmp_path_factory.mktemp("outside") / "params.npz", D_MODEL, D_SAE)
    npz_set(work)
    for location in ["../../elsewhere/params.npz", str(outside)]:
        yaml_path = write_yaml(work / "tc" / "config.yaml", curation([location]))
        with pytest.raises(PathEscapeError, match="outside the allowed roots"):
            resolve(work, yaml_path, default_layers=[0])
    yaml_path = write_yaml(
        work / "tc" / "config.yaml", curation(["hf://google/gemma-scope/../../etc/passwd"])
    )
    with pytest.raises(PathEscapeError, match=r"'\.\.' and backslashes are refused"):
        resolve(work, yaml_path, default_layers=[0])
    with pytest.raises(PathEscapeError, match=r"dictionaries\[set\]\.curation"):
        resolve_set(
            ResolveRequest(
                "set",
                {"name": "set", "curation": str(outside.with_suffix(".yaml"))},
                work / "model",
                None,
                [0],
                ["."],
                work / "m.json",
                work / "files",
                base=work,
            )
        )
    assert_nothing_written(work)


def test_shape_not_matching_the_model_is_refused(work):
    gemma_scope_npz(work / "tc" / "wide.npz", D_MODEL * 2, D_SAE)
    yaml_path = write_yaml(work / "tc" / "config.yaml", curation(["wide.npz"]))
    with pytest.raises(DictionaryError, match=r"wide.npz: d_model is 16 but the model's hidden_size is 8"):
        resolve(work, yaml_path, default_layers=[0])
    gemma_scope_npz(work / "tc" / "bad.npz", D_MODEL, D_SAE, W_dec=np.zeros((D_SAE, D_MODEL + 1), np.float32))
    yaml_path = write_yaml(work / "tc" / "config.yaml", curation(["bad.npz"]))
    with pytest.raises(
        DictionaryError, match=r"bad.npz: tensor 'W_dec' has shape \[12, 9\], expected \[12, 8\]"
    ):
        resolve(work, yaml_path, default_layers=[0])
    assert_nothing_written(work)


def test_undetectable_schema_and_missing_threshold_are_refused(work):
    (work / "tc").mkdir()
    (work / "tc" / "weights.pt").write_bytes(b"\x80\x04not really")
    yaml_path = write_yaml(work / "tc" / "config.yaml", curation(["weights.pt"]))
    with pytest.raises(
        DictionaryError, match=r"weights.pt: cannot detect the dictionary schema from a .pt file"
    ):
        resolve(work, yaml_path, default_layers=[0])
    from safetensors.numpy import save_file

    save_file({"encoder": np.zeros((2, 2), np.float32)}, str(work / "tc" / "odd.safetensors"))
    yaml_path = write_yaml(work / "tc" / "config.yaml", curation(["odd.safetensors"]))
    with pytest.raises(
        DictionaryError, match=r"odd.safetensors: cannot detect the dictionary schema from tensors"
    ):
        resolve(work, yaml_path, default_layers=[0])
    gemma_scope_npz(work / "tc" / "nothr.npz", D_MODEL, D_SAE, threshold=None)
    yaml_path = write_yaml(work / "tc" / "config.yaml", curation(["nothr.npz"]))
    with pytest.raises(
        DictionaryError, match=r"nothr.npz: tensor 'threshold' is missing \(expected shape \[12\]"
    ):
        resolve(work, yaml_path, default_layers=[0])
    assert_nothing_written(work)


def test_pickled_npz_is_refused_without_unpickling(work, tmp_path):
    marker = tmp_path / "unpickled"
    path = work / "tc" / "params.npz"
    path.parent.mkdir()
    np.savez(path, W_enc=np.array([Exploit(marker)], dtype=object))
    yaml_path = write_yaml(work / "tc" / "config.yaml", curation(["params.npz"]))
    with pytest.raises(DictionaryError, match=r"params.npz: array 'W_enc' holds Python objects \(a pickle\)"):
        resolve(work, yaml_path, default_layers=[0])
    assert not marker.exists()
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["W_enc.npy"]
    assert_nothing_written(work)


class Exploit:
    """Unpickling this would create a file: proof that nothing unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_layers_not_in_the_set_are_refused(work):
    yaml_path = write_yaml(work / "tc" / "config.yaml", curation(npz_set(work, n=2)))
    with pytest.raises(DictionaryError, match=r"dictionaries\[set\].layers: \[3\] not in the set"):
        resolve(work, yaml_path, layers=[0, 3])
    with pytest.raises(DictionaryError, match=r"none of the captured layers \[3\] is in the set"):
        resolve(work, yaml_path, default_layers=[3])
