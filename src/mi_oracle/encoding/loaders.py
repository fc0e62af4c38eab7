"""Load one layer of a resolved dictionary set, validated, in one canonical orientation.

Canonical: ``W_enc [d_in, d_sae]`` (held feature-major: a transposed view of [d_sae, d_in]),
``b_enc [d_sae]``, ``threshold [d_sae]`` (JumpReLU),
``W_dec [d_sae, n_out, d_out]`` (``n_out`` = 1, or ``n_layers - l`` for a CLT, whose slice ``j``
writes into layer ``l + j``), ``b_dec [d_out]``, ``W_skip [d_out, d_in]`` (skip = ``W_skip @ x``).
Every tensor is checked: present, shaped as its schema says and as the model's ``d_model``,
stored in the dtype its schema uses, finite; every file first matches its manifest sha256. NPZ
files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

from mi_oracle.dictionaries.manifest import layer_record
from mi_oracle.dictionaries.verify import verified_layer_files
from mi_oracle.errors import DictionaryError

STORED_DTYPES = {  # what each schema may hold on disk
    "GemmaScopeNpz": {torch.float32},
    "GemmaScope2": {torch.float32},
    "SaeLensNative": {torch.float32, torch.bfloat16, torch.float16},
    "PltBundle": {torch.float32, torch.bfloat16},
    "CltSplit": {torch.float32, torch.bfloat16},
    "CltSplitJumpReLU": {torch.float32, torch.bfloat16},
}


@dataclass
class Dictionary:
    """One layer of a dictionary, canonical orientation, in the compute dtype."""

    layer: int
    schema: str
    activation: str
    k: int | None
    W_enc: torch.Tensor
    b_enc: torch.Tensor
    threshold: torch.Tensor | None
    W_dec: torch.Tensor
    b_dec: torch.Tensor
    W_skip: torch.Tensor | None = None
    apply_b_dec_to_input: bool = False

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    def to(self, device: torch.device) -> Dictionary:
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self


def _read_npz(path: Path) -> dict[str, torch.Tensor]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: torch.from_numpy(np.array(archive[name])) for name in archive.files}
    except ValueError as error:
        raise DictionaryError(f"{path}: refused ({error}); expected numeric arrays, never pickles") from error
    except (OSError, EOFError) as error:
        raise DictionaryError(f"{path}: not a readable NPZ archive ({error})") from error


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as error:  # safetensors raises its own error types
        raise DictionaryError(f"{path}: not a readable safetensors file ({error})") from error


def _take(path: Path, tensors: Mapping[str, torch.Tensor], name: str, shape: tuple[int, ...], schema: str):
    """The tensor ``name`` with ``shape``, in an allowed stored dtype and finite, or a clear error."""
    if name not in tensors:
        raise DictionaryError(
            f"{path}: tensor {name!r} is missing (expected shape {list(shape)}; "
            f"found {', '.join(sorted(tensors))})"
        )
    tensor = tensors[name]
    if tuple(tensor.shape) != shape:
        raise DictionaryError(
            f"{path}: tensor {name!r} has shape {list(tensor.shape)}, expected {list(shape)}"
        )
    allowed = STORED_DTYPES[schema]
    if tensor.dtype not in allowed:
        names = ", ".join(sorted(str(d).removeprefix("torch.") for d in allowed))
        found = str(tensor.dtype).removeprefix("torch.")
        raise DictionaryError(f"{path}: tensor {name!r} is {found}, but {schema} stores {names}")
    if not torch.isfinite(tensor).all():
        bad = int((~torch.isfinite(tensor)).sum())
        raise DictionaryError(f"{path}: tensor {name!r} has {bad} non-finite values (NaN or inf)")
    return tensor


def load_layer(
    manifest: Mapping[str, Any], layer: int, base: Path, compute_dtype: torch.dtype = torch.float32
) -> Dictionary:
    """Layer ``layer`` of a resolved set (its manifest), validated and canonicalised."""
    record = layer_record(manifest, layer)
    paths = verified_layer_files(record, base, manifest["set"])
    schema, d_model, d_sae = record["schema"], record["d_model"], record["d_sae"]
    n_layers = manifest["model"]["num_hidden_layers"]
    expected_d_model = manifest["model"]["hidden_size"]
    if d_model != expected_d_model:
        raise DictionaryError(
            f"{paths[0]}: d_model {d_model} but the model's hidden_size is {expected_d_model}"
        )
    activation = manifest["activation"]["kind"]
    loaded = _LOADERS[schema](paths, layer, d_model, d_sae, n_layers, schema)
    if activation == "jumprelu" and loaded.get("threshold") is None:
        raise DictionaryError(f"{paths[0]}: JumpReLU needs a threshold tensor and this file has none")
    apply_b_dec = bool(record["details"].get("apply_b_dec_to_input", False))
    tensors = {name: None if t is None else t.to(compute_dtype) for name, t in loaded.items()}
    # feature-major in memory (a view of [d_sae, d_in]): each pre-activation is then one contiguous
    # dot product, as in candle-mi's scripts (W_enc.T.contiguous() @ x), giving their bits and
    # their accuracy (a d_in-major product lies up to 10x further from float64 at 2304 x 16,384)
    tensors["W_enc"] = tensors["W_enc"].t().contiguous().t()
    return Dictionary(
        layer=layer,
        schema=schema,
        activation=activation if activation in ("relu", "topk", "jumprelu") else "jumprelu",
        k=manifest.get("k"),
        apply_b_dec_to_input=apply_b_dec,
        **tensors,
    )


def _gemma_scope_npz(paths, layer, d_model, d_sae, n_layers, schema):
    (path,) = paths
    t = _read_npz(path)
    return {
        "W_enc": _take(path, t, "W_enc", (d_model, d_sae), schema),
        "b_enc": _take(path, t, "b_enc", (d_sae,), schema),
        "threshold": _take(path, t, "threshold", (d_sae,), schema),
        "W_dec": _take(path, t, "W_dec", (d_sae, d_model), schema)[:, None, :],
        "b_dec": _take(path, t, "b_dec", (d_model,), schema),
        "W_skip": None,
    }


def _gemma_scope_2(paths, layer, d_model, d_sae, n_layers, schema):
    (path,) = paths
    t = _read_safetensors(path)
    skip = (
        _take(path, t, "affine_skip_connection", (d_model, d_model), schema)
        if "affine_skip_connection" in t
        else None
    )
    return {
        "W_enc": _take(path, t, "w_enc", (d_model, d_sae), schema),
        "b_enc": _take(path, t, "b_enc", (d_sae,), schema),
        "threshold": _take(path, t, "threshold", (d_sae,), schema),
        "W_dec": _take(path, t, "w_dec", (d_sae, d_model), schema)[:, None, :],
        "b_dec": _take(path, t, "b_dec", (d_model,), schema),
        # Gemma Scope 2 computes x @ A; canonical W_skip is applied as W_skip @ x, so W_skip = A.T
        "W_skip": None if skip is None else skip.T,
    }


def _saelens_native(paths, layer, d_model, d_sae, n_layers, schema):
    path = next(p for p in paths if p.suffix == ".safetensors")
    t = _read_safetensors(path)
    config = json.loads((path.parent / "cfg.json").read_text(encoding="utf-8"))
    threshold = (
        _take(path, t, "threshold", (d_sae,), schema) if config.get("architecture") == "jumprelu" else None
    )
    return {
        "W_enc": _take(path, t, "W_enc", (d_model, d_sae), schema),
        "b_enc": _take(path, t, "b_enc", (d_sae,), schema),
        "threshold": threshold,
        "W_dec": _take(path, t, "W_dec", (d_sae, d_model), schema)[:, None, :],
        "b_dec": _take(path, t, "b_dec", (d_model,), schema),
        "W_skip": None,
    }


def _plt_bundle(paths, layer, d_model, d_sae, n_layers, schema):
    (path,) = paths
    t = _read_safetensors(path)
    return {
        "W_enc": _take(path, t, "W_enc", (d_sae, d_model), schema).T,
        "b_enc": _take(path, t, "b_enc", (d_sae,), schema),
        "threshold": None,
        "W_dec": _take(path, t, "W_dec", (d_sae, d_model), schema)[:, None, :],
        "b_dec": _take(path, t, "b_dec", (d_model,), schema),
        "W_skip": _take(path, t, "W_skip", (d_model, d_model), schema) if "W_skip" in t else None,
    }


def _clt_split(paths, layer, d_model, d_sae, n_layers, schema):
    enc_path, dec_path = paths
    enc, dec = _read_safetensors(enc_path), _read_safetensors(dec_path)
    jump = schema == "CltSplitJumpReLU"
    return {
        "W_enc": _take(enc_path, enc, f"W_enc_{layer}", (d_sae, d_model), schema).T,
        "b_enc": _take(enc_path, enc, f"b_enc_{layer}", (d_sae,), schema),
        "threshold": _take(enc_path, enc, f"threshold_{layer}", (d_sae,), schema) if jump else None,
        "W_dec": _take(dec_path, dec, f"W_dec_{layer}", (d_sae, n_layers - layer, d_model), schema),
        "b_dec": _take(enc_path, enc, f"b_dec_{layer}", (d_model,), schema),
        "W_skip": None,
    }


_LOADERS = {
    "GemmaScopeNpz": _gemma_scope_npz,
    "GemmaScope2": _gemma_scope_2,
    "SaeLensNative": _saelens_native,
    "PltBundle": _plt_bundle,
    "CltSplit": _clt_split,
    "CltSplitJumpReLU": _clt_split,
}
