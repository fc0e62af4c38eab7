"""``GemmaScopeNpz``: ``params.npz`` with W_enc [d_model, d_sae], W_dec [d_sae, d_model], b_enc,
b_dec, threshold (JumpReLU SAEs and transcoders; float32)."""

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
    SyntheticRecipe,
    WriteOptions,
    expect,
    npz_tensors,
    read_npz,
    shape_of,
    take,
)
from mi_oracle.formats.writers import write_npz

SCHEMA = "GemmaScopeNpz"


class GemmaScopeNpz(FormatFacts):
    schemas = (SCHEMA,)
    stored_dtypes = frozenset({"float32"})
    reference_kind = "plt"
    reference_repo_keys = ("weights_repo", "curation_repo")
    encoder_stored_transposed = True
    synthetic = {  # noqa: RUF012
        SCHEMA: SyntheticRecipe(
            default_kind="transcoder_set",
            hooks={"transcoder_set": ("ln2_normalized", "mlp_out"), "sae": ("resid_post", "resid_post")},
            activation="jumprelu",
            dtype="float32",
            listed=True,
        )
    }

    def detect(self, files: list[Path], layer: int, n_layers: int) -> Detected | None:
        if len(files) != 1 or files[0].suffix != ".npz":
            return None
        (path,) = files
        tensors = npz_tensors(path)
        d_model, d_sae = shape_of(str(path), tensors, "W_enc", 2)
        shapes = {
            "W_enc": (d_model, d_sae),
            "W_dec": (d_sae, d_model),
            "b_enc": (d_sae,),
            "b_dec": (d_model,),
            "threshold": (d_sae,),
        }
        expect(str(path), tensors, shapes)
        return Detected(SCHEMA, d_model, d_sae, {path.name: tensors}, {"activation": "jumprelu"})

    def companions(self, name: str, layer: int) -> list[str]:
        return []

    def load(self, paths: list[Path], layer: int, sizes: Sizes) -> dict[str, torch.Tensor | None]:
        (path,) = paths
        t = read_npz(path)
        d_model, d_sae = sizes.d_model, sizes.d_sae

        def get(name: str, shape: tuple[int, ...]) -> torch.Tensor:
            return take(path, t, name, shape, sizes.schema, self.stored_dtypes)

        return {
            "W_enc": get("W_enc", (d_model, d_sae)),
            "b_enc": get("b_enc", (d_sae,)),
            "threshold": get("threshold", (d_sae,)),
            "W_dec": get("W_dec", (d_sae, d_model))[:, None, :],
            "b_dec": get("b_dec", (d_model,)),
            "W_skip": None,
        }

    def write(
        self, folder: Path, layer: int, weights: Mapping[str, torch.Tensor], options: WriteOptions
    ) -> str:
        """GemmaScope's layout: ``layer_<l>/width_<w>/average_l0_<L0>/params.npz``."""
        d_sae = weights["W_enc"].shape[1]
        width = f"{d_sae // 1024}k" if d_sae % 1024 == 0 else str(d_sae)
        relative = f"layer_{layer}/width_{width}/average_l0_{round(options.hints['average_l0'])}/params.npz"
        arrays = {k: (v[:, 0] if k == "W_dec" else v).float().numpy() for k, v in weights.items()}
        write_npz(Path(folder) / relative, arrays)
        return relative
