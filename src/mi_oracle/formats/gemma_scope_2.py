"""``GemmaScope2``: ``params.safetensors`` with w_enc [d_model, d_sae], w_dec [d_sae, d_model], b_enc,
b_dec, threshold, optional affine_skip_connection [d_model, d_model] (applied as x @ A)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where tensors are made: the Snakefile imports this module
    import torch


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

SCHEMA = "GemmaScope2"


class GemmaScope2(FormatFacts):
    schemas = (SCHEMA,)
    stored_dtypes = frozenset({"float32"})
    reference_kind = "plt"
    reference_repo_keys = ("plt_repo",)
    encoder_stored_transposed = True

    def detect(self, files: list[Path], layer: int, n_layers: int) -> Detected | None:
        if len(files) != 1 or files[0].suffix != ".safetensors":
            return None
        (path,) = files
        tensors = safetensors_tensors(path)
        if "w_enc" not in tensors:
            return None
        d_model, d_sae = shape_of(str(path), tensors, "w_enc", 2)
        shapes = {
            "w_enc": (d_model, d_sae),
            "w_dec": (d_sae, d_model),
            "b_enc": (d_sae,),
            "b_dec": (d_model,),
            "threshold": (d_sae,),
        }
        if "affine_skip_connection" in tensors:
            shapes["affine_skip_connection"] = (d_model, d_model)
        expect(str(path), tensors, shapes)
        details = {"activation": "jumprelu", "skip": "affine_skip_connection" in tensors}
        return Detected(SCHEMA, d_model, d_sae, {path.name: tensors}, details)

    def companions(self, name: str, layer: int) -> list[str]:
        return []

    def load(self, paths: list[Path], layer: int, sizes: Sizes) -> dict[str, torch.Tensor | None]:
        (path,) = paths
        t = read_safetensors(path)
        d_model, d_sae = sizes.d_model, sizes.d_sae

        def get(name: str, shape: tuple[int, ...]) -> torch.Tensor:
            return take(path, t, name, shape, sizes.schema, self.stored_dtypes)

        skip = get("affine_skip_connection", (d_model, d_model)) if "affine_skip_connection" in t else None
        return {
            "W_enc": get("w_enc", (d_model, d_sae)),
            "b_enc": get("b_enc", (d_sae,)),
            "threshold": get("threshold", (d_sae,)),
            "W_dec": get("w_dec", (d_sae, d_model))[:, None, :],
            "b_dec": get("b_dec", (d_model,)),
            # Gemma Scope 2 computes x @ A; canonical W_skip is applied as W_skip @ x, so W_skip = A.T
            "W_skip": None if skip is None else skip.T,
        }

    def write(
        self, folder: Path, layer: int, weights: Mapping[str, torch.Tensor], options: WriteOptions
    ) -> str:
        tensors = {
            "w_enc": weights["W_enc"],
            "w_dec": weights["W_dec"][:, 0],
            "b_enc": weights["b_enc"],
            "b_dec": weights["b_dec"],
            "threshold": weights["threshold"],
        }
        if weights.get("W_skip") is not None:
            tensors["affine_skip_connection"] = weights["W_skip"].T
        relative = f"layer_{layer}/params.safetensors"
        write_safetensors(
            Path(folder) / relative,
            {k: stored(v, "float32") for k, v in tensors.items()},
            options.metadata,
        )
        return relative
