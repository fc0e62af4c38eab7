"""The configuration is validated against its schema before any job runs."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from mi_oracle.config import load_schema, resolve_inside_roots, validate_config
from mi_oracle.errors import ConfigError, PathEscapeError
from tests.conftest import REPO_ROOT, run_snakemake, write_config

SCHEMA = load_schema(REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml")
DEFAULT = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))


def check(config: dict) -> dict:
    return validate_config(copy.deepcopy(config), SCHEMA, sources=["cfg.yaml"])


def test_default_config_is_valid_and_gets_defaults():
    config = check(DEFAULT)
    assert config["model"]["source"] == "gguf-package"
    assert config["local_roots"] == ["."]


def test_hub_config_is_valid():
    config = check(
        {"model": {"name": "gemma-2-2b", "source": "hub", "repo": "google/gemma-2-2b", "revision": "v1"}}
    )
    assert config["model"]["revision"] == "v1"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {**DEFAULT, "modle": {}},
            "modle: unknown key (allowed here: capture, crossval, dictionaries, encoding, local_roots, "
            "model, numerics, prompts, references, synthetic_calibration_tokens)",
        ),
        (
            {"model": {**DEFAULT["model"], "revison": "main"}},
            "model.revison: unknown key (allowed here: name, package, path, repo, revision, source)",
        ),
        ({"model": {**DEFAULT["model"], "name": 7}}, "model.name: 7 is not of type 'string'"),
        ({"local_roots": ["."]}, "model: required key is missing (expected: the causal language model"),
        (
            {"model": {"source": "gguf-package"}},
            "model.name: required key is missing (expected: a folder name",
        ),
        (
            {"model": {"name": "m", "source": "hub", "repo": "google/gemma-2-2b"}},
            "model.revision: required key is missing (expected: the branch, tag or 40-hex commit",
        ),
        ({"model": {"name": "m", "source": "local"}}, "model.path: required key is missing"),
        (
            {"model": {"name": "m", "source": "hubb"}},
            "model.source: 'hubb' is not one of ['hub', 'gguf-package', 'local']",
        ),
        (
            {"model": {"name": "../escape", "source": "gguf-package"}},
            "model.name: '../escape' does not match",
        ),
        (
            {"model": {"name": "m", "source": "hub", "repo": "not a repo", "revision": "main"}},
            "model.repo: 'not a repo' does not match",
        ),
        ({"model": DEFAULT["model"], "local_roots": []}, "local_roots: [] should be non-empty"),
        (
            {
                "model": DEFAULT["model"],
                "dictionaries": [{"name": "s", "curation": "a.yaml", "synthetic": {}}],
            },
            "dictionaries.0: needs exactly one of curation, sae, synthetic (found curation, synthetic)",
        ),
        (
            {"model": DEFAULT["model"], "dictionaries": [{"name": "s"}]},
            "dictionaries.0: needs exactly one of curation, sae, synthetic (found none)",
        ),
        (
            {"model": DEFAULT["model"], "dictionaries": [{"name": "s", "synthetic": {"schema": "Npz"}}]},
            "dictionaries.0.synthetic.schema: 'Npz' is not one of ['CltSplit', 'CltSplitJumpReLU', "
            "'GemmaScopeNpz', 'PltBundle'] (expected: the on-disk format to write)",
        ),
        (
            {"model": DEFAULT["model"], "dictionaries": [{"name": "s", "sae": {"hook": "resid_post"}}]},
            "dictionaries.0.sae.entries: required key is missing (expected: one {layer, filepath} per layer",
        ),
    ],
)
def test_bad_config_names_the_key_and_what_was_expected(config, expected):
    with pytest.raises(ConfigError) as raised:
        check(config)
    message = str(raised.value)
    assert message.startswith("invalid configuration in cfg.yaml:")
    assert expected in message


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as raised:
        check({"model": {"name": 1, "source": "nowhere", "extra": True}})
    message = str(raised.value)
    assert "model.name:" in message and "model.source:" in message and "model.extra: unknown key" in message


def test_paths_may_not_escape_their_roots(tmp_path: Path):
    root = tmp_path / "models"
    (root / "inside").mkdir(parents=True)
    assert resolve_inside_roots("models/inside", ["models"], "model.path", tmp_path) == root / "inside"
    for escaping in ("models/../outside", "/etc", "models/inside/../../.."):
        with pytest.raises(PathEscapeError, match=r"model\.path: .* outside the allowed roots"):
            resolve_inside_roots(escaping, ["models"], "model.path", tmp_path)


def test_symlink_out_of_a_root_is_refused(tmp_path: Path):
    (tmp_path / "models").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "models" / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PathEscapeError):
        resolve_inside_roots("models/link", ["models"], "model.path", tmp_path)


@pytest.mark.slow
def test_snakemake_stops_before_any_job_on_a_bad_config(tmp_path: Path):
    configfile = write_config(tmp_path / "bad.yaml", {"model": {"name": "m", "source": "hub", "repo": "a/b"}})
    result = run_snakemake(tmp_path, configfile, "-n", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"invalid configuration in {configfile}" in output
    assert "model.revision: required key is missing" in output
    assert not (tmp_path / "resources").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "references"),
    [
        ("gemma-2-2b", ["sae_reference", "plt_gemma_reference"]),
        ("llama-3.2-1b", ["plt_llama_reference"]),
        ("qwen3-1.7b", ["clt_qwen3_reference", "qwen3_forward_reference"]),
    ],
)
def test_each_real_target_config_builds_its_dag_alone(tmp_path: Path, name: str, references: list[str]):
    shutil.copytree(REPO_ROOT / "config", tmp_path / "config")
    result = run_snakemake(tmp_path, tmp_path / "config" / f"{name}.yaml", "-n")
    output = result.stdout + result.stderr
    for reference in references:
        assert f"results/references/portable/{reference}.json" in output
    assert "gemma-3-270m" not in output and "synthetic" not in output  # nothing of the default leaks in
