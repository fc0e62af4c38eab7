"""Small dictionaries in each real on-disk format, written with numpy's and safetensors' own writers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file


def rng_arrays(seed: int, **shapes: tuple[int, ...]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}


def gemma_scope_npz(path: Path, d_model: int, d_sae: int, seed: int = 0, **drop_or_replace) -> Path:
    """A GemmaScope params.npz (np.savez), with W_enc [d_model, d_sae]."""
    arrays = rng_arrays(
        seed,
        W_enc=(d_model, d_sae),
        W_dec=(d_sae, d_model),
        b_enc=(d_sae,),
        b_dec=(d_model,),
        threshold=(d_sae,),
    )
    arrays["threshold"] = np.abs(arrays["threshold"])
    for name, value in drop_or_replace.items():
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def plt_bundle(path: Path, d_model: int, d_sae: int, seed: int = 0, skip: bool = True) -> Path:
    """A PltBundle layer_<l>.safetensors in bf16, W_enc [d_sae, d_model]."""
    shapes = {"W_enc": (d_sae, d_model), "W_dec": (d_sae, d_model), "b_enc": (d_sae,), "b_dec": (d_model,)}
    if skip:
        shapes["W_skip"] = (d_model, d_model)
    tensors = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in rng_arrays(seed, **shapes).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


def clt_split(folder: Path, layer: int, n_layers: int, d_model: int, d_sae: int, jump: bool) -> list[Path]:
    """A CLT's W_enc_<l>.safetensors and W_dec_<l>.safetensors in bf16."""
    shapes = {f"W_enc_{layer}": (d_sae, d_model), f"b_enc_{layer}": (d_sae,), f"b_dec_{layer}": (d_model,)}
    if jump:
        shapes[f"threshold_{layer}"] = (d_sae,)
    encoder = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in rng_arrays(layer, **shapes).items()}
    decoder = rng_arrays(layer + 100, **{f"W_dec_{layer}": (d_sae, n_layers - layer, d_model)})
    folder.mkdir(parents=True, exist_ok=True)
    save_file(encoder, str(folder / f"W_enc_{layer}.safetensors"))
    save_file(
        {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in decoder.items()},
        str(folder / f"W_dec_{layer}.safetensors"),
    )
    return [folder / f"W_enc_{layer}.safetensors", folder / f"W_dec_{layer}.safetensors"]


def gemma_scope_2(path: Path, d_model: int, d_sae: int, skip: bool = False) -> Path:
    """A Gemma Scope 2 params.safetensors: lowercase w_enc [d_model, d_sae]."""
    shapes = {
        "w_enc": (d_model, d_sae),
        "w_dec": (d_sae, d_model),
        "b_enc": (d_sae,),
        "b_dec": (d_model,),
        "threshold": (d_sae,),
    }
    if skip:
        shapes["affine_skip_connection"] = (d_model, d_model)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.from_numpy(v) for k, v in rng_arrays(3, **shapes).items()}, str(path))
    return path


def saelens_native(folder: Path, d_model: int, d_sae: int, hook_name: str) -> Path:
    """A SAELens folder: cfg.json + sae_weights.safetensors (W_enc [d_in, d_sae])."""
    shapes = {
        "W_enc": (d_model, d_sae),
        "W_dec": (d_sae, d_model),
        "b_enc": (d_sae,),
        "b_dec": (d_model,),
        "threshold": (d_sae,),
    }
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: torch.from_numpy(v) for k, v in rng_arrays(4, **shapes).items()},
        str(folder / "sae_weights.safetensors"),
    )
    cfg = {
        "architecture": "jumprelu",
        "d_in": d_model,
        "d_sae": d_sae,
        "hook_name": hook_name,
        "apply_b_dec_to_input": False,
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return folder / "sae_weights.safetensors"


def model_folder(folder: Path, repo: str | None, hidden_size: int, n_layers: int) -> Path:
    """What resolution reads of a fetched model: config.json and provenance.json."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "gemma2", "hidden_size": hidden_size, "num_hidden_layers": n_layers}
    (folder / "config.json").write_text(json.dumps(config))
    provenance = {"name": "m", "repo": repo, "resolved_revision": "0" * 40, "source": "hub", "files": []}
    (folder / "provenance.json").write_text(json.dumps(provenance))
    return folder
