"""``plt`` and ``clt`` references: seeded random residuals through a set's encoders.

The recipe is candle-mi's: per layer and ``seed_idx``, ``seed = seed_idx * 100 + layer``,
``torch.manual_seed(seed); residual = torch.randn(d_model)`` in fp32 on the CPU with
deterministic algorithms; the encoder runs in fp32 on the CPU from the weights as stored
(bf16 files are upcast, as candle-mi's oracle does). ``n_active`` counts activations > 0;
``top_10`` holds the ``min(10, n_active)`` largest, largest first (ties: lower index).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mi_oracle.dictionaries.manifest import Manifest
from mi_oracle.encoding.compute import encode
from mi_oracle.encoding.loaders import load_layer
from mi_oracle.errors import ReferenceDataError
from mi_oracle.formats import FORMATS, format_of
from mi_oracle.references.numbers import (
    case_seeds,
    deterministic_torch,
    encoder_case,
    seeded_residual,
)
from mi_oracle.references.origins import curation_repo, weights_repo
from mi_oracle.references.provenance import (
    ENVIRONMENT_KEY,
    dictionary_record,
    environment_block,
    platform_label,
)

METHODOLOGY = (
    "mi-oracle: fp32 CPU encoder from the stored weights (no circuit-tracer), seeded torch.randn residuals"
)
# what each repo key candle-mi's readers expect names (formats say which keys their reference has)
REPO_VALUES = {
    "weights_repo": weights_repo,
    "plt_repo": weights_repo,
    "clt_repo": weights_repo,
    "curation_repo": curation_repo,
}


def kind_schemas(kind: str) -> list[str]:
    """The schemas whose sets make a ``kind`` reference (``plt``, ``clt``)."""
    return [schema for schema, fmt in FORMATS.items() if fmt.reference_kind == kind]


def encoder_formula(schema: str, activation: str, k: int | None) -> str:
    """The encoder in candle-mi's notation (GemmaScope stores ``W_enc`` as [d_model, d_sae])."""
    stored_transposed = format_of(schema).encoder_stored_transposed
    product = "W_enc.T @ residual" if stored_transposed else "W_enc @ residual"
    if activation == "jumprelu":
        return f"pre = {product} + b_enc; acts = pre * (pre > threshold)"
    if activation == "topk":
        return f"pre = {product} + b_enc; acts = ReLU(pre) on the top {k} pre-activations"
    return f"ReLU({product} + b_enc)"


def repo_fields(schema: str, manifest: Manifest) -> dict[str, str]:
    """The repo keys candle-mi's readers expect for the schema, in their order."""
    return {key: REPO_VALUES[key](manifest) for key in format_of(schema).reference_repo_keys}


def reference_layers(manifest: Manifest, layers: Sequence[int]) -> list[int]:
    """``layers`` checked against what the set resolved; a clear error names any that is missing."""
    resolved = manifest.resolved_layers
    missing = sorted(set(layers) - set(resolved))
    if missing:
        raise ReferenceDataError(
            f"set {manifest.name}: reference layers {missing} were not resolved (resolved: {resolved})"
        )
    return sorted(set(layers))


def transcoder_reference(
    kind: str,
    manifest: Manifest,
    layers: Sequence[int],
    seeds_per_layer: int,
    base: Path,
) -> dict[str, Any]:
    """The ``plt`` or ``clt`` reference document of ``layers`` of a resolved set."""
    schemas = manifest.schemas
    schema = schemas[0] if len(schemas) == 1 else None
    if schema not in kind_schemas(kind):
        raise ReferenceDataError(
            f"set {manifest.name}: a {kind} reference needs a set of schema "
            f"{' or '.join(kind_schemas(kind))}; this set is {schema or 'of mixed schemas'}"
        )
    layers = reference_layers(manifest, layers)
    activation, k = manifest.activation_kind, manifest.k
    cases = []
    d_model = d_sae = None
    with deterministic_torch(threads=1):
        for layer in layers:
            dictionary = load_layer(manifest, layer, base, torch.float32)
            d_model, d_sae = dictionary.W_enc.shape
            for seed in case_seeds(layer, seeds_per_layer):
                residual = seeded_residual(seed, d_model)
                acts, _active = encode(dictionary, residual[None, :])
                cases.append(encoder_case(layer, seed, residual, acts[0].numpy()))
    return {
        **repo_fields(schema, manifest),
        "methodology": METHODOLOGY,
        "schema": schema,
        "encoder_formula": encoder_formula(schema, activation, k),
        "torch_version": str(torch.__version__),
        "platform": platform_label(),
        "d_model": d_model,
        "n_features_per_layer": d_sae,
        "test_cases": cases,
        ENVIRONMENT_KEY: environment_block(
            "cpu",
            "float32",
            seeds_per_layer=seeds_per_layer,
            model={key: manifest.model.get(key) for key in ("name", "repo", "resolved_revision")},
            dictionary=dictionary_record(manifest, layers),
        ),
    }
