"""Capture one shard: batched, length-grouped forward passes that stop after the deepest layer."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mi_oracle.capture.recorder import ActivationRecorder
from mi_oracle.capture.writer import ShardWriters, activation_schema
from mi_oracle.devices import DTYPES, resolve_device
from mi_oracle.environment import describe_environment
from mi_oracle.hook_points import HOOK_POINTS, hf_module_name, locate
from mi_oracle.models.provenance import model_identity, verify_model_files
from mi_oracle.parquet_files import read_parquet

log = logging.getLogger(__name__)

DEFAULT_MAX_PADDING = 0.2


def length_grouped_batches(
    lengths: list[int], batch_tokens: int, max_padding: float = DEFAULT_MAX_PADDING
) -> Iterator[list[int]]:
    """Row indices grouped by length, longest first, in batches of at most ``batch_tokens`` padded
    tokens where no row is padded by more than ``max_padding`` of the batch's width.

    A batch pays for rows x its longest row: a 6-token prompt beside a 42-token one costs seven
    times its own work. Bounding each row's padding keeps the computed positions within about
    1 / (1 - ``max_padding``) of the real ones (the default run's shards: 2.1-2.9x fewer than with
    the token budget alone), while a corpus with many prompts of each length still fills batches.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batch: list[int] = []
    for index in order:
        width = lengths[batch[0]] if batch else 0
        if batch and (width * (len(batch) + 1) > batch_tokens or lengths[index] < (1 - max_padding) * width):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def right_padded(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask for right-padded ``rows``."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return input_ids, mask


def as_float32_numpy(values: Mapping[Any, torch.Tensor]) -> dict[Any, np.ndarray]:
    """Each output as float32 numpy on the CPU."""
    return {key: tensor.to(torch.float32).cpu().numpy() for key, tensor in values.items()}


def load_recording_model(
    model_dir: Path, points: Iterable[tuple[str, int]], settings: Mapping[str, Any], threads: int = 1
) -> tuple[torch.nn.Module, ActivationRecorder, torch.device]:
    """The model on its device and a recorder for ``points``; an unsupported family fails before loading."""
    from transformers import AutoConfig, AutoModelForCausalLM

    points = list(points)
    model_type = AutoConfig.from_pretrained(model_dir).model_type
    for hook, _layer in points:
        locate(model_type, hook)
    verify_model_files(model_dir)  # the weights its metadata will name, not others
    if threads > 0:
        torch.set_num_threads(threads)
    device = resolve_device(settings["device"])
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=DTYPES[settings["dtype"]]).to(device).eval()
    return model, ActivationRecorder(model.model.layers, model_type, points), device


def pad_token_id(model: torch.nn.Module) -> int:
    return model.config.pad_token_id if model.config.pad_token_id is not None else 0


def recorded_batches(
    model: torch.nn.Module,
    recorder: ActivationRecorder,
    rows: list[list[int]],
    settings: Mapping[str, Any],
    device: torch.device,
) -> Iterator[dict[tuple[str, int], np.ndarray]]:
    """The unpadded values ([real tokens, d_model] float32 each) of each length-grouped batch."""
    lengths = [len(row) for row in rows]
    for batch in length_grouped_batches(lengths, settings["batch_tokens"], settings["max_padding"]):
        input_ids, mask = right_padded([rows[i] for i in batch], pad_token_id(model))
        on_device = mask.to(device)
        with torch.inference_mode():
            values = recorder.run(
                model.model, keep=on_device.bool(), input_ids=input_ids.to(device), attention_mask=on_device
            )
        yield as_float32_numpy(values)


def collect_activations(
    model_dir: Path,
    rows: list[list[int]],
    points: Iterable[tuple[str, int]],
    settings: Mapping[str, Any],
    threads: int = 1,
) -> dict[tuple[str, int], np.ndarray]:
    """Every real token's activation at each point, in memory ([n_tokens, d_model] float32 each)."""
    model, recorder, device = load_recording_model(model_dir, points, settings, threads)
    parts: dict[tuple[str, int], list[np.ndarray]] = {point: [] for point in recorder.points}
    for values in recorded_batches(model, recorder, rows, settings, device):
        for point, array in values.items():
            parts[point].append(array)
    recorder.remove()
    return {point: np.concatenate(arrays) for point, arrays in parts.items()}


def capture_shard(
    model_dir: Path,
    tokens_path: Path,
    outputs: Mapping[tuple[str, int], Path],
    settings: Mapping[str, Any],
    plan: Mapping[str, Any],
    shard: str,
    threads: int = 1,
) -> dict[str, Any]:
    """Capture every (hook, layer) in ``outputs`` for the prompts of shard ``shard``'s tokens table."""
    model, recorder, device = load_recording_model(model_dir, outputs.keys(), settings, threads)
    model_type = model.config.model_type
    d_model = model.config.hidden_size

    tokens = read_parquet(tokens_path, "tokens table", ["prompt_id", "token_ids"]).to_pydict()
    rows, prompt_ids = tokens["token_ids"], tokens["prompt_id"]
    common = {
        "model": {**model_identity(model_dir, with_weights=True), "model_type": model_type},
        "model_dtype": settings["dtype"],
        "stored_dtype": settings["storage_dtype"],
        "stored_dtype_note": "bfloat16 is stored as its 16 bits (uint16): float32 = bits << 16",
        "storage": {"compression": settings["compression"], "float_encoding": settings["float_encoding"]},
        "device": device.type,
        "prompt_set": plan["prompt_set"],
        "tokenization": plan["tokenization"],
        "shard": shard,
        "environment": describe_environment(),
    }
    schemas = {
        (hook, layer): activation_schema(
            d_model,
            {
                **common,
                "hook": hook,
                "layer": layer,
                "transformer_lens": HOOK_POINTS[hook].transformer_lens.format(layer=layer),
                "hf_module": hf_module_name(model_type, hook, layer),
                "meaning": HOOK_POINTS[hook].meaning,
            },
            settings["storage_dtype"],
        )
        for hook, layer in outputs
    }
    n_tokens = sum(len(row) for row in rows)
    lengths = [len(row) for row in rows]
    batches = list(length_grouped_batches(lengths, settings["batch_tokens"], settings["max_padding"]))
    # on CUDA the host's cores are free for Parquet: one writer thread per core, up to one per
    # file; on the CPU torch's threads compute the forward and one writer thread keeps up
    writer_threads = max(1, min(len(outputs), threads)) if device.type == "cuda" else 1
    progress = tqdm(
        total=n_tokens, unit="tok", unit_scale=True, mininterval=5, file=sys.stderr, desc="capture"
    )
    writers = ShardWriters(
        outputs,
        schemas,
        settings["row_group_rows"],
        settings["compression"],
        float_encoding=settings["float_encoding"],
        stored_dtype=settings["storage_dtype"],
        buffer_rows=max((sum(len(rows[i]) for i in batch) for batch in batches), default=1),
        n_buffers=len({hook for hook, _layer in outputs}) + writer_threads,
        pin_memory=device.type == "cuda",
        writer_threads=writer_threads,
    )
    with writers:
        for batch in batches:
            input_ids, mask = right_padded([rows[i] for i in batch], pad_token_id(model))
            real = mask.bool()
            writers.start_batch(
                np.repeat(np.array([prompt_ids[i] for i in batch]), real.sum(1).numpy()),
                torch.nonzero(real)[:, 1].numpy(),
                input_ids[real].numpy(),
                torch.nonzero(real.reshape(-1)).squeeze(1).to(device),
            )
            with torch.inference_mode():
                recorder.stream(
                    model.model, writers.put, input_ids=input_ids.to(device), attention_mask=mask.to(device)
                )
            progress.update(int(real.sum()))
    progress.close()
    recorder.remove()
    log.info("captured %d tokens x %d hook points on %s", n_tokens, len(outputs), device)
    return {"n_tokens": n_tokens, "device": device.type}
