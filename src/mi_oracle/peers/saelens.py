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
