"""A sixth dictionary format in one module, as a user would add one: EleutherAI sparsify's TopK SAEs.

On disk, per layer: ``layers.<l>/sae.safetensors`` (``encoder.weight [d_sae, d_in]``,
``encoder.bias [d_sae]``, ``W_dec [d_sae, d_in]``, ``b_dec [d_in]``) and ``layers.<l>/cfg.json``
(``k``, ``num_latents``, ``d_in``). Registering it is one line: ``formats.register(Sparsify())``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

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

SCHEMA = "Sparsify"
WEIGHTS, CONFIG = "sae.safetensors", "cfg.json"


class Sparsify(FormatFacts):
    schemas = (SCHEMA,)
    stored_dtypes = frozenset({"float32", "bfloat16"})
    config_files = frozenset({CONFIG})
    reference_kind = "plt"
    reference_repo_keys = ("plt_repo",)

    def detect(self, files: list[Path], layer: int, n_layers: int) -> Detected | None:
        if len(files) != 1 or files[0].name != WEIGHTS:
            return None
        (path,) = files
        tensors = safetensors_tensors(path)
        if "encoder.weight" not in tensors:
            return None
        d_sae, d_in = shape_of(str(path), tensors, "encoder.weight", 2)
        expect(str(path), tensors, {"encoder.bias": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)})
        config = json.loads((path.parent / CONFIG).read_text(encoding="utf-8"))
        details = {"activation": "topk", "k": int(config["k"])}
        return Detected(SCHEMA, d_in, d_sae, {path.name: tensors, CONFIG: {}}, details)

    def companions(self, name: str, layer: int) -> list[str]:
        return [CONFIG] if name == WEIGHTS else []

    def load(self, paths: list[Path], layer: int, sizes: Sizes) -> dict[str, torch.Tensor | None]:
        path = next(p for p in paths if p.name == WEIGHTS)
        t = read_safetensors(path)

        def get(name: str, shape: tuple[int, ...]) -> torch.Tensor:
            return take(path, t, name, shape, sizes.schema, self.stored_dtypes)

        d_model, d_sae = sizes.d_model, sizes.d_sae
        return {
            "W_enc": get("encoder.weight", (d_sae, d_model)).T,
            "b_enc": get("encoder.bias", (d_sae,)),
            "threshold": None,
            "W_dec": get("W_dec", (d_sae, d_model))[:, None, :],
            "b_dec": get("b_dec", (d_model,)),
            "W_skip": None,
        }

    def write(
        self, folder: Path, layer: int, weights: Mapping[str, torch.Tensor], options: WriteOptions
    ) -> str:
        target = Path(folder) / f"layers.{layer}"
        tensors = {
            "encoder.weight": weights["W_enc"].T,
            "encoder.bias": weights["b_enc"],
            "W_dec": weights["W_dec"][:, 0],
            "b_dec": weights["b_dec"],
        }
        write_safetensors(
            target / WEIGHTS, {k: stored(v, options.dtype) for k, v in tensors.items()}, options.metadata
        )
        d_in, d_sae = weights["W_enc"].shape
        config = {"k": int(options.hints["k"]), "num_latents": d_sae, "d_in": d_in}
        (target / CONFIG).write_text(json.dumps(config), encoding="utf-8")
        return f"layers.{layer}/{WEIGHTS}"
