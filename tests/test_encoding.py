"""Loaders (one per schema, each bad file refused), encoder arithmetic and metrics on small cases."""

from __future__ import annotations

import hashlib
import io
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file, save_file

from mi_oracle.dictionaries.manifest import Manifest
from mi_oracle.dictionaries.resolve import ResolveRequest, resolve_set
from mi_oracle.encoding import compute, native
from mi_oracle.encoding.compute import decode, encode, feature_lists, sparse_rows
from mi_oracle.encoding.features_file import FEATURES_WRITE_OPTIONS, FeaturesWriter, features_schema
from mi_oracle.encoding.loaders import Dictionary, load_layer
from mi_oracle.encoding.metrics import MetricSums, summarise
from mi_oracle.encoding.run import encode_shard
from mi_oracle.encoding.summary import write_metrics
from mi_oracle.errors import DataFileError, DictionaryError
from mi_oracle.layout import features_file
from mi_oracle.parquet_files import METADATA_KEY, WRITE_OPTIONS, record_sha256
from tests.dictionary_files import (
    clt_split,
    gemma_scope_2,
    gemma_scope_npz,
    model_folder,
    plt_bundle,
    saelens_native,
)
from tests.encoding_oracle import load_canonical, oracle, reconstruct
from tests.small_disk import run_on_small_disk

D_MODEL, D_SAE, N_LAYERS = 8, 12, 4


def resolved(tmp_path: Path, entries: list[dict], hook: str = "resid_post", **sae: object) -> dict:
    model_folder(tmp_path / "model", "org/model", D_MODEL, N_LAYERS)
    definition = {"name": "s", "sae": {"hook": hook, "entries": entries, **sae}}
    layers = [e["layer"] for e in entries]
    return resolve_set(
        ResolveRequest(
            "s",
            definition,
            tmp_path / "model",
            None,
            layers,
            ["."],
            tmp_path / "m.json",
            tmp_path / "files",
            base=tmp_path,
        )
    )


def curated(tmp_path: Path, folder: str, kind: str, **extra: object) -> dict:
    model_folder(tmp_path / "model", "org/model", D_MODEL, N_LAYERS)
    document = {
        "model_name": "org/model",
        "model_kind": kind,
        "feature_input_hook": "hook_resid_mid",
        "feature_output_hook": "hook_mlp_out",
        **extra,
    }
    (tmp_path / folder / "config.yaml").write_text(json.dumps(document))
    return resolve_set(
        ResolveRequest(
            "s",
            {"name": "s", "curation": f"{folder}/config.yaml"},
            tmp_path / "model",
            None,
            [0, 2],
            ["."],
            tmp_path / "m.json",
            tmp_path / "files",
            base=tmp_path,
        )
    )


def schema_manifests(tmp_path: Path) -> dict[str, tuple[Manifest, Path]]:
    """One resolved manifest per schema, each in its own folder."""
    out = {}
    root = tmp_path / "npz"
    gemma_scope_npz(root / "layer_1/width_16k/average_l0_5/params.npz", D_MODEL, D_SAE)
    out["GemmaScopeNpz"] = resolved(
        root, [{"layer": 1, "filepath": "layer_1/width_16k/average_l0_5/params.npz"}]
    )
    root = tmp_path / "gs2"
    gemma_scope_2(root / "l1/params.safetensors", D_MODEL, D_SAE, skip=True)
    out["GemmaScope2"] = resolved(root, [{"layer": 1, "filepath": "l1/params.safetensors"}])
    root = tmp_path / "saelens"
    saelens_native(root / "l1", D_MODEL, D_SAE, "blocks.1.hook_resid_post")
    out["SaeLensNative"] = resolved(root, [{"layer": 1, "filepath": "l1/sae_weights.safetensors"}])
    root = tmp_path / "plt"
    for layer in range(N_LAYERS):
        plt_bundle(root / "plt" / f"layer_{layer}.safetensors", D_MODEL, D_SAE, seed=layer)
    out["PltBundle"] = curated(root, "plt", "transcoder_set", activation="relu")
    for jump, schema in ((True, "CltSplitJumpReLU"), (False, "CltSplit")):
        root = tmp_path / schema
        for layer in range(N_LAYERS):
            clt_split(root / "clt", layer, N_LAYERS, D_MODEL, D_SAE, jump)
        out[schema] = curated(root, "clt", "cross_layer_transcoder")
    return {
        schema: (manifest, tmp_path / folder)
        for (schema, manifest), folder in zip(
            out.items(), ["npz", "gs2", "saelens", "plt", "CltSplitJumpReLU", "CltSplit"], strict=True
        )
    }


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


def replace_after_resolution(manifest: dict, base: Path, writer) -> Path:
    path = base / manifest.layers[0].files[0].local_path
    path.unlink()
    writer(path)
    return path


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


def test_sparse_rows_sort_by_value_descending():
    acts = torch.tensor([[0.5, 3.0, 0.0, 3.0, 1.0]])
    ids, values = feature_lists(sparse_rows(acts, acts > 0))
    assert ids.to_pylist() == [[1, 3, 4, 0]] and values.to_pylist() == [[3.0, 3.0, 1.0, 0.5]]


@pytest.mark.parametrize("key_bits", [native.KEY_BITS, 46])  # 46: sorted in two blocks of 32 rows
@pytest.mark.parametrize("zeros", [True, False])  # values read back from the batch, or from the keys
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # bfloat16: torch's own gather
@pytest.mark.parametrize("fused", [True, False])  # float32 on CPU: the fused kernels, or torch
def test_sparse_rows_match_a_plain_sort_with_negative_values_ties_and_signed_zeros(
    monkeypatch, key_bits, zeros, dtype, fused
):
    monkeypatch.setattr(native, "KEY_BITS", key_bits)
    generator = torch.Generator().manual_seed(1)
    pre = torch.randn(64, 300, generator=generator).round(decimals=1)  # many ties, some -0.0
    if not zeros:
        pre[pre == 0] = 0.05
    active = pre > -0.3  # a negative threshold: negative and zero values are active
    acts = (pre * active).to(dtype)
    ids, values = feature_lists(sparse_rows(acts, active, fused=fused))
    for row, (got_ids, got_values) in enumerate(zip(ids.to_pylist(), values.to_pylist(), strict=True)):
        want = sorted(torch.nonzero(active[row]).flatten().tolist(), key=lambda c: (-float(acts[row, c]), c))
        assert got_ids == want and got_values == [float(acts[row, c]) for c in want]
        signs = [math.copysign(1.0, v) for v in got_values]
        assert signs == [math.copysign(1.0, float(acts[row, c])) for c in want]
    assert any(v < 0 for row in values.to_pylist() for v in row)


@pytest.mark.parametrize("size", [0, 5, 64, 8 * 1000, 8 * 1000 + 3])
def test_flat_nonzero_is_numpys_flatnonzero(size):
    rng = np.random.default_rng(size)
    for density in (0.0, 0.03, 0.5, 1.0):
        mask = rng.random(size) < density
        np.testing.assert_array_equal(compute.flat_nonzero(mask), np.flatnonzero(mask))
    mask = np.zeros(size, bool)
    mask[size - 1 :] = True  # the last byte alone (in the tail when size % 8)
    np.testing.assert_array_equal(compute.flat_nonzero(mask), np.flatnonzero(mask))


def random_dictionary(activation: str, d_in: int, d_sae: int, seed: int, b_dec_input: bool) -> Dictionary:
    """Weights rounded to a few bits, so pre-activations tie, hit the thresholds and are zero."""
    generator = torch.Generator().manual_seed(seed)
    threshold = (torch.randn(d_sae, generator=generator) * 0.5).round(decimals=1)  # some negative
    return Dictionary(
        layer=0,
        schema="GemmaScopeNpz",
        activation=activation,
        k=None,
        W_enc=(torch.randn(d_in, d_sae, generator=generator) * 4).round() / 4,
        b_enc=(torch.randn(d_sae, generator=generator) * 4).round() / 4,
        threshold=threshold if activation == "jumprelu" else None,
        W_dec=torch.randn(d_sae, 1, d_in, generator=generator),
        b_dec=torch.randn(d_in, generator=generator).round(),
        apply_b_dec_to_input=b_dec_input,
    )


@pytest.mark.parametrize("activation", ["jumprelu", "relu"])
@pytest.mark.parametrize(("rows", "d_sae"), [(0, 64), (1, 300), (37, 2048), (700, 301)])
@pytest.mark.parametrize("b_dec_input", [False, True])
def test_the_fused_kernels_give_the_torch_paths_bits(activation, rows, d_sae, b_dec_input):
    """The fused activation (700 rows: split over two threads) and sparse rows, against torch's.

    Widths off a multiple of 16 reach the kernels' scalar tails; inactive negative pre-activations
    become -0.0 in both, and a feature active at exactly 0.0 (a negative threshold) is listed."""
    dictionary = random_dictionary(activation, 8, d_sae, seed=rows + d_sae, b_dec_input=b_dec_input)
    x = (torch.randn(rows, 8, generator=torch.Generator().manual_seed(rows)) * 2).round() / 2
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fused_acts, fused_active = encode(dictionary, x)
    finally:
        torch.set_num_threads(threads)
    torch_acts, torch_active = encode(dictionary, x, fused=False)
    assert torch.equal(fused_acts.view(torch.int32), torch_acts.view(torch.int32))
    assert torch.equal(fused_active, torch_active)
    fused_rows = sparse_rows(fused_acts, fused_active)
    torch_rows = sparse_rows(torch_acts, torch_active, fused=False)
    for name in ("offsets", "ids", "values"):
        got, want = getattr(fused_rows, name), getattr(torch_rows, name)
        assert got.dtype == want.dtype and np.array_equal(got.view(np.int32), want.view(np.int32)), name
    if rows > 1:
        assert (fused_acts.view(torch.int32) == -(2**31)).any()  # -0.0 written for inactive negatives
        assert len(fused_rows.ids) > 0


UNBUILT_KERNELS = """
import hashlib, sys
sys.modules["mi_oracle.encoding._sparse_kernels"] = None  # as in a source tree never built
from mi_oracle.encoding import compute, native
from tests.test_encoding import random_dictionary
import torch
dictionary = random_dictionary("jumprelu", 8, 300, seed=5, b_dec_input=False)
x = (torch.randn(40, 8, generator=torch.Generator().manual_seed(5)) * 2).round() / 2
acts, active = compute.encode(dictionary, x)
rows = compute.sparse_rows(acts, active)
assert not native.AVAILABLE and not compute.fused_sparse_rows(x.device, x.dtype)
print(hashlib.sha256(acts.numpy().tobytes() + b"".join(a.tobytes() for a in rows)).hexdigest())
"""


def test_without_the_built_kernels_encoding_takes_the_torch_path_with_the_same_bits():
    result = subprocess.run(
        [sys.executable, "-c", UNBUILT_KERNELS], capture_output=True, text=True, cwd=Path(__file__).parents[1]
    )
    assert result.returncode == 0, result.stderr
    dictionary = random_dictionary("jumprelu", 8, 300, seed=5, b_dec_input=False)
    x = (torch.randn(40, 8, generator=torch.Generator().manual_seed(5)) * 2).round() / 2
    acts, active = encode(dictionary, x)
    assert compute.fused_activation(dictionary, x.device, x.dtype)  # here: the fused kernels
    rows = sparse_rows(acts, active)
    fused = hashlib.sha256(acts.numpy().tobytes() + b"".join(a.tobytes() for a in rows)).hexdigest()
    assert result.stdout.strip() == fused


def test_the_fused_kernels_refuse_a_tensor_they_cannot_read():
    pre = torch.zeros(4, 8)
    with pytest.raises(
        ValueError, match=r"pre-activations: expected a contiguous torch\.float32.*not contig"
    ):
        native.threshold_activate(pre.T, torch.zeros(4), torch.zeros(8, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="threshold"):
        native.threshold_activate(
            pre, torch.zeros(8, dtype=torch.float64), torch.ones(4, 8, dtype=torch.bool)
        )
    with pytest.raises(ValueError, match=r"expected \(8,\)"):
        native.threshold_activate(pre, torch.zeros(4), torch.ones(4, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="active mask"):
        native.sparse_rows(pre, torch.zeros(4, 8))


def capture_file(path: Path, x: np.ndarray, first_prompt: int = 0, **write_options) -> Path:
    """A capture-format Parquet file of rows ``x``: one prompt per row, at position 0."""
    n = len(x)
    meta = {"model": {"repo": "org/model"}, "shard": "00000", "prompt_set": {"sha256": "0"}}
    table = pa.table(
        {
            "prompt_id": pa.array(range(first_prompt, first_prompt + n), pa.int64()),
            "position": pa.array([0] * n, pa.int32()),
            "token_id": pa.array([1] * n, pa.int32()),
            "activation": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel(), pa.float32()), x.shape[1]),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    pq.write_table(table, path, compression="none", **write_options)
    record_sha256(path)
    return path


SHARD_SETTINGS = {
    "device": "cpu",
    "dtype": "float32",
    "batch_rows": 5,
    "compression": "zstd",
    "row_group_rows": 4,
}


def test_a_shard_encodes_every_layer_and_metrics_add_up_over_shards(tmp_path):
    manifest = schema_manifests(tmp_path)["PltBundle"][0]
    root = tmp_path / "plt"
    rng = np.random.default_rng(0)
    shards = []
    for shard, n in (("00000", 7), ("00001", 12)):
        points = []
        for layer in (0, 2):
            x = capture_file(root / f"x{layer}-{shard}.parquet", rng.normal(size=(n, D_MODEL)))
            y = capture_file(root / f"y{layer}-{shard}.parquet", rng.normal(size=(n, D_MODEL)))
            points.append((layer, x, y))
        shards.append(root / "features" / f"shard={shard}")
        with warnings.catch_warnings():  # activations reach torch as writable arrays
            warnings.filterwarnings("error", message=".*not writable")
            sums = encode_shard(manifest, root / "m.json", points, shards[-1], SHARD_SETTINGS, base=root)
        assert list(sums) == ["0", "2"] and all(s["n_tokens"] == n for s in sums.values())
        assert sorted(p.name for p in shards[-1].iterdir()) == ["_sums.json", "layer=0", "layer=2"]
        for layer, x, _ in points:
            features = pq.read_table(features_file(shards[-1], layer))
            assert features.column("prompt_id").to_pylist() == list(range(n))
            kernels = json.loads(features.schema.metadata[METADATA_KEY])["kernels"]
            assert kernels == {"activation": "fused", "sparse_rows": "fused"}  # float32 on CPU
            # written without dictionary pages (FEATURES_WRITE_OPTIONS), compressed as configured,
            # with statistics for the token keys only
            chunks = pq.ParquetFile(features_file(shards[-1], layer)).metadata.row_group(0)
            for column in range(chunks.num_columns):
                chunk = chunks.column(column)
                assert chunk.dictionary_page_offset is None, chunk.path_in_schema
                assert chunk.compression == SHARD_SETTINGS["compression"].upper()
                keyed = chunk.path_in_schema in ("prompt_id", "position")
                assert chunk.is_stats_set == keyed, chunk.path_in_schema
                listed = chunk.path_in_schema.startswith("feature_")  # the lists' elements split
                assert ("BYTE_STREAM_SPLIT" in chunk.encodings) == listed, chunk.path_in_schema
            assert not any(field.nullable for field in features.schema)
            _, expected, _ = oracle(load_canonical(root, manifest, layer), read_x(x), "relu")
            ours = np.zeros_like(expected)
            for row, (ids, values) in enumerate(
                zip(features["feature_ids"].to_pylist(), features["feature_values"].to_pylist(), strict=True)
            ):
                ours[row, ids] = values
            np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    metrics = write_metrics(manifest, shards, tmp_path / "metrics.json", tmp_path / "metrics.tsv")
    assert sorted(metrics["layers"]) == ["0", "2"]
    assert all(layer["n_tokens"] == 19 for layer in metrics["layers"].values())
    table = ds.dataset(root / "features", format="parquet", partitioning="hive")
    assert table.count_rows() == 2 * 19 and {"shard", "layer"} <= set(table.schema.names)


def test_the_features_writer_writes_what_a_plain_writer_writes_and_raises_its_errors(tmp_path):
    """Batches written on the background thread, one at a time and in order: the same bytes."""
    rng = np.random.default_rng(4)
    batches = []
    for first in (0, 7, 9):
        n = int(rng.integers(1, 9))
        acts = torch.from_numpy(np.maximum(rng.normal(size=(n, 32)), 0).astype(np.float32))
        ids, values = feature_lists(sparse_rows(acts, acts > 0))
        keys = [
            pa.array(np.arange(first, first + n)),
            pa.array(np.zeros(n, np.int32)),
            pa.array(np.ones(n, np.int32)),
        ]
        batches.append([*keys, ids, values])
    with FeaturesWriter(tmp_path / "ours.parquet", {"k": 1}, "zstd", 4) as writer:
        for columns in batches:
            writer.start()
            writer.wait()
            writer.add(columns)
        with pytest.raises(RuntimeError, match="still queued"):
            writer.add(batches[0])
    plain_writer = pq.ParquetWriter(
        tmp_path / "plain.parquet", features_schema({"k": 1}), compression="zstd", **FEATURES_WRITE_OPTIONS
    )
    with plain_writer:
        for columns in batches:
            plain_writer.write_table(pa.Table.from_arrays(columns, schema=plain_writer.schema), 4)
    assert (tmp_path / "ours.parquet").read_bytes() == (tmp_path / "plain.parquet").read_bytes()

    class LostDisk(io.RawIOBase):  # takes the file's magic bytes, then fails
        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            if self.tell_bytes:
                raise OSError("the disk went away")
            self.tell_bytes = len(data)
            return len(data)

    sink = LostDisk()
    sink.tell_bytes = 0
    writer = FeaturesWriter(pa.PythonFile(sink, mode="w"), {"k": 1}, "zstd", 4)
    writer.add(batches[0])
    writer.start()
    with pytest.raises(OSError, match="the disk went away"):  # the thread's error, at the wait
        writer.wait()


ENCODE_ENOSPC_SCRIPT = """
import json, sys
from pathlib import Path
from mi_oracle.dictionaries.manifest import read_manifest
from mi_oracle.encoding.run import encode_shard
disk, manifest_path, base, x = (Path(a) for a in sys.argv[1:5])
settings = {**json.loads(sys.argv[5]), "batch_rows": 256}
try:
    encode_shard(read_manifest(manifest_path), manifest_path, [(0, x, x)], disk / "shard=00000",
                 settings, base=base)
    error = None
except Exception as caught:
    error = f"{type(caught).__name__}: {caught}"
print(json.dumps({"error": error, "left": sorted(str(p) for p in disk.rglob("*"))}))
"""


def test_a_full_disk_during_a_background_write_fails_the_shard_and_leaves_nothing(tmp_path):
    """The features writer's thread hits a real ENOSPC (a 64 KiB tmpfs in a private mount
    namespace, ``tests.small_disk``): the error reaches ``encode_shard``, which names the
    shard, and the staging folder is gone."""
    schema_manifests(tmp_path)  # writes the PLT set's manifest into plt/
    plt = tmp_path / "plt"
    x = capture_file(tmp_path / "x.parquet", np.random.default_rng(5).normal(size=(20_000, D_MODEL)))
    outcome = run_on_small_disk(
        tmp_path, "64k", ENCODE_ENOSPC_SCRIPT, plt / "m.json", plt, x, json.dumps(SHARD_SETTINGS)
    )
    disk = tmp_path / "disk"
    assert outcome["left"] == [], outcome
    assert outcome["error"].startswith(f"DataFileError: {disk}/shard=00000: encoding failed"), outcome
    assert "No space left on device" in outcome["error"], outcome


def read_x(path: Path) -> np.ndarray:
    return np.stack(pq.read_table(path)["activation"].to_numpy(zero_copy_only=False)).astype(np.float64)


def test_a_failing_layer_leaves_no_shard_folder(tmp_path):
    manifest = schema_manifests(tmp_path)["PltBundle"][0]
    root = tmp_path / "plt"
    rng = np.random.default_rng(1)
    x = capture_file(root / "x.parquet", rng.normal(size=(6, D_MODEL)))
    shifted = capture_file(root / "shifted.parquet", rng.normal(size=(6, D_MODEL)), first_prompt=1)
    shard = root / "shard=00000"
    with pytest.raises(DictionaryError, match="list different tokens"):
        points = [(0, x, x), (2, x, shifted)]
        encode_shard(manifest, root / "m.json", points, shard, SHARD_SETTINGS, base=root)
    assert not shard.exists() and not list(root.glob(".shard=*"))


def test_the_encoder_gives_candle_mis_script_bits_and_its_accuracy_at_gemmascope_size(tmp_path):
    """At 2304 x 16,384 with pre-activations about 50 (the real GemmaScope transcoders' size), the
    encoder computes what plt_gemma_validation.py computes (``W_enc.T.contiguous() @ x + b_enc``)
    bit for bit, well inside candle-mi's 1e-4 bar from float64 (a d_model-major product is not)."""
    d_model, d_sae = 2304, 16384
    rng = np.random.default_rng(0)
    w_enc = (rng.standard_normal((d_model, d_sae), dtype=np.float32) * (17 / d_model**0.5)).astype(np.float32)
    b_enc = (0.1 * rng.standard_normal(d_sae)).astype(np.float32)
    threshold = np.abs(rng.standard_normal(d_sae)).astype(np.float32)
    model_folder(tmp_path / "model", "org/model", d_model, 1)
    gemma_scope_npz(
        tmp_path / "w" / "params.npz",
        d_model,
        4,
        W_enc=w_enc,
        b_enc=b_enc,
        threshold=threshold,
        W_dec=np.zeros((d_sae, d_model), np.float32),
        b_dec=np.zeros(d_model, np.float32),
    )
    manifest = resolve_set(
        ResolveRequest(
            "s",
            {
                "name": "s",
                "sae": {"hook": "resid_post", "entries": [{"layer": 0, "filepath": "w/params.npz"}]},
            },
            tmp_path / "model",
            None,
            [0],
            ["."],
            tmp_path / "m.json",
            tmp_path / "files",
            base=tmp_path,
        )
    )
    dictionary = load_layer(manifest, 0, tmp_path)
    worst_ours = worst_d_model_major = 0.0
    for seed in (0, 12, 25):
        residual = torch.Generator().manual_seed(seed)
        residual = torch.randn(d_model, generator=residual)
        ours, _active = encode(dictionary, residual[None, :])
        w = torch.from_numpy(w_enc)
        pre = w.T.contiguous() @ residual + torch.from_numpy(b_enc)
        script = pre * (pre > torch.from_numpy(threshold)).float()
        assert torch.equal(ours[0], script)
        exact = residual.double() @ w.double() + torch.from_numpy(b_enc).double()
        assert 30 < exact.max() < 100
        worst_ours = max(worst_ours, float((pre.double() - exact).abs().max()))
        d_model_major = torch.addmm(torch.from_numpy(b_enc), residual[None, :], w)[0]
        worst_d_model_major = max(worst_d_model_major, float((d_model_major.double() - exact).abs().max()))
    assert worst_ours < 5e-5 < worst_d_model_major


def encode_file(tmp_path: Path, path: Path) -> Path:
    """Encode the capture file ``path`` (input and target) with layer 0 of a PLT set made in ``tmp_path``."""
    manifest = schema_manifests(tmp_path)["PltBundle"][0]
    shard = tmp_path / "shard=00000"
    plt = tmp_path / "plt"
    encode_shard(manifest, plt / "m.json", [(0, path, path)], shard, SHARD_SETTINGS, base=plt)
    return shard


def encode_one(tmp_path: Path, x: np.ndarray, **write_options) -> tuple[Path, Path]:
    """Write rows ``x`` as a capture file and encode it; (file, shard folder)."""
    path = capture_file(tmp_path / "x.parquet", x, **write_options)
    return path, encode_file(tmp_path, path)


def test_a_flipped_byte_in_an_activation_file_fails_encoding_with_its_name(tmp_path):
    rows = np.random.default_rng(2).normal(size=(40, D_MODEL))
    path, shard = encode_one(tmp_path / "good", rows, **WRITE_OPTIONS)
    assert shard.exists()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(b ^ 0x5A for b in data[middle : middle + 4])
    path.write_bytes(bytes(data))
    with pytest.raises(DataFileError, match=rf"{path}: the activation file changed since it was written"):
        encode_file(tmp_path / "flipped", path)
    assert not (tmp_path / "flipped" / "shard=00000").exists()
    # under the sha256, each page's CRC is verified too: a flip recorded as written still fails
    record_sha256(path)
    with pytest.raises(DataFileError, match=rf"{path}: the activation file is unreadable or corrupt .*CRC"):
        encode_file(tmp_path / "recorded", path)
    path.write_bytes(bytes(data[: len(data) // 3]))
    record_sha256(path)
    with pytest.raises(DataFileError, match=rf"{path}: .*magic bytes not found"):
        encode_file(tmp_path / "truncated", path)


def test_non_finite_and_overflowing_activations_are_refused_naming_file_and_row(tmp_path):
    rows = np.random.default_rng(3).normal(size=(12, D_MODEL))
    rows[7, 3] = np.nan
    with pytest.raises(DataFileError, match=r"x\.parquet: row 7, column activation\[3\] is nan"):
        encode_one(tmp_path / "nan", rows)
    rows[7, 3] = 3e38  # finite in float32, but its square is not
    with pytest.raises(DataFileError, match=r"x\.parquet: row 7: the reconstruction error or the target"):
        encode_one(tmp_path / "huge", rows)
    assert not (tmp_path / "huge" / "plt" / "shard=00000").exists()


def test_a_dictionary_file_changed_after_resolution_is_refused_with_both_hashes(tmp_path):
    manifest = schema_manifests(tmp_path)["PltBundle"][0]
    record = manifest.layers[0].files[0]
    weights = tmp_path / "plt" / record.local_path
    plt_bundle(weights, D_MODEL, D_SAE, seed=99)  # valid weights, not the resolved ones
    actual = hashlib.sha256(weights.read_bytes()).hexdigest()
    expected = rf"{weights}: set .*, layer 0: sha256 is {actual} but the manifest recorded {record.sha256}"
    with pytest.raises(DictionaryError, match=expected):
        load_layer(manifest, 0, tmp_path / "plt")
