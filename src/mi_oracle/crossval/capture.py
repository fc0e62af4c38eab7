"""The project's captured activations against Hugging Face ``output_hidden_states`` and
TransformerLens ``run_with_cache`` on the same prompts (each prompt alone, no padding).

``hidden_states[l]`` is the input of layer ``l`` (resid_pre) and ``hidden_states[l + 1]`` its
output (resid_post), except the last entry, which carries the final norm: the last layer's
resid_post is held against it after applying that norm to the capture. TransformerLens is run
through its ``TransformerBridge`` around the same Hugging Face model, by the TransformerLens name
of each hook. Both references run in the dtype the capture's model ran in (its metadata's
``model_dtype``), on CPU, so the comparison is of hook placement and batching, not of precision;
the bars are per dtype (:data:`BARS`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from mi_oracle.activation_storage import activation_matrix
from mi_oracle.crossval.peer_outputs import peer_capture
from mi_oracle.devices import DTYPES
from mi_oracle.hook_points import HOOK_POINTS
from mi_oracle.layout import activation_file
from mi_oracle.parquet_files import file_metadata, read_metadata, read_parquet

N_PROMPTS = 8
# Relative to the row norm, per model dtype. float32: the same arithmetic in another call order
# (TransformerLens vs HF agree within ~1e-6 on resid_post). bfloat16 and float16: a padded
# batch vs each prompt alone reaches 2.2e-2 and 1.2e-3 on Gemma 3 270M
# (benchmarks/capture_dtype_drift.py, results in benchmarks/RESULTS.md).
BARS = {
    "float32": {"hf": 1e-5, "transformer_lens": 1e-4, "peers": 1e-4},
    "bfloat16": {"hf": 5e-2, "transformer_lens": 5e-2, "peers": 5e-2},
    "float16": {"hf": 1e-2, "transformer_lens": 1e-2, "peers": 1e-2},
}
# Added to the model dtype's bar by the stored dtype's rounding: at most 4.6e-4 (float16) and
# 3.7e-3 (bfloat16) of the row norm over every default point of Gemma 3 270M (float16 overflows
# its residual stream at layers 9 and 17: refused at capture). See benchmarks/RESULTS.md.
STORAGE_BARS = {"float32": 0.0, "float16": 1e-3, "bfloat16": 1e-2}
# The peers in their own environment (nnsight, circuit-tracer) run transformers 4.57 in float32
# against this environment's 5.x: the same model, other kernels' call order.


def diff_stats(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """Max absolute difference, and the largest difference relative to its row's norm."""
    diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
    norms = np.maximum(np.linalg.norm(theirs.astype(np.float64), axis=1), 1e-12)
    return {
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float((np.linalg.norm(ours - theirs, axis=1) / norms).max()),
    }


def captured_rows(root: Path, hook: str, layer: int, shard: str, prompt_ids: Sequence[int]) -> np.ndarray:
    """The captured rows of ``prompt_ids`` (in that order, positions ascending) at one point."""
    return rows_of(read_parquet(activation_file(root, hook, layer, shard), "activation file"), prompt_ids)


def rows_of(table: pa.Table, prompt_ids: Sequence[int]) -> np.ndarray:
    """The rows of ``prompt_ids`` of a capture table (in that order, positions ascending)."""
    parts = []
    for prompt_id in prompt_ids:
        rows = table.filter(pc.equal(table["prompt_id"], prompt_id)).sort_by("position")
        parts.append(activation_matrix(rows["activation"], rows.schema.field("activation").type.list_size))
    return np.concatenate(parts)


def _hf_reference(model, hook: str, layer: int, hidden: Sequence[torch.Tensor], ours: np.ndarray):
    """(ours as compared, HF's tensor) for the hooks hidden_states holds, else None."""
    last = model.config.num_hidden_layers - 1
    if hook == "resid_pre":
        return ours, hidden[layer]
    if hook == "resid_post" and layer < last:
        return ours, hidden[layer + 1]
    if hook == "resid_post":
        with torch.no_grad():
            normed = model.model.norm(torch.from_numpy(ours).to(model.dtype)[None])[0].float().numpy()
        return normed, hidden[-1]
    return None


def compare_capture(
    model_dir: Path,
    tokens_path: Path,
    activations_root: Path,
    shard: str,
    points: Sequence[tuple[str, int]],
    n_prompts: int = N_PROMPTS,
    peers: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """Per (hook, layer): max abs and max relative diff against HF, TransformerLens and the capture
    peers (``peers``: name -> output folder), with bars."""
    from transformers import AutoModelForCausalLM

    table = read_parquet(tokens_path, "tokens table", ["prompt_id", "token_ids"])
    tokens = table.slice(0, n_prompts).to_pydict()
    paths = {point: activation_file(activations_root, *point, shard) for point in points}
    first = read_metadata(paths[points[0]])
    dtype, stored = first["model_dtype"], first.get("stored_dtype", "float32")
    bars = {peer: max(bar, STORAGE_BARS[stored]) for peer, bar in BARS[dtype].items()}
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=DTYPES[dtype]).eval()
    hidden: list[list[torch.Tensor]] = []
    with torch.no_grad():
        for ids in tokens["token_ids"]:
            states = model(torch.tensor([ids]), output_hidden_states=True, use_cache=False).hidden_states
            hidden.append([state[0].float() for state in states])
    lens = _transformer_lens_caches(model, model_dir, tokens["token_ids"], points)
    peer_rows = {peer: peer_capture(Path(folder)) for peer, folder in (peers or {}).items()}
    rows, devices = [], set()
    for hook, layer in points:  # one table at a time, each read (and hashed) once
        table = read_parquet(paths[(hook, layer)], "activation file")
        devices.add(file_metadata(table.schema, paths[(hook, layer)])["device"])
        ours = rows_of(table, tokens["prompt_id"])
        row: dict[str, Any] = {"hook": hook, "layer": layer, "n_tokens": len(ours)}
        offsets = np.cumsum([0, *(len(ids) for ids in tokens["token_ids"])])
        pairs = [
            _hf_reference(model, hook, layer, states, ours[start:end])
            for states, start, end in zip(hidden, offsets[:-1], offsets[1:], strict=True)
        ]
        if pairs[0] is not None:
            stats = diff_stats(
                np.concatenate([p[0] for p in pairs]), np.concatenate([p[1].numpy() for p in pairs])
            )
            row["hf"] = {**stats, "bar": bars["hf"], "pass": stats["max_rel_diff"] <= bars["hf"]}
        else:
            row["hf"] = {"status": "not applicable: hidden_states holds resid_pre and resid_post only"}
        if isinstance(lens, str):
            row["transformer_lens"] = {"status": lens}
        elif (hook, layer) not in lens[0]:
            name = HOOK_POINTS[hook].transformer_lens.format(layer=layer)
            row["transformer_lens"] = {"status": f"not run: TransformerLens cached no {name}"}
        else:
            stats = diff_stats(ours, np.concatenate([cache[(hook, layer)] for cache in lens]))
            bar = bars["transformer_lens"]
            row["transformer_lens"] = {**stats, "bar": bar, "pass": stats["max_rel_diff"] <= bar}
        for peer, captured in peer_rows.items():
            row[peer] = _peer_point(peer, captured, hook, layer, ours, bars["peers"])
        rows.append(row)
    return {
        "peers": sorted(peer_rows),
        "n_prompts": len(tokens["prompt_id"]),
        "shard": shard,
        "devices": sorted(devices),
        "model_dtype": dtype,
        "stored_dtype": stored,
        "points": rows,
    }


def _transformer_lens_caches(model, model_dir: Path, token_rows, points: Sequence):
    """Per prompt, {(hook, layer): rows} from TransformerLens, or why it was not run."""
    if importlib.util.find_spec("transformer_lens") is None:
        return "not run: transformer-lens is not installed (pip install '.[peers]')"
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    bridge = TransformerBridge.boot_transformers(
        str(model_dir),  # the local folder: its config picks the architecture, and no hub is asked
        hf_model=model,
        tokenizer=AutoTokenizer.from_pretrained(model_dir),
        device="cpu",
    )
    names = {HOOK_POINTS[hook].transformer_lens.format(layer=layer): (hook, layer) for hook, layer in points}
    caches = []
    with torch.no_grad():
        for ids in token_rows:
            _, cache = bridge.run_with_cache(torch.tensor([ids]), names_filter=lambda name: name in names)
            caches.append(
                {point: cache[name][0].float().numpy() for name, point in names.items() if name in cache}
            )
    return caches


def _peer_point(peer: str, captured: Mapping[str, np.ndarray] | str, hook: str, layer: int, ours, bar: float):
    """One capture peer at one point: its stats against ours, or why it has none."""
    if isinstance(captured, str):
        return {"status": captured}
    theirs = captured.get(f"{hook}@{layer}")
    if theirs is None:
        return {"status": f"not applicable: {peer} does not know {hook}"}
    if theirs.shape != ours.shape:
        return {"status": f"{peer}: {theirs.shape[0]} rows against {ours.shape[0]}", "pass": False}
    stats = diff_stats(ours, theirs)
    return {**stats, "bar": bar, "pass": stats["max_rel_diff"] <= bar}
