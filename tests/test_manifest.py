"""Detection from headers only, and the typed manifest: read once with its format checked."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mi_oracle.dictionaries.manifest import Manifest, read_manifest
from mi_oracle.errors import DictionaryError
from mi_oracle.formats import FORMATS, detect
from tests.dictionary_files import model_folder, plt_bundle
from tests.test_dictionary_resolution import (
    D_MODEL,
    D_SAE,
    N_LAYERS,
    REPO,
    curation,
    npz_set,
    resolve,
    write_yaml,
)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    model_folder(tmp_path / "model", REPO, D_MODEL, N_LAYERS)
    return tmp_path


def test_detection_reads_headers_only(tmp_path):
    path = plt_bundle(tmp_path / "layer_0.safetensors", D_MODEL, D_SAE)
    header_length = int.from_bytes(path.read_bytes()[:8], "little")
    path.write_bytes(path.read_bytes()[: 8 + header_length])  # tensor data gone, header intact
    detected = detect([path], 0, N_LAYERS)
    assert (detected.schema, detected.d_model, detected.d_sae) == ("PltBundle", D_MODEL, D_SAE)
    assert detected.tensors["layer_0.safetensors"]["W_skip"].shape == (D_MODEL, D_MODEL)


def test_a_manifest_is_read_with_its_format_checked_and_names_missing_layers(work):
    yaml_path = write_yaml(work / "tc" / "config.yaml", curation(npz_set(work)))
    resolve(work, yaml_path)
    manifest = Manifest.read(work / "results" / "manifest.json")
    record = manifest.layer(2)
    assert (record.layer, record.schema, record.format) == (2, "GemmaScopeNpz", FORMATS["GemmaScopeNpz"])
    assert record.files[0].local_path == "tc/layer_2/width_16k/average_l0_12/params.npz"
    assert manifest.resolved_layers == [0, 2] == list(manifest.encode_layers)
    assert (manifest.name, manifest.target_hook, manifest.activation_kind) == ("set", "mlp_out", "jumprelu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.kind = "sae"  # type: ignore[misc]
    with pytest.raises(DictionaryError, match=r"set set: layer 1 was not resolved \(resolved: \[0, 2\]\)"):
        manifest.layer(1)
    other = work / "other.json"
    other.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(DictionaryError, match=r"other\.json: format 'something-else' version None; expected"):
        read_manifest(other)
    other.write_text("{not json")
    with pytest.raises(DictionaryError, match=r"other\.json: cannot read as JSON"):
        read_manifest(other)
    document = json.loads((work / "results" / "manifest.json").read_text())
    del document["layers"][0]["files"][0]["sha256"]
    other.write_text(json.dumps(document))
    with pytest.raises(DictionaryError, match=r"other\.json: a layer or file record is malformed \(KeyError"):
        read_manifest(other)
