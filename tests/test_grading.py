"""The grader holds a regenerated reference to candle-mi's bars for its test, and names every
planted fault: a moved logit or a reordered top-10 in every family, a wrong GELU, SDPA on Gemma 2,
a wrong RoPE scaling, a wrong longrope factor, a quantized top-1 flip, and an older schema."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from mi_oracle.references.families import FAMILIES
from mi_oracle.references.forward_parity import forward_parity_reference
from mi_oracle.references.grading import grade, movements
from mi_oracle.references.kinds import bars_for
from mi_oracle.references.kinds.longrope import LONGROPE_FIELDS
from tests.family_checkpoints import CHECKPOINTS, family_model_dir

SETTINGS = {"device": "cpu", "dtype": "float32", "threads": 1}
PROMPTS = ["the capital of france is", "a city in europe"]
LONG_TEXT = "the river and the city"


def make(model_dir, slug, family=None, name=None):
    """The reference of checkpoint ``slug`` (``longrope``: Phi-3.5's, a phi3 longrope reference)."""
    longrope = slug == "longrope"
    return forward_parity_reference(
        name or f"{slug}_forward_reference",
        family or FAMILIES["phi3" if longrope else slug],
        PROMPTS,
        model_dir,
        SETTINGS,
        long_text=LONG_TEXT if longrope else None,
        arm="longrope" if longrope else None,
        fields=LONGROPE_FIELDS if longrope else None,
    )


@pytest.fixture(scope="module")
def references(family_models):
    return {slug: make(family_models[slug], slug) for slug in CHECKPOINTS}


def kind_of(slug):
    return "longrope" if slug == "longrope" else "forward"


@pytest.mark.parametrize("slug", list(CHECKPOINTS))
def test_each_family_planted_numeric_faults_fail_by_name_and_small_moves_pass(references, slug):
    good = references[slug]
    assert grade(good, good, kind_of(slug), identical=True).verdict == "byte-identical"
    bar = 5e-3 if slug == "longrope" else 1e-3
    prompt = good["test_cases"][0]["prompt"]

    nudged = copy.deepcopy(good)
    nudged["test_cases"][0]["top_10"][3]["logit"] += bar / 2
    within = grade(good, nudged, kind_of(slug))
    assert within.verdict == "within tolerance" and within.moved["logit"] == pytest.approx(bar / 2, rel=1e-3)

    moved = copy.deepcopy(good)
    moved["test_cases"][0]["top_10"][3]["logit"] += 2 * bar
    failed = grade(good, moved, kind_of(slug))
    assert failed.verdict == "fails"
    expected, got = good["test_cases"][0]["top_10"][3]["logit"], moved["test_cases"][0]["top_10"][3]["logit"]
    assert failed.failures == [
        f"test_cases[prompt {prompt!r}].top_10[3].logit: expected {expected!r}, "
        f"got {got!r} (diff {2 * bar:.3g} > tolerance {bar:g})"
    ]

    swapped = copy.deepcopy(good)
    top = swapped["test_cases"][1]["top_10"]
    top[0]["index"], top[1]["index"] = top[1]["index"], top[0]["index"]
    assert any(
        failure.startswith(f"test_cases[prompt {good['test_cases'][1]['prompt']!r}].top_10[0].index")
        for failure in grade(good, swapped, kind_of(slug)).failures
    )


def test_a_wrong_gelu_on_gemma_1_fails_by_name(references, family_models):
    exact = dataclasses.replace(FAMILIES["gemma"], hidden_act="gelu")
    result = grade(references["gemma"], make(family_models["gemma"], "gemma", exact), "forward")
    # at this size exact GELU moves the logits by ~4e-4 (a real Gemma's by ~1e-2): below the bar,
    # so the recorded activation is what names the fault
    assert result.failures == ['hidden_act_used: expected "gelu_pytorch_tanh", got "gelu"']
    assert 0 < result.moved["logit"] < 1e-3


def test_sdpa_on_gemma_2_fails_by_name(references, family_models, tmp_path):
    # transformers 5 refuses SDPA for Gemma 2; before, it ran it and dropped the soft-capping:
    # the planted candidate is that computation, recorded as an SDPA oracle records it
    sdpa = dataclasses.replace(FAMILIES["gemma2"], attention="sdpa")
    with pytest.raises(ValueError, match="does not support an attention implementation"):
        make(family_models["gemma2"], "gemma2", sdpa)
    uncapped = make(family_model_dir(tmp_path, "gemma2", attn_logit_softcapping=None), "gemma2")
    uncapped["environment"]["attn_implementation"] = "sdpa"
    failures = grade(references["gemma2"], uncapped, "forward").failures
    assert failures[0] == "attention: the oracle ran sdpa, expected eager"
    assert "attn_logit_softcapping: expected a number (0.5), got a null (null)" in failures
    assert any(".logit: expected" in failure for failure in failures)


def test_a_wrong_rope_scaling_fails_by_name(references, tmp_path):
    llama3 = CHECKPOINTS["llama32"][2]["rope_parameters"]
    wrong = family_model_dir(tmp_path, "llama32", rope_parameters={**llama3, "factor": 8.0})
    failures = grade(references["llama32"], make(wrong, "llama32"), "forward").failures
    assert "rope_scaling.factor: expected 32.0, got 8.0 (diff 24 > tolerance 0.001)" in failures

    longrope = CHECKPOINTS["longrope"][2]["rope_parameters"]
    wrong_long = family_model_dir(
        tmp_path, "longrope", rope_parameters={**longrope, "long_factor": [1.0] * 8}
    )
    failures = grade(references["longrope"], make(wrong_long, "longrope"), "longrope").failures
    assert any(
        failure.startswith("rope_scaling.long_factor[1]: expected 3.0, got 1.0") for failure in failures
    )
    long_prompt = references["longrope"]["test_cases"][-1]["prompt"]
    assert any(failure.startswith(f"test_cases[prompt {long_prompt!r}].top_10") for failure in failures)


def test_longrope_mscale_is_held_to_1e_4():
    reference = {"attention_scaling": 1.19, "test_cases": []}
    assert (
        grade(reference, {**reference, "attention_scaling": 1.19 + 5e-5}, "longrope").verdict
        == "within tolerance"
    )
    failed = grade(reference, {**reference, "attention_scaling": 1.19 + 2e-4}, "longrope")
    assert failed.failures[0].startswith("attention_scaling: expected 1.19")


def test_quantized_bars_are_the_exact_top_1_and_the_schemes_logit_bar(references):
    good = references["llama32"]
    near = copy.deepcopy(good)
    near["test_cases"][0]["top_10"][5]["logit"] += 0.05  # AWQ / GPTQ bar 0.1
    near["test_cases"][0]["top_10"][6], near["test_cases"][0]["top_10"][7] = (
        near["test_cases"][0]["top_10"][7],
        near["test_cases"][0]["top_10"][6],
    )  # a near-tie reordered below the top-1 is allowed
    assert grade(good, near, "quantized", "cuda", "awq").verdict == "within tolerance"
    assert bars_for("quantized", scheme="bnb-nf4").top1_bar == 1.5
    flipped = copy.deepcopy(good)
    top = flipped["test_cases"][0]["top_10"]
    top[0], top[1] = top[1], top[0]
    failures = grade(good, flipped, "quantized", "cuda", "gptq").failures
    top1 = good["test_cases"][0]["top_10"][0]["index"]
    assert failures[0].endswith(f"top_10[0].index: top-1 expected {top1}, got {top[0]['index']}")


def test_gpu_references_get_candle_mis_gpu_bar(references):
    good = references["qwen3"]
    moved = copy.deepcopy(good)
    moved["test_cases"][0]["top_10"][0]["logit"] += 3e-3
    assert grade(good, moved, "forward", device="cpu").verdict == "fails"
    assert grade(good, moved, "forward", device="cuda").verdict == "within tolerance"


def test_an_older_schema_is_graded_on_the_fields_both_versions_carry(references):
    current = references["llama32"]
    # as the seeds wrote it: no model_type, no rope_scaling, no environment block
    older = {
        key: value
        for key, value in current.items()
        if key not in ("model_type", "rope_scaling", "environment")
    }
    result = grade(older, current, "forward")
    assert result.verdict == "within tolerance"
    assert result.note == "fields in one schema version only, not graded: model_type, rope_scaling"


def test_movements_report_the_largest_change_per_field():
    a = {"x": [{"logit": 1.0}, {"logit": 2.0}], "last_residual_f32": [0.5, 0.25], "n": 3}
    b = {"x": [{"logit": 1.5}, {"logit": 2.25}], "last_residual_f32": [0.5, 0.0], "n": 3}
    assert movements(a, b) == {"logit": 0.5, "last_residual_f32": 0.25}
    assert json.loads(json.dumps(grade(a, a, "forward").to_json()))["verdict"] == "within tolerance"
