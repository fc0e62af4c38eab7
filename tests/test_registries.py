"""The registries grow by one module and one line: an eleventh forward family (OLMo 2) and a new
reference kind (``logit_lens``), both registered from tests/registrations.py through
``MI_ORACLE_PLUGINS``, made by the workflow and graded against committed copies end to end."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from mi_oracle.references.families import FAMILIES
from mi_oracle.references.kinds import KINDS
from tests.builders import save_tiny_causal_lm
from tests.conftest import REPO_ROOT, run_snakemake, write_config
from tests.reference_checks import reference_in

PROMPTS = ["the capital of", "a river in the city"]
PLUGIN = {"MI_ORACLE_PLUGINS": "tests.registrations", "PYTHONPATH": str(REPO_ROOT)}


def config() -> dict:
    return {
        "models": {"olmo2-tiny": {"source": "local", "path": "models/olmo2"}},
        "local_roots": ["."],
        "references": {
            "committed": "committed",
            "prompts": PROMPTS,
            "items": [
                {"name": "olmo2_forward_reference", "kind": "forward", "family": "olmo2"},
                {"name": "olmo2_logit_lens", "kind": "logit_lens"},
            ],
        },
    }


@pytest.mark.slow
def test_a_registered_family_and_kind_are_made_and_graded_end_to_end(tmp_path):
    assert "olmo2" not in FAMILIES and "logit_lens" not in KINDS  # nothing registered in this process
    save_tiny_causal_lm(tmp_path / "models" / "olmo2", "olmo2", initializer_range=0.2)
    configfile = write_config(tmp_path / "config.yaml", config())
    without = run_snakemake(tmp_path, configfile, "-n", check=False)
    assert without.returncode != 0
    assert "references.items[olmo2_logit_lens]: kind 'logit_lens' is not supported" in without.stdout

    env = {**os.environ, **PLUGIN}
    run_snakemake(tmp_path, configfile, "references", env=env)
    forward = json.loads(reference_in(tmp_path, "olmo2_forward_reference").read_text())
    assert forward["model_type"] == "olmo2" and forward["environment"]["family"] == "olmo2"
    assert "eager attention; olmo2 arm" in forward["methodology"]
    lens = json.loads(reference_in(tmp_path, "olmo2_logit_lens").read_text())
    assert lens["num_layers"] == 3 and [case["prompt"] for case in lens["test_cases"]] == PROMPTS
    for lens_case, forward_case in zip(lens["test_cases"], forward["test_cases"], strict=True):
        assert lens_case["tokens"] == forward_case["tokens"] and len(lens_case["layers"]) == 3
        # the last layer's lens is the model's own prediction
        assert [t["index"] for t in lens_case["layers"][-1]["top"]] == [
            t["index"] for t in forward_case["top_10"][:5]
        ]

    committed = tmp_path / "committed"
    committed.mkdir()
    for name in ("olmo2_forward_reference", "olmo2_logit_lens"):
        shutil.copy(reference_in(tmp_path, name), committed)
    run_snakemake(tmp_path, configfile, "results/reports/resurrection.json", env=env)
    table = json.loads((tmp_path / "results" / "reports" / "resurrection.json").read_text())
    assert [row["verdict"] for row in table["rows"]] == ["byte-identical", "byte-identical"]
    assert table["rows"][1]["bars"] == "top-5 indices exact, logits 1e-3"

    planted = json.loads((committed / "olmo2_logit_lens.json").read_text())
    planted["test_cases"][1]["layers"][2]["top"][0]["logit"] += 2e-3
    (committed / "olmo2_logit_lens.json").write_text(json.dumps(planted, indent=2))
    failed = run_snakemake(tmp_path, configfile, "results/reports/resurrection.json", env=env, check=False)
    assert failed.returncode != 0
    log = (tmp_path / "results" / "logs" / "check_references.log").read_text()
    assert "1 difference(s)" in log
    assert f"olmo2_logit_lens.json: test_cases[prompt {PROMPTS[1]!r}].layers[2].top[0].logit: expected" in log
