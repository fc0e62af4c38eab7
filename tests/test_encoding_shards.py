"""Whole shards: features files, metrics over shards, and bad or failing input leaving nothing behind."""

from __future__ import annotations

import hashlib
import io
import json
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import torch

from mi_oracle.dictionaries.resolve import ResolveRequest, resolve_set
from mi_oracle.encoding.compute import encode, feature_lists, sparse_rows
from mi_oracle.encoding.features_file import FEATURES_WRITE_OPTIONS, FeaturesWriter, features_schema
from mi_oracle.encoding.loaders import load_layer
from mi_oracle.encoding.run import encode_shard
from mi_oracle.encoding.summary import write_metrics
from mi_oracle.errors import DataFileError, DictionaryError
from mi_oracle.layout import features_file
from mi_oracle.parquet_files import METADATA_KEY, WRITE_OPTIONS, digest_sidecar, record_sha256
from tests.dictionary_files import (
    gemma_scope_npz,
    model_folder,
    plt_bundle,
)
from tests.encoding_helpers import (
    D_MODEL,
    D_SAE,
    SHARD_SETTINGS,
    capture_file,
    encode_file,
    encode_one,
    read_x,
    schema_manifests,
)
from tests.encoding_oracle import load_canonical, oracle
from tests.small_disk import run_on_small_disk


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
        sidecar = digest_sidecar(shards[-1] / "_sums.json").name  # the sums' content hash
        names = sorted(p.name for p in shards[-1].iterdir())
        assert names == sorted([sidecar, "_sums.json", "layer=0", "layer=2"])
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
    # each page's CRC32 is still written, for other readers (ours check the whole-file hash instead)
    with pytest.raises(OSError, match="CRC"):
        pq.ParquetFile(path, page_checksum_verification=True).read()
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


def test_an_sae_reads_its_file_once_and_writes_what_a_separate_target_copy_gives(tmp_path):
    manifest, base = schema_manifests(tmp_path)["GemmaScopeNpz"]  # an SAE: its target is its input
    x = np.random.default_rng(6).normal(size=(23, D_MODEL)) * 3
    source = capture_file(base / "x.parquet", x)
    copy = capture_file(base / "copy.parquet", x)
    once = encode_shard(
        manifest, base / "m.json", [(1, source, source)], base / "once", SHARD_SETTINGS, base=base
    )
    twice = encode_shard(
        manifest, base / "m.json", [(1, source, copy)], base / "twice", SHARD_SETTINGS, base=base
    )
    assert once == twice and once["1"]["n_tokens"] == 23
    tables = [pq.read_table(features_file(base / name, 1)) for name in ("once", "twice")]
    assert tables[0].replace_schema_metadata(None).equals(tables[1].replace_schema_metadata(None))
