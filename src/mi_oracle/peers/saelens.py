"""Load a GemmaScope NPZ SAE into SAELens (``SAE.load_from_disk`` with a converter), for cross-checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

GEMMA_SCOPE_TENSORS = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")


def saelens_config(
    architecture: str, shape: tuple[int, int], hook_name: str, model_name: str, device: str, **overrides: Any
) -> dict[str, Any]:
    """The SAELens config of an fp32 SAE of ``shape`` (d_in, d_sae) read at ``hook_name``."""
    return {
        "architecture": architecture,
        "d_in": int(shape[0]),
        "d_sae": int(shape[1]),
        "dtype": "float32",
        "device": device,
        "model_name": model_name,
        "hook_name": hook_name,
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        **overrides,
    }


def gemma_scope_npz_converter(
    hook_name: str, model_name: str
) -> Callable[..., tuple[dict[str, Any], dict[str, torch.Tensor]]]:
    """A SAELens disk converter for a GemmaScope ``params.npz`` read at ``hook_name`` (TransformerLens)."""

    def convert(path: str | Path, device: str = "cpu", cfg_overrides: dict[str, Any] | None = None):
        with np.load(Path(path), allow_pickle=False) as params:
            state = {name: torch.from_numpy(params[name].astype(np.float32)) for name in GEMMA_SCOPE_TENSORS}
        shape = tuple(state["W_enc"].shape)
        cfg = saelens_config("jumprelu", shape, hook_name, model_name, device, **(cfg_overrides or {}))
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
    architecture = "jumprelu" if activation == "jumprelu" else "standard"
    apply_b_dec = bool(weights.get("apply_b_dec_to_input", False))

    def convert(path: str | Path, device: str = "cpu", cfg_overrides: dict[str, Any] | None = None):
        shape = tuple(tensors["W_enc"].shape)
        overrides = {"apply_b_dec_to_input": apply_b_dec, **(cfg_overrides or {})}
        cfg = saelens_config(architecture, shape, hook_name, model_name, device, **overrides)
        return cfg, {name: tensor.to(device) for name, tensor in tensors.items()}

    return SAE.load_from_disk(".", device="cpu", converter=convert)
