"""Recognise a dictionary's on-disk schema from file names and tensor headers, never loading tensors.

Schemas (DESIGN.md section 5), each with its tensors in on-disk orientation:

- ``GemmaScopeNpz``: ``params.npz`` with W_enc [d_model, d_sae], W_dec [d_sae, d_model], b_enc,
  b_dec, threshold (SAEs and transcoders).
- ``PltBundle``: ``layer_{l}.safetensors`` with W_enc [d_sae, d_model], W_dec [d_sae, d_model],
  b_enc, b_dec, optional W_skip [d_model, d_model].
- ``CltSplit`` / ``CltSplitJumpReLU``: ``W_enc_{l}.safetensors`` (W_enc_l [d_sae, d_model], b_enc_l,
  b_dec_l, optional threshold_l) and ``W_dec_{l}.safetensors`` (W_dec_l [d_sae, n_layers - l, d_model]).
- ``GemmaScope2``: ``params.safetensors`` with w_enc [d_model, d_sae], w_dec, b_enc, b_dec,
  threshold, optional affine_skip_connection [d_model, d_model].
- ``SaeLensNative``: ``sae_weights.safetensors`` + ``cfg.json`` with W_enc [d_in, d_sae], W_dec,
  b_enc, b_dec, optional threshold.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mi_oracle.errors import DictionaryError, ModelFolderError
from mi_oracle.models.folder import read_safetensors_header

SCHEMAS = ("GemmaScopeNpz", "PltBundle", "CltSplit", "CltSplitJumpReLU", "GemmaScope2", "SaeLensNative")
SAELENS_WEIGHTS = "sae_weights.safetensors"
SAELENS_CONFIG = "cfg.json"
_NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
_SAFETENSORS_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}


@dataclass(frozen=True)
class Tensor:
    """Shape and dtype of one stored tensor."""

    shape: tuple[int, ...]
    dtype: str


@dataclass
class Detected:
    """A layer's schema, its sizes and every tensor of every file, as read from headers."""

    schema: str
    d_model: int
    d_sae: int
    tensors: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    details: dict[str, object] = field(default_factory=dict)


def npz_tensors(path: Path) -> dict[str, Tensor]:
    """Shapes and dtypes of an NPZ's arrays from their .npy headers; pickled arrays are refused."""
    tensors = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    raise DictionaryError(f"{path}: member {member!r} is not a .npy array")
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    read_header = _NPY_HEADER_READERS.get(version)
                    if read_header is None:
                        raise DictionaryError(f"{path}: array {member!r} has .npy version {version}")
                    shape, _fortran, dtype = read_header(handle)
                if dtype.hasobject:
                    raise DictionaryError(
                        f"{path}: array {member[:-4]!r} holds Python objects (a pickle); refused, "
                        "as np.load(allow_pickle=False) would; expected numeric arrays"
                    )
                tensors[member[:-4]] = Tensor(tuple(int(n) for n in shape), dtype.name)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise DictionaryError(f"{path}: not a readable NPZ archive ({error})") from error
    return tensors


def safetensors_tensors(path: Path) -> dict[str, Tensor]:
    """Shapes and dtypes of a safetensors file's tensors, from its header."""
    try:
        header = read_safetensors_header(path)
    except ModelFolderError as error:
        raise DictionaryError(str(error)) from error
    return {
        name: Tensor(tuple(entry["shape"]), _SAFETENSORS_DTYPES.get(entry["dtype"], entry["dtype"]))
        for name, entry in header.items()
        if name != "__metadata__"
    }


def _expect(where: str, tensors: Mapping[str, Tensor], shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Every named tensor present with the expected shape, or an error naming file, tensor and shape."""
    for name, shape in shapes.items():
        if name not in tensors:
            raise DictionaryError(
                f"{where}: tensor {name!r} is missing (expected shape {list(shape)}; found "
                f"{', '.join(sorted(tensors)) or 'no tensors'})"
            )
        if tensors[name].shape != shape:
            raise DictionaryError(
                f"{where}: tensor {name!r} has shape {list(tensors[name].shape)}, expected {list(shape)}"
            )


def _shape_of(where: str, tensors: Mapping[str, Tensor], name: str, rank: int) -> tuple[int, ...]:
    if name not in tensors:
        raise DictionaryError(f"{where}: tensor {name!r} is missing (found {', '.join(sorted(tensors))})")
    shape = tensors[name].shape
    if len(shape) != rank:
        raise DictionaryError(f"{where}: tensor {name!r} has shape {list(shape)}, expected {rank} dimensions")
    return shape


def _gemma_scope_npz(path: Path) -> Detected:
    tensors = npz_tensors(path)
    d_model, d_sae = _shape_of(str(path), tensors, "W_enc", 2)
    shapes = {
        "W_enc": (d_model, d_sae),
        "W_dec": (d_sae, d_model),
        "b_enc": (d_sae,),
        "b_dec": (d_model,),
        "threshold": (d_sae,),
    }
    _expect(str(path), tensors, shapes)
    return Detected("GemmaScopeNpz", d_model, d_sae, {path.name: tensors}, {"activation": "jumprelu"})


def _plt_bundle(path: Path, tensors: dict[str, Tensor]) -> Detected:
    d_sae, d_model = _shape_of(str(path), tensors, "W_enc", 2)
    shapes = {"W_enc": (d_sae, d_model), "W_dec": (d_sae, d_model), "b_enc": (d_sae,), "b_dec": (d_model,)}
    if "W_skip" in tensors:
        shapes["W_skip"] = (d_model, d_model)
    _expect(str(path), tensors, shapes)
    details = {"activation": "relu", "skip": "W_skip" in tensors}
    return Detected("PltBundle", d_model, d_sae, {path.name: tensors}, details)


def _gemma_scope_2(path: Path, tensors: dict[str, Tensor]) -> Detected:
    d_model, d_sae = _shape_of(str(path), tensors, "w_enc", 2)
    shapes = {
        "w_enc": (d_model, d_sae),
        "w_dec": (d_sae, d_model),
        "b_enc": (d_sae,),
        "b_dec": (d_model,),
        "threshold": (d_sae,),
    }
    if "affine_skip_connection" in tensors:
        shapes["affine_skip_connection"] = (d_model, d_model)
    _expect(str(path), tensors, shapes)
    details = {"activation": "jumprelu", "skip": "affine_skip_connection" in tensors}
    return Detected("GemmaScope2", d_model, d_sae, {path.name: tensors}, details)


def _saelens_native(path: Path, tensors: dict[str, Tensor]) -> Detected:
    config_path = path.parent / SAELENS_CONFIG
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DictionaryError(f"{config_path}: cannot read SAELens cfg.json ({error})") from error
    d_in, d_sae = _shape_of(str(path), tensors, "W_enc", 2)
    shapes = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,)}
    architecture = config.get("architecture", "standard")
    if architecture == "jumprelu":
        shapes["threshold"] = (d_sae,)
    _expect(str(path), tensors, shapes)
    for key, value in (("d_in", d_in), ("d_sae", d_sae)):
        if key in config and config[key] != value:
            raise DictionaryError(f"{config_path}: {key} is {config[key]} but the weights say {value}")
    details = {
        "activation": {"jumprelu": "jumprelu", "topk": "topk"}.get(architecture, "relu"),
        "architecture": architecture,
        "hook_name": config.get("hook_name"),
        "apply_b_dec_to_input": bool(config.get("apply_b_dec_to_input", False)),
    }
    return Detected("SaeLensNative", d_in, d_sae, {path.name: tensors, SAELENS_CONFIG: {}}, details)


def _clt_split(enc_path: Path, dec_path: Path, layer: int, n_layers: int) -> Detected:
    enc, dec = safetensors_tensors(enc_path), safetensors_tensors(dec_path)
    d_sae, d_model = _shape_of(str(enc_path), enc, f"W_enc_{layer}", 2)
    shapes = {f"W_enc_{layer}": (d_sae, d_model), f"b_enc_{layer}": (d_sae,), f"b_dec_{layer}": (d_model,)}
    jump = f"threshold_{layer}" in enc
    if jump:
        shapes[f"threshold_{layer}"] = (d_sae,)
    _expect(str(enc_path), enc, shapes)
    _expect(str(dec_path), dec, {f"W_dec_{layer}": (d_sae, n_layers - layer, d_model)})
    schema = "CltSplitJumpReLU" if jump else "CltSplit"
    details = {"activation": "jumprelu" if jump else "relu", "writes_to_layers": [layer, n_layers - 1]}
    return Detected(schema, d_model, d_sae, {enc_path.name: enc, dec_path.name: dec}, details)


def detect(files: list[Path], layer: int, n_layers: int) -> Detected:
    """The schema of one layer's files (one file, or a CLT's W_enc/W_dec pair)."""
    names = [path.name for path in files]
    if names == [f"W_enc_{layer}.safetensors", f"W_dec_{layer}.safetensors"]:
        return _clt_split(files[0], files[1], layer, n_layers)
    if len(files) != 1:
        raise DictionaryError(f"layer {layer}: cannot detect the schema of files {names}")
    path = files[0]
    if path.suffix == ".npz":
        return _gemma_scope_npz(path)
    if path.suffix != ".safetensors":
        raise DictionaryError(
            f"{path}: cannot detect the dictionary schema from a {path.suffix or 'suffix-less'} file "
            f"(expected .npz or .safetensors; known schemas: {', '.join(SCHEMAS)})"
        )
    tensors = safetensors_tensors(path)
    if path.name == SAELENS_WEIGHTS and (path.parent / SAELENS_CONFIG).exists():
        return _saelens_native(path, tensors)
    if "w_enc" in tensors:
        return _gemma_scope_2(path, tensors)
    if "W_enc" in tensors:
        return _plt_bundle(path, tensors)
    raise DictionaryError(
        f"{path}: cannot detect the dictionary schema from tensors {sorted(tensors)} (expected W_enc "
        f"(PltBundle, SAELens with cfg.json), w_enc (Gemma Scope 2) or W_enc_{{l}} (CLT split))"
    )
