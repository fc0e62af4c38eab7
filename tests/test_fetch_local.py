"""Source local: an existing Hugging Face folder, validated, hashed and confined to its roots."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from mi_oracle.errors import ModelFolderError, PathEscapeError
from mi_oracle.models.local_folder import fetch_local
from tests.conftest import read_provenance, run_snakemake, write_config


def test_local_folder_is_validated_and_hashed(tiny_gemma2, tmp_path):
    shutil.copytree(tiny_gemma2, tmp_path / "models" / "tiny")
    (tmp_path / "models" / "tiny" / "README.md").write_text("not needed")
    target = tmp_path / "resources" / "models" / "tiny"

    provenance = fetch_local("tiny", "models/tiny", ["models"], target, base=tmp_path)

    assert provenance == read_provenance(target)
    assert provenance["source"] == "local"
    assert provenance["local_path"] == "models/tiny"  # relative to the workdir: it moves with it
    recorded = {f["path"]: f["sha256"] for f in provenance["files"]}
    assert "README.md" not in recorded
    for name, sha256 in recorded.items():
        assert hashlib.sha256((tiny_gemma2 / name).read_bytes()).hexdigest() == sha256
    assert provenance["model"]["model_type"] == "gemma2"
    assert provenance["model"]["num_hidden_layers"] == 3
    assert AutoModelForCausalLM.from_pretrained(target).config.hidden_size == 32


def test_local_path_outside_the_roots_is_refused(tiny_gemma2, tmp_path):
    with pytest.raises(PathEscapeError, match=r"model\.path: .* outside the allowed roots"):
        fetch_local("tiny", str(tiny_gemma2), ["models"], tmp_path / "out", base=tmp_path)
    with pytest.raises(PathEscapeError):
        fetch_local("tiny", "models/../..", ["models"], tmp_path / "out", base=tmp_path)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda f: (f / "config.json").unlink(), "config.json is missing"),
        (lambda f: (f / "config.json").write_text("{not json"), "config.json: cannot read as JSON"),
        (lambda f: (f / "config.json").write_text("{}"), "config.json: key 'model_type' is missing"),
        (
            lambda f: (f / "model.safetensors").unlink(),
            "no model.safetensors or model.safetensors.index.json",
        ),
        (lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 8), "not a readable safetensors file"),
        (lambda f: (f / "tokenizer.json").unlink(), "no tokenizer; expected one of tokenizer.json"),
        (
            lambda f: (f / "model.safetensors.index.json").write_text(
                '{"weight_map": {"w": "../x.safetensors"}}'
            ),
            "weight_map['w'] = '../x.safetensors'; expected a file name in the same folder",
        ),
    ],
)
def test_broken_local_folder_is_refused_with_its_reason(tiny_gemma2, tmp_path, damage, expected):
    folder = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_gemma2, folder)
    damage(folder)
    with pytest.raises(ModelFolderError, match="models/tiny") as raised:
        fetch_local("tiny", "models/tiny", ["models"], tmp_path / "out", base=tmp_path)
    assert expected in str(raised.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_snakemake_local_source_then_nothing_to_do(tiny_gemma2, tmp_path: Path):
    shutil.copytree(tiny_gemma2, tmp_path / "models" / "tiny")
    config = {  # the older single-model form: it keeps working (upgraded to models: {tiny: ...})
        "model": {"name": "tiny", "source": "local", "path": "models/tiny"},
        "local_roots": ["models", "config"],
    }
    configfile = write_config(tmp_path / "config.yaml", config)
    run_snakemake(tmp_path, configfile, "resources/models/tiny")
    assert read_provenance(tmp_path / "resources" / "models" / "tiny")["source"] == "local"
    assert (tmp_path / "results" / "logs" / "fetch_model" / "tiny.log").is_file()
    again = run_snakemake(tmp_path, configfile, "-n", "resources/models/tiny")
    assert "Nothing to be done" in again.stdout + again.stderr
