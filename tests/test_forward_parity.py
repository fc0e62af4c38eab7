"""candle-mi 0.1.24 forward references: every family's keys and pins, longrope's two regimes."""

from __future__ import annotations

import dataclasses
import math

import pytest

from mi_oracle.errors import ReferenceDataError
from mi_oracle.references.families import FAMILIES, family_named, family_of_model_type
from mi_oracle.references.forward_parity import forward_parity_reference
from mi_oracle.references.kinds.longrope import LONGROPE_FIELDS
from tests.family_checkpoints import CHECKPOINTS, HEAD_DIM, LONGROPE_ORIGINAL, family_model_dir
from tests.reference_checks import FORWARD_KEYS

SETTINGS = {"device": "cpu", "dtype": "float32", "threads": 1}
PROMPTS = ["the capital of france is", "a city in europe"]
LONG_TEXT = "the river and the city"
# candle-mi 0.1.24's forward schema, in its order: 0.1.12's with model_type and rope_scaling, not
# use_qk_norm (gemma_validation.py; the list)
HEAD_KEYS = FORWARD_KEYS[:5]
# each family's fields between platform and test_cases, as candle-mi's committed file has them
# (docs/research/candle-mi-forward-scripts.md, section 11)
BASE = ["model_type", *FORWARD_KEYS[5:14]]
CANDLE_MI_FIELDS = {
    "qwen3": [*BASE[1:], "use_qk_norm"],
    "llama32": [*BASE, "rope_scaling"],
    "gemma": [
        *BASE,
        "attn_logit_softcapping",
        "final_logit_softcapping",
        "hidden_act_in_checkpoint_config",
        "hidden_act_used",
    ],
    "gemma2": [*BASE, "attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar"],
    "deepseek": [*BASE, "rope_scaling"],
    "qwen25coder": [*BASE, "attention_bias"],
    "starcoder2": [*BASE[:-1], "norm_epsilon", "use_bias", "norm_type"],
    "phi3": BASE,
    "mistral7b": [*BASE, "sliding_window"],
    "gemma3": [*BASE, "rope_scaling", "attn_logit_softcapping", "final_logit_softcapping"],  # mi-oracle's
}


@pytest.fixture
def models(family_models):
    return family_models


def reference(models, slug, **kwargs):
    """The reference of checkpoint ``slug`` (``longrope``: a phi3 longrope reference)."""
    if slug == "longrope":
        kwargs |= {"arm": "longrope", "fields": LONGROPE_FIELDS}
    family = FAMILIES["phi3" if slug == "longrope" else slug]
    return forward_parity_reference(
        f"{slug}_forward_reference", family, PROMPTS, models[slug], SETTINGS, **kwargs
    )


@pytest.mark.parametrize("slug", [slug for slug in CHECKPOINTS if slug != "longrope"])
def test_every_family_writes_candle_mis_schema_with_eager_attention(models, slug):
    document = reference(models, slug)
    family = FAMILIES[slug]
    keys = list(document)
    assert keys == [*HEAD_KEYS, *CANDLE_MI_FIELDS[slug], "test_cases", "environment"]
    assert document["environment"]["model"]["model_type"] == family.model_type == CHECKPOINTS[slug][1]

    assert (
        document["environment"]["attn_implementation"] == "eager"
        and "eager attention" in document["methodology"]
    )
    assert (document["hidden_size"], document["num_layers"], document["head_dim"]) == (32, 3, HEAD_DIM)
    for case in document["test_cases"]:
        assert len(case["top_10"]) == 10 and len(case["last_residual_f32"]) == 32
        logits = [item["logit"] for item in case["top_10"]]
        assert logits == sorted(logits, reverse=True)


def test_rope_scaling_is_the_checkpoints_own(models, tmp_path):
    assert reference(models, "llama32")["rope_scaling"]["rope_type"] == "llama3"
    # a checkpoint saved before transformers 5 spells it rope_scaling (Llama 3.2's config.json):
    # recorded as written, whatever transformers makes of it on load
    written = {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0}
    written |= {"original_max_position_embeddings": 8, "rope_type": "llama3"}
    older = family_model_dir(tmp_path, "llama32", raw_config={"rope_scaling": written})
    document = forward_parity_reference("r", FAMILIES["llama32"], PROMPTS, older, SETTINGS)
    # as candle-mi records it: the checkpoint's entries, then transformers 5's rope_theta
    assert list(document["rope_scaling"].items()) == [
        *written.items(),
        ("rope_theta", document["rope_theta"]),
    ]
    assert reference(models, "deepseek")["rope_scaling"] == {
        "rope_type": "linear",
        "factor": 4.0,
        "rope_theta": 100000.0,
    }
    assert "rope_scaling" not in reference(models, "qwen3")  # candle-mi's Qwen3 file has none


def test_each_family_records_its_own_fields_with_the_models_values(models):
    assert reference(models, "gemma2")["query_pre_attn_scalar"] == 16
    assert reference(models, "mistral7b")["sliding_window"] == 8
    # transformers 5's Qwen2Config has no attention_bias (candle-mi's file says null): the model's q/k/v bias
    assert reference(models, "qwen25coder")["attention_bias"] is True
    starcoder = reference(models, "starcoder2")
    assert (starcoder["norm_type"], starcoder["use_bias"]) == ("layer_norm", True)
    assert starcoder["norm_epsilon"] > 0 and "rms_norm_eps" not in starcoder
    qwen3 = reference(models, "qwen3")
    assert qwen3["use_qk_norm"] is True and "model_type" not in qwen3
    # every field a family may name is computed
    import torch

    from mi_oracle.references.families import FORWARD_FIELDS
    from mi_oracle.references.forward_parity import config_values, load_pinned

    model, raw = load_pinned(models["llama32"], FAMILIES["llama32"], torch.float32, torch.device("cpu"), "r")
    assert set(config_values(model, raw)) == set(FORWARD_FIELDS)


def test_a_family_naming_an_unknown_field_is_refused():
    with pytest.raises(ReferenceDataError, match=r"family x: colour is no field a forward reference carries"):
        dataclasses.replace(FAMILIES["phi3"], slug="x", fields=("model_type", "colour"))


def test_gemma_1_runs_the_tanh_gelu_its_legacy_config_means(models, tmp_path):
    document = reference(models, "gemma")
    assert document["hidden_act_in_checkpoint_config"] == "gelu"
    assert document["hidden_act_used"] == "gelu_pytorch_tanh"
    # the same weights with the activation written out: the same numbers
    spelled = family_model_dir(tmp_path, "gemma", raw_config={"hidden_act": "gelu_pytorch_tanh"})
    same = forward_parity_reference("gemma_forward_reference", FAMILIES["gemma"], PROMPTS, spelled, SETTINGS)
    assert same["test_cases"] == document["test_cases"]
    # exact GELU (what transformers 4.48 to 5.x ran unpinned) moves the logits
    exact = dataclasses.replace(FAMILIES["gemma"], hidden_act="gelu")
    moved = forward_parity_reference("gemma_forward_reference", exact, PROMPTS, models["gemma"], SETTINGS)
    assert moved["hidden_act_used"] == "gelu"
    assert moved["test_cases"][0]["top_10"] != document["test_cases"][0]["top_10"]


def test_longrope_records_mscale_and_a_long_case_past_the_original_context(models, tmp_path):
    document = reference(models, "longrope", long_text=LONG_TEXT)
    # transformers' longrope mscale: sqrt(1 + ln(max / original) / ln(original)), 64 / 16 here
    assert math.isclose(
        document["attention_scaling"], math.sqrt(1 + math.log(4) / math.log(LONGROPE_ORIGINAL))
    )
    assert document["original_max_position_embeddings"] == LONGROPE_ORIGINAL
    regimes = [(case["regime"], len(case["tokens"])) for case in document["test_cases"]]
    assert [regime for regime, _ in regimes] == ["short", "short", "long"]
    assert all(n <= LONGROPE_ORIGINAL for regime, n in regimes if regime == "short")
    assert regimes[-1][1] > LONGROPE_ORIGINAL
    # the long factors are in effect on the long case only
    short_only = family_model_dir(
        tmp_path,
        "longrope",
        rope_parameters={
            **CHECKPOINTS["longrope"][2]["rope_parameters"],
            "long_factor": [1.0 + 0.1 * i for i in range(8)],
        },
    )
    other = forward_parity_reference(
        "longrope",
        FAMILIES["phi3"],
        PROMPTS,
        short_only,
        SETTINGS,
        long_text=LONG_TEXT,
        arm="longrope",
        fields=LONGROPE_FIELDS,
    )
    assert other["test_cases"][:2] == document["test_cases"][:2]
    assert other["test_cases"][2]["top_10"] != document["test_cases"][2]["top_10"]


def test_a_checkpoint_of_another_family_or_without_longrope_is_refused_by_name(models):
    with pytest.raises(
        ReferenceDataError, match=r"gemma2_forward_reference: .*model_type is 'gemma', family gemma2"
    ):
        forward_parity_reference(
            "gemma2_forward_reference", FAMILIES["gemma2"], PROMPTS, models["gemma"], SETTINGS
        )
    with pytest.raises(
        ReferenceDataError,
        match=r"phi35_longrope_forward_reference: .*rope_type is None, expected 'longrope'",
    ):
        forward_parity_reference(
            "phi35_longrope_forward_reference",
            FAMILIES["phi3"],
            PROMPTS,
            models["phi3"],
            SETTINGS,
            long_text=LONG_TEXT,
        )
    with pytest.raises(ReferenceDataError, match=r"x_reference: family 'gpt2' is not supported"):
        family_named("gpt2", "x_reference")
    with pytest.raises(ReferenceDataError, match=r"y: model_type 'gpt2' belongs to no supported family"):
        family_of_model_type("gpt2", "y")
    assert family_of_model_type("phi3", "z").slug == "phi3"


def test_the_main_config_selects_the_schema_version_per_reference(models):
    from mi_oracle.references.compare import compare_documents
    from mi_oracle.references.item import ReferenceItem
    from mi_oracle.references.kinds import KINDS, BuildContext

    context = BuildContext(models["gemma3"], None, {**SETTINGS, "seeds_per_layer": 1}, models["gemma3"])
    item = {"name": "forward_reference", "kind": "forward", "prompts": PROMPTS}
    older = KINDS["forward"].build(ReferenceItem.from_json({**item, "schema_version": "0.1.12"}), context)
    newer = KINDS["forward"].build(ReferenceItem.from_json(item), context)
    assert "model_type" not in older and "use_qk_norm" in older
    assert newer["model_type"] == "gemma3_text" and newer["environment"]["family"] == "gemma3"
    # a committed reference of the older version is still checked, on the fields both carry
    assert compare_documents(older, newer, "forward") == []
    moved = {**older, "vocab_size": older["vocab_size"] + 1}
    assert compare_documents(moved, newer, "forward") == [
        f"vocab_size: expected {older['vocab_size'] + 1}, got {older['vocab_size']}"
    ]
