"""A new dictionary format is one module plus one registry line: registered, a sixth format
(EleutherAI sparsify, ``tests/sparsify_format.py``) is detected, resolved, encoded and made into a
reference by the workflow's own code, with nothing else changed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mi_oracle import formats
from mi_oracle.config import load_schema
from mi_oracle.crossval.oracle import load_canonical
from mi_oracle.encoding.run import encode_shard
from mi_oracle.errors import CrossValidationError, DictionaryError
from mi_oracle.formats import WriteOptions
from mi_oracle.formats.base import read_npz
from mi_oracle.layout import features_file
from mi_oracle.parquet_files import read_parquet
from mi_oracle.references.transcoder_reference import transcoder_reference
from tests.conftest import REPO_ROOT
from tests.dictionary_files import gemma_scope_npz
from tests.encoding_helpers import D_MODEL, SHARD_SETTINGS, capture_file, resolved
from tests.sparsify_format import Sparsify

D_SAE, K = 16, 3


@pytest.fixture
def sixth_format():
    """Sparsify registered for one test; the registry as it was afterwards."""
    before = list(formats._ORDER)
    formats.register(Sparsify())  # the one registry line
    yield
    formats._ORDER[:] = before
    formats._index()


def sparsify_set(tmp_path) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    weights = {
        "W_enc": torch.randn(D_MODEL, D_SAE, generator=generator),
        "b_enc": torch.randn(D_SAE, generator=generator),
        "W_dec": torch.randn(D_SAE, 1, D_MODEL, generator=generator),
        "b_dec": torch.randn(D_MODEL, generator=generator),
    }
    for layer in (0, 2):
        Sparsify().write(tmp_path / "sparsify", layer, weights, WriteOptions(torch.float32, {}, {"k": K}))
    return weights


def test_a_sixth_format_is_resolved_encoded_and_referenced_once_registered(tmp_path, sixth_format):
    weights = sparsify_set(tmp_path)
    entries = [{"layer": layer, "filepath": f"sparsify/layers.{layer}/sae.safetensors"} for layer in (0, 2)]
    manifest = resolved(tmp_path, entries)
    assert manifest.schemas == ["Sparsify"] and isinstance(manifest.layer(2).format, Sparsify)
    assert (manifest.activation_kind, manifest.k) == ("topk", K)  # both from the weights' cfg.json
    assert [f.local_path for f in manifest.layer(0).files] == [
        "sparsify/layers.0/sae.safetensors",
        "sparsify/layers.0/cfg.json",
    ]

    x = np.random.default_rng(4).standard_normal((20, D_MODEL)).astype(np.float32)
    source = capture_file(tmp_path / "x.parquet", x)
    shard = tmp_path / "shard=00000"
    encode_shard(manifest, tmp_path / "m.json", [(0, source, source)], shard, SHARD_SETTINGS, base=tmp_path)
    rows = read_parquet(features_file(shard, 0), "features file", ["feature_ids", "feature_values"])
    pre = x.astype(np.float64) @ weights["W_enc"].double().numpy() + weights["b_enc"].double().numpy()
    for i, ids in enumerate(rows["feature_ids"].to_pylist()):
        top = np.argsort(-pre[i])[:K]
        assert sorted(ids) == sorted(int(j) for j in top if pre[i, j] > 0)
    np.testing.assert_allclose(
        [v for values in rows["feature_values"].to_pylist() for v in values],
        [pre[i, j] for i, ids in enumerate(rows["feature_ids"].to_pylist()) for j in ids],
        rtol=1e-5,
    )

    document = transcoder_reference("plt", manifest, [0, 2], 1, tmp_path)
    assert (document["schema"], next(iter(document))) == ("Sparsify", "plt_repo")
    assert document["encoder_formula"].startswith(
        "pre = W_enc @ residual + b_enc; acts = ReLU(pre) on the top 3"
    )
    assert [case["layer"] for case in document["test_cases"]] == [0, 2]

    # the cross-check's float64 oracle reads formats with its own code, on purpose: it says so
    with pytest.raises(CrossValidationError, match=r"the float64 oracle has no reader for schema Sparsify"):
        load_canonical(tmp_path, manifest, 0)


def test_a_format_is_known_only_while_registered_and_synthetic_only_with_a_recipe(sixth_format):
    assert formats.format_of("Sparsify").schemas == ("Sparsify",)
    assert "Sparsify" in formats.schemas() and "Sparsify" not in formats.synthetic_schemas()
    schema = load_schema(REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml")
    synthetic = schema["properties"]["dictionaries"]["items"]["properties"]["synthetic"]["properties"]
    assert synthetic["schema"]["enum"] == list(formats.synthetic_schemas())
    with pytest.raises(DictionaryError, match=r"schemas \['Sparsify'\] are registered already"):
        formats.register(Sparsify())


def test_without_registration_the_sixth_format_is_unknown(tmp_path):
    with pytest.raises(DictionaryError, match="schema 'Sparsify' is unknown"):
        formats.format_of("Sparsify")
    sparsify_set(tmp_path)
    entries = [{"layer": 0, "filepath": "sparsify/layers.0/sae.safetensors"}]
    with pytest.raises(DictionaryError, match=r"cannot detect the dictionary schema from tensors"):
        resolved(tmp_path, entries)


def test_a_damaged_npz_member_is_reported_with_the_archive_path(tmp_path):
    path = gemma_scope_npz(tmp_path / "layer_0" / "params.npz", 8, 4)
    data = bytearray(path.read_bytes())
    data[data.index(b"W_dec.npy") + 200] ^= 0xFF  # a byte of the member's data: its CRC-32 fails
    path.write_bytes(bytes(data))
    with pytest.raises(DictionaryError, match=rf"{path}: not a readable NPZ archive \(Bad CRC-32"):
        read_npz(path)
