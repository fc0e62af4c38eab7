"""Judge a candidate reference (another implementation's output) against ours, case by case.

Grades: ``exact`` (every compared field identical), ``pass`` (within the acceptance bars of
candle-mi's own test for the kind, docs/design.md section 6), ``fail`` (a bar failed; every failure
is named with its case and field). Structure comes first: a missing key, a missing or extra
case, a value of the wrong type or a NaN each fail by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from mi_oracle.references.compare import PROVENANCE_KEYS, case_label, compare_documents
from mi_oracle.references.kinds import bars_for
from mi_oracle.references.kinds import sae as sae_bars

# the kinds' own bars (references/kinds): the one table the checker and the grader read too
ENCODER_ATOL = bars_for("plt").tolerances["*"].atol
RESIDUAL_ATOL = bars_for("plt").tolerances["residual"].atol
FORWARD_ATOL = bars_for("forward", "cpu").tolerances["*"].atol

BARS = {
    "plt": "schema, d_model, width equal; per case n_active equal, top-10 indices exact, "
    f"activations |diff| < {ENCODER_ATOL:g}, residual |diff| < {RESIDUAL_ATOL:g}",
    "clt": "as plt",
    "sae": sae_bars.CANDIDATE_LABEL,
    "forward": f"hidden_size, num_layers, vocab_size equal; per prompt tokens equal, top-10 indices "
    f"exact, logits and last_residual_f32 |diff| < {FORWARD_ATOL:g}",
}


def _nans(value: Any, path: str) -> list[str]:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return [f"{path}: {value} is not a finite number"]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _nans(item, f"{path}.{key}".lstrip("."))]
    if isinstance(value, list):
        label = (lambda i, item: case_label(item, i)) if path == "test_cases" else (lambda i, item: i)
        return [found for i, item in enumerate(value) for found in _nans(item, f"{path}[{label(i, item)}]")]
    return []


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Judge:
    def __init__(self, reference: Mapping[str, Any], candidate: Mapping[str, Any]) -> None:
        self.reference, self.candidate = reference, candidate
        self.failures: list[str] = []

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def equal(self, key: str) -> None:
        if key in self.candidate and self.candidate[key] != self.reference[key]:
            self.fail(f"{key}: expected {self.reference[key]!r}, got {self.candidate[key]!r}")

    def structure(self) -> None:
        for key, value in self.reference.items():
            if key in PROVENANCE_KEYS:
                continue
            if key not in self.candidate:
                self.fail(f"{key}: missing")
            elif _number(value) != _number(self.candidate[key]) or (
                not _number(value) and type(value) is not type(self.candidate[key])
            ):
                self.fail(
                    f"{key}: expected a {type(value).__name__}, got {type(self.candidate[key]).__name__}"
                )
        self.failures += _nans(dict(self.candidate), "")

    def cases(self, check: Callable[[str, dict, dict], None]) -> None:
        want = {case_label(c, i): c for i, c in enumerate(self.reference.get("test_cases", []))}
        got_list = self.candidate.get("test_cases")
        if not isinstance(got_list, list):
            return
        have = {case_label(c, i): c for i, c in enumerate(got_list)}
        for label, case in want.items():
            if label not in have:
                self.fail(f"test_cases[{label}]: case missing")
            else:
                check(f"test_cases[{label}]", case, have[label])
        for label in have:
            if label not in want:
                self.fail(f"test_cases[{label}]: unexpected case")

    def close(self, path: str, expected: Any, got: Any, atol: float) -> None:
        if not _number(got):
            self.fail(f"{path}: expected a number, got {got!r}")
        elif not math.isfinite(got):
            return  # named by the NaN check
        elif not abs(got - expected) < atol:
            self.fail(
                f"{path}: expected {expected!r}, got {got!r} (|diff| {abs(got - expected):.3g} >= {atol:g})"
            )

    def vector(self, path: str, expected: list, got: Any, atol: float) -> None:
        if not isinstance(got, list) or len(got) != len(expected):
            self.fail(f"{path}: expected {len(expected)} numbers, got {_size(got)}")
            return
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            self.close(f"{path}[{i}]", e, g, atol)

    def top(self, path: str, expected: list, got: Any, value_key: str, atol: float) -> None:
        if not isinstance(got, list) or len(got) != len(expected):
            self.fail(f"{path}: expected {len(expected)} entries, got {_size(got)}")
            return
        for rank, (e, g) in enumerate(zip(expected, got, strict=True)):
            if not isinstance(g, dict) or "index" not in g or value_key not in g:
                self.fail(f"{path}[{rank}]: expected {{index, {value_key}}}, got {g!r}")
            elif g["index"] != e["index"]:
                self.fail(f"{path}[{rank}].index: expected {e['index']}, got {g['index']}")
            else:
                self.close(f"{path}[{rank}].{value_key}", e[value_key], g[value_key], atol)


def _size(value: Any) -> str:
    return f"{len(value)}" if isinstance(value, list) else repr(value)


def _encoder_case(judge: _Judge) -> Callable[[str, dict, dict], None]:
    def check(path: str, want: dict, got: dict) -> None:
        if got.get("n_active") != want["n_active"]:
            judge.fail(f"{path}.n_active: expected {want['n_active']}, got {got.get('n_active')!r}")
        judge.vector(f"{path}.residual", want["residual"], got.get("residual"), RESIDUAL_ATOL)
        judge.top(f"{path}.top_10", want["top_10"], got.get("top_10"), "activation", ENCODER_ATOL)

    return check


def _forward_case(judge: _Judge) -> Callable[[str, dict, dict], None]:
    def check(path: str, want: dict, got: dict) -> None:
        if got.get("tokens") != want["tokens"]:
            judge.fail(f"{path}.tokens: expected {want['tokens']}, got {got.get('tokens')!r}")
        judge.top(f"{path}.top_10", want["top_10"], got.get("top_10"), "logit", FORWARD_ATOL)
        judge.vector(
            f"{path}.last_residual_f32", want["last_residual_f32"], got.get("last_residual_f32"), FORWARD_ATOL
        )

    return check


def _sae_bars(judge: _Judge) -> None:
    want, got = judge.reference, judge.candidate
    for key in ("d_in", "d_sae", "n_tokens"):
        judge.equal(key)
    if (
        _number(got.get("n_active_last_pos"))
        and abs(got["n_active_last_pos"] - want["n_active_last_pos"]) > sae_bars.ACTIVE_SLACK
    ):
        judge.fail(
            f"n_active_last_pos: expected {want['n_active_last_pos']} within {sae_bars.ACTIVE_SLACK}, "
            f"got {got['n_active_last_pos']}"
        )
    expected_top = [entry["index"] for entry in want["top_features_last_pos"]]
    got_top = [
        entry.get("index") for entry in got.get("top_features_last_pos") or [] if isinstance(entry, dict)
    ]
    matches = sum(e == g for e, g in zip(expected_top, got_top, strict=False))
    if matches < len(expected_top) * sae_bars.TOP_MATCH_SHARE:
        judge.fail(
            f"top_features_last_pos: {matches} of {len(expected_top)} indices equal position by position"
        )
    mse = got.get("reconstruction_mse")
    low, high = sae_bars.MSE_RATIO
    if _number(mse) and want["reconstruction_mse"] > 0 and not low <= mse / want["reconstruction_mse"] < high:
        judge.fail(
            f"reconstruction_mse: ratio {mse / want['reconstruction_mse']:.3g} outside [{low:g}, {high:g})"
        )
    if _number(got.get("resid_last_norm")):
        judge.close("resid_last_norm", want["resid_last_norm"], got["resid_last_norm"], sae_bars.NORM_ATOL)


def judge_candidate(reference: Mapping[str, Any], candidate: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """``{grade, failures, bars}`` of ``candidate`` against ``reference`` (a reference of ``kind``)."""
    judge = _Judge(reference, candidate)
    judge.structure()
    if kind in ("plt", "clt"):
        for key in ("schema", "d_model", "n_features_per_layer"):
            judge.equal(key)
        judge.cases(_encoder_case(judge))
    elif kind == "forward":
        for key in ("hidden_size", "num_layers", "vocab_size"):
            judge.equal(key)
        judge.cases(_forward_case(judge))
    else:
        _sae_bars(judge)
    failures = list(dict.fromkeys(judge.failures))
    exact = not failures and not compare_documents(reference, candidate, kind, exact=True)
    return {
        "grade": "fail" if failures else "exact" if exact else "pass",
        "failures": failures,
        "bars": BARS[kind],
    }
