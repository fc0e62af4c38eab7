"""An independent float64 numpy encoder for every dictionary schema, written from docs/design.md's
formulas (not from the project's loaders), and the statistics that hold an encoder against it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from mi_oracle.dictionaries.manifest import Manifest
from mi_oracle.dictionaries.verify import verified_layer_files
from mi_oracle.errors import CrossValidationError


def load_canonical(base: Path, manifest: Manifest, layer: int) -> dict[str, np.ndarray]:
    """W_enc [d_in, d_sae], b_enc, threshold, W_dec [d_sae, d_out] (own layer), b_dec, W_skip."""
    record = manifest.layer(layer)
    paths = verified_layer_files(record, base, manifest.name)
    schema = record.schema
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
    if not schema.startswith("CltSplit"):
        raise CrossValidationError(
            f"{paths[0]}: set {manifest.name}, layer {layer}: the float64 oracle has no reader for schema "
            f"{schema} (it reads its formats with its own code, not the format modules': add one to "
            "mi_oracle.crossval.oracle.load_canonical to cross-check this set)"
        )
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


def dense(ids: list[list[int]], values: list[list[float]], d_sae: int) -> np.ndarray:
    out = np.zeros((len(ids), d_sae))
    for row, (i, v) in enumerate(zip(ids, values, strict=True)):
        out[row, i] = v
    return out


def agreement(
    ours: np.ndarray,
    pre: np.ndarray,
    expected: np.ndarray,
    threshold: np.ndarray,
    x: np.ndarray,
    w_enc: np.ndarray,
) -> dict[str, float | int]:
    """How an encoder's activations ``ours`` agree with the oracle's (``pre``, ``expected``, ``threshold``).

    A feature "near" its threshold is within 1e-5 of the dot product's size ``|x| @ |W_enc|`` (fp32
    rounds a pre-activation by about 1e-7 of it): flips there are rounding, flips elsewhere are
    errors. Values are compared where both fire; ``value_excess`` > 1 means a value outside
    max(1e-4 x its size, 1e-5 x the dot product's size).
    """
    scale = np.maximum(np.abs(x.astype(np.float64)) @ np.abs(w_enc), 1.0)
    near = np.abs(pre - threshold) <= 1e-5 * scale
    flipped = (ours != 0) != (expected != 0)
    both = (ours != 0) & (expected != 0)
    diff = np.abs(ours - expected)[both]
    bound = np.maximum(1e-4 * np.maximum(1.0, np.abs(expected[both])), 1e-5 * scale[both])
    wrong = flipped & ~near
    wrong[both] |= diff > bound
    per_feature = wrong.sum(axis=0)
    worst = np.argsort(-per_feature, kind="stable")[:5]
    top_ours = np.sort(np.argsort(-ours, axis=1, kind="stable")[:, :10], axis=1)
    top_oracle = np.sort(np.argsort(-expected, axis=1, kind="stable")[:, :10], axis=1)
    same_top10 = np.all(top_ours == top_oracle, axis=1) if len(ours) else np.ones(1, bool)
    return {
        "values": int(ours.size),
        "compared": int(both.sum()),
        "flips": int(flipped.sum()),
        "flips_away_from_threshold": int((flipped & ~near).sum()),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "value_excess": float((diff / bound).max()) if diff.size else 0.0,
        "top10_set_agreement": float(np.mean(same_top10)),
        # the features that disagree (a flip away from the threshold or a value outside the bound)
        "worst_features": [
            {"feature": int(f), "tokens": int(per_feature[f])} for f in worst if per_feature[f] > 0
        ],
    }
