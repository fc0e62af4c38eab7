"""Write one synthetic set: fit each layer, write it through its format, and label it.

Its curation YAML and provenance say ``synthetic: true`` and carry ``LABEL``; a CLT's writes into
later layers (``W_dec_l[:, 1:]``) are small seeded random directions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from mi_oracle.atomic import atomic_directory, write_json_atomic
from mi_oracle.dictionaries import synthetic_fit
from mi_oracle.dictionaries.synthetic_fit import fit_layer
from mi_oracle.dictionaries.synthetic_plan import LABEL, SyntheticSet
from mi_oracle.dictionaries.verify import record_folder_hashes
from mi_oracle.environment import describe_environment
from mi_oracle.formats import WriteOptions, format_of
from mi_oracle.hook_points import HOOK_POINTS
from mi_oracle.layout import CURATION_FILE, PROVENANCE_FILE

log = logging.getLogger(__name__)

CROSS_LAYER_NORM = 0.05


class _Writer:
    """Writes one set's layers through its format (``mi_oracle.formats``) and collects the YAML's entries."""

    def __init__(self, spec: SyntheticSet, folder: Path, n_layers: int, seed_rng: np.random.Generator):
        self.spec, self.folder, self.n_layers, self.rng = spec, folder, n_layers, seed_rng
        self.entries: list[Any] = []
        self.metadata = {"format": spec.schema, "synthetic": "true", "label": LABEL}

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self.spec.recipe.dtype)

    def write(self, layer: int, weights: dict[str, torch.Tensor], mean_l0: float) -> None:
        spec = self.spec
        canonical = {**weights, "W_dec": weights["W_dec"][:, None, :]}
        if spec.recipe.cross_layer:  # later layers' slices: small random directions
            shape = (spec.d_sae, self.n_layers - layer, weights["W_dec"].shape[1])
            decoder = torch.from_numpy(self.rng.standard_normal(shape))
            decoder *= CROSS_LAYER_NORM / torch.linalg.vector_norm(decoder, dim=2, keepdim=True)
            decoder[:, 0] = weights["W_dec"]
            canonical["W_dec"] = decoder
        options = WriteOptions(self.dtype, self.metadata, {"average_l0": mean_l0})
        relative = format_of(spec.schema).write(self.folder, layer, canonical, options)
        if spec.recipe.listed:  # listed in the YAML; the other layouts are found by name
            self.entries.append({"id": f"{spec.name}-{layer}", "layer": layer, "filepath": relative})

    def curation(self, model_repo: str | None) -> dict[str, Any]:
        spec = self.spec
        document: dict[str, Any] = {
            "model_name": model_repo,
            "model_kind": spec.kind,
            "feature_input_hook": HOOK_POINTS[spec.input_hook].in_block,
            "feature_output_hook": HOOK_POINTS[spec.output_hook].in_block,
        }
        if spec.activation == "relu":
            document["activation"] = "relu"
        if self.entries:
            document["transcoders"] = (
                self.entries if spec.kind == "sae" else [e["filepath"] for e in self.entries]
            )
        return document


def build_set(
    spec: SyntheticSet,
    activations: Mapping[tuple[str, int], np.ndarray],
    target: Path,
    n_layers: int,
    model: Mapping[str, Any],
    calibration: Mapping[str, Any],
    numerics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit, write and describe one synthetic set in ``target`` (atomically).

    ``numerics``: the record of the numerics the calibration and fit ran in (None: native, here).
    """
    quality = {}
    with atomic_directory(Path(target)) as staging:
        writer = _Writer(spec, staging, n_layers, np.random.default_rng([spec.seed, n_layers]))
        for layer in spec.layers:
            x = torch.from_numpy(activations[(spec.input_hook, layer)])
            y = torch.from_numpy(activations[(spec.output_hook, layer)])
            rng = np.random.default_rng([spec.seed, layer])
            stored, quality[str(layer)] = fit_layer(
                x,
                y,
                spec.d_sae,
                spec.target_l0,
                rng,
                spec.activation == "jumprelu",
                skip=spec.recipe.skip,
                dtype=writer.dtype,
            )
            writer.write(layer, stored, quality[str(layer)]["mean_l0"])
            log.info("%s layer %d: %s", spec.name, layer, quality[str(layer)])
        header = f"# {LABEL}\n# Set {spec.name}: {spec.schema}, built by rule build_synthetic_dictionaries.\n"
        body = yaml.safe_dump(writer.curation(model.get("repo")), sort_keys=False)
        (staging / CURATION_FILE).write_text(header + body, encoding="utf-8")
        provenance = {
            "synthetic": True,
            "label": LABEL,
            "set": spec.name,
            "schema": spec.schema,
            "kind": spec.kind,
            "input_hook": spec.input_hook,
            "output_hook": spec.output_hook,
            "activation": spec.activation,
            "d_sae": spec.d_sae,
            "target_l0": spec.target_l0,
            "seed": spec.seed,
            "method": synthetic_fit.__doc__.split("\n\n", 1)[1].strip(),
            "calibration": dict(calibration),
            "model": dict(model),
            "layers": quality,
            "numerics": dict(numerics or {"mode": "native", "threads": torch.get_num_threads()}),
            "environment": describe_environment(),
        }
        write_json_atomic(staging / PROVENANCE_FILE, provenance)
        record_folder_hashes(staging)  # resolution refuses the set if a byte changes
    return provenance
