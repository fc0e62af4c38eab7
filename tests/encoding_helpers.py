"""Small resolved sets of every schema and capture files, shared by the encoding tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mi_oracle.dictionaries.manifest import Manifest
from mi_oracle.dictionaries.resolve import ResolveRequest, resolve_set
from mi_oracle.encoding.run import encode_shard
from mi_oracle.parquet_files import METADATA_KEY, record_sha256
from tests.dictionary_files import (
    clt_split,
    gemma_scope_2,
    gemma_scope_npz,
    model_folder,
    plt_bundle,
    saelens_native,
)

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


def replace_after_resolution(manifest: dict, base: Path, writer) -> Path:
    path = base / manifest.layers[0].files[0].local_path
    path.unlink()
    writer(path)
    return path


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


def read_x(path: Path) -> np.ndarray:
    return np.stack(pq.read_table(path)["activation"].to_numpy(zero_copy_only=False)).astype(np.float64)


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
