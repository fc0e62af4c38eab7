"""``sae`` reference: one prompt through the model, its activation at the SAE's hook, encoded.

Fields follow candle-mi's ``sae_reference.json``: tokens (as the tokenizer spells them),
reconstruction MSE (mean over every token and dimension), active count and top-10 features at
the last position, the first ten values and the L2 norms of the last position's residual,
encoding and reconstruction.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mi_oracle.capture.run import collect_activations
from mi_oracle.devices import resolve_device
from mi_oracle.dictionaries.manifest import Manifest
from mi_oracle.encoding.compute import decode, encode
from mi_oracle.encoding.loaders import load_layer
from mi_oracle.errors import ReferenceDataError
from mi_oracle.hook_points import HOOK_POINTS
from mi_oracle.references.numbers import TOP_K, deterministic_torch, f32, f32_list, top_indices
from mi_oracle.references.origins import weight_path, weights_repo
from mi_oracle.references.provenance import (
    ENVIRONMENT_KEY,
    dictionary_record,
    environment_block,
    model_record,
)
from mi_oracle.references.tokenizer import load_tokenizer
from mi_oracle.references.transcoder_reference import reference_layers

ARCHITECTURES = {"jumprelu": "JumpReLU", "relu": "ReLU", "topk": "TopK"}


def tokenize_prompt(model_dir: Path, prompt: str) -> tuple[list[int], list[str]]:
    """Token ids (with the tokenizer's special tokens, e.g. BOS) and their spellings."""
    tokenizer = load_tokenizer(model_dir)
    ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    return ids, tokenizer.convert_ids_to_tokens(ids)


def _norm(vector: np.ndarray) -> float:
    return f32(np.linalg.norm(vector.astype(np.float64)))


def sae_reference(
    manifest: Manifest,
    layer: int,
    prompt: str,
    model_dir: Path,
    settings: Mapping[str, Any],
    base: Path,
) -> dict[str, Any]:
    """The ``sae`` reference of ``layer`` of an SAE set on ``prompt``."""
    if manifest.kind != "sae":
        raise ReferenceDataError(
            f"set {manifest.name}: an sae reference needs an SAE set; this one is a {manifest.kind}"
        )
    (layer,) = reference_layers(manifest, [layer])
    hook = manifest.input_hook
    ids, tokens = tokenize_prompt(model_dir, prompt)
    device = resolve_device(settings["device"]).type
    with deterministic_torch(threads=settings["threads"]):
        run = {"device": device, "dtype": settings["dtype"], "batch_tokens": len(ids), "max_padding": 0.0}
        captured = collect_activations(model_dir, [ids], [(hook, layer)], run, threads=0)
        x = torch.from_numpy(captured[(hook, layer)])
        dictionary = load_layer(manifest, layer, base, torch.float32)
        acts, _active = encode(dictionary, x)
        reconstruction = decode(dictionary, acts, x)
    mse = torch.mean((reconstruction.double() - x.double()) ** 2)
    last_x, last_acts, last_rec = (t[-1].numpy() for t in (x, acts, reconstruction))
    positive = last_acts > 0
    top = top_indices(last_acts, TOP_K, keep=positive)
    record = manifest.layer(layer)
    model = model_record(model_dir)
    return {
        "model_id": model["repo"] or model["name"],
        "prompt": prompt,
        "hook_layer": layer,
        "hook_name": HOOK_POINTS[hook].transformer_lens.format(layer=layer),
        "sae_repo": weights_repo(manifest),
        "sae_npz_path": weight_path(record.files[0]),
        "d_in": int(x.shape[1]),
        "d_sae": dictionary.d_sae,
        "architecture": ARCHITECTURES[dictionary.activation],
        "tokens": tokens,
        "n_tokens": len(ids),
        "reconstruction_mse": f32(mse),
        "n_active_last_pos": int(positive.sum()),
        "top_features_last_pos": [{"index": int(i), "value": f32(last_acts[i])} for i in top],
        "resid_last_first10": f32_list(last_x[:10]),
        "encoded_last_first10": f32_list(last_acts[:10]),
        "decoded_last_first10": f32_list(last_rec[:10]),
        "resid_last_norm": _norm(last_x),
        "encoded_last_norm": _norm(last_acts),
        "decoded_last_norm": _norm(last_rec),
        ENVIRONMENT_KEY: environment_block(
            device,
            settings["dtype"],
            token_ids=ids,
            hook=hook,
            model=model,
            dictionary=dictionary_record(manifest, [layer]),
        ),
    }
