"""Candidate grading with candle-mi's bars, the oracle agreement statistics, and the report page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mi_oracle.crossval.bars import judge_candidate
from mi_oracle.crossval.candidates import grade_candidates
from mi_oracle.crossval.oracle import agreement
from mi_oracle.crossval.report import build_report, write_report
from mi_oracle.errors import CrossValidationError
from tests.browser import layout_width, render
from tests.planted import PLANTS
from tests.reference_checks import fixture


def copy(document: dict) -> dict:
    return json.loads(json.dumps(document))


@pytest.fixture
def plt() -> dict:
    document = fixture("plt_gemma_reference.json")
    document["test_cases"] = document["test_cases"][:3]
    return document


def forward_reference() -> dict:
    rng = np.random.default_rng(0)
    case = lambda prompt: {  # noqa: E731
        "prompt": prompt,
        "tokens": [2, 10, 11],
        "top_10": [{"index": i, "logit": float(20 - i)} for i in range(10)],
        "last_residual_f32": [float(v) for v in rng.standard_normal(8).astype(np.float32)],
    }
    return {
        "model_repo": "m",
        "hidden_size": 8,
        "num_layers": 2,
        "vocab_size": 32,
        "test_cases": [case("a"), case("b")],
    }


def test_a_clean_candidate_is_exact_and_a_close_one_passes(plt):
    assert judge_candidate(plt, copy(plt), "plt") == {
        "grade": "exact",
        "failures": [],
        "bars": judge_candidate(plt, plt, "plt")["bars"],
    }
    close = copy(plt)
    close["test_cases"][0]["top_10"][0]["activation"] += 5e-5
    close["platform"] = "Windows"
    assert judge_candidate(plt, close, "plt")["grade"] == "pass"


@pytest.mark.parametrize(
    ("plant", "failure"),
    [
        ("wrong top-10 index", "test_cases[layer 0, seed 100].top_10[3].index: expected {index}, got 7"),
        (
            "activation off by 2e-4",
            "test_cases[layer 0, seed 0].top_10[0].activation: "
            "expected 11.09428596496582, got 11.09448596496582 (|diff| 0.0002 >= 0.0001)",
        ),
        ("missing d_model", "d_model: missing"),
        ("missing last case", "test_cases[layer 0, seed 200]: case missing"),
        ("extra case", "test_cases[layer 0, seed 300]: unexpected case"),
        ("NaN activation", "test_cases[layer 0, seed 200].top_10[1].activation: nan is not a finite number"),
        ("n_active off by one", "test_cases[layer 0, seed 200].n_active: expected 1014, got 1013"),
    ],
)
def test_each_planted_fault_fails_by_name(plt, plant, failure):
    planted = copy(plt)
    PLANTS[plant](planted)
    result = judge_candidate(plt, planted, "plt")
    expected = failure.format(index=plt["test_cases"][1]["top_10"][3]["index"])
    assert result["grade"] == "fail" and result["failures"] == [expected], result["failures"]


def test_sae_candidates_are_held_to_candle_mi_bars():
    reference = fixture("sae_reference.json")
    loose = copy(reference)
    loose["n_active_last_pos"] += 10
    loose["reconstruction_mse"] *= 5
    loose["resid_last_norm"] += 0.9
    for entry in loose["top_features_last_pos"][5:]:
        entry["index"] += 1
    assert judge_candidate(reference, loose, "sae")["grade"] == "pass"
    bad = copy(loose)
    bad["n_active_last_pos"] += 1
    bad["top_features_last_pos"][0]["index"] += 1
    bad["reconstruction_mse"] = reference["reconstruction_mse"] * 10
    assert judge_candidate(reference, bad, "sae")["failures"] == [
        "n_active_last_pos: expected 14 within 10, got 25",
        "top_features_last_pos: 4 of 10 indices equal position by position",
        "reconstruction_mse: ratio 10 outside [0.1, 10)",
    ]


def residual(document: dict) -> float:
    return document["test_cases"][0]["last_residual_f32"][3]


def test_forward_candidates_check_logits_tokens_and_the_residual():
    reference = forward_reference()
    planted = copy(reference)
    planted["test_cases"][1]["top_10"][0]["logit"] += 2e-3
    planted["test_cases"][0]["last_residual_f32"][3] += 2e-3
    planted["test_cases"][0]["tokens"] = [2, 10]
    failures = judge_candidate(reference, planted, "forward")["failures"]
    assert failures == [
        "test_cases[prompt 'a'].tokens: expected [2, 10, 11], got [2, 10]",
        f"test_cases[prompt 'a'].last_residual_f32[3]: expected {residual(reference)!r}, "
        f"got {residual(planted)!r} (|diff| 0.002 >= 0.001)",
        "test_cases[prompt 'b'].top_10[0].logit: expected 20.0, got 20.002 (|diff| 0.002 >= 0.001)",
    ]


def test_candidate_files_without_a_reference_or_readable_json_fail(tmp_path, plt):
    (tmp_path / "references").mkdir()
    (tmp_path / "references" / "p.json").write_text(json.dumps(plt))
    folder = tmp_path / "candidates"
    folder.mkdir()
    (folder / "p.json").write_text(json.dumps(plt))
    (folder / "q.json").write_text("{}")
    (folder / "r.json").write_text("{not json")
    refs = {
        "p": ("plt", tmp_path / "references" / "p.json"),
        "r": ("plt", tmp_path / "references" / "p.json"),
    }
    graded = {c["reference"]: c for c in grade_candidates(refs, folder)}
    assert graded["p"]["grade"] == "exact"
    assert graded["q"]["failures"] == ["no reference named 'q' (p, r)"]
    assert graded["r"]["grade"] == "fail" and graded["r"]["failures"][0].startswith("not readable as JSON")


def test_a_candidate_made_from_other_weights_fails_on_its_inputs_first(tmp_path, plt):
    files = [{"layer": 0, "source": "w/layer_0/params.npz", "sha256": "a" * 64}]
    ours = {**copy(plt), "environment": {"dictionary": {"set": "s", "files": files}}}
    (tmp_path / "p.json").write_text(json.dumps(ours))
    folder = tmp_path / "candidates"
    folder.mkdir()
    theirs = copy(ours)
    theirs["environment"]["dictionary"]["files"][0]["sha256"] = "b" * 64
    theirs["test_cases"][0]["top_10"][0]["activation"] += 1.0
    (folder / "p.json").write_text(json.dumps(theirs))
    (graded,) = grade_candidates({"p": ("plt", tmp_path / "p.json")}, folder)
    assert graded["grade"] == "fail"
    assert graded["failures"] == [
        f"inputs differ: set s layer 0 file 1 (params.npz): sha256 {'a' * 16}... generated, "
        f"{'b' * 16}... candidate",
        "1 bar failure(s), from the different inputs",
    ]
    theirs["test_cases"][0]["top_10"][0]["activation"] -= 1.0  # same numbers, other weights: still a fail
    (folder / "p.json").write_text(json.dumps(theirs))
    (graded,) = grade_candidates({"p": ("plt", tmp_path / "p.json")}, folder)
    assert graded["grade"] == "fail" and len(graded["failures"]) == 1


def test_agreement_counts_a_flip_away_from_a_threshold():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((4, 6)), rng.standard_normal((6, 5))
    pre = x @ w
    threshold = np.zeros_like(pre)
    expected = pre * (pre > 0)
    ours = expected.copy()
    i, j = np.argwhere(expected > 0.5)[0]
    ours[i, j] = 0.0
    stats = agreement(ours, pre, expected, threshold, x, w)
    assert stats["flips"] == stats["flips_away_from_threshold"] == 1
    assert agreement(expected, pre, expected, threshold, x, w)["flips"] == 0


def small_report_inputs(tmp_path: Path, plt: dict, candidate: dict) -> tuple:
    capture = {
        "n_prompts": 1,
        "shard": "00000",
        "model_dtype": "float32",
        "devices": ["cpu"],
        "points": [
            {
                "hook": "resid_post",
                "layer": 0,
                "n_tokens": 3,
                "hf": {"max_abs_diff": 0.0, "max_rel_diff": 1e-7, "bar": 1e-5, "pass": True},
                "transformer_lens": {"status": "not run: transformer-lens is not installed"},
            }
        ],
    }
    stats = {"flips": 0, "flips_away_from_threshold": 0, "max_abs_diff": 1e-5, "value_excess": 0.1}
    stats |= {"top10_set_agreement": 1.0, "values": 10, "compared": 4, "pass": True}
    encoders = [
        {"set": "s", "layer": 0, "schema": "GemmaScopeNpz", "n_tokens": 3, "project": stats, "saelens": stats}
        | {"activation": "jumprelu", "synthetic": True, "oracle_mean_l0": 2.0}
        | {"circuit_tracer": {"status": "not run: the peer environment is missing"}}
    ]
    metrics = {"set": "s", "layers": {"0": {"mean_l0": 2.0, "fvu": 0.1}}}
    paths = {name: tmp_path / f"{name}.json" for name in ("capture", "encoders", "metrics", "reference")}
    for name, value in zip(paths, (capture, encoders, metrics, plt), strict=True):
        paths[name].write_text(json.dumps(value))
    (tmp_path / "candidates").mkdir()
    (tmp_path / "candidates" / "ref.json").write_text(json.dumps(candidate))
    native = copy(plt)  # the same reference made with this CPU's native kernels
    native["test_cases"][1]["top_10"][0]["activation"] *= 1 + 3e-7
    native["test_cases"][2]["top_10"][4]["index"] += 1
    (tmp_path / "native.json").write_text(json.dumps(native))
    return build_report(
        paths["capture"],
        [paths["encoders"]],
        {"s": paths["metrics"]},
        {"ref": ("plt", paths["reference"])},
        tmp_path / "candidates",
        {"ref": tmp_path / "native.json"},
    )


def test_the_devices_section_says_how_far_native_kernels_lie_from_portable_ones(tmp_path, plt):
    report = small_report_inputs(tmp_path, plt, copy(plt))
    (row,) = report["devices"]["kernels"]
    value = plt["test_cases"][1]["top_10"][0]["activation"]
    assert (row["reference"], row["kind"], row["differing_values"], row["differing_integers"]) == (
        "ref",
        "plt",
        1,
        1,
    )
    assert row["max_abs_diff"] == pytest.approx(value * 3e-7, rel=1e-3)
    assert row["max_rel_diff"] == pytest.approx(3e-7, rel=1e-3)
    assert row["values"] == sum(len(c["residual"]) + len(c["top_10"]) for c in plt["test_cases"])
    assert report["pass"] is True  # the spread is reported, not judged


def test_a_failing_candidate_fails_the_report_but_keeps_it(tmp_path, plt):
    planted = copy(plt)
    planted["test_cases"][0]["top_10"][2]["index"] = 1
    report = small_report_inputs(tmp_path, plt, planted)
    assert report["pass"] is False
    html, data = tmp_path / "out" / "crossval.html", tmp_path / "out" / "crossval.json"
    with pytest.raises(CrossValidationError, match=r"reference ref \(plt\): candidate: test_cases") as raised:
        write_report(report, html, data, report_only=False)
    assert "test_cases[layer 0, seed 0].top_10[2].index: expected" in str(raised.value)
    assert (tmp_path / "out" / "crossval.failed.html").exists()
    write_report(report, html, data, report_only=True)
    rows = {row["comparison"]: row for row in json.loads(data.read_text())["summary"]}
    assert rows["reference ref (plt)"]["pass"] is False and rows["reference ref (plt)"]["agree"] == "0 of 1"


def test_a_passing_report_removes_the_copy_an_earlier_failure_kept(tmp_path, plt):
    planted = copy(plt)
    planted["test_cases"][0]["top_10"][2]["index"] = 1
    html, data = tmp_path / "out" / "crossval.html", tmp_path / "out" / "crossval.json"
    (tmp_path / "first").mkdir()
    (tmp_path / "again").mkdir()
    with pytest.raises(CrossValidationError):
        write_report(small_report_inputs(tmp_path / "first", plt, planted), html, data, report_only=False)
    kept = [tmp_path / "out" / "crossval.failed.html", tmp_path / "out" / "crossval.failed.json"]
    assert all(path.exists() for path in kept)
    write_report(small_report_inputs(tmp_path / "again", plt, copy(plt)), html, data, report_only=False)
    assert json.loads(data.read_text())["pass"] is True
    assert not any(path.exists() for path in kept)


def test_the_page_renders_in_chromium_without_console_errors(tmp_path, plt):
    report = small_report_inputs(tmp_path, plt, copy(plt))
    html = tmp_path / "crossval.html"
    write_report(report, html, tmp_path / "crossval.json", report_only=False)
    text = html.read_text()
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    dom, console = render(html, tmp_path / "page.png")
    assert console == []
    assert '<table class="summary">' in dom and "reference ref (plt)" in dom
    assert (tmp_path / "page.png").stat().st_size > 10_000
    # TransformerLens and circuit-tracer ran nowhere: one folded line each, no column of "not run"
    assert "not run: TransformerLens: not run: transformer-lens is not installed" in dom
    assert dom.count("transformer-lens is not installed") == 2  # the summary's line and the table's
    scroll, viewport = layout_width(html, tmp_path)
    assert scroll <= viewport, f"the page is {scroll} px wide in a {viewport} px window"


def test_the_browser_check_sees_a_console_error(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>undefined_function()</script></body></html>")
    _dom, console = render(page, tmp_path / "bad.png")
    assert any("Uncaught ReferenceError" in line for line in console)
