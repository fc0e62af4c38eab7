"""Grade a regenerated reference against the committed copy with candle-mi's own bars for its test.

The bars are each kind's (``references/kinds``), those of candle-mi 0.1.24's
``tests/validate_*.rs``: forward parity top-10 indices exact and logits within 1e-3 on the CPU (5e-3
on a GPU); longrope 5e-3 and its mscale (``attention_scaling``) within 1e-4; quantized checkpoints
the exact top-1 and each oracle token's logit within the scheme's bar (bnb NF4 1.5, AWQ and GPTQ
0.1); encoders (PLT, CLT, SAE) top-10 indices and ``n_active`` exact, activations within 1e-4. Every
other field (sizes, tokens, pins, ``rope_scaling``) must be equal. What made the file (versions,
platform, methodology) is not graded, but the attention an oracle ran is: SDPA on Gemma 2 silently
dropped soft-capping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mi_oracle.references.compare import (
    PROVENANCE_KEYS,
    FieldWalker,
    input_differences,
    one_sided_fields,
)
from mi_oracle.references.kinds import bars_for

NOT_GRADED = PROVENANCE_KEYS | {"methodology"}


@dataclass
class Grade:
    """How a regenerated reference stands against the committed copy."""

    verdict: str  # byte-identical | within tolerance | fails
    bars: str
    moved: dict[str, float] = field(default_factory=dict)  # largest change per numeric field
    failures: list[str] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "bars": self.bars,
            "moved": self.moved,
            "failures": self.failures,
            "note": self.note,
        }


def _is_number(value: Any) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool)


def movements(
    expected: Any, actual: Any, name: str = "", found: dict[str, float] | None = None
) -> dict[str, float]:
    """The largest absolute change of each numeric field (by its key) between two documents."""
    found = {} if found is None else found
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        for key in expected.keys() & actual.keys():
            if key not in NOT_GRADED:
                movements(expected[key], actual[key], key, found)
    elif isinstance(expected, list) and isinstance(actual, list):
        for e, a in zip(expected, actual, strict=False):
            movements(e, a, name, found)
    elif (
        _is_number(expected)
        and _is_number(actual)
        and (isinstance(expected, float) or isinstance(actual, float))
    ):
        diff = abs(float(actual) - float(expected))
        if not math.isnan(diff):
            found[name] = max(found.get(name, 0.0), diff)
    return found


def _graded_view(document: Mapping[str, Any], drop: set[str]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key not in NOT_GRADED and key not in drop}


def _attention(document: Mapping[str, Any]) -> str | None:
    return (document.get("environment") or {}).get("attn_implementation")


def _top1_failures(expected: Mapping[str, Any], actual: Mapping[str, Any], bar: float) -> list[str]:
    found = []
    cases = {case["prompt"]: case for case in actual.get("test_cases", [])}
    for case in expected.get("test_cases", []):
        prompt = case["prompt"]
        other = cases.get(prompt)
        if other is None:
            found.append(f"test_cases[prompt {prompt!r}]: case missing")
            continue
        if case["tokens"] != other["tokens"]:
            found.append(f"test_cases[prompt {prompt!r}].tokens: the token ids differ")
        if case["top_10"][0]["index"] != other["top_10"][0]["index"]:
            found.append(
                f"test_cases[prompt {prompt!r}].top_10[0].index: top-1 expected "
                f"{case['top_10'][0]['index']}, got {other['top_10'][0]['index']}"
            )
        logits = {item["index"]: item["logit"] for item in other["top_10"]}
        for item in case["top_10"]:
            if item["index"] in logits and abs(logits[item["index"]] - item["logit"]) >= bar:
                found.append(
                    f"test_cases[prompt {prompt!r}] token {item['index']}: logit moved "
                    f"{abs(logits[item['index']] - item['logit']):.3g} >= {bar:g}"
                )
    return found


def grade(
    committed: Mapping[str, Any],
    regenerated: Mapping[str, Any],
    kind: str,
    device: str = "cpu",
    scheme: str | None = None,
    identical: bool = False,
) -> Grade:
    """Grade ``regenerated`` against ``committed`` (``identical``: their bytes are the same).

    Input files whose sha256 differs are named first; the value failures that follow from them
    are then counted, not listed.
    """
    bars = bars_for(kind, device, scheme)
    if identical:
        return Grade("byte-identical", bars.label)
    inputs = input_differences(committed, regenerated, ("committed", "generated"))
    one_sided = one_sided_fields(committed, regenerated, kind) - NOT_GRADED
    note = (
        f"fields in one schema version only, not graded: {', '.join(sorted(one_sided))}" if one_sided else ""
    )
    if bars.top1_bar is not None:
        failures = _top1_failures(committed, regenerated, bars.top1_bar)
    else:
        walker = FieldWalker(bars.tolerances)
        walker.walk(_graded_view(committed, one_sided), _graded_view(regenerated, one_sided), "", "")
        failures = walker.found
    expected_attention, attention = _attention(committed), _attention(regenerated)
    if expected_attention and attention and expected_attention != attention:
        failures.insert(0, f"attention: the oracle ran {attention}, expected {expected_attention}")
    if inputs:
        follow = [f"{len(failures)} value difference(s), from the different inputs above"] if failures else []
        failures = inputs + follow
    moved = {key: value for key, value in movements(committed, regenerated).items() if value > 0}
    return Grade("fails" if failures else "within tolerance", bars.label, moved, failures, note)
