"""``PltBundle``: ``layer_<l>.safetensors`` with W_enc [d_sae, d_model], W_dec [d_sae, d_model],
b_enc, b_dec, optional W_skip [d_model, d_model] (ReLU per-layer transcoders)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where tensors are made: the Snakefile imports this module
    import torch


from mi_oracle.formats.base import (
    Detected,
    FormatFacts,
    Sizes,
    SyntheticRecipe,
    WriteOptions,
    expect,
    read_safetensors,
    safetensors_tensors,
    shape_of,
    stored,
    take,
)
from mi_oracle.formats.writers import write_safetensors

SCHEMA = "PltBundle"


class PltBundle(FormatFacts):
    schemas = (SCHEMA,)
    stored_dtypes = frozenset({"float32", "bfloat16"})
    beside_yaml = re.compile(r"^layer_(\d+)\.safetensors$")
    beside_yaml_kind = "transcoder_set"
    beside_yaml_example = "layer_<l>.safetensors"
    reference_kind = "plt"
    reference_repo_keys = ("plt_repo",)
    synthetic = {  # noqa: RUF012
        SCHEMA: SyntheticRecipe(
            default_kind="transcoder_set",
            hooks={"transcoder_set": ("mlp_in", "mlp_out")},
            activation="relu",
            dtype="bfloat16",
            skip=True,
        )
    }

    def detect(self, files: list[Path], layer: int, n_layers: int) -> Detected | None:
        if len(files) != 1 or files[0].suffix != ".safetensors":
            return None
        (path,) = files
        tensors = safetensors_tensors(path)
        if "W_enc" not in tensors:
            return None
        d_sae, d_model = shape_of(str(path), tensors, "W_enc", 2)
        shapes = {
            "W_enc": (d_sae, d_model),
            "W_dec": (d_sae, d_model),
            "b_enc": (d_sae,),
            "b_dec": (d_model,),
        }
        if "W_skip" in tensors:
            shapes["W_skip"] = (d_model, d_model)
        expect(str(path), tensors, shapes)
        details = {"activation": "relu", "skip": "W_skip" in tensors}
        return Detected(SCHEMA, d_model, d_sae, {path.name: tensors}, details)

    def companions(self, name: str, layer: int) -> list[str]:
        return []

    def load(self, paths: list[Path], layer: int, sizes: Sizes) -> dict[str, torch.Tensor | None]:
        (path,) = paths
        t = read_safetensors(path)
        d_model, d_sae = sizes.d_model, sizes.d_sae

        def get(name: str, shape: tuple[int, ...]) -> torch.Tensor:
            return take(path, t, name, shape, sizes.schema, self.stored_dtypes)

        return {
            "W_enc": get("W_enc", (d_sae, d_model)).T,
            "b_enc": get("b_enc", (d_sae,)),
            "threshold": None,
            "W_dec": get("W_dec", (d_sae, d_model))[:, None, :],
            "b_dec": get("b_dec", (d_model,)),
            "W_skip": get("W_skip", (d_model, d_model)) if "W_skip" in t else None,
        }

    def write(
        self, folder: Path, layer: int, weights: Mapping[str, torch.Tensor], options: WriteOptions
    ) -> str:
        on_disk = {"W_enc": weights["W_enc"].T, "W_dec": weights["W_dec"][:, 0]}
        tensors = {k: stored(on_disk.get(k, v), options.dtype) for k, v in weights.items()}
        relative = f"layer_{layer}.safetensors"
        write_safetensors(Path(folder) / relative, tensors, options.metadata)
        return relative
