"""Encoders side by side on the same captured activations: the project's (its feature Parquet),
the float64 numpy oracle, SAELens (a peer in this environment) and circuit-tracer (a peer in its
own environment, whose encodings the rule peer_circuit_tracer wrote)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mi_oracle.activation_storage import activation_matrix
from mi_oracle.crossval.oracle import agreement, dense, load_canonical, oracle
from mi_oracle.crossval.peer_outputs import peer_features
from mi_oracle.dictionaries.manifest import Manifest
from mi_oracle.errors import DataFileError
from mi_oracle.hook_points import HOOK_POINTS
from mi_oracle.parquet_files import read_parquet
from mi_oracle.peers.jobs import MAX_TOKENS


def passes(stats: Mapping[str, Any]) -> bool:
    """No flip away from a threshold, and every value within the oracle's bound."""
    return stats["flips_away_from_threshold"] == 0 and stats["value_excess"] <= 1


def _rows(path: Path, columns: list[str], n: int) -> dict[str, Any]:
    """The first ``n`` rows; an ``activation`` column as [rows, d_model] float32 (any stored dtype)."""
    table = read_parquet(path, "features or activation file", columns).slice(0, n)
    rows: dict[str, Any] = table.drop_columns([c for c in columns if c == "activation"]).to_pydict()
    if "activation" in columns:
        column = table["activation"]
        rows["activation"] = activation_matrix(column, column.type.list_size)
    return rows


def saelens_agreement(
    weights: dict,
    x: np.ndarray,
    activation: str,
    manifest: Manifest,
    layer: int,
    pre,
    expected,
    threshold,
) -> dict[str, Any]:
    """SAELens on ``x`` held against the oracle; SAELens's JumpReLU is ``relu(pre) * (pre > threshold)``."""
    if importlib.util.find_spec("sae_lens") is None:
        return {"status": "not run: sae-lens is not installed (pip install '.[peers]')"}
    if activation not in ("jumprelu", "relu"):
        return {"status": f"not run: SAELens has no {activation} encoder with these weights"}
    from mi_oracle.peers.saelens import load_canonical_encoder

    hook = HOOK_POINTS[manifest.input_hook].transformer_lens.format(layer=layer)
    sae = load_canonical_encoder(weights, activation, hook, manifest.model_name or "")
    with torch.no_grad():
        acts = sae.encode(torch.from_numpy(x.astype(np.float32))).numpy().astype(np.float64)
    stats = agreement(acts, pre, np.maximum(expected, 0.0), threshold, x, weights["W_enc"])
    return {"status": "run", "library": "sae-lens", **stats, "pass": passes(stats)}


def circuit_tracer_agreement(folder: Path | None, name: str, layer: int, rows: Mapping[str, list], judge):
    """circuit-tracer's encoding of the same rows (from its own environment) held against the oracle."""
    if folder is None:
        return {"status": "not run: crossval.peers.circuit_tracer is off"}
    encoded = peer_features(folder, name)
    if isinstance(encoded, str):
        return {"status": encoded}
    if f"acts_{layer}" not in encoded:
        return {"status": f"not run: circuit-tracer encoded no layer {layer} of {name}"}
    if (
        list(encoded[f"prompt_id_{layer}"]) != rows["prompt_id"]
        or list(encoded[f"position_{layer}"]) != rows["position"]
    ):
        raise DataFileError(
            f"{folder}/features/{name}.npz: circuit-tracer's rows of layer {layer} are not the captured "
            "ones (the peer's output is older than the capture: rerun peer_circuit_tracer)"
        )
    stats = judge(encoded[f"acts_{layer}"].astype(np.float64))
    return {"status": "run", "library": "circuit-tracer", **stats, "pass": passes(stats)}


def compare_layer(
    manifest: Manifest,
    layer: int,
    features: Path,
    activations: Path,
    base: Path,
    circuit_tracer: Path | None = None,
) -> dict[str, Any]:
    """One (set, layer): the project's, SAELens's and circuit-tracer's encodings against the oracle,
    first MAX_TOKENS tokens (``circuit_tracer``: that peer's output folder, None when it is off)."""
    feature_rows = _rows(features, ["prompt_id", "position", "feature_ids", "feature_values"], MAX_TOKENS)
    captured = _rows(activations, ["prompt_id", "position", "activation"], MAX_TOKENS)
    if feature_rows["prompt_id"] != captured["prompt_id"] or feature_rows["position"] != captured["position"]:
        raise ValueError(f"{features}: rows are not those of {activations}")
    x = captured["activation"].astype(np.float64)
    weights = load_canonical(base, manifest, layer)
    activation, k = manifest.activation_kind, manifest.k
    pre, expected, threshold = oracle(weights, x, activation, k)
    d_sae = weights["W_enc"].shape[1]
    ours = dense(feature_rows["feature_ids"], feature_rows["feature_values"], d_sae)
    project = agreement(ours, pre, expected, threshold, x, weights["W_enc"])
    l0 = (expected > 0).sum(axis=1)
    return {
        "set": manifest.name,
        "layer": layer,
        "schema": manifest.layer(layer).schema,
        "activation": activation,
        "synthetic": manifest.synthetic,
        "n_tokens": len(x),
        "oracle_mean_l0": float(l0.mean()) if len(l0) else 0.0,
        "project": {**project, "pass": passes(project)},
        "saelens": saelens_agreement(weights, x, activation, manifest, layer, pre, expected, threshold),
        "circuit_tracer": circuit_tracer_agreement(
            circuit_tracer,
            manifest.name,
            layer,
            captured,
            lambda acts: agreement(acts, pre, expected, threshold, x, weights["W_enc"]),
        ),
        "inputs": {"features": str(features), "activations": str(activations)},
    }
