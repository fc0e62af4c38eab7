"""The real Gemma Scope curation config resolved through the workflow against a stand-in hub."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from mi_oracle.dictionaries.locations import HubFile, parse_curation_reference, parse_hf_uri
from mi_oracle.errors import DictionaryError, PathEscapeError
from tests.conftest import hub_env, run_snakemake, write_config
from tests.real_targets import (
    D_MODEL,
    D_SAE,
    GEMMA_CURATION_REPO,
    GEMMA_SAE_PATH,
    GEMMA_SAE_REPO,
    GEMMA_WEIGHTS_REPO,
    gemma_scope_uris,
    publish_gemma_2_2b,
)

CURATION_REPO, WEIGHTS_REPO = GEMMA_CURATION_REPO, GEMMA_WEIGHTS_REPO
SAE_REPO, SAE_PATH = GEMMA_SAE_REPO, GEMMA_SAE_PATH
fixture_uris = gemma_scope_uris


@pytest.fixture
def published(hub, tmp_path) -> dict[str, str]:
    """The model, the frozen curation config, all 26 transcoders and the seeds' SAE, on the stand-in hub."""
    return publish_gemma_2_2b(hub, tmp_path / "src")


def config_for(tmp_path: Path) -> Path:
    (tmp_path / "prompts.txt").write_text("The capital of France is\n")
    config = {
        "model": {"name": "gemma-2-2b", "source": "hub", "repo": "google/gemma-2-2b", "revision": "main"},
        "prompts": {"path": "prompts.txt"},
        "capture": {"layers": [0, 12, 25], "hooks": ["resid_post"]},
        "dictionaries": [
            {"name": "gemma-scope-transcoders", "curation": CURATION_REPO},
            {
                "name": "gemma-scope-res",
                "sae": {
                    "model_name": "google/gemma-2-2b",
                    "hook": "resid_post",
                    "entries": [{"layer": 0, "filepath": f"hf://{SAE_REPO}/{SAE_PATH}"}],
                },
            },
        ],
    }
    return write_config(tmp_path / "config.yaml", config)


TARGETS = [
    "results/curation/gemma-scope-transcoders/manifest.json",
    "results/curation/gemma-scope-res/manifest.json",
]


def manifests(workdir: Path) -> tuple[dict, dict]:
    return tuple(json.loads((workdir / target).read_text()) for target in TARGETS)


def test_frozen_gemma_scope_config_resolves_and_downloads_only_requested_layers(hub, published, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    run_snakemake(tmp_path, config_for(tmp_path), *TARGETS, env=env)
    transcoders, sae = manifests(tmp_path)

    assert transcoders["curation"]["repo"] == CURATION_REPO
    assert transcoders["curation"]["resolved_revision"] == published["curation"]
    assert transcoders["model_name"] == "google/gemma-2-2b" and transcoders["kind"] == "transcoder_set"
    assert (transcoders["input_hook"], transcoders["output_hook"]) == ("ln2_normalized", "mlp_out")
    available = transcoders["available_layers"]
    assert [entry["source"] for entry in available] == fixture_uris()
    for entry in available:
        assert re.match(
            rf"hf://{WEIGHTS_REPO}/layer_{entry['layer']}/width_16k/average_l0_\d+/params.npz$",
            entry["source"],
        )

    assert [layer["layer"] for layer in transcoders["layers"]] == [0, 12, 25]
    for layer in transcoders["layers"]:
        (file,) = layer["files"]
        assert file["repo"] == WEIGHTS_REPO and file["source"] == fixture_uris()[layer["layer"]]
        assert file["path"] == parse_hf_uri(file["source"], "").path
        assert file["resolved_revision"] == published["weights"] and file["requested_revision"] == "main"
        assert (
            file["local_path"]
            == f"resources/dictionaries/gemma-scope-transcoders/{WEIGHTS_REPO}/{file['path']}"
        )
        assert (tmp_path / file["local_path"]).is_file()
        assert (layer["schema"], layer["d_model"], layer["d_sae"]) == ("GemmaScopeNpz", D_MODEL, D_SAE)
    downloaded = {
        path
        for method, path in hub.requests
        if method == "GET" and "/resolve/" in path and path.endswith(".npz")
    }
    assert {re.search(r"/layer_(\d+)/", path)[1] for path in downloaded if WEIGHTS_REPO in path} == {
        "0",
        "12",
        "25",
    }

    assert sae["kind"] == "sae" and (sae["input_hook"], sae["output_hook"]) == ("resid_post", "resid_post")
    (layer,) = sae["layers"]
    assert layer["files"][0]["repo"] == SAE_REPO and layer["files"][0]["path"] == SAE_PATH
    assert layer["files"][0]["resolved_revision"] == published["sae"]


def test_corrupt_download_fails_leaves_nothing_and_offline_rerun_uses_the_cache(hub, published, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    configfile = config_for(tmp_path)
    bad_path = parse_hf_uri(fixture_uris()[12], "").path
    hub.corrupt(WEIGHTS_REPO, "main", bad_path)
    failed = run_snakemake(tmp_path, configfile, TARGETS[0], env=env, check=False)
    log = (tmp_path / "results/logs/resolve_dictionary_set/gemma-scope-transcoders.log").read_text()
    assert failed.returncode != 0
    assert f"hf://{WEIGHTS_REPO}/{bad_path} has sha256" in failed.stdout + failed.stderr
    assert "a retry downloads it again" in failed.stdout + failed.stderr
    # a corrupt download is transient: three attempts in one job, and Snakemake restarts none
    assert log.count("trying again in") == 2
    assert (failed.stdout + failed.stderr).count("Error in rule resolve_dictionary_set") == 1
    assert not (tmp_path / TARGETS[0]).exists()
    assert not (tmp_path / "resources" / "dictionaries" / "gemma-scope-transcoders").exists()

    hub.repos[WEIGHTS_REPO].commits[published["weights"]][bad_path].served = None
    run_snakemake(tmp_path, configfile, *TARGETS, env=env)
    online = manifests(tmp_path)

    shutil.rmtree(tmp_path / "results" / "curation")
    shutil.rmtree(tmp_path / "resources" / "dictionaries")
    hub.stop()
    run_snakemake(tmp_path, configfile, *TARGETS, env={**env, "HF_HUB_OFFLINE": "1"})
    for before, after in zip(online, manifests(tmp_path), strict=True):
        assert after["layers"] == before["layers"] and after["curation"] == before["curation"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mntss/gemma-scope-transcoders", HubFile(CURATION_REPO, "config.yaml", None)),
        ("mntss/gemma-scope-transcoders@9250a2d", HubFile(CURATION_REPO, "config.yaml", "9250a2d")),
        ("org/repo/sets/low-l0@v2", HubFile("org/repo", "sets/low-l0/config.yaml", "v2")),
        ("hf://org/repo/a/config.yaml?revision=abc", HubFile("org/repo", "a/config.yaml", "abc")),
    ],
)
def test_curation_references_in_circuit_tracer_form(text, expected):
    assert parse_curation_reference(text, "key") == expected


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("just-a-name", DictionaryError, "neither a local .yaml file"),
        ("org/repo/../other@main", PathEscapeError, "is not a relative path inside its repository"),
        ("hf://org/repo/x.npz?rev=1", DictionaryError, "unknown query keys ['rev']"),
        ("hf://org", DictionaryError, "is not an hf://ORG/REPO/PATH"),
    ],
)
def test_bad_references_are_refused(text, error, message):
    with pytest.raises(error) as raised:
        parse_curation_reference(text, "dictionaries[x].curation")
    assert message in str(raised.value) and "dictionaries[x].curation" in str(raised.value)


def test_a_download_corrupt_once_is_fetched_again_within_the_job(hub, published, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    configfile = config_for(tmp_path)
    bad_path = parse_hf_uri(fixture_uris()[0], "").path
    hub.corrupt(WEIGHTS_REPO, "main", bad_path, downloads=1)
    run_snakemake(tmp_path, configfile, TARGETS[0], env=env)
    log = (tmp_path / "results/logs/resolve_dictionary_set/gemma-scope-transcoders.log").read_text()
    assert "attempt 1 failed" in log and f"hf://{WEIGHTS_REPO}/{bad_path} has sha256" in log
    manifest = json.loads((tmp_path / TARGETS[0]).read_text())
    assert manifest["layers"][0]["files"][0]["path"] == bad_path


def test_a_missing_revision_fails_once_without_retries(hub, published, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    configfile = config_for(tmp_path)
    config = yaml.safe_load(configfile.read_text())
    config["dictionaries"][0]["curation"] = f"{CURATION_REPO}@no-such-branch"
    write_config(configfile, config)
    failed = run_snakemake(tmp_path, configfile, TARGETS[0], env=env, check=False)
    output = failed.stdout + failed.stderr
    log = (tmp_path / "results/logs/resolve_dictionary_set/gemma-scope-transcoders.log").read_text()
    assert failed.returncode != 0 and "has no revision 'no-such-branch'" in log
    assert "trying again" not in log and output.count("Error in rule resolve_dictionary_set") == 1


def test_a_curation_given_as_an_hf_uri_is_downloaded_not_read_as_a_local_path(hub, published, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    configfile = config_for(tmp_path)
    config = yaml.safe_load(configfile.read_text())
    config["dictionaries"][0]["curation"] = f"hf://{CURATION_REPO}/config.yaml"
    write_config(configfile, config)
    run_snakemake(tmp_path, configfile, TARGETS[0], env=env)
    manifest = json.loads((tmp_path / TARGETS[0]).read_text())
    assert manifest["curation"]["source"] == f"hf://{CURATION_REPO}/config.yaml"
    assert manifest["curation"]["resolved_revision"] == published["curation"]
    assert [entry["source"] for entry in manifest["available_layers"]] == fixture_uris()
