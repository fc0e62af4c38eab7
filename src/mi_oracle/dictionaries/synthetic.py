"""Synthetic dictionaries for the embedded default: real on-disk formats, clearly labelled, deterministic.

No published SAE or transcoder for Gemma 3 270M is reachable offline, so the default run builds its
own from the model's activations on the default prompts (the arithmetic: ``synthetic_fit``). The
calibration forward and the fit run in portable numerics by default, so the same config writes the
same bytes on any x86-64 machine. A CLT's writes into later layers (``W_dec_l[:, 1:]``) are small
seeded random directions.

They are not trained dictionaries: every provenance file and manifest says ``synthetic: true``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from mi_oracle.atomic import atomic_directory, write_json_atomic
from mi_oracle.capture.run import collect_activations
from mi_oracle.config import calibration_settings
from mi_oracle.dictionaries import synthetic_fit
from mi_oracle.dictionaries.synthetic_fit import fit_layer
from mi_oracle.environment import describe_environment
from mi_oracle.errors import DictionaryError
from mi_oracle.formats import FORMATS, WriteOptions, format_of
from mi_oracle.hook_points import HOOK_POINTS
from mi_oracle.json_files import read_json
from mi_oracle.layout import CURATION_FILE, PLAN_FILE, PROVENANCE_FILE
from mi_oracle.models.folder import summarize_config
from mi_oracle.models.provenance import model_identity
from mi_oracle.numerics.mode import PORTABLE, Numerics
from mi_oracle.parquet_files import read_parquet

log = logging.getLogger(__name__)

LABEL = "SYNTHETIC dictionary built by mi-oracle for testing pipelines: not trained, not for interpretation"
DEFAULT_KIND = {
    "GemmaScopeNpz": "transcoder_set",
    "PltBundle": "transcoder_set",
    "CltSplit": "cross_layer_transcoder",
    "CltSplitJumpReLU": "cross_layer_transcoder",
}
DEFAULT_HOOKS = {  # the hooks the published dictionaries of each format use
    ("GemmaScopeNpz", "transcoder_set"): ("ln2_normalized", "mlp_out"),
    ("PltBundle", "transcoder_set"): ("mlp_in", "mlp_out"),
    ("CltSplit", "cross_layer_transcoder"): ("resid_mid", "mlp_out"),
    ("CltSplitJumpReLU", "cross_layer_transcoder"): ("resid_mid", "mlp_out"),
}
CROSS_LAYER_NORM = 0.05
CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class SyntheticSet:
    """One synthetic set to build."""

    name: str
    schema: str
    kind: str
    input_hook: str
    output_hook: str
    layers: tuple[int, ...]
    d_sae: int
    target_l0: float
    seed: int

    @property
    def activation(self) -> str:
        return "relu" if self.schema in ("PltBundle", "CltSplit") else "jumprelu"


def plan_set(name: str, spec: Mapping[str, Any], n_layers: int, sae_layers: Sequence[int]) -> SyntheticSet:
    """A SyntheticSet from its config entry: SAEs at ``sae_layers``, transcoders at every layer."""
    schema = spec["schema"]
    kind = spec.get("kind", DEFAULT_KIND[schema])
    if kind == "sae":
        if schema != "GemmaScopeNpz":
            raise DictionaryError(f"dictionaries[{name}].synthetic: SAEs are written as GemmaScopeNpz only")
        hooks = (spec.get("hook", "resid_post"),) * 2
        layers = tuple(sorted(set(sae_layers)))
        if "input_hook" in spec:
            raise DictionaryError(
                f"dictionaries[{name}].synthetic.input_hook: transcoders only; an SAE reads its hook"
            )
    elif (schema, kind) in DEFAULT_HOOKS:
        published_input, output_hook = DEFAULT_HOOKS[(schema, kind)]
        hooks = (spec.get("input_hook", published_input), output_hook)
        layers = tuple(range(n_layers))
    else:
        raise DictionaryError(f"dictionaries[{name}].synthetic: schema {schema} cannot be a {kind}")
    d_sae, target = int(spec.get("d_sae", 1024)), float(spec.get("target_l0", 64))
    if not 0 < target < d_sae:
        raise DictionaryError(f"dictionaries[{name}].synthetic.target_l0: {target} must lie in (0, d_sae)")
    return SyntheticSet(name, schema, kind, *hooks, layers, d_sae, target, int(spec.get("seed", 0)))


def calibration_rows(tokens_dir: Path, n_tokens: int) -> list[tuple[int, list[int]]]:
    """``n_tokens`` tokens of whole prompts spread over the capture plan, as (prompt id, token ids)
    in the order taken (the last prompt cut).

    The walk takes every k-th prompt of the plan (k = the plan's tokens / ``n_tokens``, rounded
    up), then every k-th from the next prompt on, and so on, so every part of a plan ordered by
    kind (short prompts, code, long documents) is in the sample; the plan's first tokens alone
    would be its first kind only. Prompts are chosen by position, never by content.
    """
    prompts = []
    for part in sorted(Path(tokens_dir).glob("part-*.parquet")):
        table = read_parquet(part, "tokens table", ["prompt_id", "token_ids"])
        columns = (table.column("prompt_id").to_pylist(), table.column("token_ids").to_pylist())
        prompts += zip(*columns, strict=True)
    stride = max(1, -(-sum(len(tokens) for _, tokens in prompts) // n_tokens))
    rows: list[tuple[int, list[int]]] = []
    total = 0
    for index in (i for start in range(stride) for i in range(start, len(prompts), stride)):
        prompt_id, tokens = prompts[index]
        take = tokens[: n_tokens - total]
        if take:
            rows.append((prompt_id, take))
            total += len(take)
        if total >= n_tokens:
            break
    return rows


class _Writer:
    """Writes one set's layers through its format (``mi_oracle.formats``) and collects the YAML's entries."""

    def __init__(self, spec: SyntheticSet, folder: Path, n_layers: int, seed_rng: np.random.Generator):
        self.spec, self.folder, self.n_layers, self.rng = spec, folder, n_layers, seed_rng
        self.entries: list[Any] = []
        self.metadata = {"format": spec.schema, "synthetic": "true", "label": LABEL}

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32 if self.spec.schema == "GemmaScopeNpz" else torch.bfloat16

    def write(self, layer: int, weights: dict[str, torch.Tensor], mean_l0: float) -> None:
        spec = self.spec
        canonical = {**weights, "W_dec": weights["W_dec"][:, None, :]}
        if spec.schema in FORMATS["CltSplit"].schemas:  # later layers' slices: small random directions
            shape = (spec.d_sae, self.n_layers - layer, weights["W_dec"].shape[1])
            decoder = torch.from_numpy(self.rng.standard_normal(shape))
            decoder *= CROSS_LAYER_NORM / torch.linalg.vector_norm(decoder, dim=2, keepdim=True)
            decoder[:, 0] = weights["W_dec"]
            canonical["W_dec"] = decoder
        options = WriteOptions(self.dtype, self.metadata, {"average_l0": mean_l0})
        relative = format_of(spec.schema).write(self.folder, layer, canonical, options)
        if spec.schema == "GemmaScopeNpz":  # listed in the YAML; the other layouts are found by name
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
                skip=spec.schema == "PltBundle",
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
    return provenance


def calibrate(
    model_dir: Path,
    tokens_dir: Path,
    definitions: Mapping[str, Mapping[str, Any]],
    target: Path,
    capture_settings: Mapping[str, Any],
    calibration_tokens: int,
    numerics: Numerics = PORTABLE,
) -> dict[str, Any]:
    """Run the calibration forward once for every set in ``definitions`` and save it in ``target``.

    ``target`` holds one float32 ``.npy`` per (hook, layer) the sets read and ``calibration.json``
    (the tokens taken, the model, the numerics), what :func:`build_one` fits a set from. In
    portable numerics (the default) the forward runs in float32 on the CPU in a pinned child
    interpreter, so the arrays are the same on any x86-64 machine.
    """
    return numerics.run(
        _calibrate,
        model_dir=Path(model_dir),
        tokens_dir=Path(tokens_dir),
        definitions=dict(definitions),
        target=Path(target),
        capture_settings=dict(calibration_settings(capture_settings, numerics.mode)),
        calibration_tokens=calibration_tokens,
        numerics=numerics.record(),
    )


def build_one(
    name: str,
    definition: Mapping[str, Any],
    calibration_dir: Path,
    target: Path,
    numerics: Numerics = PORTABLE,
) -> dict[str, Any]:
    """Fit and write synthetic set ``name`` (its ``synthetic`` entry) from a :func:`calibrate` folder."""
    return numerics.run(
        _build_one,
        name=name,
        definition=dict(definition),
        calibration_dir=Path(calibration_dir),
        target=Path(target),
    )


def build_synthetic_sets(
    model_dir: Path,
    tokens_dir: Path,
    definitions: Mapping[str, Mapping[str, Any]],
    targets: Mapping[str, Path],
    capture_settings: Mapping[str, Any],
    calibration_tokens: int,
    numerics: Numerics = PORTABLE,
) -> dict[str, dict[str, Any]]:
    """Every set in ``definitions``: one calibration (in a scratch folder beside the first
    target), then each set's fit; the workflow runs the same steps as separate jobs."""
    parent = Path(next(iter(targets.values()))).parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".calibration-", dir=parent) as scratch:
        calibration = Path(scratch) / "calibration"
        calibrate(
            model_dir, tokens_dir, definitions, calibration, capture_settings, calibration_tokens, numerics
        )
        return {
            name: build_one(name, definition, calibration, Path(targets[name]), numerics)
            for name, definition in definitions.items()
        }


def _point_file(hook: str, layer: int) -> str:
    return f"{hook}.{layer}.npy"


def _calibrate(
    model_dir: str | Path,
    tokens_dir: str | Path,
    definitions: Mapping[str, Mapping[str, Any]],
    target: str | Path,
    capture_settings: Mapping[str, Any],
    calibration_tokens: int,
    numerics: Mapping[str, Any],
) -> dict[str, Any]:
    model_dir, tokens_dir = Path(model_dir), Path(tokens_dir)
    summary = summarize_config(model_dir)
    n_layers = int(summary["num_hidden_layers"])
    model = {
        **model_identity(model_dir),
        "hidden_size": summary["hidden_size"],
        "num_hidden_layers": n_layers,
    }
    specs = [plan_set(name, spec, n_layers, capture_settings["layers"]) for name, spec in definitions.items()]
    points = sorted(
        {(hook, layer) for s in specs for layer in s.layers for hook in (s.input_hook, s.output_hook)}
    )
    taken = calibration_rows(tokens_dir, calibration_tokens)
    rows = [tokens for _, tokens in taken]
    n_tokens = sum(len(row) for row in rows)
    plan = read_json(Path(tokens_dir) / PLAN_FILE)
    calibration = {
        "n_tokens": n_tokens,
        "n_prompts": len(rows),
        "prompts": [[prompt_id, len(tokens)] for prompt_id, tokens in taken],
        "prompt_set": plan["prompt_set"],
        "tokenization": plan["tokenization"],
    }
    log.info(
        "calibrating %d synthetic sets on %d tokens at %d hook points", len(specs), n_tokens, len(points)
    )
    activations = collect_activations(model_dir, rows, points, capture_settings, numerics["threads"])
    record = {
        "calibration": calibration,
        "model": model,
        "sae_layers": list(capture_settings["layers"]),
        "numerics": dict(numerics),
        "points": [[hook, layer] for hook, layer in points],
    }
    with atomic_directory(Path(target)) as staging:
        for (hook, layer), array in activations.items():
            np.save(staging / _point_file(hook, layer), array, allow_pickle=False)
        write_json_atomic(staging / CALIBRATION_FILE, record)
    return record


def _build_one(
    name: str, definition: Mapping[str, Any], calibration_dir: str | Path, target: str | Path
) -> dict[str, Any]:
    calibration_dir = Path(calibration_dir)
    record = read_json(calibration_dir / CALIBRATION_FILE)
    n_layers = int(record["model"]["num_hidden_layers"])
    spec = plan_set(name, definition, n_layers, record["sae_layers"])
    activations = {
        (hook, layer): np.load(calibration_dir / _point_file(hook, layer), allow_pickle=False)
        for layer in spec.layers
        for hook in {spec.input_hook, spec.output_hook}
    }
    return build_set(
        spec, activations, Path(target), n_layers, record["model"], record["calibration"], record["numerics"]
    )
