"""Encode one shard with every layer of a set: stream its captured activations, write features and sums."""

from __future__ import annotations

import hashlib
import logging
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from mi_oracle.activation_storage import activation_matrix
from mi_oracle.atomic import atomic_directory
from mi_oracle.checked_json import write_checked_json
from mi_oracle.devices import DTYPES, cpu_threads, resolve_device
from mi_oracle.dictionaries.manifest import Manifest
from mi_oracle.encoding import native
from mi_oracle.encoding.compute import (
    decode,
    encode,
    feature_lists,
    fused_activation,
    fused_sparse_rows,
    sparse_rows,
)
from mi_oracle.encoding.features_file import FeaturesWriter
from mi_oracle.encoding.loaders import load_layer
from mi_oracle.encoding.metrics import MetricSums
from mi_oracle.environment import describe_environment
from mi_oracle.errors import DataFileError, DictionaryError
from mi_oracle.layout import SUMS_FILE, features_file
from mi_oracle.memory import pin_mmap_threshold
from mi_oracle.parquet_files import (
    check_finite,
    file_metadata,
    iter_batches,
    open_parquet_pair,
    prefetched,
    record_sha256,
)

log = logging.getLogger(__name__)
KEYS = ("prompt_id", "position", "token_id")
TARGET_COLUMNS = ["prompt_id", "position", "activation"]


def _rows(batch: pa.RecordBatch, d_model: int, path: Path, first_row: int) -> np.ndarray:
    """The batch's activations as [rows, d_model] float32, refused unless every value is finite.

    Writable: a zero-copy view of Arrow's read-only buffer is copied, since torch cannot hold a
    read-only array (it warns, and a later in-place operation would write into Arrow's memory).
    """
    values = activation_matrix(batch.column("activation"), d_model)
    check_finite(values, path, "activation", first_row)
    return np.require(values, requirements="W")


def _host_rows(
    pairs: Iterator[tuple[pa.RecordBatch, pa.RecordBatch | None]],
    d_model: int,
    inputs: Path,
    target: Path,
    pin: bool,
) -> Iterator[tuple[pa.RecordBatch, torch.Tensor, torch.Tensor | None]]:
    """Each batch with its input and target rows as float32 CPU tensors (page-locked if ``pin``,
    so that the copy to the GPU runs asynchronously); ``None`` for a target that is the input."""
    first_row = 0
    for batch, target_batch in pairs:
        x = torch.from_numpy(_rows(batch, d_model, inputs, first_row))
        y = None
        if target_batch is not None:
            _same_tokens(batch, target_batch, str(inputs))
            y = torch.from_numpy(_rows(target_batch, d_model, target, first_row))
        if pin:
            x, y = x.pin_memory(), None if y is None else y.pin_memory()
        first_row += batch.num_rows
        yield batch, x, y


def _check_sums(sums: MetricSums, output: torch.Tensor, target: torch.Tensor, where: str, first_row: int):
    """Finite inputs can still overflow (a huge but finite value): name the first row that did."""
    if math.isfinite(sums.squared_error) and math.isfinite(sums.target_squared):
        return
    error = (output - target).to(torch.float64)
    bad = ~torch.isfinite((error * error).sum(1) + (target.to(torch.float64) ** 2).sum(1))
    row = int(torch.nonzero(bad)[0, 0]) if bad.any() else 0
    raise DataFileError(
        f"{where}: row {first_row + row}: the reconstruction error or the target overflows to a "
        "non-finite value; the activations hold values far outside any model's range (a corrupt "
        "file, or a dictionary made for another model)"
    )


def _same_tokens(a: pa.RecordBatch, b: pa.RecordBatch, where: str) -> None:
    for key in KEYS[:2]:
        if not a.column(key).equals(b.column(key)):
            raise DictionaryError(f"{where}: the input and target activation files list different tokens")


def encode_layer(
    manifest: Manifest,
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
    if device.type == "cpu" and not native.AVAILABLE:
        log.warning(native.NOT_BUILT)
    dictionary = load_layer(manifest, layer, Path(base or Path.cwd()), dtype).to(device)
    source, wanted = open_parquet_pair(inputs, target, "activation file")
    capture_meta = file_metadata(source.schema_arrow, inputs)
    d_model = dictionary.W_enc.shape[0]
    record = manifest.layer(layer)
    metadata = {
        "set": manifest.name,
        "kind": manifest.kind,
        "synthetic": manifest.synthetic,
        "layer": layer,
        "schema": record.schema,
        "activation": dictionary.activation,
        "input_hook": manifest.input_hook,
        "output_hook": manifest.output_hook,
        "manifest": {
            "path": str(manifest_path),
            "sha256": hashlib.sha256(Path(manifest_path).read_bytes()).hexdigest(),
        },
        "dictionary_files": [{"local_path": f.local_path, "sha256": f.sha256} for f in record.files],
        "activations": {
            "path": str(inputs),
            "target": str(target),
            "model": capture_meta["model"],
            "shard": capture_meta["shard"],
            "prompt_set": capture_meta["prompt_set"],
        },
        "compute_dtype": settings["dtype"],
        "device": device.type,
        "kernels": {
            "activation": "fused" if fused_activation(dictionary, device, dtype) else "torch",
            "sparse_rows": "fused" if fused_sparse_rows(device, dtype) else "torch",
        },
        "environment": describe_environment(),
    }
    sums = MetricSums(d_sae=dictionary.d_sae, d_out=dictionary.W_dec.shape[2])
    if source.metadata.num_rows != wanted.metadata.num_rows:
        raise DataFileError(
            f"{inputs}: {source.metadata.num_rows} rows, but the target {target} has "
            f"{wanted.metadata.num_rows}; both must list the same tokens (capture them again)"
        )
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
        desc=f"encode {manifest.name} L{layer}",
    )
    features_path.parent.mkdir(parents=True, exist_ok=True)
    first_row = 0
    compression, row_group_rows = settings["compression"], settings["row_group_rows"]
    # on CUDA the next batches are decoded (row groups on every thread of the job) and pinned on
    # another thread while the GPU computes; on the CPU torch's threads use every core already
    decoders = torch.get_num_threads() if device.type == "cuda" else 1
    batches = iter_batches(source, inputs, "activation file", batch_rows, threads=decoders)
    if Path(target).resolve() == Path(inputs).resolve():  # an SAE: its input is its target
        pairs = ((batch, None) for batch in batches)
    else:
        targets = iter_batches(wanted, target, "activation file", batch_rows, TARGET_COLUMNS, decoders)
        pairs = zip(batches, targets, strict=True)
    host = _host_rows(pairs, d_model, inputs, target, pin=device.type == "cuda")
    with (
        FeaturesWriter(features_path, metadata, compression, row_group_rows) as writer,
        closing(prefetched(host) if device.type == "cuda" else host) as decoded,
    ):
        for batch, x_host, y_host in decoded:
            x = x_host.to(device, non_blocking=True)
            y = x if y_host is None else y_host.to(device, non_blocking=True)
            with torch.inference_mode():
                acts, active = encode(dictionary, x, out=buffers)
                output = decode(dictionary, acts, x)
                writer.start()  # the previous batch's write, beside this one's sparse part
                with cpu_threads(device, 1):
                    found = sparse_rows(acts, active)  # (on CPU, torch leaves the writer a core)
                    sums.add(acts, found, output, y)
                    _check_sums(sums, output, y, str(inputs), first_row)
                    lists = feature_lists(found)
            writer.wait()
            writer.add([batch.column(key) for key in KEYS] + list(lists))
            first_row += batch.num_rows
            progress.update(batch.num_rows)
    progress.close()
    record_sha256(features_path)
    log.info(
        "%s layer %d: %d tokens, mean L0 %.1f",
        manifest.name,
        layer,
        sums.n_tokens,
        sums.l0_sum / max(sums.n_tokens, 1),
    )
    return sums.to_json()


def encode_shard(
    manifest: Manifest,
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
    try:
        with atomic_directory(Path(shard_dir)) as staging:
            for layer, inputs, target in points:
                path = features_file(staging, layer)
                sums[str(layer)] = encode_layer(
                    manifest, manifest_path, layer, Path(inputs), Path(target), path, settings, base
                )
            write_checked_json(staging / SUMS_FILE, {"set": manifest.name, "layers": sums})
    except OSError as error:  # a full disk, a lost mount: the staging folder is already gone
        raise DataFileError(f"{shard_dir}: encoding failed ({error}); nothing was left behind") from error
    return sums
