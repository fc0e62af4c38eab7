"""Quantized-loading references (bnb NF4, AWQ, GPTQ): each scheme's own library is the oracle.

None of the three backends runs on a CPU-only machine. Before anything loads, the checkpoint's
``quantization_config`` is checked against the configured scheme (a wrong checkpoint is an error
naming the reference); then, where the machine lacks a CUDA device or the backend's packages, the
reference is not made and :func:`missing_for` says what it needs. The oracle computes in the
scheme's compute dtype: fp32 for bnb NF4, fp16 for AWQ and GPTQ, as candle-mi's oracles do.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mi_oracle.errors import ReferenceDataError
from mi_oracle.json_files import read_json


@dataclass(frozen=True)
class Scheme:
    """A quantization scheme: how its checkpoint says so, the packages transformers loads it
    through, its compute dtype."""

    quant_method: str
    packages: tuple[str, ...]
    dtype: str
    quant_type: str | None = None  # bnb_4bit_quant_type


# transformers 5 loads AWQ checkpoints through GPTQModel, and GPTQ ones through Optimum and GPTQModel
SCHEMES = {
    "bnb-nf4": Scheme("bitsandbytes", ("bitsandbytes", "accelerate"), "float32", "nf4"),
    "awq": Scheme("awq", ("gptqmodel", "accelerate"), "float16"),
    "gptq": Scheme("gptq", ("optimum", "gptqmodel", "accelerate"), "float16"),
}
# candle-mi's bars per scheme: exact top-1, each oracle token's logit within this
QUANTIZED_BARS = {"bnb-nf4": 1.5, "awq": 1e-1, "gptq": 1e-1}


def scheme_named(name: str, reference: str) -> Scheme:
    if name not in SCHEMES:
        raise ReferenceDataError(
            f"{reference}: scheme {name!r} is not supported (supported: {', '.join(SCHEMES)})"
        )
    return SCHEMES[name]


def quantization_config(model_dir: Path, scheme_name: str, reference: str) -> dict[str, Any]:
    """The checkpoint's ``quantization_config``, checked to be ``scheme_name``'s."""
    scheme = scheme_named(scheme_name, reference)
    config = read_json(Path(model_dir) / "config.json", ReferenceDataError).get("quantization_config")
    if not isinstance(config, Mapping):
        raise ReferenceDataError(
            f"{reference}: {model_dir}/config.json has no quantization_config ({scheme_name} expected)"
        )
    method = config.get("quant_method")
    if method != scheme.quant_method:
        raise ReferenceDataError(
            f"{reference}: {model_dir}/config.json: quantization_config.quant_method is {method!r}, "
            f"scheme {scheme_name} expects {scheme.quant_method!r}"
        )
    if scheme.quant_type and config.get("bnb_4bit_quant_type") != scheme.quant_type:
        raise ReferenceDataError(
            f"{reference}: {model_dir}/config.json: quantization_config.bnb_4bit_quant_type is "
            f"{config.get('bnb_4bit_quant_type')!r}, expected {scheme.quant_type!r}"
        )
    return dict(config)


def missing_for(scheme_name: str, device: str) -> list[str]:
    """What this machine lacks to run ``scheme_name``'s oracle on ``device`` (empty: nothing)."""
    import torch

    scheme = SCHEMES[scheme_name]
    missing = []
    if not device.startswith("cuda") or not torch.cuda.is_available():
        missing.append("a CUDA device")
    absent = [package for package in scheme.packages if importlib.util.find_spec(package) is None]
    missing += [f"the {package} package" for package in absent]
    return missing


def needs_gpu_record(
    reference: str, scheme_name: str, missing: list[str], config: Mapping[str, Any], model: Mapping[str, Any]
) -> dict[str, Any]:
    """What stands in for a quantized reference this machine cannot make: what it lacks, and the
    checkpoint that was fetched and checked (its ``environment`` as a reference would record it)."""
    return {
        "reference": reference,
        "status": "needs a GPU",
        "scheme": scheme_name,
        "missing": missing,
        "quantization_config": dict(config),
        "environment": {"model": dict(model)},
    }
