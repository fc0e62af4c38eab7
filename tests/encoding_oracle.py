"""A float64 numpy oracle for every dictionary schema, written from DESIGN.md's formulas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import torch
from safetensors.torch import load_file


def load_canonical(base: Path, manifest: dict, layer: int) -> dict[str, np.ndarray]:
    """W_enc [d_in, d_sae], b_enc, threshold, W_dec [d_sae, d_out] (own layer), b_dec, W_skip."""
    record = next(r for r in manifest["layers"] if r["layer"] == layer)
    paths = [base / f["local_path"] for f in record["files"]]
    schema = record["schema"]
    if schema == "GemmaScopeNpz":
        with np.load(paths[0], allow_pickle=False) as params:
            return {k: params[k].astype(np.float64) for k in params.files}
    tensors: dict[str, np.ndarray] = {}
    for path in paths:
        if path.suffix == ".safetensors":
            tensors.update({k: v.to(torch.float64).numpy() for k, v in load_file(path).items()})
    if schema == "PltBundle":
        return {**tensors, "W_enc": tensors["W_enc"].T}
    if schema == "GemmaScope2":
        weights = {"W_enc": tensors["w_enc"], "W_dec": tensors["w_dec"]}
        weights.update({k: tensors[k] for k in ("b_enc", "b_dec", "threshold")})
        if "affine_skip_connection" in tensors:
            weights["W_skip"] = tensors["affine_skip_connection"].T
        return weights
    if schema == "SaeLensNative":
        cfg = json.loads((paths[0].parent / "cfg.json").read_text())
        return {**tensors, "apply_b_dec_to_input": cfg.get("apply_b_dec_to_input", False)}
    weights = {
        "W_enc": tensors[f"W_enc_{layer}"].T,
        "b_enc": tensors[f"b_enc_{layer}"],
        "b_dec": tensors[f"b_dec_{layer}"],
        "W_dec": tensors[f"W_dec_{layer}"][:, 0],
    }
    if f"threshold_{layer}" in tensors:
        weights["threshold"] = tensors[f"threshold_{layer}"]
    return weights


def oracle(weights: dict, x: np.ndarray, activation: str, k: int | None = None):
    """(pre-activations, activations, the threshold each feature is compared with)."""
    x = x.astype(np.float64)
    if weights.get("apply_b_dec_to_input"):
        x = x - weights["b_dec"]
    pre = x @ weights["W_enc"] + weights["b_enc"]
    if activation == "jumprelu":
        threshold = np.broadcast_to(weights["threshold"], pre.shape)
        return pre, pre * (pre > threshold), threshold
    if activation == "relu":
        return pre, np.maximum(pre, 0.0), np.zeros_like(pre)
    kth = -np.sort(-pre, axis=1)[:, k - 1 : k]
    keep = (pre >= kth) & (pre > 0)
    return pre, pre * keep, np.broadcast_to(np.maximum(kth, 0.0), pre.shape)


def reconstruct(weights: dict, x: np.ndarray, acts: np.ndarray) -> np.ndarray:
    out = acts @ weights["W_dec"] + weights["b_dec"]
    if "W_skip" in weights:
        out = out + x.astype(np.float64) @ weights["W_skip"].T
    return out


def read_table(folder: Path, **filters: object):
    dataset = ds.dataset(folder, format="parquet", partitioning="hive", exclude_invalid_files=True)
    expression = None
    for key, value in filters.items():
        term = ds.field(key) == value
        expression = term if expression is None else expression & term
    table = dataset.to_table(filter=expression)
    return table.sort_by([("prompt_id", "ascending"), ("position", "ascending")])


def dense(ids: list[list[int]], values: list[list[float]], d_sae: int) -> np.ndarray:
    out = np.zeros((len(ids), d_sae))
    for row, (i, v) in enumerate(zip(ids, values, strict=True)):
        out[row, i] = v
    return out


def compare(
    ours: np.ndarray,
    pre: np.ndarray,
    expected: np.ndarray,
    threshold: np.ndarray,
    x: np.ndarray,
    w_enc: np.ndarray,
) -> dict[str, int]:
    """Active sets equal except within 1e-5 (relative) of a threshold; values within 1e-4.

    "Relative" is to the size of the dot product, ``|x| @ |W_enc|``: fp32 rounds a pre-activation
    by up to about 1e-7 of it, which on Gemma's residual stream (norms up to ~2e4) exceeds 1e-4
    absolute; values count as equal within 1e-4 of their own size or 1e-5 of the dot product's.
    """
    scale = np.maximum(np.abs(x.astype(np.float64)) @ np.abs(w_enc), 1.0)
    near = np.abs(pre - threshold) <= 1e-5 * scale
    flipped = (ours != 0) != (expected != 0)
    assert not (flipped & ~near).any(), (
        f"{int((flipped & ~near).sum())} active-set differences away from a threshold"
    )
    both = (ours != 0) & (expected != 0)
    assert both.sum() > 0
    diff = np.abs(ours - expected)[both]
    bound = np.maximum(1e-4 * np.maximum(1.0, np.abs(expected[both])), 1e-5 * scale[both])
    assert np.all(diff <= bound), float((diff / bound).max())
    return {"flips": int(flipped.sum()), "values": int(ours.size), "compared": int(both.sum())}
