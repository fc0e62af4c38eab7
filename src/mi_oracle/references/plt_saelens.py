"""The PLT Gemma reference as candle-mi 0.1.24 makes it: SAELens is the oracle.

Each layer's transcoder is loaded with ``SAE.from_pretrained(release, sae_id)`` and encodes the
seeded residuals with SAELens's own ``encode()``: an implementation independent of the project's
encoder. SAELens derives a Gemma Scope transcoder's sizes from the repository and folder names
(2304 x 16384 for ``gemma-scope-2b`` / ``width_16k``); the converter used here runs SAELens's
registered loader unchanged and then takes the sizes from the weights it downloaded, which is the
same for the published weights and lets smaller stand-ins load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from mi_oracle.errors import ReferenceDataError
from mi_oracle.hashing import sha256_file
from mi_oracle.references.item import ReferenceItem
from mi_oracle.references.numbers import (
    case_seeds,
    deterministic_torch,
    encoder_case,
    seeded_residual,
)
from mi_oracle.references.provenance import ENVIRONMENT_KEY, environment_block, platform_label

SCHEMA = "GemmaScopeNpz"
METHODOLOGY = (
    "mi-oracle 0.1.24: SAELens SAE.from_pretrained(release, sae_id).encode(), fp32 CPU, "
    "seeded torch.randn residuals"
)
ENCODER_FORMULA = "pre = W_enc.T @ residual + b_enc; acts = pre * (pre > threshold)"


def release_entry(release: str, reference: str) -> Any:
    """SAELens's directory entry of ``release``; an unknown release names the reference."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release not in directory:
        raise ReferenceDataError(f"{reference}: oracle_release {release!r} is not a SAELens release")
    return directory[release]


def sae_id_of_layer(entry: Any, layer: int, configured: Mapping[Any, str], reference: str) -> str:
    """The configured SAE id of ``layer``, else the release's only id under ``layer_<n>/``."""
    if layer in configured or str(layer) in configured:
        return configured.get(layer, configured.get(str(layer)))
    ids = [sae_id for sae_id in entry.saes_map if sae_id.startswith(f"layer_{layer}/")]
    if len(ids) != 1:
        raise ReferenceDataError(
            f"{reference}: SAELens release {entry.release} has {len(ids)} SAEs for layer {layer} "
            f"({', '.join(ids[:4]) or 'none'}); name one under oracle_sae_ids"
        )
    return ids[0]


def sizes_from_weights(loader: Any) -> Any:
    """``loader`` (a SAELens pretrained loader) with d_in, d_out and d_sae read off the weights."""

    def load(
        repo_id: str, folder_name: str, device: str = "cpu", force_download: bool = False, cfg_overrides=None
    ):
        cfg, state, sparsity = loader(
            repo_id=repo_id,
            folder_name=folder_name,
            device=device,
            force_download=force_download,
            cfg_overrides=cfg_overrides,
        )
        d_in, d_sae = state["W_enc"].shape
        cfg = {**cfg, "d_in": int(d_in), "d_sae": int(d_sae)}
        if "d_out" in cfg:
            cfg["d_out"] = int(state["W_dec"].shape[1])
        return cfg, state, sparsity

    return load


def downloaded_file(repo_id: str, path: str) -> dict[str, str]:
    """The cached file SAELens read: its repository, commit (from the cache path) and sha256."""
    from huggingface_hub import hf_hub_download

    local = Path(hf_hub_download(repo_id=repo_id, filename=f"{path}/params.npz"))
    commit = next((parent.name for parent in local.parents if parent.parent.name == "snapshots"), "")
    return {
        "source": f"hf://{repo_id}/{path}/params.npz",
        "repo": repo_id,
        "resolved_revision": commit,
        "sha256": sha256_file(local),
    }


def saelens_plt_reference(
    item: ReferenceItem,
    layers: Sequence[int],
    seeds_per_layer: int,
) -> dict[str, Any]:
    """The 0.1.24 ``plt_gemma_reference`` of ``layers``: SAELens loads and encodes every case."""
    import sae_lens
    from sae_lens import SAE
    from sae_lens.loading.pretrained_sae_loaders import NAMED_PRETRAINED_SAE_LOADERS

    reference, release = item.name, item.oracle_release
    if not release:
        raise ReferenceDataError(
            f"{reference}: a 0.1.24 plt reference needs oracle_release (a SAELens release)"
        )
    entry = release_entry(release, reference)
    converter = sizes_from_weights(NAMED_PRETRAINED_SAE_LOADERS[entry.conversion_func])
    sae_ids = {layer: sae_id_of_layer(entry, layer, item.oracle_sae_ids, reference) for layer in layers}
    cases, files = [], []
    d_model = d_sae = None
    with deterministic_torch(threads=1):
        for layer in sorted(sae_ids):
            sae = SAE.from_pretrained(release, sae_ids[layer], device="cpu", converter=converter)
            files.append({"layer": layer, **downloaded_file(entry.repo_id, entry.saes_map[sae_ids[layer]])})
            d_model, d_sae = sae.cfg.d_in, sae.cfg.d_sae
            for seed in case_seeds(layer, seeds_per_layer):
                residual = seeded_residual(seed, d_model)
                with torch.inference_mode():
                    values = sae.encode(residual[None, :].to(torch.float32))[0].numpy()
                cases.append(encoder_case(layer, seed, residual, values))
    return {
        "weights_repo": entry.repo_id,
        "curation_repo": item.curation_repo or "",
        "methodology": METHODOLOGY,
        "schema": SCHEMA,
        "encoder_formula": ENCODER_FORMULA,
        "sae_lens_version": str(sae_lens.__version__),
        "oracle_release": release,
        "oracle_sae_ids": {str(layer): sae_ids[layer] for layer in sorted(sae_ids)},
        "torch_version": str(torch.__version__),
        "platform": platform_label(),
        "d_model": d_model,
        "n_features_per_layer": d_sae,
        "test_cases": cases,
        ENVIRONMENT_KEY: environment_block(
            "cpu",
            "float32",
            schema_version="0.1.24",
            seeds_per_layer=seeds_per_layer,
            dictionary={"set": release, "files": files},
        ),
    }
