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

from dataclasses import dataclass
from pathlib import Path

import torch

from mi_oracle.dictionaries.manifest import Manifest
from mi_oracle.dictionaries.verify import verified_layer_files
from mi_oracle.errors import DictionaryError
from mi_oracle.formats import Sizes


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


def load_layer(
    manifest: Manifest, layer: int, base: Path, compute_dtype: torch.dtype = torch.float32
) -> Dictionary:
    """Layer ``layer`` of a resolved set (its manifest), validated and canonicalised."""
    record = manifest.layer(layer)
    paths = verified_layer_files(record, base, manifest.name)
    schema, d_model, d_sae = record.schema, record.d_model, record.d_sae
    n_layers = manifest.model["num_hidden_layers"]
    expected_d_model = manifest.model["hidden_size"]
    if d_model != expected_d_model:
        raise DictionaryError(
            f"{paths[0]}: d_model {d_model} but the model's hidden_size is {expected_d_model}"
        )
    activation = manifest.activation_kind
    loaded = record.format.load(paths, layer, Sizes(d_model, d_sae, n_layers, schema))
    if activation == "jumprelu" and loaded.get("threshold") is None:
        raise DictionaryError(f"{paths[0]}: JumpReLU needs a threshold tensor and this file has none")
    apply_b_dec = bool(record.details.get("apply_b_dec_to_input", False))
    tensors = {name: None if t is None else t.to(compute_dtype) for name, t in loaded.items()}
    # feature-major in memory (a view of [d_sae, d_in]): each pre-activation is then one contiguous
    # dot product, as in candle-mi's scripts (W_enc.T.contiguous() @ x), giving their bits and
    # their accuracy (a d_in-major product lies up to 10x further from float64 at 2304 x 16,384)
    tensors["W_enc"] = tensors["W_enc"].t().contiguous().t()
    return Dictionary(
        layer=layer,
        schema=schema,
        activation=activation if activation in ("relu", "topk", "jumprelu") else "jumprelu",
        k=manifest.k,
        apply_b_dec_to_input=apply_b_dec,
        **tensors,
    )
