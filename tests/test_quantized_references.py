"""Quantized references: the checkpoint's quantization_config is checked against the scheme, and a
machine without CUDA or the backend writes what it lacks, never a half-made folder."""

from __future__ import annotations

import json

import pytest
import torch

from mi_oracle.errors import ReferenceDataError
from mi_oracle.models.local_folder import fetch_local
from mi_oracle.numerics.mode import Numerics
from mi_oracle.references.generate import write_model_references
from mi_oracle.references.quantized import missing_for, quantization_config
from tests.builders import save_tiny_causal_lm
from tests.candle_mi_suite import QUANTIZED

BNB = QUANTIZED["medmekk/Llama-3.2-1B-Instruct-bnb-nf4"]
ITEM = {"name": "bnb_nf4_forward_reference", "kind": "quantized", "scheme": "bnb-nf4", "prompts": ["a city"]}
OPTIONS = {"device": "cpu", "dtype": "float32", "seeds_per_layer": 1}


def quantized_model(root, quantization):
    raw = {"quantization_config": quantization} if quantization is not None else {}
    source = save_tiny_causal_lm(root / "source", "llama", raw_config=raw)
    fetch_local("q", str(source), [str(root)], root / "model")
    return root / "model"


def test_the_checkpoint_must_be_of_the_configured_scheme(tmp_path):
    model = quantized_model(tmp_path, BNB)
    assert quantization_config(model, "bnb-nf4", "r")["bnb_4bit_quant_type"] == "nf4"
    with pytest.raises(
        ReferenceDataError, match=r"awq_ref: .*quant_method is 'bitsandbytes', scheme awq expects 'awq'"
    ):
        quantization_config(model, "awq", "awq_ref")
    fp4 = quantized_model(tmp_path / "fp4", {**BNB, "bnb_4bit_quant_type": "fp4"})
    with pytest.raises(ReferenceDataError, match=r"bnb_4bit_quant_type is 'fp4', expected 'nf4'"):
        quantization_config(fp4, "bnb-nf4", "r")
    plain = quantized_model(tmp_path / "plain", None)
    with pytest.raises(
        ReferenceDataError, match=r"r: .*config.json has no quantization_config \(gptq expected\)"
    ):
        quantization_config(plain, "gptq", "r")


def test_without_cuda_the_folder_says_what_is_missing_and_nothing_else(tmp_path, monkeypatch):
    assert "a CUDA device" in missing_for("gptq", "cpu")
    # a machine without CUDA, whatever this one has (benchmarks/gpu_references.py runs the GPU side)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = quantized_model(tmp_path, BNB)
    folder = tmp_path / "out" / "llama-3.2-1b-instruct-bnb-nf4"
    assert missing_for("bnb-nf4", "cuda")[0] == "a CUDA device"
    status = write_model_references([ITEM], OPTIONS, model, {}, folder, Numerics("portable", 1))
    assert status == {"bnb_nf4_forward_reference": "needs a GPU"}
    assert sorted(path.name for path in folder.parent.iterdir()) == [folder.name]
    assert [path.name for path in folder.rglob("*")] == ["provenance", "bnb_nf4_forward_reference.json"]
    record = json.loads((folder / "provenance" / "bnb_nf4_forward_reference.json").read_text())
    assert record["status"] == "needs a GPU" and record["scheme"] == "bnb-nf4"
    assert record["missing"] == missing_for("bnb-nf4", "cuda") and record["quantization_config"] == BNB
    assert record["environment"]["model"]["weights_sha256"]


def test_a_wrong_checkpoint_leaves_no_folder(tmp_path):
    model = quantized_model(tmp_path, BNB)
    out = tmp_path / "out"
    with pytest.raises(ReferenceDataError, match="awq_forward_reference"):
        write_model_references(
            [{**ITEM, "name": "awq_forward_reference", "scheme": "awq"}],
            OPTIONS,
            model,
            {},
            out / "awq",
            Numerics(),
        )
    assert not out.exists() or list(out.iterdir()) == []
