"""config/candle-mi.yaml, run whole and unchanged against a stand-in hub: every forward, longrope,
transcoder and SAE reference candle-mi commits, made byte-identically under two kernel
environments; the quantized rows stop where their backend is needed; the resurrection table
grades committed copies with candle-mi's bars. Bad entries fail once, naming the reference."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from mi_oracle.references.numbers import seeded_residual
from tests.candle_mi_suite import QUANTIZED, publish_suite
from tests.conftest import REPO_ROOT, hub_env, run_snakemake, write_config
from tests.real_targets import GEMMA_WEIGHTS_REPO
from tests.reference_checks import reference_in
from tests.test_portable_numerics import OTHER_MACHINE

SUITE = yaml.safe_load((REPO_ROOT / "config" / "candle-mi.yaml").read_text())
ITEMS = SUITE["references"]["items"]
NAMES = [item["name"] for item in ITEMS]
QUANTIZED_NAMES = [item["name"] for item in ITEMS if item["kind"] == "quantized"]
MADE = [name for name in NAMES if name not in QUANTIZED_NAMES]


def clone_like(workdir: Path) -> Path:
    shutil.copytree(REPO_ROOT / "config", workdir / "config")
    return workdir / "config" / "candle-mi.yaml"


def reference_bytes(workdir: Path) -> dict[str, bytes]:
    return {name: reference_in(workdir, name).read_bytes() for name in MADE}


def table(workdir: Path) -> dict:
    return json.loads((workdir / "results" / "reports" / "resurrection.json").read_text())


def float64_gemma_scope(npz: Path, residual: np.ndarray) -> np.ndarray:
    with np.load(npz, allow_pickle=False) as params:
        pre = residual.astype(np.float64) @ params["W_enc"].astype(np.float64) + params["b_enc"]
        return pre * (pre > params["threshold"])


@pytest.mark.slow
def test_the_suite_regenerates_every_reference_portably_and_grades_committed_copies(hub, tmp_path):
    commits = publish_suite(hub, tmp_path / "published")
    machines = {tmp_path / "here": {}, tmp_path / "other": OTHER_MACHINE}
    configs = {workdir: clone_like(workdir) for workdir in machines}
    with ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(
                run_snakemake, workdir, configs[workdir], env={**hub_env(hub, workdir / "hf"), **machine}
            )
            for workdir, machine in machines.items()
        ]
        for run in runs:
            run.result()
    here, other = machines
    assert reference_bytes(here) == reference_bytes(other)

    rows = {row["reference"][: -len(".json")]: row for row in table(here)["rows"]}
    assert list(rows) == NAMES
    for name in MADE:
        assert rows[name]["verdict"] == "no committed copy" and rows[name]["inputs"], name
    for item in ITEMS:
        if item["kind"] != "plt" or "set" in item:  # the SAELens reference reads no model folder
            repo = SUITE["models"][item["model"]]["repo"]
            assert rows[item["name"]]["resolved_revision"] == commits[repo], item["name"]
    for item in ITEMS:
        if item["kind"] == "quantized":
            row = rows[item["name"]]
            assert row["verdict"] == "needs a GPU" and "a CUDA device" in row["missing"]
            folder = here / "results" / "references" / "portable" / item["model"]
            made = sorted(str(path.relative_to(folder)) for path in folder.rglob("[!.]*"))
            assert made == ["provenance", f"provenance/{item['name']}.json"]
    # one job per model: the three references of gemma-2-2b made together
    gemma = here / "results" / "references" / "portable" / "gemma-2-2b"
    assert sorted(path.name for path in gemma.glob("*.json")) == [
        "gemma2_forward_reference.json",
        "plt_gemma_reference.json",
        "sae_reference.json",
    ]
    assert {row["repo"] for row in rows.values() if row["kind"] == "quantized"} == set(QUANTIZED)
    # the SAELens reference names no model: its row gives the weights' repository and commit
    plt_row = rows["plt_gemma_reference"]
    assert (plt_row["repo"], plt_row["resolved_revision"]) == (
        GEMMA_WEIGHTS_REPO,
        commits[GEMMA_WEIGHTS_REPO],
    )

    # SAELens's encodings agree with a float64 GemmaScope encoder on the published weights
    plt = json.loads(reference_bytes(here)["plt_gemma_reference"])
    assert plt["sae_lens_version"] and plt["oracle_release"] == "gemma-scope-2b-pt-transcoders"
    weights = tmp_path / "published" / "gemma-2-2b" / "weights"
    for case in plt["test_cases"]:
        sae_id = plt["oracle_sae_ids"][str(case["layer"])]
        residual = seeded_residual(case["seed"], plt["d_model"]).numpy()
        assert case["residual"] == [float(v) for v in residual]
        acts = float64_gemma_scope(weights / sae_id / "params.npz", residual)
        assert case["n_active"] == int((acts > 0).sum())
        assert [item["index"] for item in case["top_10"]] == list(
            np.argsort(-acts, kind="stable")[: len(case["top_10"])]
        )
        assert np.allclose(
            [item["activation"] for item in case["top_10"]],
            acts[[i["index"] for i in case["top_10"]]],
            atol=1e-5,
        )

    # candle-mi's committed copies: most as made, one moved past its bar, one within, one older
    committed = tmp_path / "candle-mi" / "scripts"
    committed.mkdir(parents=True)
    for name, content in reference_bytes(here).items():
        (committed / f"{name}.json").write_bytes(content)
    qwen3 = json.loads((committed / "qwen3_forward_reference.json").read_text())
    qwen3["test_cases"][1]["top_10"][2]["logit"] += 2e-3
    (committed / "qwen3_forward_reference.json").write_text(json.dumps(qwen3, indent=2))
    llama = json.loads((committed / "llama32_forward_reference.json").read_text())
    llama["test_cases"][0]["last_residual_f32"][4] += 4e-4
    (committed / "llama32_forward_reference.json").write_text(json.dumps(llama, indent=2))
    older = {
        key: value
        for key, value in plt.items()
        if key not in ("sae_lens_version", "oracle_release", "oracle_sae_ids", "environment")
    }
    (committed / "plt_gemma_reference.json").write_text(json.dumps(older, indent=2))
    run_snakemake(here, configs[here], env=hub_env(hub, here / "hf"))
    graded = table(here)
    rows = {row["reference"][: -len(".json")]: row for row in graded["rows"]}
    assert graded["pass"] is False
    assert rows["qwen3_forward_reference"]["verdict"] == "fails"
    prompt = qwen3["test_cases"][1]["prompt"]
    assert rows["qwen3_forward_reference"]["failures"][0].startswith(
        f"test_cases[prompt {prompt!r}].top_10[2].logit"
    )
    assert rows["llama32_forward_reference"]["verdict"] == "within tolerance"
    assert rows["llama32_forward_reference"]["moved"]["last_residual_f32"] == pytest.approx(4e-4, rel=1e-3)
    assert rows["plt_gemma_reference"]["verdict"] == "within tolerance"
    assert "oracle_release, oracle_sae_ids, sae_lens_version" in rows["plt_gemma_reference"]["note"]
    identical = [name for name in MADE if rows[name]["verdict"] == "byte-identical"]
    assert len(identical) == len(MADE) - 3
    markdown = (here / "results" / "reports" / "RESURRECTION.md").read_text()
    assert "| qwen3_forward_reference.json | validate_qwen3_forward |" in markdown
    html = (here / "results" / "reports" / "resurrection.html").read_text()
    assert "FAIL" in html and "needs a GPU" in html and "top_10[2].logit" in html


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda config: config["references"]["items"][0].update(family="gpt2"),
            "references.items[qwen3_forward_reference]: family 'gpt2' is not supported",
        ),
        (
            lambda config: config["models"]["gemma-2b"].pop("revision"),
            "models.gemma-2b.revision: required key is missing",
        ),
        (
            lambda config: config["references"]["items"][10].pop("long_prompt"),
            "references.items[phi35_longrope_forward_reference]: a longrope reference names its long_prompt",
        ),
        (
            lambda config: config["references"]["items"][11].pop("scheme"),
            "references.items[bnb_nf4_forward_reference]: a quantized reference names its scheme",
        ),
    ],
)
def test_a_bad_entry_fails_once_naming_the_reference_and_writes_nothing(tmp_path, change, message):
    config = yaml.safe_load((REPO_ROOT / "config" / "candle-mi.yaml").read_text())
    change(config)
    configfile = write_config(tmp_path / "candle-mi.yaml", config)
    result = run_snakemake(tmp_path, configfile, "-n", check=False)
    assert result.returncode != 0
    assert (result.stdout + result.stderr).count(message) == 1, result.stderr[-2000:]
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def test_every_bad_entry_is_listed_at_once(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "config" / "candle-mi.yaml").read_text())
    items = config["references"]["items"]
    items[0].update(family="gpt2")
    items[2].update(model="gemma-7b")
    items[10].pop("long_prompt")
    items[11].pop("scheme")
    result = run_snakemake(tmp_path, write_config(tmp_path / "candle-mi.yaml", config), "-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "4 problems in the configuration:" in output
    for name in (
        "qwen3_forward_reference",
        "gemma_forward_reference",
        "phi35_longrope_forward_reference",
        "bnb_nf4_forward_reference",
    ):
        assert output.count(f"references.items[{name}]:") == 1, name
