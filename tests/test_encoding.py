"""Loaders (one per schema, each bad file refused), encoder arithmetic and metrics on small cases."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mi_oracle.dictionaries.manifest import Manifest
from mi_oracle.encoding.compute import decode, encode, feature_lists, sparse_rows
from mi_oracle.encoding.loaders import Dictionary, load_layer
from mi_oracle.encoding.metrics import MetricSums, summarise
from mi_oracle.errors import DictionaryError
from tests.dictionary_files import (
    gemma_scope_npz,
)
from tests.encoding_helpers import D_MODEL, D_SAE, resolved, schema_manifests
from tests.encoding_oracle import load_canonical, oracle, reconstruct


@pytest.mark.parametrize(
    "schema", ["GemmaScopeNpz", "GemmaScope2", "SaeLensNative", "PltBundle", "CltSplit", "CltSplitJumpReLU"]
)
def test_each_loader_matches_the_numpy_oracle_on_its_real_layout(tmp_path, schema):
    manifest, base = schema_manifests(tmp_path)[schema]
    layer = manifest.layers[-1].layer
    dictionary = load_layer(manifest, layer, base)
    assert dictionary.schema == schema and dictionary.W_enc.dtype == torch.float32
    assert tuple(dictionary.W_enc.shape) == (D_MODEL, D_SAE)
    x = np.random.default_rng(1).standard_normal((50, D_MODEL)).astype(np.float32) * 3
    acts, _active = encode(dictionary, torch.from_numpy(x))
    weights = load_canonical(base, manifest, layer)
    _pre, expected, _thr = oracle(weights, x, manifest.activation_kind)
    np.testing.assert_allclose(acts.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        decode(dictionary, acts, torch.from_numpy(x)).numpy(),
        reconstruct(weights, x, expected),
        rtol=1e-4,
        atol=1e-4,
    )
    if schema.startswith("Clt"):
        later = decode(dictionary, acts, torch.from_numpy(x), offset=1).numpy()
        np.testing.assert_allclose(
            later, expected @ dictionary.W_dec[:, 1].double().numpy(), rtol=1e-4, atol=1e-4
        )


def test_topk_keeps_the_k_largest(tmp_path):
    gemma_scope_npz(tmp_path / "p.npz", D_MODEL, D_SAE)
    manifest = resolved(tmp_path, [{"layer": 0, "filepath": "p.npz"}], activation="topk", k=3)
    dictionary = load_layer(manifest, 0, tmp_path)
    assert dictionary.activation == "topk"
    x = np.random.default_rng(2).standard_normal((20, D_MODEL)).astype(np.float32)
    acts, active = encode(dictionary, torch.from_numpy(x))
    assert (active.sum(1) <= 3).all() and (active.sum(1) > 0).any()
    _pre, expected, _ = oracle(load_canonical(tmp_path, manifest, 0), x, "topk", k=3)
    np.testing.assert_allclose(acts.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("schema", "writer", "message"),
    [
        (
            "GemmaScopeNpz",
            lambda p: gemma_scope_npz(p, D_MODEL, D_SAE, W_enc=np.zeros((D_MODEL, D_SAE + 1), np.float32)),
            "tensor 'W_enc' has shape [8, 13], expected [8, 12]",
        ),
        (
            "GemmaScopeNpz",
            lambda p: gemma_scope_npz(p, D_MODEL, D_SAE, b_enc=np.full(D_SAE, np.nan, np.float32)),
            "tensor 'b_enc' has 12 non-finite values (NaN or inf)",
        ),
        (
            "GemmaScopeNpz",
            lambda p: gemma_scope_npz(p, D_MODEL, D_SAE, threshold=None),
            "tensor 'threshold' is missing (expected shape [12]",
        ),
        (
            "GemmaScopeNpz",
            lambda p: np.savez(p, W_enc=np.array([{"a": 1}], dtype=object)),
            "refused (Object arrays cannot be loaded when allow_pickle=False)",
        ),
        (
            "GemmaScopeNpz",
            lambda p: gemma_scope_npz(p, D_MODEL, D_SAE, W_dec=np.zeros((D_SAE, D_MODEL), np.float16)),
            "tensor 'W_dec' is float16, but GemmaScopeNpz stores float32",
        ),
        (
            "GemmaScope2",
            lambda p: save_file(
                {k: v.to(torch.bfloat16) for k, v in load_file(str(p) + ".orig").items()},
                str(p),
            ),
            "is bfloat16, but GemmaScope2 stores float32",
        ),
    ],
)
def test_bad_files_are_refused_with_file_tensor_and_expectation(tmp_path, schema, writer, message):
    manifest, base = schema_manifests(tmp_path)[schema]
    path = base / manifest.layers[0].files[0].local_path
    path.rename(str(path) + ".orig")
    writer(path)
    # as if resolution had recorded the bad file: the loader's own checks are under test
    document = manifest.to_json()
    document["layers"][0]["files"][0]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest = Manifest.from_json(document)
    with pytest.raises(DictionaryError) as error:
        load_layer(manifest, manifest.layers[0].layer, base)
    assert str(path) in str(error.value) and message in str(error.value)


def hand_dictionary() -> Dictionary:
    """d_in = d_out = 2, d_sae = 3; feature 2 never fires."""
    return Dictionary(
        layer=0,
        schema="GemmaScopeNpz",
        activation="jumprelu",
        k=None,
        W_enc=torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, -1.0]]),
        b_enc=torch.tensor([0.0, 0.0, -10.0]),
        threshold=torch.tensor([0.5, 0.5, 0.5]),
        W_dec=torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]]]),
        b_dec=torch.tensor([0.0, 0.0]),
    )


def test_metrics_equal_hand_computed_values():
    dictionary = hand_dictionary()
    x = torch.tensor([[1.0, 0.0], [0.4, 2.0], [0.2, 0.3]])
    acts, active = encode(dictionary, x)
    assert acts.tolist() == [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]
    ids, values = feature_lists(sparse_rows(acts, active))
    assert ids.to_pylist() == [[0], [1], []] and values.to_pylist() == [[1.0], [2.0], []]
    output = decode(dictionary, acts, x)  # [[1, 0], [0, 2], [0, 0]]
    first, second = MetricSums(3, 2), MetricSums(3, 2)
    first.add(acts[:2], sparse_rows(acts[:2], active[:2]), output[:2], x[:2])
    second.add(acts[2:], sparse_rows(acts[2:], active[2:]), output[2:], x[2:])
    metrics = summarise([first, second])
    # errors: (0,0), (-0.4, 0), (-0.2, -0.3): SSE = 0.16 + 0.04 + 0.09 = 0.29
    assert metrics["n_tokens"] == 3 and metrics["mean_l0"] == pytest.approx(2 / 3)
    assert metrics["mse"] == pytest.approx(0.29 / 6)
    # target sums per dimension (1.6, 2.3), sum of squares 5.29: centred 5.29 - (1.6^2 + 2.3^2) / 3
    assert metrics["fvu"] == pytest.approx(0.29 / (5.29 - (1.6**2 + 2.3**2) / 3))
    assert metrics["zero_baseline_mse"] == pytest.approx((1 + 0.16 + 4 + 0.04 + 0.09) / 6)
    assert metrics["dead_features"] == 1 and metrics["fire_count"] == [1, 1, 0]
    assert metrics["top_activation_per_feature"] == [1.0, 2.0, 0.0]
    assert metrics["l0_histogram"]["counts"][:3] == [1, 2, 0]
