"""``SaeLensNative``: ``sae_weights.safetensors`` + ``cfg.json`` (SAELens's own layout) with W_enc
[d_in, d_sae], W_dec [d_sae, d_in], b_enc, b_dec, and a threshold for the jumprelu architecture."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where tensors are made: the Snakefile imports this module
    import torch


from mi_oracle.atomic import write_json_atomic
from mi_oracle.errors import DictionaryError
from mi_oracle.formats.base import (
    Detected,
    FormatFacts,
    Sizes,
    WriteOptions,
    expect,
    read_safetensors,
    safetensors_tensors,
    shape_of,
    stored,
    take,
)
from mi_oracle.formats.writers import write_safetensors

SCHEMA = "SaeLensNative"
WEIGHTS = "sae_weights.safetensors"
CONFIG = "cfg.json"


def _config(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DictionaryError(f"{path}: cannot read SAELens cfg.json ({error})") from error


class SaeLensNative(FormatFacts):
    schemas = (SCHEMA,)
    stored_dtypes = frozenset({"float32", "bfloat16", "float16"})
    config_files = frozenset({CONFIG})
    reference_kind = "plt"
    reference_repo_keys = ("plt_repo",)
    encoder_stored_transposed = True

    def detect(self, files: list[Path], layer: int, n_layers: int) -> Detected | None:
        if len(files) != 1 or files[0].name != WEIGHTS or not (files[0].parent / CONFIG).exists():
            return None
        (path,) = files
        tensors = safetensors_tensors(path)
        config_path = path.parent / CONFIG
        config = _config(config_path)
        d_in, d_sae = shape_of(str(path), tensors, "W_enc", 2)
        shapes = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,)}
        architecture = config.get("architecture", "standard")
        if architecture == "jumprelu":
            shapes["threshold"] = (d_sae,)
        expect(str(path), tensors, shapes)
        for key, value in (("d_in", d_in), ("d_sae", d_sae)):
            if key in config and config[key] != value:
                raise DictionaryError(f"{config_path}: {key} is {config[key]} but the weights say {value}")
        details = {
            "activation": {"jumprelu": "jumprelu", "topk": "topk"}.get(architecture, "relu"),
            "architecture": architecture,
            "hook_name": config.get("hook_name"),
            "apply_b_dec_to_input": bool(config.get("apply_b_dec_to_input", False)),
        }
        return Detected(SCHEMA, d_in, d_sae, {path.name: tensors, CONFIG: {}}, details)

    def companions(self, name: str, layer: int) -> list[str]:
        return [CONFIG] if name == WEIGHTS else []

    def load(self, paths: list[Path], layer: int, sizes: Sizes) -> dict[str, torch.Tensor | None]:
        path = next(p for p in paths if p.suffix == ".safetensors")
        t = read_safetensors(path)
        config = _config(path.parent / CONFIG)
        d_model, d_sae = sizes.d_model, sizes.d_sae

        def get(name: str, shape: tuple[int, ...]) -> torch.Tensor:
            return take(path, t, name, shape, sizes.schema, self.stored_dtypes)

        jump = config.get("architecture") == "jumprelu"
        return {
            "W_enc": get("W_enc", (d_model, d_sae)),
            "b_enc": get("b_enc", (d_sae,)),
            "threshold": get("threshold", (d_sae,)) if jump else None,
            "W_dec": get("W_dec", (d_sae, d_model))[:, None, :],
            "b_dec": get("b_dec", (d_model,)),
            "W_skip": None,
        }

    def write(
        self, folder: Path, layer: int, weights: Mapping[str, torch.Tensor], options: WriteOptions
    ) -> str:
        """``layer_<l>/sae_weights.safetensors`` and its cfg.json (``hints``: hook_name)."""
        target = Path(folder) / f"layer_{layer}"
        tensors = {"W_enc": weights["W_enc"], "W_dec": weights["W_dec"][:, 0], "b_enc": weights["b_enc"]}
        tensors["b_dec"] = weights["b_dec"]
        if weights.get("threshold") is not None:
            tensors["threshold"] = weights["threshold"]
        write_safetensors(
            target / WEIGHTS, {k: stored(v, options.dtype) for k, v in tensors.items()}, options.metadata
        )
        d_in, d_sae = weights["W_enc"].shape
        config = {
            "architecture": "jumprelu" if "threshold" in tensors else "standard",
            "d_in": d_in,
            "d_sae": d_sae,
            "hook_name": options.hints.get("hook_name"),
            "apply_b_dec_to_input": False,
        }
        write_json_atomic(target / CONFIG, config)
        return f"layer_{layer}/{WEIGHTS}"
