"""The default run's cross-validation report (real Gemma 3 270M), planted candidates through the
real rule, and the page in a real browser."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from mi_oracle.layout import report_path
from tests.browser import layout_width, render
from tests.conftest import restore_default_run, run_snakemake, write_config

pytestmark = pytest.mark.slow


def test_the_default_run_ends_with_a_passing_report_of_all_four_kinds(embedded_workdir, tmp_path):
    report = json.loads((embedded_workdir / report_path("default", "json")).read_text())
    assert report["pass"] is True
    assert all(row["pass"] is True for row in report["summary"]), report["summary"]
    assert {c["kind"] for c in report["candidates"]} == {"sae", "plt", "clt", "forward"}
    assert all(c["grade"] == "exact" for c in report["candidates"])
    points = report["capture"]["points"]
    assert len(points) == 21 and all(p["transformer_lens"]["pass"] for p in points)
    assert {(p["hook"], p["layer"]) for p in points if "pass" in p["hf"]} == {
        (hook, layer) for hook in ("resid_pre", "resid_post") for layer in (0, 9, 17)
    }
    assert len(report["encoders"]) == 12 and all(e["saelens"]["status"] == "run" for e in report["encoders"])
    assert all(e["project"]["flips_away_from_threshold"] == 0 for e in report["encoders"])
    page = embedded_workdir / report_path("default")
    dom, console = render(page, tmp_path / "page.png")
    assert (
        console == [] and '<table class="summary">' in dom and 'cross-validation: <span class="pass">' in dom
    )
    # every implementation in its own column, and still no horizontal scroll on a laptop screen
    assert all(f"<th>{peer} (bar " in dom for peer in ("TransformerLens", "nnsight", "circuit-tracer"))
    scroll, viewport = layout_width(page, tmp_path)
    assert scroll <= viewport, f"the page is {scroll} px wide in a {viewport} px window"


def test_planted_candidates_fail_the_rule_by_name_unless_report_only(embedded_workdir):
    planted = embedded_workdir / "candidates"
    shutil.copytree(embedded_workdir / "references" / "gemma-3-270m", planted)
    plt = json.loads((planted / "plt_bundle_reference.json").read_text())
    case = plt["test_cases"][5]
    case["top_10"][1]["activation"] += 2e-4
    (planted / "plt_bundle_reference.json").write_text(json.dumps(plt))
    clt = json.loads((planted / "clt_reference.json").read_text())
    del clt["test_cases"][0]
    (planted / "clt_reference.json").write_text(json.dumps(clt))
    forward = json.loads((planted / "forward_reference.json").read_text())
    forward["test_cases"][2]["top_10"][4]["index"] += 1
    (planted / "forward_reference.json").write_text(json.dumps(forward))
    config = yaml.safe_load((embedded_workdir / "config" / "config.yaml").read_text())
    config["crossval"]["candidates"] = "candidates"
    configfile = write_config(embedded_workdir / "config" / "candidates.yaml", config)

    result = run_snakemake(embedded_workdir, configfile, "crossval_report", check=False)
    assert result.returncode != 0
    log = (embedded_workdir / "results" / "logs" / "crossval_report" / "default.log").read_text()
    label = f"layer {case['layer']}, seed {case['seed']}"
    assert f"plt_bundle_reference.json: test_cases[{label}].top_10[1].activation: expected" in log
    assert "clt_reference.json: test_cases[layer 0, seed 0]: case missing" in log
    assert "forward_reference.json: test_cases[prompt 'Once upon a time, there was a'].top_10[4].index" in log
    assert (embedded_workdir / "results" / "reports" / "default" / "crossval.failed.html").exists()

    config["crossval"]["report_only"] = True
    write_config(configfile, config)
    run_snakemake(embedded_workdir, configfile, "crossval_report")
    report = json.loads((embedded_workdir / report_path("default", "json")).read_text())
    assert report["pass"] is False
    assert {c["reference"]: c["grade"] for c in report["candidates"]} == {
        "clt_reference": "fail",
        "forward_reference": "fail",
        "plt_bundle_reference": "fail",
        "plt_gemmascope_reference": "exact",
        "sae_reference": "exact",
    }
    restore_default_run(embedded_workdir)
