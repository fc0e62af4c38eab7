"""Load a GemmaScope NPZ SAE into SAELens (``SAE.load_from_disk`` with a converter), for cross-checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

GEMMA_SCOPE_TENSORS = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")


def gemma_scope_npz_converter(
    hook_name: str, model_name: str
) -> Callable[..., tuple[dict[str, Any], dict[str, torch.Tensor]]]:
    """A SAELens disk converter for a GemmaScope ``params.npz`` read at ``hook_name`` (TransformerLens)."""

    def convert(path: str | Path, device: str = "cpu", cfg_overrides: dict[str, Any] | None = None):
        with np.load(Path(path), allow_pickle=False) as params:
            state = {name: torch.from_numpy(params[name].astype(np.float32)) for name in GEMMA_SCOPE_TENSORS}
        d_in, d_sae = state["W_enc"].shape
        cfg = {
            "architecture": "jumprelu",
            "d_in": int(d_in),
            "d_sae": int(d_sae),
            "dtype": "float32",
            "device": device,
            "model_name": model_name,
            "hook_name": hook_name,
            "apply_b_dec_to_input": False,
            "normalize_activations": "none",
            **(cfg_overrides or {}),
        }
        return cfg, {name: tensor.to(device) for name, tensor in state.items()}

    return convert


def load_gemma_scope_npz(path: Path, hook_name: str, model_name: str, device: str = "cpu"):
    """The SAELens SAE for a GemmaScope ``params.npz``."""
    from sae_lens import SAE

    return SAE.load_from_disk(path, device=device, converter=gemma_scope_npz_converter(hook_name, model_name))


def load_canonical_encoder(weights: dict[str, np.ndarray], activation: str, hook_name: str, model_name: str):
    """A SAELens SAE holding one dictionary layer's encoder (canonical ``W_enc [d_in, d_sae]``).

    JumpReLU sets become SAELens ``jumprelu`` SAEs, ReLU sets ``standard`` ones; a transcoder's
    encoder is the same arithmetic, so its own-layer decoder slice stands in for the decoder.
    """
    from sae_lens import SAE

    state = {name: weights[name] for name in ("W_enc", "b_enc", "W_dec", "b_dec")}
    if activation == "jumprelu":
        state["threshold"] = weights["threshold"]
    tensors = {name: torch.from_numpy(np.asarray(value, dtype=np.float32)) for name, value in state.items()}

    def convert(path: str | Path, device: str = "cpu", cfg_overrides: dict[str, Any] | None = None):
        d_in, d_sae = tensors["W_enc"].shape
        cfg = {
            "architecture": "jumprelu" if activation == "jumprelu" else "standard",
            "d_in": int(d_in),
            "d_sae": int(d_sae),
            "dtype": "float32",
            "device": device,
            "model_name": model_name,
            "hook_name": hook_name,
            "apply_b_dec_to_input": bool(weights.get("apply_b_dec_to_input", False)),
            "normalize_activations": "none",
            **(cfg_overrides or {}),
        }
        return cfg, {name: tensor.to(device) for name, tensor in tensors.items()}

    return SAE.load_from_disk(".", device="cpu", converter=convert)
