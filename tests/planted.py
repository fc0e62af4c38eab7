"""Faults planted in a copy of plt_gemma_reference.json (its first three cases), by name."""

from __future__ import annotations

PLANTS = {
    "wrong top-10 index": lambda d: d["test_cases"][1]["top_10"][3].update(index=7),
    "activation off by 2e-4": lambda d: d["test_cases"][0]["top_10"][0].update(
        activation=d["test_cases"][0]["top_10"][0]["activation"] + 2e-4
    ),
    "missing d_model": lambda d: d.pop("d_model"),
    "missing last case": lambda d: d["test_cases"].pop(),
    "extra case": lambda d: d["test_cases"].append({**d["test_cases"][0], "seed": 300}),
    "NaN activation": lambda d: d["test_cases"][2]["top_10"][1].update(activation=float("nan")),
    "NaN n_active": lambda d: d["test_cases"][2].update(n_active=float("nan")),
    "n_active off by one": lambda d: d["test_cases"][2].update(n_active=1013),
    "residual changed": lambda d: d["test_cases"][0]["residual"].__setitem__(5, 0.5),
    "extra key": lambda d: d.update(extra=1),
    "other schema": lambda d: d.update(schema="PltBundle"),
}
