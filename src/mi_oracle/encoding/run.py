"""Encode one shard with every layer of a set: stream its captured activations, write features and sums."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from mi_oracle.atomic import atomic_directory, write_json_atomic
from mi_oracle.capture.run import DTYPES, resolve_device
from mi_oracle.capture.writer import METADATA_KEY, read_metadata
from mi_oracle.encoding.compute import decode, encode, sparse_rows
from mi_oracle.encoding.layout import SUMS_FILE, features_file
from mi_oracle.encoding.loaders import load_layer
from mi_oracle.encoding.metrics import MetricSums
from mi_oracle.environment import describe_environment
from mi_oracle.errors import DictionaryError
from mi_oracle.memory import pin_mmap_threshold

log = logging.getLogger(__name__)
KEYS = ("prompt_id", "position", "token_id")


def features_schema(metadata: Mapping[str, Any]) -> pa.Schema:
    """prompt_id, position, token_id, and the active features as parallel index and value lists."""
    return pa.schema(
        [
            ("prompt_id", pa.int64()),
            ("position", pa.int32()),
            ("token_id", pa.int32()),
            ("feature_ids", pa.list_(pa.int32())),
            ("feature_values", pa.list_(pa.float32())),
        ],
        metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()},
    )


def _rows(batch: pa.RecordBatch, d_model: int) -> np.ndarray:
    values = batch.column("activation").flatten().to_numpy(zero_copy_only=False)
    return values.reshape(-1, d_model)


def _same_tokens(a: pa.RecordBatch, b: pa.RecordBatch, where: str) -> None:
    for key in KEYS[:2]:
        if not a.column(key).equals(b.column(key)):
            raise DictionaryError(f"{where}: the input and target activation files list different tokens")


def encode_layer(
    manifest: Mapping[str, Any],
    manifest_path: Path,
    layer: int,
    inputs: Path,
    target: Path,
    features_path: Path,
    settings: Mapping[str, Any],
    base: Path | None = None,
) -> dict[str, Any]:
    """Encode every token of ``inputs`` (a capture file) with layer ``layer`` of the set in ``manifest``.

    ``target`` is the capture file the output is compared with (``inputs`` itself for an SAE).
    Writes ``features_path`` (inside a staging folder: not atomic by itself) and returns the sums.
    """
    device = resolve_device(settings["device"])
    dtype = DTYPES[settings["dtype"]]
    dictionary = load_layer(manifest, layer, Path(base or Path.cwd()), dtype).to(device)
    capture_meta = read_metadata(inputs)
    d_model = dictionary.W_enc.shape[0]
    record = next(r for r in manifest["layers"] if r["layer"] == layer)
    metadata = {
        "set": manifest["set"],
        "kind": manifest["kind"],
        "synthetic": manifest["synthetic"],
        "layer": layer,
        "schema": record["schema"],
        "activation": dictionary.activation,
        "input_hook": manifest["input_hook"],
        "output_hook": manifest["output_hook"],
        "manifest": {
            "path": str(manifest_path),
            "sha256": hashlib.sha256(Path(manifest_path).read_bytes()).hexdigest(),
        },
        "dictionary_files": [{"local_path": f["local_path"], "sha256": f["sha256"]} for f in record["files"]],
        "activations": {
            "path": str(inputs),
            "target": str(target),
            "model": capture_meta["model"],
            "shard": capture_meta["shard"],
            "prompt_set": capture_meta["prompt_set"],
        },
        "compute_dtype": settings["dtype"],
        "device": device.type,
        "environment": describe_environment(),
    }
    sums = MetricSums(d_sae=dictionary.d_sae, d_out=dictionary.W_dec.shape[2])
    # pre_buffer=False: Arrow would otherwise prefetch (and keep) every row group of the file
    source, wanted = pq.ParquetFile(inputs, pre_buffer=False), pq.ParquetFile(target, pre_buffer=False)
    batch_rows = settings["batch_rows"]
    buffers = (
        torch.empty((batch_rows, dictionary.d_sae), dtype=dtype, device=device),
        torch.empty((batch_rows, dictionary.d_sae), dtype=torch.bool, device=device),
    )
    progress = tqdm(
        total=source.metadata.num_rows,
        unit="tok",
        unit_scale=True,
        mininterval=5,
        file=sys.stderr,
        desc=f"encode {manifest['set']} L{layer}",
    )
    features_path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(
        features_path, features_schema(metadata), compression=settings["compression"]
    ) as writer:
        pairs = zip(
            source.iter_batches(batch_size=batch_rows),
            wanted.iter_batches(batch_size=batch_rows, columns=["prompt_id", "position", "activation"]),
            strict=True,
        )
        for batch, target_batch in pairs:
            _same_tokens(batch, target_batch, str(inputs))
            x = torch.from_numpy(_rows(batch, d_model)).to(device)
            y = torch.from_numpy(_rows(target_batch, d_model)).to(device)
            with torch.inference_mode():
                acts, active = encode(dictionary, x, out=buffers)
                sums.add(acts, active, decode(dictionary, acts, x), y)
            ids, values = sparse_rows(acts, active)
            columns = [batch.column(key) for key in KEYS] + [ids, values]
            writer.write_table(
                pa.Table.from_arrays(columns, schema=writer.schema),
                row_group_size=settings["row_group_rows"],
            )
            progress.update(batch.num_rows)
    progress.close()
    log.info(
        "%s layer %d: %d tokens, mean L0 %.1f",
        manifest["set"],
        layer,
        sums.n_tokens,
        sums.l0_sum / max(sums.n_tokens, 1),
    )
    return sums.to_json()


def encode_shard(
    manifest: Mapping[str, Any],
    manifest_path: Path,
    points: Sequence[tuple[int, Path, Path]],
    shard_dir: Path,
    settings: Mapping[str, Any],
    threads: int = 1,
    base: Path | None = None,
) -> dict[str, Any]:
    """Encode one shard with every layer in ``points`` ((layer, input file, target file) each).

    Writes the folder ``shard_dir`` whole or not at all: ``layer=<L>/features.parquet`` per layer
    and ``_sums.json``; one dictionary is loaded at a time, so memory is that of one layer.
    """
    if threads > 0:
        torch.set_num_threads(threads)
    pin_mmap_threshold()
    sums = {}
    with atomic_directory(Path(shard_dir)) as staging:
        for layer, inputs, target in points:
            path = features_file(staging, layer)
            sums[str(layer)] = encode_layer(
                manifest, manifest_path, layer, Path(inputs), Path(target), path, settings, base
            )
        write_json_atomic(staging / SUMS_FILE, {"set": manifest["set"], "layers": sums})
    return sums
