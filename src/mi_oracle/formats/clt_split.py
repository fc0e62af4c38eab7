"""``CltSplit`` / ``CltSplitJumpReLU``: per layer ``W_enc_<l>.safetensors`` (W_enc_l [d_sae, d_model],
b_enc_l, b_dec_l, optional threshold_l) and ``W_dec_<l>.safetensors`` (W_dec_l [d_sae, n_layers - l,
d_model]: slice j writes into layer l + j)."""

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


def _recipe(activation: str) -> SyntheticRecipe:
    kind = "cross_layer_transcoder"
    return SyntheticRecipe(kind, {kind: ("resid_mid", "mlp_out")}, activation, "bfloat16", cross_layer=True)


class CltSplit(FormatFacts):
    schemas = ("CltSplit", "CltSplitJumpReLU")
    stored_dtypes = frozenset({"float32", "bfloat16"})
    beside_yaml = re.compile(r"^W_enc_(\d+)\.safetensors$")
    beside_yaml_kind = "cross_layer_transcoder"
    beside_yaml_example = "W_enc_<l>.safetensors"
    reference_kind = "clt"
    reference_repo_keys = ("clt_repo",)
    synthetic = {"CltSplit": _recipe("relu"), "CltSplitJumpReLU": _recipe("jumprelu")}  # noqa: RUF012

    def detect(self, files: list[Path], layer: int, n_layers: int) -> Detected | None:
        if [path.name for path in files] != [f"W_enc_{layer}.safetensors", f"W_dec_{layer}.safetensors"]:
            return None
        enc_path, dec_path = files
        enc, dec = safetensors_tensors(enc_path), safetensors_tensors(dec_path)
        d_sae, d_model = shape_of(str(enc_path), enc, f"W_enc_{layer}", 2)
        shapes = {
            f"W_enc_{layer}": (d_sae, d_model),
            f"b_enc_{layer}": (d_sae,),
            f"b_dec_{layer}": (d_model,),
        }
        jump = f"threshold_{layer}" in enc
        if jump:
            shapes[f"threshold_{layer}"] = (d_sae,)
        expect(str(enc_path), enc, shapes)
        expect(str(dec_path), dec, {f"W_dec_{layer}": (d_sae, n_layers - layer, d_model)})
        schema = "CltSplitJumpReLU" if jump else "CltSplit"
        details = {"activation": "jumprelu" if jump else "relu", "writes_to_layers": [layer, n_layers - 1]}
        return Detected(schema, d_model, d_sae, {enc_path.name: enc, dec_path.name: dec}, details)

    def companions(self, name: str, layer: int) -> list[str]:
        return [f"W_dec_{layer}.safetensors"] if name == f"W_enc_{layer}.safetensors" else []

    def load(self, paths: list[Path], layer: int, sizes: Sizes) -> dict[str, torch.Tensor | None]:
        enc_path, dec_path = paths
        enc, dec = read_safetensors(enc_path), read_safetensors(dec_path)
        d_model, d_sae, schema = sizes.d_model, sizes.d_sae, sizes.schema

        def get(path: Path, tensors, name: str, shape: tuple[int, ...]) -> torch.Tensor:
            return take(path, tensors, name, shape, schema, self.stored_dtypes)

        jump = schema == "CltSplitJumpReLU"
        return {
            "W_enc": get(enc_path, enc, f"W_enc_{layer}", (d_sae, d_model)).T,
            "b_enc": get(enc_path, enc, f"b_enc_{layer}", (d_sae,)),
            "threshold": get(enc_path, enc, f"threshold_{layer}", (d_sae,)) if jump else None,
            "W_dec": get(dec_path, dec, f"W_dec_{layer}", (d_sae, sizes.n_layers - layer, d_model)),
            "b_dec": get(enc_path, enc, f"b_dec_{layer}", (d_model,)),
            "W_skip": None,
        }

    def write(
        self, folder: Path, layer: int, weights: Mapping[str, torch.Tensor], options: WriteOptions
    ) -> str:
        encoder = {
            f"W_enc_{layer}": stored(weights["W_enc"].T, options.dtype),
            f"b_enc_{layer}": stored(weights["b_enc"], options.dtype),
            f"b_dec_{layer}": stored(weights["b_dec"], options.dtype),
        }
        if "threshold" in weights:
            encoder[f"threshold_{layer}"] = stored(weights["threshold"], options.dtype)
        relative = f"W_enc_{layer}.safetensors"
        write_safetensors(Path(folder) / relative, encoder, options.metadata)
        decoder = {f"W_dec_{layer}": stored(weights["W_dec"], options.dtype)}
        write_safetensors(Path(folder) / f"W_dec_{layer}.safetensors", decoder, options.metadata)
        return relative
