"""The capture cross-check on tiny models: bf16 captures held to their bars, misplaced hooks caught."""

from __future__ import annotations

import shutil

from mi_oracle.capture.run import capture_shard
from mi_oracle.crossval.capture import BARS, STORAGE_BARS, compare_capture
from mi_oracle.parquet_files import record_sha256
from tests.capture_helpers import PLAN as CAPTURE_PLAN
from tests.capture_helpers import SETTINGS as CAPTURE_SETTINGS
from tests.capture_helpers import fetched_tiny, tokenize, write_tokens


def tiny_capture_inputs(tmp_path):
    """(a tiny Gemma 2 folder, a tokens table of 8 short prompts, the activation root to fill)."""
    model_dir = fetched_tiny(tmp_path, "gemma2")
    words = ["the", "capital", "of", "france", "is", "paris", "a", "city", "in", "europe", "and", "river"]
    rows = tokenize(model_dir, [" ".join(words[i : i + 3 + i % 5]) for i in range(8)])
    (tmp_path / "tokens").mkdir()
    return model_dir, write_tokens(tmp_path / "tokens" / "part-00000.parquet", rows), tmp_path / "activations"


def test_a_bf16_capture_is_held_in_bf16_and_a_misplaced_hook_still_fails(tmp_path):
    model_dir, tokens, root = tiny_capture_inputs(tmp_path)
    points = [("resid_post", 0), ("resid_post", 1), ("mlp_out", 1)]
    outputs = {(h, lay): root / f"hook={h}" / f"layer={lay}" / "part-00000.parquet" for h, lay in points}
    settings = {**CAPTURE_SETTINGS, "dtype": "bfloat16", "batch_tokens": 16}
    capture_shard(model_dir, tokens, outputs, settings, CAPTURE_PLAN, "00000")

    result = compare_capture(model_dir, tokens, root, "00000", points)
    assert result["model_dtype"] == "bfloat16" and result["n_prompts"] == 8
    for point in result["points"]:
        for peer in ("hf", "transformer_lens"):
            if "pass" in point[peer]:
                assert point[peer]["bar"] == BARS["bfloat16"][peer] and point[peer]["pass"], point

    # layer 0's output stored as layer 1's: what a hook one layer off would write
    shutil.copy(outputs[("resid_post", 0)], outputs[("resid_post", 1)])
    record_sha256(outputs[("resid_post", 1)])  # written as the capture would: only the check sees it
    planted = {
        (p["hook"], p["layer"]): p
        for p in compare_capture(model_dir, tokens, root, "00000", points)["points"]
    }
    assert planted[("resid_post", 1)]["hf"]["pass"] is False
    assert planted[("resid_post", 1)]["transformer_lens"]["pass"] is False
    assert planted[("resid_post", 0)]["hf"]["pass"] is True


def test_a_float32_model_stored_in_bfloat16_is_held_to_the_storage_bar_and_a_misplaced_hook_fails(tmp_path):
    model_dir, tokens, root = tiny_capture_inputs(tmp_path)
    points = [("resid_post", 0), ("resid_post", 1)]
    outputs = {(h, lay): root / f"hook={h}" / f"layer={lay}" / "part-00000.parquet" for h, lay in points}
    capture_shard(
        model_dir, tokens, outputs, {**CAPTURE_SETTINGS, "storage_dtype": "bfloat16"}, CAPTURE_PLAN, "00000"
    )

    result = compare_capture(model_dir, tokens, root, "00000", points)
    assert (result["model_dtype"], result["stored_dtype"]) == ("float32", "bfloat16")
    for point in result["points"]:
        assert point["hf"]["bar"] == STORAGE_BARS["bfloat16"] and point["hf"]["pass"], point
        assert 1e-4 < point["hf"]["max_rel_diff"] < 4e-3  # bfloat16's rounding, nothing more
    shutil.copy(outputs[("resid_post", 0)], outputs[("resid_post", 1)])
    record_sha256(outputs[("resid_post", 1)])  # written as the capture would: only the check sees it
    planted = compare_capture(model_dir, tokens, root, "00000", points)["points"]
    assert [p["hf"]["pass"] for p in planted] == [True, False]
