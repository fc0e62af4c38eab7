"""The report's summary: per comparison, how many independent implementations ran and agree, the
worst difference, and what failed by name (set, layer, feature; hook point; case and field)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

CAPTURE_PEERS = {
    "hf": "Hugging Face",
    "transformer_lens": "TransformerLens",
    "nnsight": "nnsight",
    "circuit-tracer": "circuit-tracer",
}
ENCODERS = {"project": "mi-oracle", "saelens": "SAELens", "circuit_tracer": "circuit-tracer"}


def row(
    comparison: str, passed: bool | None, agree: str, worst: str, detail: str, not_run: Sequence[str] = ()
) -> dict[str, Any]:
    """A summary row: ``pass`` is None when no implementation ran."""
    return {
        "comparison": comparison,
        "pass": passed,
        "agree": agree,
        "worst": worst,
        "detail": detail,
        "not_run": list(not_run),
    }


def _verdict(results: Sequence[bool]) -> bool | None:
    return all(results) if results else None


def _why_not(statuses: Sequence[str], label: str) -> list[str]:
    """One 'not run' line per implementation (repeated cells fold into it); 'not applicable' is silent."""
    reasons = [s for s in statuses if s and not s.startswith("not applicable")]
    return [f"{label}: {reasons[0]}"] if reasons else []


def capture_row(capture: Mapping[str, Any]) -> dict[str, Any]:
    """The capture against every other implementation, at every point each of them knows."""
    points = capture["points"]
    peers = [peer for peer in CAPTURE_PEERS if any(peer in p for p in points)]
    ran, agreeing, worst, failed, counts, not_run = 0, 0, None, [], [], []
    for peer in peers:
        judged = [p for p in points if "pass" in p.get(peer, {})]
        label = CAPTURE_PEERS[peer]
        if not judged:
            not_run += _why_not([p.get(peer, {}).get("status", "") for p in points], label)
            continue
        ran += 1
        bad = [f"{label} at {p['hook']}@{p['layer']}" for p in judged if not p[peer]["pass"]]
        agreeing += not bad
        failed += bad
        counts.append(f"{label} {len(judged)}")
        for p in judged:
            diff = p[peer].get("max_rel_diff")
            if diff is not None and (worst is None or diff > worst[0]):
                worst = (diff, f"{label}, {p['hook']}@{p['layer']}, bar {p[peer]['bar']:g}")
    detail = "hook points compared: " + ", ".join(counts) if counts else "nothing compared"
    if failed:
        detail += "; failed: " + ", ".join(failed)
    return row(
        f"capture ({len(points)} hook points, {capture['n_prompts']} prompts)",
        _verdict([not failed] if ran else []),
        f"{agreeing} of {ran}",
        f"{worst[0]:.2g} relative ({worst[1]})" if worst else "",
        detail,
        not_run,
    )


def _disagreement(label: str, layer: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    features = ", ".join(
        f"feature {f['feature']} ({f['tokens']} tokens)" for f in result.get("worst_features", [])
    )
    return f"{label} at {layer['set']} layer {layer['layer']}: {features or 'values outside the bound'}"


def encoder_rows(encoders: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per set: each encoder (mi-oracle, SAELens, circuit-tracer) against the float64 oracle."""
    rows = []
    for name in dict.fromkeys(layer["set"] for layer in encoders):
        layers = [layer for layer in encoders if layer["set"] == name]
        ran, agreeing, worst, failed, not_run = 0, 0, None, [], []
        for key, label in ENCODERS.items():
            judged = [layer for layer in layers if "pass" in layer.get(key, {})]
            if not judged:
                not_run += _why_not([layer.get(key, {}).get("status", "") for layer in layers], label)
                continue
            ran += 1
            bad = [_disagreement(label, layer, layer[key]) for layer in judged if not layer[key]["pass"]]
            agreeing += not bad
            failed += bad
            for layer in judged:
                diff = layer[key]["max_abs_diff"]
                if worst is None or diff > worst[0]:
                    worst = (diff, f"{label}, layer {layer['layer']}")
        rows.append(
            row(
                f"encoders of {name} vs float64 oracle ({len(layers)} layers)",
                _verdict([not failed] if ran else []),
                f"{agreeing} of {ran}",
                f"|diff| {worst[0]:.2g} ({worst[1]})" if worst else "",
                "; ".join(failed)
                if failed
                else f"{layers[0]['schema']}, {layers[0]['n_tokens']} tokens per layer",
                not_run,
            )
        )
    return rows


def reference_rows(
    kinds: Mapping[str, str], graded: Mapping[str, Sequence[Mapping[str, Any]]], not_run: Mapping[str, str]
) -> list[dict[str, Any]]:
    """One row per reference: every other implementation's reference-schema output, graded with
    candle-mi's bars (``graded``: implementation -> its graded outputs; ``not_run``: why not)."""
    rows = []
    for name, kind in kinds.items():
        results = {impl: [g for g in outputs if g["reference"] == name] for impl, outputs in graded.items()}
        results = {impl: found[0] for impl, found in results.items() if found}
        if not results:
            continue
        failed = [
            f"{impl}: {'; '.join(r['failures'][:3])}" for impl, r in results.items() if r["grade"] == "fail"
        ]
        rows.append(
            row(
                f"reference {name} ({kind})",
                _verdict([not failed]),
                f"{sum(r['grade'] != 'fail' for r in results.values())} of {len(results)}",
                ", ".join(f"{impl} {r['grade']}" for impl, r in results.items()),
                "; ".join(failed) if failed else "graded with candle-mi's bars",
                [f"{impl}: {why}" for impl, why in not_run.items() if kind in ("plt", "clt")],
            )
        )
    return rows


def summarise(
    capture: Mapping[str, Any],
    encoders: Sequence[Mapping[str, Any]],
    kinds: Mapping[str, str],
    graded: Mapping[str, Sequence[Mapping[str, Any]]],
    not_run: Mapping[str, str],
) -> list[dict[str, Any]]:
    """Every summary row: the capture, each set's encoders, each reference; unmatched candidates last."""
    rows = [capture_row(capture), *encoder_rows(encoders), *reference_rows(kinds, graded, not_run)]
    strays = [g for outputs in graded.values() for g in outputs if "kind" not in g]
    if strays:
        failures = "; ".join(g["failures"][0] for g in strays)
        rows.append(row("candidates without a reference", False, "", "", failures))
    return rows
