"""Encoding on real Gemma 3 270M activations, held against a float64 numpy oracle for every schema."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import save_file

from mi_oracle.dictionaries.manifest import Manifest, read_manifest
from mi_oracle.dictionaries.resolve import ResolveRequest, resolve_set
from mi_oracle.encoding.run import encode_shard
from mi_oracle.layout import features_file
from mi_oracle.parquet_files import digest_sidecar
from tests.encoding_oracle import compare, dense, load_canonical, oracle, read_table

pytestmark = pytest.mark.slow

SETS = ["synthetic-sae", "synthetic-plt-npz", "synthetic-plt-bundle", "synthetic-clt"]
# the metric sums with their content hash, and a folder per layer
SUMS_HASH = digest_sidecar(Path("_sums.json")).name
SHARD_ENTRIES = sorted(["_sums.json", SUMS_HASH, "layer=0", "layer=17", "layer=9"])
SETTINGS = {
    "device": "cpu",
    "dtype": "float32",
    "batch_rows": 1000,
    "compression": "zstd",
    "row_group_rows": 4096,
}


def manifest(workdir: Path, name: str) -> Manifest:
    return read_manifest(workdir / "results" / "curation" / name / "manifest.json")


def captured(workdir: Path, hook: str, layer: int, shard: str | None = None) -> np.ndarray:
    root = workdir / "results" / "activations" / "default"
    if shard is not None:
        table = pq.read_table(root / f"hook={hook}" / f"layer={layer}" / f"part-{shard}.parquet")
    else:
        table = read_table(root, hook=hook, layer=layer)
    return np.stack(table.column("activation").to_numpy(zero_copy_only=False))


def check_against_oracle(features, x, weights, activation, d_sae, k=None) -> dict:
    """Every flip is rounding at a threshold (``compare``), and few are: 1e-4 of the values.

    fp32 rounds a pre-activation by ~1e-9 to 1e-7 of ``|x| @ |W_enc|``; flips at that distance from
    a threshold (a ReLU's 0 or TopK's k-th value) come a few per 10^5 values on real activations.
    A fixture whose cuts fall among copies of one row (the BOS attention sink) flips ~1e-2 of them
    and would leave nothing tested, so it fails here.
    """
    ours = dense(
        features.column("feature_ids").to_pylist(), features.column("feature_values").to_pylist(), d_sae
    )
    pre, expected, threshold = oracle(weights, x, activation, k)
    counts = compare(ours, pre, expected, threshold, x, weights["W_enc"])
    assert counts["flips"] <= 1e-4 * counts["values"], counts
    return counts


@pytest.mark.parametrize("name", SETS)
def test_default_run_features_match_the_oracle(embedded_workdir, name):
    record = manifest(embedded_workdir, name)
    for layer in (0, 9, 17):
        features = read_table(embedded_workdir / "results" / "features" / "default" / name, layer=layer)
        x = captured(embedded_workdir, record.input_hook, layer)
        assert features.num_rows == len(x) == 5363
        weights = load_canonical(embedded_workdir, record, layer)
        check_against_oracle(features, x, weights, record.activation_kind, record.layers[0].d_sae)
        values = features.column("feature_values").to_pylist()
        assert all(v == sorted(v, reverse=True) for v in values)


@pytest.mark.parametrize("name", SETS)
def test_metrics_table_and_provenance_of_the_default_run(embedded_workdir, name):
    folder = embedded_workdir / "results" / "features" / "default" / name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["synthetic"] is True and sorted(metrics["layers"], key=int) == ["0", "9", "17"]
    for layer in metrics["layers"].values():
        assert layer["n_tokens"] == 5363 and 20 <= layer["mean_l0"] <= 200 and layer["fvu"] < 1
        assert sum(layer["l0_histogram"]["counts"]) == 5363
    rows = (folder / "metrics.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:4] == ["set", "layer", "schema", "target_hook"] and len(rows) == 4
    shards = sorted(folder.glob("shard=*"))
    assert [p.name for p in shards] == [f"shard={i:05d}" for i in range(len(shards))]
    # Snakemake stamps a directory output with .snakemake_timestamp; readers skip dot-files
    assert all(sorted(p.name for p in shard.glob("[!.]*")) == SHARD_ENTRIES for shard in shards)
    part = shards[-1] / "layer=9" / "features.parquet"
    meta = json.loads(pq.read_schema(part).metadata[b"mi_oracle"])
    manifest_file = embedded_workdir / meta["manifest"]["path"]
    assert meta["manifest"]["sha256"] == hashlib.sha256(manifest_file.read_bytes()).hexdigest()
    assert meta["activations"]["path"].endswith(f"layer=9/part-{shards[-1].name[6:]}.parquet")
    assert meta["activations"]["model"]["repo"] == "google/gemma-3-270m" and meta["synthetic"] is True
    root = embedded_workdir / "results" / "features" / "default"
    dataset = ds.dataset(root, format="parquet", partitioning="hive", exclude_invalid_files=True)
    assert dataset.count_rows() == 5363 * 3 * len(SETS)
    assert set(dataset.schema.names) >= {"shard", "layer", "feature_ids"}


def save_dictionary(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in tensors.items()},
        str(path),
    )
    return path


def between_samples(values: np.ndarray, quantile: float) -> np.ndarray:
    """Per column, a cut midway between the two distinct samples around ``quantile``.

    Repeated rows would otherwise sit exactly on a threshold.
    """
    ordered = np.sort(values, axis=0)
    above = ordered[int(quantile * len(values))]
    below = np.where(ordered < above, ordered, -np.inf).max(axis=0)
    return (np.where(np.isfinite(below), below, above - 1.0) + above) / 2


def calibrated(x: np.ndarray, d_sae: int, seed: int) -> dict[str, np.ndarray]:
    """Encoder directions from the activations, thresholds at the 97th percentile of each feature."""
    rng = np.random.default_rng(seed)
    distinct = np.unique(x, axis=0)  # each prompt's BOS row repeats; identical features would tie
    w_enc = distinct[rng.choice(len(distinct), d_sae, replace=False)].T.astype(np.float64)
    w_enc /= np.linalg.norm(w_enc, axis=0)
    pre = x @ w_enc
    b_enc = -np.median(pre, axis=0)
    threshold = between_samples(pre + b_enc, 0.97)
    w_dec = rng.standard_normal((d_sae, x.shape[1]))
    return {
        "W_enc": w_enc,
        "b_enc": b_enc,
        "threshold": threshold,
        "W_dec": w_dec / np.linalg.norm(w_dec, axis=1, keepdims=True),
        "b_dec": x.mean(0),
    }


def other_schemas(root: Path, x: np.ndarray, d_model: int, n_layers: int) -> dict[str, dict]:
    """GemmaScope2 (with skip), SAELens native, a ReLU CLT and a TopK SAE at layer 9, in their layouts."""
    base = calibrated(x, 256, 0)
    save_dictionary(
        root / "gs2/layer_9/params.safetensors",
        {
            "w_enc": base["W_enc"],
            "w_dec": base["W_dec"],
            "b_enc": base["b_enc"],
            "b_dec": base["b_dec"],
            "threshold": base["threshold"],
            "affine_skip_connection": 0.01 * np.eye(d_model),
        },
    )
    save_dictionary(root / "saelens/sae_weights.safetensors", {**base, "b_dec": 0.01 * base["b_dec"]})
    (root / "saelens/cfg.json").write_text(
        json.dumps(
            {
                "architecture": "jumprelu",
                "d_in": d_model,
                "d_sae": 256,
                "hook_name": "blocks.9.hook_resid_post",
                "apply_b_dec_to_input": True,
            }
        )
    )
    (root / "topk").mkdir()
    np.savez(root / "topk/params.npz", **{k: v.astype(np.float32) for k, v in base.items()})
    clt = calibrated(x, 128, 1)
    save_dictionary(
        root / "clt/W_enc_9.safetensors",
        {"W_enc_9": clt["W_enc"].T, "b_enc_9": clt["b_enc"] - clt["threshold"], "b_dec_9": clt["b_dec"]},
    )
    decoder = np.random.default_rng(2).standard_normal((128, n_layers - 9, d_model))
    save_dictionary(root / "clt/W_dec_9.safetensors", {"W_dec_9": decoder})
    return {
        "gs2": {
            "sae": {
                "hook": "resid_post",
                "entries": [{"layer": 9, "filepath": "gs2/layer_9/params.safetensors"}],
            }
        },
        "saelens": {
            "sae": {
                "hook": "resid_post",
                "entries": [{"layer": 9, "filepath": "saelens/sae_weights.safetensors"}],
            }
        },
        "topk": {
            "sae": {
                "hook": "resid_post",
                "activation": "topk",
                "k": 16,
                "entries": [{"layer": 9, "filepath": "topk/params.npz"}],
            }
        },
        "clt": {
            "sae": {"hook": "resid_post", "entries": [{"layer": 9, "filepath": "clt/W_enc_9.safetensors"}]}
        },
    }


@pytest.mark.parametrize(
    ("name", "schema"),
    [("gs2", "GemmaScope2"), ("saelens", "SaeLensNative"), ("topk", "GemmaScopeNpz"), ("clt", "CltSplit")],
)
def test_other_schemas_encode_real_activations_like_the_oracle(embedded_workdir, tmp_path, name, schema):
    model_dir = embedded_workdir / "resources" / "models" / "gemma-3-270m"
    shard = "00001"
    source = (
        embedded_workdir
        / "results"
        / "activations"
        / "default"
        / "hook=resid_post"
        / "layer=9"
        / f"part-{shard}.parquet"
    )
    x = captured(embedded_workdir, "resid_post", 9, shard)
    # Every prompt's BOS row is one attention-sink vector (norm ~88k), copied up to the last bit
    # of its batch's shape: a percentile cut among the copies would split them, so the
    # dictionaries are calibrated on the other rows and BOS rows fire far from any threshold.
    positions = pq.read_table(source, columns=["position"]).column("position").to_numpy()
    definitions = other_schemas(tmp_path, x[positions > 0].astype(np.float64), 640, 18)
    record = resolve_set(
        ResolveRequest(
            name,
            {"name": name, **definitions[name]},
            model_dir,
            None,
            [9],
            [str(tmp_path)],
            tmp_path / "manifest.json",
            tmp_path / "files",
            base=tmp_path,
        )
    )
    assert record.schemas == [schema]
    sums = encode_shard(
        record, tmp_path / "manifest.json", [(9, source, source)], tmp_path / "shard", SETTINGS, base=tmp_path
    )
    features = pq.read_table(features_file(tmp_path / "shard", 9))
    assert list(sums) == ["9"] and sums["9"]["n_tokens"] == len(x)
    assert features.num_rows == len(x)
    weights = load_canonical(tmp_path, record, 9)
    counts = check_against_oracle(
        features, x, weights, record.activation_kind, record.layer(9).d_sae, record.k
    )
    assert counts["compared"] > len(x)
