"""Checks shared by the reference tests: candle-mi's schemas and an independent float64 oracle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mi_oracle.dictionaries.manifest import Manifest
from tests.encoding_oracle import load_canonical, oracle

FIXTURES = Path(__file__).parent / "fixtures" / "candle-mi"
FORWARD_KEYS = [  # candle-mi's forward oracles (qwen3_forward_reference.json)
    "model_repo",
    "methodology",
    "torch_version",
    "transformers_version",
    "platform",
    "hidden_size",
    "num_layers",
    "vocab_size",
    "head_dim",
    "num_attention_heads",
    "num_kv_heads",
    "max_position_embeddings",
    "rope_theta",
    "rms_norm_eps",
    "use_qk_norm",
    "test_cases",
    "environment",
]


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def assert_same_shape(ours: dict, theirs: dict) -> None:
    """Same keys (ours adds only the environment block), same value types, same case keys and count."""
    assert list(ours) == [*theirs, "environment"]
    for key, value in theirs.items():
        assert type(ours[key]) is type(value), key
    assert len(ours["test_cases"]) == len(theirs["test_cases"])
    for case, their_case in zip(ours["test_cases"], theirs["test_cases"], strict=True):
        assert list(case) == list(their_case)
        assert [type(v) for v in case.values()] == [type(v) for v in their_case.values()]
        assert all(list(entry) == ["index", "activation"] for entry in case["top_10"])


def assert_matches_float64_oracle(document: dict, manifest: Manifest, work: Path, activation: str) -> None:
    """Every case's n_active, top-10 indices and values against numpy in float64.

    Bounds as in tests/encoding_oracle.compare: fp32 rounds a pre-activation by up to about 1e-7
    of the dot product's size ``|x| @ |W_enc|``, so values agree within 1e-4 or 1e-5 of that
    size, and a feature may flip only within 1e-5 of it from its threshold.
    """
    for case in document["test_cases"]:
        weights = load_canonical(work, manifest, case["layer"])
        residual = np.asarray(case["residual"], dtype=np.float32)[None, :]
        pre, acts, threshold = oracle(weights, residual, activation)
        pre, acts, threshold = pre[0], acts[0], threshold[0]
        scale = np.maximum(np.abs(residual[0].astype(np.float64)) @ np.abs(weights["W_enc"]), 1.0)
        near = np.abs(pre - threshold) <= 1e-5 * scale
        n_active = int((acts > 0).sum())
        assert abs(case["n_active"] - n_active) <= int(near.sum()), case["seed"]
        order = np.lexsort((np.arange(acts.size), -acts))[: len(case["top_10"])]
        assert [entry["index"] for entry in case["top_10"]] == order.tolist()
        values = np.array([entry["activation"] for entry in case["top_10"]])
        bound = np.maximum(1e-4, 1e-5 * scale[order])
        assert np.all(np.abs(values - acts[order]) <= bound), case["seed"]
        assert len(case["top_10"]) == min(10, case["n_active"])


def reference_in(workdir: Path, name: str, numerics: str = "portable") -> Path:
    """Reference ``name`` as the workflow made it: ``results/references/<numerics>/<model>/<name>.json``."""
    found = sorted((workdir / "results" / "references" / numerics).glob(f"*/{name}.json"))
    assert len(found) == 1, f"{name}: {len(found)} files under results/references/{numerics}"
    return found[0]
